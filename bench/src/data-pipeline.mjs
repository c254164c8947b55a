#!/usr/bin/env node
// Throughput of the Data layer pipeline (read → decode → transform, prefetched) against what a
// training net consumes, from the built packages:
//
//   pnpm build && node bench/src/data-pipeline.mjs [--images 1000] [--size 32] [--batch 100]
//       [--iterations 20] [--crop 28] [--prefetch 4] [--workers 0,auto] [--keep DIR]
//
// Generates --images JPEG images of --size × --size pixels (random textures), converts them with
// convertImageset into an LMDB of encoded JPEGs and an LMDB of raw Datums, then times, with the
// wall clock (decoding runs on other threads, so CPU time of this thread alone would say little):
//   1. the Data layer alone over each LMDB: `await prepare(); forward()` as fast as batches come
//      (crop, mirror, mean_value, scale as a typical train_val), and the ImageData layer over the
//      JPEG files; encoded JPEGs and files once per decode-worker count in --workers (a comma
//      list; 'auto' is the default pool size, min(cores − 1, 4); 0 decodes on the main thread);
//   2. a CIFAR-10-quick-sized training net on fixed inputs (an Input layer): forward + backward,
//      i.e. what training consumes;
//   3. the same net fed by the Data layer over each LMDB, with the time spent in prepare() per
//      batch ("waiting for data": what prefetching did not hide, including the main-thread share
//      of decoding that lands there).
// Prints images/s for each. The first --warmup batches are not timed.
//
// --keep DIR keeps the images (DIR/img/, DIR/list.txt) and writes, for the end-to-end run with the
// CLI (convert_imageset, compute_image_mean, train/time on CIFAR-10 quick with mean file, crop and
// mirror), DIR/train_jpg.prototxt, DIR/train_raw.prototxt and their solvers; it prints the commands.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseBenchArgs } from './cli-args.mjs';
import v8 from 'node:v8';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const { Rng, setLogSink, activeGemmKernelName } = await import('@caffe-ts/blob');
const { LayerRegistry, registerBuiltinLayers } = await import('@caffe-ts/layers');
const { Net } = await import('@caffe-ts/net');
const { parseNetParameter, Phase } = await import('@caffe-ts/proto');
const io = await import('@caffe-ts/io-leveldb');

const { values } = parseBenchArgs({
  options: {
    images: { type: 'string', default: '1000' },
    size: { type: 'string', default: '32' },
    batch: { type: 'string', default: '100' },
    iterations: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    crop: { type: 'string', default: '28' },
    prefetch: { type: 'string', default: '4' },
    workers: { type: 'string', default: '0,auto' },
    keep: { type: 'string' },
    quiet: { type: 'boolean', default: true },
  },
}, import.meta.url);
const N = Number(values.images);
const SIZE = Number(values.size);
const BATCH = Number(values.batch);
const ITERS = Number(values.iterations);
const WARMUP = Number(values.warmup);
const CROP = Number(values.crop);
const PREFETCH = Number(values.prefetch);
const WORKERS = values.workers.split(',').map((w) => (w.trim() === 'auto' ? 'auto' : Number(w)));
if (values.quiet) setLogSink(() => {});

const registry = registerBuiltinLayers(new LayerRegistry());
io.registerDataLayers(registry);
const dir = values.keep ? resolve(values.keep) : mkdtempSync(join(tmpdir(), 'caffe-ts-bench-data-'));
if (values.keep) mkdirSync(dir, { recursive: true });

try {
  // Images: smooth colour gradients plus noise, so JPEG sizes are realistic (~1–2 KB at 32×32).
  const rng = new Rng(1);
  mkdirSync(join(dir, 'img'), { recursive: true });
  const list = [];
  for (let i = 0; i < N; i++) {
    const data = new Uint8Array(SIZE * SIZE * 3);
    const [a, b, c] = [rng.int(256), rng.int(256), rng.int(256)];
    for (let y = 0; y < SIZE; y++)
      for (let x = 0; x < SIZE; x++)
        for (let ch = 0; ch < 3; ch++) data[(y * SIZE + x) * 3 + ch] = (a * (ch === 0) + b * (ch === 1) + c * (ch === 2) + x * 3 + y * 2 + rng.int(40)) & 255;
    writeFileSync(join(dir, 'img', `${i}.jpg`), await io.encodeImage({ height: SIZE, width: SIZE, channels: 3, data }, 'jpg'));
    list.push(`${i}.jpg ${i % 10}`);
  }
  writeFileSync(join(dir, 'list.txt'), list.join('\n') + '\n');
  const t0 = performance.now();
  rmSync(join(dir, 'raw_lmdb'), { recursive: true, force: true });
  rmSync(join(dir, 'jpg_lmdb'), { recursive: true, force: true });
  await io.convertImageset(`${dir}/img/`, join(dir, 'list.txt'), join(dir, 'raw_lmdb'));
  const t1 = performance.now();
  await io.convertImageset(`${dir}/img/`, join(dir, 'list.txt'), join(dir, 'jpg_lmdb'), { encoded: true });
  const t2 = performance.now();

  const dataLayer = (source) => `
    layer { name: "data" type: "Data" top: "data" top: "label"
      transform_param { crop_size: ${CROP} mirror: true mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.0078125 }
      data_param { source: "${source}" backend: LMDB batch_size: ${BATCH} prefetch: ${PREFETCH} } }`;
  const body = `
    layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
      convolution_param { num_output: 32 pad: 2 kernel_size: 5 stride: 1 weight_filler { type: "gaussian" std: 0.0001 } } }
    layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
    layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
    layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
      convolution_param { num_output: 32 pad: 2 kernel_size: 5 stride: 1 weight_filler { type: "gaussian" std: 0.01 } } }
    layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
    layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
    layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
      convolution_param { num_output: 64 pad: 2 kernel_size: 5 stride: 1 weight_filler { type: "gaussian" std: 0.01 } } }
    layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
    layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
    layer { name: "ip1" type: "InnerProduct" bottom: "pool3" top: "ip1" inner_product_param { num_output: 64 weight_filler { type: "gaussian" std: 0.1 } } }
    layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.1 } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }`;

  /** Run `step` ITERS times after WARMUP untimed ones; images/s and the ms spent in `wait`. */
  async function time(net, { train }) {
    let waited = 0;
    let start = 0;
    for (let i = 0; i < WARMUP + ITERS; i++) {
      if (i === WARMUP) {
        start = performance.now();
        waited = 0;
      }
      const w = performance.now();
      await net.prepare();
      waited += performance.now() - w;
      net.forward();
      if (train) net.backward();
    }
    const ms = performance.now() - start;
    return { imagesPerSecond: (ITERS * BATCH * 1000) / ms, msPerBatch: ms / ITERS, waitedPerBatch: waited / ITERS };
  }

  const imageData = `
    layer { name: "data" type: "ImageData" top: "data" top: "label"
      transform_param { crop_size: ${CROP} mirror: true mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.0078125 }
      image_data_param { source: "${join(dir, 'list.txt')}" root_folder: "${dir}/img/" batch_size: ${BATCH} } }`;
  const workersLabel = (w) => (w === 0 ? 'main thread' : `${w === 'auto' ? io.decodeWorkerCount() : w} decode workers`);
  const results = [];
  async function measure(label, text, train) {
    const net = await Net.create(parseNetParameter(text), { phase: Phase.TRAIN, registry, log: false });
    results.push([label, await time(net, { train })]);
    await net.close();
    await io.closeDataSources();
  }
  io.setDecodeWorkers(0);
  await measure('Data layer alone, raw Datums', dataLayer(join(dir, 'raw_lmdb')), false);
  for (const w of WORKERS) {
    io.setDecodeWorkers(w === 'auto' ? 'auto' : w);
    await measure(`Data layer alone, encoded JPEG, ${workersLabel(w)}`, dataLayer(join(dir, 'jpg_lmdb')), false);
    await measure(`ImageData layer alone, JPEG files, ${workersLabel(w)}`, imageData, false);
  }
  const input = `layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: ${BATCH} dim: 3 dim: ${CROP} dim: ${CROP} } shape { dim: ${BATCH} } } }`;
  const compute = await Net.create(parseNetParameter(input + body), { phase: Phase.TRAIN, registry, log: false });
  compute.blob('data').mutableCpuData().forEach((_, i, a) => (a[i] = Math.sin(i)));
  compute.blob('label').mutableCpuData().forEach((_, i, a) => (a[i] = i % 10));
  results.push(['training net (forward+backward), fixed inputs', await time(compute, { train: true })]);
  await compute.close();
  io.setDecodeWorkers(0);
  await measure('training net fed by Data, raw Datums', dataLayer(join(dir, 'raw_lmdb')) + body, true);
  for (const w of WORKERS) {
    io.setDecodeWorkers(w === 'auto' ? 'auto' : w);
    await measure(`training net fed by Data, encoded JPEG, ${workersLabel(w)}`, dataLayer(join(dir, 'jpg_lmdb')) + body, true);
  }
  io.setDecodeWorkers('auto');

  if (values.keep) {
    // The end-to-end run with the CLI: its own databases and mean file, CIFAR-10 quick with mean
    // file, crop and mirror, training only (no TEST net), no snapshots.
    for (const kind of ['jpg', 'raw']) {
      writeFileSync(
        join(dir, `train_${kind}.prototxt`),
        `name: "CIFAR10_quick_${kind}"
layer { name: "cifar" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { mean_file: "${join(dir, 'mean.binaryproto')}" crop_size: ${CROP} mirror: true }
  data_param { source: "${join(dir, `cli_${kind}_lmdb`)}" batch_size: ${BATCH} backend: LMDB prefetch: ${PREFETCH} } }
${body}
`,
      );
      writeFileSync(
        join(dir, `solver_${kind}.prototxt`),
        `net: "${join(dir, `train_${kind}.prototxt`)}"
base_lr: 0.001 momentum: 0.9 weight_decay: 0.004 lr_policy: "fixed"
display: 10 max_iter: 100 snapshot_after_train: false random_seed: 1 solver_mode: CPU
`,
      );
    }
  }
  console.log(`images: ${N} JPEGs of ${SIZE}×${SIZE}, batch ${BATCH}, crop ${CROP}, prefetch ${PREFETCH}, ${ITERS} timed batches; GEMM ${activeGemmKernelName?.() ?? '?'}`);
  console.log(`convert_imageset: raw ${((N * 1000) / (t1 - t0)).toFixed(0)} images/s, encoded ${((N * 1000) / (t2 - t1)).toFixed(0)} images/s`);
  for (const [label, r] of results) {
    console.log(
      `${label.padEnd(48)} ${r.imagesPerSecond.toFixed(0).padStart(8)} images/s  ${r.msPerBatch.toFixed(1).padStart(8)} ms/batch  waiting for data ${r.waitedPerBatch.toFixed(1)} ms/batch`,
    );
  }
  if (values.keep) {
    const c = 'pnpm caffe';
    console.log(`\nKept ${dir}. End-to-end run with the CLI (from the repository root, after pnpm build):`);
    console.log(`  ${c} convert_imageset --encoded --backend lmdb ${dir}/img/ ${dir}/list.txt ${dir}/cli_jpg_lmdb`);
    console.log(`  ${c} convert_imageset --backend lmdb ${dir}/img/ ${dir}/list.txt ${dir}/cli_raw_lmdb`);
    console.log(`  ${c} compute_image_mean --backend lmdb ${dir}/cli_raw_lmdb ${dir}/mean.binaryproto`);
    console.log(`  time ${c} train --solver ${dir}/solver_jpg.prototxt    # 'Iteration N (x iter/s ...)' lines: step time with data waits`);
    console.log(`  time ${c} train --solver ${dir}/solver_raw.prototxt`);
    console.log(`  ${c} time --model ${dir}/train_jpg.prototxt --iterations 30   # Total Time − 30 × Average Forward-Backward = time waiting for data`);
    console.log(`  CAFFE_TS_DECODE_WORKERS=0 ${c} time --model ${dir}/train_jpg.prototxt --iterations 30   # the same, decoding on the main thread`);
  }
} finally {
  if (!values.keep) rmSync(dir, { recursive: true, force: true });
}
