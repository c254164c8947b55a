/**
 * The fuzzer's HDF5 and image targets: seeds (the corpus's HDF5 data files, and files made in the
 * run itself through the project's own writers: the HDF5Output layer, the solver's HDF5 weight
 * and state snapshots, gzip-compressed datasets, JPEGs and PNGs encoded with sharp, an encoded
 * Datum), and the readers, which are asynchronous (sharp) or read files (h5wasm), so each input
 * is written to a scratch folder first. The format-aware mutations are in fuzz-core.ts.
 *
 * Readers: the HDF5Data layer (source list → .h5 → setUp + forward), readHdf5Datasets, the
 * solver's copyTrainedLayersFromHdf5 and readSolverStateHdf5; decodeImage (the encoded-Datum and
 * decode-worker path), readImage with a resize (ImageData, `caffe detect`/`detect_faces`), the
 * zoo's loadImage (`caffe classify`), and decodeDatumImage for encoded Datums.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Blob } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { CaffeError, createMessage, decodeDatum, encodeDatum, parseText, Phase, type Datum, type LayerParameter, type NetParameter, type SolverState } from '@caffe-ts/proto';
import { HDF5DataLayer } from '../../packages/io-leveldb/src/hdf5-data-layer.js';
import { HDF5OutputLayer } from '../../packages/io-leveldb/src/hdf5-output-layer.js';
import { hdf5Ready, readHdf5DatasetsSync, writeHdf5DatasetsSync } from '../../packages/io-leveldb/src/hdf5.js';
import { decodeDatumImage, decodeImage, readImage } from '../../packages/io-leveldb/src/image-io.js';
import { copyTrainedLayersFromHdf5, loadH5wasm, readSolverStateHdf5, writeNetHdf5, writeSolverStateHdf5 } from '../../packages/solver/src/hdf5.js';
import { loadImage } from '../../packages/zoo/src/transformer.js';
import type { AsyncReader, FuzzInput, Outcome, Seed } from './fuzz-core.js';

/** The tiny net whose HDF5 weight snapshot is a seed, and into which mutated snapshots are copied. */
const TINY_NET = `name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0.5 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1" inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
`;

export function tinyNet(): Net {
  const registry = registerBuiltinLayers(new LayerRegistry());
  const net = new Net(parseText<NetParameter>('NetParameter', TINY_NET), { registry, log: false, phase: Phase.TEST });
  // Fixed values instead of the fillers' random ones: the snapshot seed is the same in every run.
  net.learnableParams.forEach((b, j) => b.mutableCpuData().forEach((_, i, a) => (a[i] = ((i * 7 + j) % 13) * 0.05 - 0.3)));
  return net;
}

// ---- seeds ------------------------------------------------------------------------------------

/** The part of sharp's API the seeds are made with. */
interface Pipeline {
  jpeg(o?: { quality?: number; progressive?: boolean; chromaSubsampling?: string }): Pipeline;
  png(o?: { compressionLevel?: number; palette?: boolean; colours?: number }): Pipeline;
  toColourspace(space: string): Pipeline;
  toBuffer(): Promise<Buffer>;
}
type Sharp = (input: Buffer, options: { raw: { width: number; height: number; channels: 1 | 2 | 3 | 4 } }) => Pipeline;

/**
 * sharp as @caffe-ts/io-leveldb has it (pnpm does not hoist it to the root, where this file and
 * its esbuild bundle in .build/ would look): the repository is found walking up from here.
 */
function loadSharp(): Sharp {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'packages/io-leveldb/package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`fuzz-media: no packages/io-leveldb above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return createRequire(join(dir, 'packages/io-leveldb/package.json'))('sharp') as Sharp;
}

/** A deterministic test picture: gradients and a checkerboard, `channels` bands, 8-bit. */
function picture(width: number, height: number, channels: 1 | 2 | 3 | 4): Buffer {
  const px = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) px[(y * width + x) * channels + c] = c === 3 ? 255 - x * 8 : ((x * 37 + y * 23 + c * 71) ^ ((x >> 2) + (y >> 2)) * 40) & 255;
    }
  }
  return px;
}

/** JPEGs and PNGs made with sharp (libjpeg-turbo, libpng): colour, gray, alpha, 16-bit, palette, progressive. */
async function imageSeeds(): Promise<Seed[]> {
  const sharp = loadSharp();
  const raw = (w: number, h: number, c: 1 | 2 | 3 | 4) => sharp(picture(w, h, c), { raw: { width: w, height: h, channels: c } });
  const u8 = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  const made: [string, Promise<Buffer>][] = [
    ['image/rgb-24x16.jpg', raw(24, 16, 3).jpeg({ quality: 90 }).toBuffer()],
    ['image/gray-16x12.jpg', raw(16, 12, 1).toColourspace('b-w').jpeg({ quality: 80 }).toBuffer()],
    ['image/progressive-20x20.jpg', raw(20, 20, 3).jpeg({ progressive: true, chromaSubsampling: '4:4:4' }).toBuffer()],
    ['image/rgb-17x9.png', raw(17, 9, 3).png({ compressionLevel: 6 }).toBuffer()],
    ['image/rgba-12x12.png', raw(12, 12, 4).png().toBuffer()],
    ['image/gray-10x7.png', raw(10, 7, 1).toColourspace('b-w').png().toBuffer()],
    ['image/gray-alpha-8x8.png', raw(8, 8, 2).toColourspace('b-w').png().toBuffer()],
    ['image/rgb16-9x6.png', raw(9, 6, 3).toColourspace('rgb16').png().toBuffer()],
    ['image/palette-16x16.png', raw(16, 16, 3).png({ palette: true, colours: 8 }).toBuffer()],
  ];
  const seeds: Seed[] = [];
  for (const [name, p] of made) seeds.push({ name, kind: 'image', bytes: u8(await p) });
  // An encoded Datum (convert_imageset --encoded) holding the first JPEG.
  const datum = createMessage<Datum>('Datum', { channels: 3, height: 16, width: 24, data: seeds[0]!.bytes, encoded: true, label: 3 });
  seeds.push({ name: 'datum/encoded-jpeg', kind: 'datum', bytes: encodeDatum(datum) });
  return seeds;
}

/**
 * HDF5 seeds: the corpus's data files when present, and files written here through the project's
 * writers (so the target runs without the corpus): the HDF5Output layer's data/label file, a
 * gzip-compressed data file, the solver's `.caffemodel.h5` and `.solverstate.h5` snapshots.
 */
async function hdf5Seeds(corpusDir: string, scratch: string): Promise<Seed[]> {
  await Promise.all([hdf5Ready(), loadH5wasm()]);
  const seeds: Seed[] = [];
  for (const rel of ['data/sample_data.h5', 'data/solver_data.h5']) {
    const p = join(corpusDir, rel);
    if (existsSync(p)) seeds.push({ name: rel, kind: 'h5', bytes: readFileSync(p) });
  }
  const file = (n: string) => join(scratch, n);
  // HDF5Output: 4 rows of 2×3×3 data and 1 label each.
  const out = new HDF5OutputLayer(createMessage<LayerParameter>('LayerParameter', { name: 'out', type: 'HDF5Output', bottom: ['data', 'label'], hdf5_output_param: { file_name: file('output.h5') } }));
  const data = new Blob([4, 2, 3, 3]);
  data.mutableCpuData().forEach((_, i, a) => (a[i] = i * 0.25 - 3));
  const label = new Blob([4, 1]);
  label.mutableCpuData().set([0, 1, 2, 1]);
  out.setUp([data, label], []);
  out.forward([data, label], []);
  seeds.push({ name: 'generated/hdf5-output.h5', kind: 'h5', bytes: readFileSync(file('output.h5')) });
  writeHdf5DatasetsSync(file('gzip.h5'), { data: { shape: [6, 4], data: Float64Array.from({ length: 24 }, (_, i) => Math.sin(i)) }, label: { shape: [6], data: Int32Array.of(0, 1, 0, 1, 2, 2) } }, { gzip: 6 });
  seeds.push({ name: 'generated/gzip.h5', kind: 'h5', bytes: readFileSync(file('gzip.h5')) });
  const net = tinyNet();
  writeNetHdf5(net, file('tiny.caffemodel.h5'), true);
  seeds.push({ name: 'generated/tiny_iter_1.caffemodel.h5', kind: 'h5', bytes: readFileSync(file('tiny.caffemodel.h5')) });
  const history = net.learnableParams.map((b) => {
    const h = new Blob(b.shape);
    h.mutableCpuData().fill(0.125);
    return h.toProto();
  });
  const state = createMessage<SolverState>('SolverState', { iter: 7, current_step: 1, learned_net: 'tiny_iter_7.caffemodel.h5', history });
  writeSolverStateHdf5(file('tiny.solverstate.h5'), state);
  seeds.push({ name: 'generated/tiny_iter_7.solverstate.h5', kind: 'h5', bytes: readFileSync(file('tiny.solverstate.h5')) });
  // An HDF5Data source list (the text mutations apply), naming the file createMediaContext puts
  // beside it, relative and twice (two files: the layer moves to the second after the first's rows).
  seeds.push({ name: HDF5_LIST_SEED, kind: 'prototxt', bytes: new TextEncoder().encode(`${LISTED_H5}\n./${LISTED_H5}\n`) });
  return seeds;
}

const HDF5_LIST_SEED = 'generated/hdf5_data_source.txt';
const LISTED_H5 = 'listed.h5';

/** The HDF5 and image seeds (and an encoded Datum). Needs a scratch folder for the files it writes. */
export async function loadMediaSeeds(corpusDir: string, scratch: string): Promise<Seed[]> {
  mkdirSync(scratch, { recursive: true });
  return [...(await hdf5Seeds(corpusDir, scratch)), ...(await imageSeeds())];
}

/** Bytes of h5wasm's WebAssembly memory now (it grows, never shrinks: its peak is what a run records). */
export async function hdf5WasmBytes(): Promise<number> {
  // h5wasm's `ready` resolves to its Emscripten module.
  const module = (await (await hdf5Ready()).ready) as { HEAPU8: Uint8Array };
  return module.HEAPU8.length;
}

// ---- readers ----------------------------------------------------------------------------------

export interface MediaContext {
  /** Folder the inputs are written to (one file per kind, rewritten for every input). */
  scratch: string;
  net: Net;
  /** Whether libhdf5's diagnostics on stderr are to be dropped while an HDF5 reader runs (see quietStderr). */
  hdf5Quiet: boolean;
}

/** Loads h5wasm (both packages' handles) and prepares the scratch folder and the target net. */
export async function createMediaContext(scratch: string): Promise<MediaContext> {
  await Promise.all([hdf5Ready(), loadH5wasm()]);
  mkdirSync(scratch, { recursive: true });
  writeFileSync(join(scratch, 'list.txt'), `${join(scratch, 'input.h5')}\n`);
  // The file the source-list seed names: 5 rows of data and label (a batch of 3 wraps around).
  writeHdf5DatasetsSync(join(scratch, LISTED_H5), {
    data: { shape: [5, 2, 2], data: Float32Array.from({ length: 20 }, (_, i) => i) },
    label: { shape: [5], data: Float32Array.of(0, 1, 2, 3, 4) },
  });
  return { scratch, net: tinyNet(), hdf5Quiet: true };
}

async function attemptAsync(fn: () => unknown): Promise<Outcome> {
  try {
    await fn();
    return { status: 'ok' };
  } catch (e) {
    if (CaffeError.isInstance(e)) return { status: 'typed', errorClass: (e as Error).name };
    return { status: 'crash', error: e };
  }
}

/**
 * libhdf5 prints its error stack to file descriptor 2 itself (h5wasm's NODERAWFS writes with
 * fs.writeSync, no hook to turn it off); a fuzz run would print thousands of them. While `on`,
 * writes to fd 2 are dropped; returns a function that restores fs.writeSync. (The Emscripten
 * runtime's own notes — 'Cannot enlarge memory' when a corrupt file makes libhdf5 ask for more
 * than the 2 GiB WebAssembly memory, invalid UTF-8 in a name — go to a console.error/warn bound
 * at load and still print; the allocation fails and the reader reports a typed error.)
 */
export function quietStderr(fs: { writeSync: (...a: never[]) => number }, on: () => boolean): () => void {
  const original = fs.writeSync;
  const patched = (...args: unknown[]) => {
    if (args[0] === 2 && on()) {
      const data = args[1];
      return typeof data === 'string' ? Buffer.byteLength(data) : (args[3] as number | undefined) ?? (data as Uint8Array).byteLength;
    }
    return (original as (...a: unknown[]) => number)(...args);
  };
  fs.writeSync = patched as typeof fs.writeSync;
  return () => {
    fs.writeSync = original;
  };
}

let hdf5Running = false;
/** Whether an HDF5 reader is running now (for quietStderr). */
export const isHdf5Running = () => hdf5Running;

function hdf5Reader(name: string, read: (file: string, ctx: MediaContext, input: FuzzInput) => void): AsyncReader<MediaContext> {
  return {
    name,
    run(input, ctx) {
      if (input.kind !== 'h5') return undefined;
      const file = join(ctx.scratch, 'input.h5');
      writeFileSync(file, input.bytes);
      hdf5Running = ctx.hdf5Quiet;
      try {
        return attemptSync(() => read(file, ctx, input));
      } finally {
        hdf5Running = false;
      }
    },
  };
}

/**
 * A trap or abort of libhdf5's WebAssembly anywhere in the error's cause chain. The readers turn
 * it into a typed error, but it is a finding: the instance may be left broken for the next file.
 */
function wasmFailure(e: unknown): unknown {
  for (let c = e, depth = 0; c && depth < 8; c = (c as { cause?: unknown }).cause, depth++) {
    if (c instanceof WebAssembly.RuntimeError || (c instanceof Error && /^Aborted\(/.test(c.message))) return c;
  }
  return undefined;
}

function attemptSync(fn: () => unknown): Outcome {
  try {
    fn();
    return { status: 'ok' };
  } catch (e) {
    const trap = wasmFailure(e);
    if (trap) return { status: 'crash', error: trap };
    if (CaffeError.isInstance(e)) return { status: 'typed', errorClass: (e as Error).name };
    return { status: 'crash', error: e };
  }
}

const MODES = ['color', 'gray', 'unchanged'] as const;

/** The HDF5Data layer on a source list: set up, then two batches of 3 (wrapping around a file of 5 rows, reloading it). */
function hdf5DataLayer(source: string, shuffle: boolean): void {
  const tops = ['data', 'label'];
  const param = createMessage<LayerParameter>('LayerParameter', { name: 'h5', type: 'HDF5Data', top: tops, hdf5_data_param: { source, batch_size: 3, shuffle } });
  const layer = new HDF5DataLayer(param);
  const top = tops.map(() => new Blob());
  layer.setUp([], top);
  layer.forward([], top);
  layer.forward([], top);
}

export const MEDIA_READERS: readonly AsyncReader<MediaContext>[] = [
  hdf5Reader('HDF5Data layer', (_file, ctx, input) => hdf5DataLayer(join(ctx.scratch, 'list.txt'), input.index % 2 === 1)),
  {
    // The layer's source list, mutated as text (names that do not exist, no names, junk).
    name: 'HDF5Data source list',
    run(input, ctx) {
      if (input.seed !== HDF5_LIST_SEED) return undefined;
      const list = join(ctx.scratch, 'source.txt');
      writeFileSync(list, input.bytes);
      hdf5Running = ctx.hdf5Quiet;
      try {
        return attemptSync(() => hdf5DataLayer(list, input.index % 2 === 1));
      } finally {
        hdf5Running = false;
      }
    },
  },
  hdf5Reader('readHdf5Datasets', (file) => readHdf5DatasetsSync(file)),
  hdf5Reader('copyTrainedLayersFromHdf5', (file, ctx) => copyTrainedLayersFromHdf5(ctx.net, file, { log: false })),
  hdf5Reader('readSolverStateHdf5', (file) => readSolverStateHdf5(file)),
  {
    name: 'decodeImage',
    run: (input) => (input.kind === 'image' ? attemptAsync(() => decodeImage(input.bytes, MODES[input.index % 3], input.seed)) : undefined),
  },
  {
    name: 'readImage(resize)',
    run(input, ctx) {
      if (input.kind !== 'image') return undefined;
      const file = join(ctx.scratch, 'input.img');
      writeFileSync(file, input.bytes);
      return attemptAsync(() => readImage(file, input.index % 2 === 0 ? { height: 7, width: 5 } : { isColor: false }));
    },
  },
  {
    name: 'zoo loadImage',
    run(input, ctx) {
      if (input.kind !== 'image') return undefined;
      const file = join(ctx.scratch, 'input.img');
      writeFileSync(file, input.bytes);
      return attemptAsync(() => loadImage(file, { color: input.index % 4 !== 1 }));
    },
  },
  {
    name: 'decodeDatumImage',
    run(input) {
      if (input.kind !== 'datum') return undefined;
      let datum: Datum;
      try {
        datum = decodeDatum(input.bytes);
      } catch {
        return undefined; // the decodeBinary:Datum reader covers undecodable Datums
      }
      if (!datum.encoded) return undefined;
      return attemptAsync(() => decodeDatumImage(datum, MODES[input.index % 3], input.seed));
    },
  },
];
