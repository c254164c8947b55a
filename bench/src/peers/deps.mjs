// The peers' packages, imported from here so that code outside bench/ (tests/src) resolves them
// through bench's own dependencies.
export const importOrt = () => import('onnxruntime-node');
/** tfjs-core with its cpu backend registered (and the wasm one with `wasm`). */
export async function importTfjs({ wasm = false } = {}) {
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-cpu');
  if (wasm) await import('@tensorflow/tfjs-backend-wasm');
  return tf;
}
