import { parentPort } from 'node:worker_threads';
import type { DecodeItem, ItemResult, OutputDType, WorkerReply, WorkerRequest } from './decode-protocol.js';
import { decodeAndResize, decodePixels, planarPixels, readImageFile, type PixelImage } from './pixel-codec.js';
import { meanProblem, placeCrop, transformedShape, transformPlanar, type TransformSpec } from './transform-kernel.js';

/*
 * A decode worker (see decode-pool.ts): decodes images (sharp on libuv's pool, then the OpenCV-exact
 * pixel work of pixel-codec.ts) and transforms them with the random choices the main thread drew.
 * Results go straight into the shared batch buffer when they have the expected shape.
 */

const specs = new Map<number, TransformSpec>();

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function load(item: DecodeItem): Promise<PixelImage> {
  const s = item.source;
  if (s.kind === 'bytes') return decodePixels(s.bytes, s.mode, s.what);
  const bytes = await readImageFile(s.path);
  return decodeAndResize(bytes, s.path, { height: s.height, width: s.width, isColor: s.isColor });
}

async function runItem(
  spec: TransformSpec,
  item: DecodeItem,
  dtype: OutputDType,
  out: Float32Array | Float64Array | null,
  expect: number[] | null,
): Promise<ItemResult> {
  const result: ItemResult = { index: item.index, image: null, shape: null, placed: false, data: null, error: null };
  let img: PixelImage;
  try {
    img = await load(item);
  } catch (e) {
    result.error = { stage: 'decode', message: message(e) };
    return result;
  }
  const { channels, height, width } = img;
  result.image = [channels, height, width];
  const shape = transformedShape(spec, channels, height, width);
  const problem = typeof shape === 'string' ? shape : meanProblem(spec, channels, height, width);
  if (problem !== null || typeof shape === 'string') {
    result.error = { stage: 'transform', message: problem ?? '' };
    return result;
  }
  result.shape = shape;
  const size = shape[0] * shape[1] * shape[2];
  const fits = out !== null && expect !== null && expect.length === 3 && shape.every((d, k) => d === expect[k]);
  const target = fits ? out! : dtype === 'float64' ? new Float64Array(size) : new Float32Array(size);
  const offset = fits ? item.index * size : 0;
  const src = { channels, height, width, pixels: planarPixels(img), floats: [] as number[] };
  transformPlanar(spec, src, placeCrop(spec, item.draws, height, width), target, offset);
  if (fits) result.placed = true;
  else result.data = target;
  return result;
}

parentPort!.on('message', (req: WorkerRequest) => {
  if (req.type === 'spec') {
    specs.set(req.specId, req.spec);
    return;
  }
  if (req.type === 'drop') {
    specs.delete(req.specId);
    return;
  }
  const spec = specs.get(req.specId);
  if (!spec) {
    parentPort!.postMessage({ type: 'failed', jobId: req.jobId, message: `unknown transformation ${req.specId}` } satisfies WorkerReply);
    return;
  }
  const out = req.out ? (req.dtype === 'float64' ? new Float64Array(req.out) : new Float32Array(req.out)) : null;
  // All images of the job decode at once (sharp works on libuv's threads); each is transformed
  // here as soon as its pixels arrive.
  Promise.all(req.items.map((item) => runItem(spec, item, req.dtype, out, req.expect))).then(
    (results) => {
      const transfer = results.flatMap((r) => (r.data ? [r.data.buffer as ArrayBuffer] : []));
      parentPort!.postMessage({ type: 'done', jobId: req.jobId, results } satisfies WorkerReply, transfer);
    },
    (e: unknown) => parentPort!.postMessage({ type: 'failed', jobId: req.jobId, message: message(e) } satisfies WorkerReply),
  );
});
