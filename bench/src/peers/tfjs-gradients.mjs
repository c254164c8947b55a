// Registers TensorFlow.js's gradients, as the @tensorflow/tfjs union package does on import.
// tfjs-core's Node entry leaves them out, and its per-file ESM build cannot be imported by Node
// directly (extensionless specifiers), so esbuild bundles that one module into `dir`; the engine
// and gradient registry it fills are tfjs globals, shared with the main tfjs-core copy.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

let done = false;

export async function registerTfjsGradients(dir) {
  if (done) return;
  const { build } = await import('esbuild');
  const entry = createRequire(import.meta.url).resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  const outfile = join(dir, 'tfjs-gradients.mjs');
  await build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', outfile, logLevel: 'error' });
  await import(pathToFileURL(outfile).href);
  done = true;
}
