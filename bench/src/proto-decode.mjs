#!/usr/bin/env node
// Decode and encode time of a large .caffemodel (NetParameter with weight blobs) through
// @caffe-ts/proto's binary codec, from the built package:
//
//   pnpm build && node bench/src/proto-decode.mjs [--repeat 5] [--fc 1024] [--proto path/to/proto/dist/index.js]
//
// The model is CaffeNet-shaped (conv1–conv5 as in bvlc_reference_caffenet, fc6/fc7 narrowed to
// --fc outputs so that the file is ~55 MB at the default; --fc 4096 gives the real 233 MB) with
// random weights. --proto imports another build of @caffe-ts/proto (e.g. a worktree of an older
// commit) to compare. Prints the best of --repeat runs for encodeNetParameter and
// decodeNetParameter, MB/s, and the heap growth that holding the decoded model costs.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { parseBenchArgs } from './cli-args.mjs';

const { values } = parseBenchArgs({
  options: {
    repeat: { type: 'string', default: '5' },
    fc: { type: 'string', default: '1024' },
    proto: { type: 'string' },
  },
}, import.meta.url);
const proto = await import(values.proto ? pathToFileURL(resolve(values.proto)).href : '@caffe-ts/proto');
const REPEAT = Number(values.repeat);
const FC = Number(values.fc);

// [name, type, weight shape, bias length]
const layers = [
  ['conv1', 'Convolution', [96, 3, 11, 11], 96],
  ['conv2', 'Convolution', [256, 48, 5, 5], 256],
  ['conv3', 'Convolution', [384, 256, 3, 3], 384],
  ['conv4', 'Convolution', [384, 192, 3, 3], 384],
  ['conv5', 'Convolution', [256, 192, 3, 3], 256],
  ['fc6', 'InnerProduct', [FC, 9216], FC],
  ['fc7', 'InnerProduct', [FC, FC], FC],
  ['fc8', 'InnerProduct', [1000, FC], 1000],
];
let seed = 1;
const random = (n) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = (seed / 4294967296 - 0.5) * 0.02;
  }
  return a;
};
const count = (shape) => shape.reduce((a, b) => a * b, 1);
const net = proto.createMessage('NetParameter', {
  name: 'CaffeNet',
  layer: layers.map(([name, type, shape, bias]) => ({
    name,
    type,
    blobs: [
      { shape: { dim: shape }, data: random(count(shape)) },
      { shape: { dim: [bias] }, data: random(bias) },
    ],
  })),
});

const best = (f) => {
  let ms = Infinity;
  let out;
  for (let r = 0; r < REPEAT; r++) {
    const t = performance.now();
    out = f();
    ms = Math.min(ms, performance.now() - t);
  }
  return { ms, out };
};
const enc = best(() => proto.encodeNetParameter(net));
const bytes = enc.out;
const mb = bytes.length / 1e6;
let dec = best(() => proto.decodeNetParameter(bytes));
const kind = dec.out.layer[0].blobs[0].data.constructor.name;
dec = { ms: dec.ms, out: null };
// Buffers of collected arrays are released in the background: collect, wait, collect again.
const used = async () => {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const heap0 = await used();
const kept = proto.decodeNetParameter(bytes);
const heap1 = await used();
void kept.name;
console.log(`caffemodel: ${mb.toFixed(1)} MB (CaffeNet-shaped, fc ${FC}), best of ${REPEAT}; proto ${values.proto ?? '@caffe-ts/proto'}`);
console.log(`encodeNetParameter  ${enc.ms.toFixed(0).padStart(7)} ms  ${(mb / (enc.ms / 1000)).toFixed(0).padStart(6)} MB/s`);
console.log(`decodeNetParameter  ${dec.ms.toFixed(0).padStart(7)} ms  ${(mb / (dec.ms / 1000)).toFixed(0).padStart(6)} MB/s  (blob data as ${kind}; heap + buffers held by the last decode ≈ ${((heap1 - heap0) / 1e6).toFixed(0)} MB${globalThis.gc ? '' : ', run with --expose-gc for a steadier figure'})`);
