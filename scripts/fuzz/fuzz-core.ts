/**
 * The fuzzer's engine: seed inputs from real Caffe files, deterministic mutations, and the
 * readers every input is fed to. Shared by the `pnpm fuzz` runner (fuzz.ts, which adds a worker
 * with a per-input timeout and a memory cap) and the CI smoke test (tests/src/fuzz-smoke.test.ts).
 *
 * The contract under test: whatever bytes a reader gets, it returns or throws a typed caffe-ts
 * error (`CaffeError.isInstance(e)`). Anything else (TypeError, RangeError, a stack overflow, a
 * hang, running out of memory) is a crash.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Blob } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net, upgradeNetAsNeeded } from '@caffe-ts/net';
import {
  CaffeError,
  createMessage,
  decodeBinary,
  encodeBinary,
  encodeDatum,
  parseText,
  Phase,
  type BlobProto,
  type Datum,
  type NetParameter,
} from '@caffe-ts/proto';

export type InputKind = 'prototxt' | 'caffemodel' | 'solverstate' | 'binaryproto' | 'datum' | 'npy' | 'h5' | 'image' | 'annotation' | 'anno-datum' | 'frcnn-cfg' | 'coco-instances';

export interface Seed {
  name: string;
  kind: InputKind;
  bytes: Uint8Array;
  /** For caffemodels: the prototxt whose net the weights are copied into. */
  netText?: string;
  /** Run once as is, never mutated (the huge hand-made inputs: mutating them only costs time). */
  fixed?: boolean;
}

export interface FuzzInput {
  index: number;
  seed: string;
  kind: InputKind;
  mutation: string;
  bytes: Uint8Array;
}

/** What one reader did with one input. */
export type Outcome = { status: 'ok' } | { status: 'typed'; errorClass: string } | { status: 'crash'; error: unknown };

export interface Reader {
  name: string;
  /** Returns undefined when the reader does not apply to this input (e.g. a stage after a failed decode). */
  run(input: FuzzInput, ctx: ReaderContext): Outcome | undefined;
}

// ---- deterministic randomness ------------------------------------------------------------------

/** mulberry32: small, fast, and reproducible per (run seed, input index). */
export function rngFor(seed: number, index: number): () => number {
  let a = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const int = (r: () => number, n: number) => Math.floor(r() * n);

// ---- seeds ------------------------------------------------------------------------------------

const utf8 = new TextEncoder();
const utf8Decode = new TextDecoder('utf-8');

function listPrototxts(dir: string, out: string[]): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) listPrototxts(p, out);
    else if (e.name.endsWith('.prototxt')) out.push(p);
  }
}

/** Hand-made inputs for the cases random mutation rarely reaches. */
function syntheticSeeds(): Seed[] {
  const deep = (open: string, close: string, n: number) => utf8.encode(open.repeat(n) + close.repeat(n));
  const hugeShapeProto = encodeBinary('BlobProto', createMessage<BlobProto>('BlobProto', { shape: { dim: [1e6, 1e6] }, data: [1, 2, 3] }));
  const legacyHuge = encodeBinary('BlobProto', createMessage<BlobProto>('BlobProto', { num: 100000, channels: 100000, height: 1, width: 1 }));
  // A length-delimited field claiming 2^32-1 bytes.
  const hugeLen = Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x41, 0x42]);
  // Start-group tags nested 100000 deep.
  const groups = new Uint8Array(100000).fill((7 << 3) | 3);
  const seeds: Seed[] = [
    { name: 'synthetic/deep-a', kind: 'prototxt', bytes: deep('a { ', '} ', 100000) },
    { name: 'synthetic/deep-layer', kind: 'prototxt', bytes: deep('layer { ', '} ', 100000) },
    { name: 'synthetic/deep-colon', kind: 'prototxt', bytes: deep('layer: { ', '} ', 100000) },
    {
      name: 'synthetic/input-1e6x1e6',
      kind: 'prototxt',
      bytes: utf8.encode('name: "huge"\nlayer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1000000 dim: 1000000 } } }\n'),
    },
    {
      name: 'synthetic/legacy-input-huge',
      kind: 'prototxt',
      bytes: utf8.encode('input: "data"\ninput_shape { dim: 100000 dim: 100000 dim: 100 dim: 100 }\nlayer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n'),
    },
    {
      name: 'synthetic/ip-huge',
      kind: 'prototxt',
      bytes: utf8.encode(
        'layer { name: "d" type: "Input" top: "d" input_param { shape { dim: 1 dim: 100000 } } }\n' +
          'layer { name: "ip" type: "InnerProduct" bottom: "d" top: "ip" inner_product_param { num_output: 1000000 } }\n',
      ),
    },
    { name: 'synthetic/blob-1e12', kind: 'binaryproto', bytes: hugeShapeProto },
    { name: 'synthetic/blob-legacy-1e10', kind: 'binaryproto', bytes: legacyHuge },
    { name: 'synthetic/huge-length', kind: 'caffemodel', bytes: hugeLen },
    { name: 'synthetic/deep-groups', kind: 'caffemodel', bytes: groups },
  ];
  for (const s of seeds) if (s.bytes.length > 65536) s.fixed = true;
  return seeds;
}

function datumSeeds(): Seed[] {
  const raw = new Uint8Array(3 * 4 * 5).map((_, i) => (i * 37) & 255);
  const a = createMessage<Datum>('Datum', { channels: 3, height: 4, width: 5, data: raw, label: 7 });
  const b = createMessage<Datum>('Datum', { channels: 2, height: 2, width: 2, float_data: [0.5, -1, 2, 3, 4, 5, 6, 7], label: 1 });
  const c = createMessage<Datum>('Datum', { channels: 1, height: 1, width: 3, data: Uint8Array.from([1, 2, 3]), encoded: true, label: 0 });
  return [
    { name: 'datum/raw-3x4x5', kind: 'datum', bytes: encodeDatum(a) },
    { name: 'datum/float-2x2x2', kind: 'datum', bytes: encodeDatum(b) },
    { name: 'datum/encoded', kind: 'datum', bytes: encodeDatum(c) },
  ];
}

/**
 * Seeds from the corpus (`corpusDir`: ../shared/corpus beside the repository) and the zoo's prototxts; files that
 * are absent are skipped, so the fuzzer still runs (on fewer seeds) without the corpus.
 */
export function loadSeeds(corpusDir: string, zooDir: string, { includeNpy = true } = {}): Seed[] {
  const seeds: Seed[] = [];
  const texts: string[] = [];
  listPrototxts(join(corpusDir, 'nets'), texts);
  listPrototxts(join(corpusDir, 'weights'), texts);
  listPrototxts(zooDir, texts);
  for (const p of texts.sort()) seeds.push({ name: p.slice(p.lastIndexOf('/', p.lastIndexOf('/') - 1) + 1), kind: 'prototxt', bytes: readFileSync(p) });
  const binary: [string, InputKind, string?][] = [
    ['weights/lenet_nn_ex1/lenet_iter_10000.caffemodel', 'caffemodel', 'weights/lenet_nn_ex1/lenet.prototxt'],
    ['weights/cifar10_quick_ikkichung/cifar10_quick_iter_5000.caffemodel', 'caffemodel', 'weights/cifar10_quick_ikkichung/prediction_example.prototxt'],
    ['weights/mtcnn_kpzhang93/det1.caffemodel', 'caffemodel', 'weights/mtcnn_kpzhang93/det1.prototxt'],
    ['weights/mtcnn_kpzhang93/det2.caffemodel', 'caffemodel', 'weights/mtcnn_kpzhang93/det2.prototxt'],
    ['weights/lenet_nn_ex1/lenet_iter_5000.solverstate', 'solverstate'],
    ['weights/cifar10_full_nn_ex1/cifar10_full_iter_70000.solverstate', 'solverstate'],
    ['nets/age_net/mean.binaryproto', 'binaryproto'],
    ['data/ilsvrc_2012_mean.npy', 'npy'],
  ];
  for (const [rel, kind, net] of binary) {
    if (kind === 'npy' && !includeNpy) continue;
    const p = join(corpusDir, rel);
    if (!existsSync(p)) continue;
    const seed: Seed = { name: rel, kind, bytes: readFileSync(p) };
    if (net && existsSync(join(corpusDir, net))) seed.netText = readFileSync(join(corpusDir, net), 'utf8');
    seeds.push(seed);
  }
  seeds.push(...datumSeeds(), ...syntheticSeeds());
  return seeds;
}

// ---- mutations --------------------------------------------------------------------------------

type Mutator = (b: Uint8Array, r: () => number, seeds: readonly Seed[]) => Uint8Array;

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A varint encoding of n (n < 2^53). */
function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Uint8Array.from(out);
}

const HUGE_VARINTS = [2 ** 31 - 1, 2 ** 32 - 1, 2 ** 31, 2 ** 35, 2 ** 53 - 1, 0x7ffffff0];

const byteMutators: Record<string, Mutator> = {
  bitflip(b, r) {
    const out = b.slice();
    if (out.length === 0) return out;
    for (let k = 1 + int(r, 8); k > 0; k--) out[int(r, out.length)]! ^= 1 << int(r, 8);
    return out;
  },
  byteset(b, r) {
    const out = b.slice();
    if (out.length === 0) return out;
    const specials = [0, 0xff, 0x7f, 0x80, 0x0a, 0x12, 0x08];
    for (let k = 1 + int(r, 4); k > 0; k--) out[int(r, out.length)] = r() < 0.5 ? specials[int(r, specials.length)]! : int(r, 256);
    return out;
  },
  truncate(b, r) {
    return b.slice(0, int(r, b.length + 1));
  },
  insert(b, r) {
    const at = int(r, b.length + 1);
    const junk = new Uint8Array(1 + int(r, 16)).map(() => int(r, 256));
    return concat(b.subarray(0, at), junk, b.subarray(at));
  },
  delete(b, r) {
    if (b.length === 0) return b.slice();
    const at = int(r, b.length);
    const n = 1 + int(r, Math.min(64, b.length - at));
    return concat(b.subarray(0, at), b.subarray(at + n));
  },
  hugeVarintLength(b, r) {
    // A length-delimited tag with an absurd length, dropped in at a random spot.
    const at = int(r, b.length + 1);
    const field = 1 + int(r, 200);
    const tag = varint(field * 8 + 2);
    return concat(b.subarray(0, at), tag, varint(HUGE_VARINTS[int(r, HUGE_VARINTS.length)]!), b.subarray(at));
  },
  wrongWireType(b, r) {
    // Rewrite the low 3 bits of bytes that may be tags.
    const out = b.slice();
    if (out.length === 0) return out;
    for (let k = 1 + int(r, 4); k > 0; k--) {
      const i = int(r, out.length);
      out[i] = (out[i]! & 0xf8) | int(r, 8);
    }
    return out;
  },
  duplicateChunk(b, r) {
    if (b.length === 0) return b.slice();
    const at = int(r, b.length);
    const n = 1 + int(r, Math.min(256, b.length - at));
    const to = int(r, b.length + 1);
    return concat(b.subarray(0, to), b.subarray(at, at + n), b.subarray(to));
  },
  splice(b, r, seeds) {
    const other = seeds[int(r, seeds.length)]!.bytes;
    const at = int(r, b.length + 1);
    const from = int(r, other.length + 1);
    return concat(b.subarray(0, at), other.subarray(from, from + int(r, 512)));
  },
};

const ABSURD_NUMBERS = ['0', '-1', '-2147483648', '2147483647', '4294967296', '1000000', '1e12', '99999999999999999999', 'nan', 'inf', '-inf', '1.5', '0x7fffffff', '""', 'true', 'FOO'];

const textMutators: Record<string, Mutator> = {
  number(b, r) {
    const s = utf8Decode.decode(b);
    const nums = [...s.matchAll(/-?\d+(\.\d+)?([eE][-+]?\d+)?/g)];
    if (nums.length === 0) return b.slice();
    const m = nums[int(r, nums.length)]!;
    return utf8.encode(s.slice(0, m.index) + ABSURD_NUMBERS[int(r, ABSURD_NUMBERS.length)]! + s.slice(m.index! + m[0].length));
  },
  token(b, r) {
    // Replace an identifier with another one from the same file (wrong field, wrong enum value).
    const s = utf8Decode.decode(b);
    const ids = [...s.matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)];
    if (ids.length < 2) return b.slice();
    const m = ids[int(r, ids.length)]!;
    const other = ids[int(r, ids.length)]![0];
    return utf8.encode(s.slice(0, m.index) + other + s.slice(m.index! + m[0].length));
  },
  punct(b, r) {
    const s = utf8Decode.decode(b);
    const ps = [...s.matchAll(/[{}:"<>[\],;]/g)];
    if (ps.length === 0) return b.slice();
    const m = ps[int(r, ps.length)]!;
    const repl = ['', '{', '}', ':', '"', '{ {', '} }', '#', '\\', "'"][int(r, 10)]!;
    return utf8.encode(s.slice(0, m.index) + repl + s.slice(m.index! + 1));
  },
  nest(b, r) {
    // Deep nesting inside a real file.
    const s = utf8Decode.decode(b);
    const at = int(r, s.length + 1);
    const n = [10, 99, 100, 101, 1000, 100000][int(r, 6)]!;
    const name = ['layer', 'a', 'convolution_param', 'input_param', 'shape', 'include'][int(r, 6)]!;
    return utf8.encode(s.slice(0, at) + `${name} { `.repeat(n) + '}'.repeat(int(r, 2) === 0 ? n : int(r, n + 1)) + s.slice(at));
  },
  absurdShape(b, r) {
    const s = utf8Decode.decode(b);
    const dims = [1e6, 1e9, 2 ** 31, 2 ** 32, 1e12, -5, 0];
    const d = () => dims[int(r, dims.length)]!;
    const shapes = [`shape { dim: ${d()} dim: ${d()} }`, `dim: ${d()}`, `num_output: ${d()}`, `kernel_size: ${d()}`, `batch_size: ${d()}`, `pad: ${d()}`, `stride: ${d()}`];
    // [^{}]: a `shape {` that another `{` follows before any `}` is no match. With [^}] alone,
    // a file the `nest` mutation filled with 100000 `shape {` scanned to the end from each of
    // them (quadratic: 73 s for one 800 kB input).
    const m = [...s.matchAll(/shape \{[^{}]*\}|dim: \d+|num_output: \d+|kernel_size: \d+|batch_size: \d+|pad: \d+|stride: \d+/g)];
    if (m.length === 0) return utf8.encode(s + '\n' + shapes[int(r, shapes.length)]!);
    const pick = m[int(r, m.length)]!;
    return utf8.encode(s.slice(0, pick.index) + shapes[int(r, shapes.length)]! + s.slice(pick.index! + pick[0].length));
  },
  dupLine(b, r) {
    const lines = utf8Decode.decode(b).split('\n');
    const i = int(r, lines.length);
    lines.splice(int(r, lines.length + 1), 0, lines[i]!);
    return utf8.encode(lines.join('\n'));
  },
};

/**
 * Structure-aware mutations of a caffemodel or BlobProto: decode the seed (cached), change one
 * blob's shape, values or a layer's name/type, and encode again, so the bytes stay well-formed and
 * the later stages (Blob.fromProto, copyTrainedLayersFrom) see the damage.
 */
const decodedSeeds = new Map<Uint8Array, NetParameter | BlobProto | null>();
const SHAPE_DIMS = [0, 1, 3, 500, 2 ** 31, 2 ** 32 + 1, 1e12, -1];

function mutateBlob(b: BlobProto, r: () => number): void {
  const pick = int(r, 5);
  if (pick === 0 && b.shape) b.shape.dim[int(r, Math.max(1, b.shape.dim.length))] = SHAPE_DIMS[int(r, SHAPE_DIMS.length)]!;
  // data decodes as a Float32Array (fixed length): cut and extended by copying.
  else if (pick === 1) b.data = b.data.slice(0, int(r, b.data.length + 1));
  else if (pick === 2) {
    b.num = SHAPE_DIMS[int(r, SHAPE_DIMS.length)]!;
    b.channels = 1 + int(r, 3);
  } else if (pick === 3 && b.shape) b.shape.dim.push(1 + int(r, 4));
  else b.data = [...b.data, Number.NaN, Number.POSITIVE_INFINITY];
}

function structuralMutation(seed: Seed, r: () => number): Uint8Array | null {
  if (seed.kind !== 'caffemodel' && seed.kind !== 'binaryproto') return null;
  const type = seed.kind === 'caffemodel' ? 'NetParameter' : 'BlobProto';
  if (!decodedSeeds.has(seed.bytes)) {
    try {
      decodedSeeds.set(seed.bytes, decodeBinary(type, seed.bytes) as NetParameter | BlobProto);
    } catch {
      decodedSeeds.set(seed.bytes, null);
    }
  }
  const original = decodedSeeds.get(seed.bytes);
  if (!original) return null;
  // A fresh copy each time: decode the encoded original again (cheap next to the readers).
  const msg = decodeBinary(type, encodeBinary(type, original)) as NetParameter & BlobProto;
  if (type === 'BlobProto') mutateBlob(msg, r);
  else {
    const layers = (msg.layer.length > 0 ? msg.layer : (msg.layers as unknown as NetParameter['layer'])) ?? [];
    const withBlobs = layers.filter((l) => l.blobs.length > 0);
    const l = withBlobs.length > 0 ? withBlobs[int(r, withBlobs.length)]! : layers[int(r, Math.max(1, layers.length))];
    if (!l) return null;
    const what = int(r, 4);
    if (what <= 1 && l.blobs.length > 0) mutateBlob(l.blobs[int(r, l.blobs.length)]!, r);
    else if (what === 2) l.blobs.length = int(r, l.blobs.length + 1);
    else if (layers.length > 1) l.name = layers[int(r, layers.length)]!.name;
  }
  try {
    return encodeBinary(type, msg);
  } catch {
    return null; // a value the encoder refuses (e.g. a negative dim): not an input
  }
}

/* Format-aware mutations of HDF5 and image inputs (fuzz-media.ts makes those seeds). */

const HUGE_DIMS = [2 ** 31, 2 ** 32 - 1, 2 ** 32 + 1, 1e12, 2 ** 53 - 1, 0x7fffffff, 65535, 0];

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/**
 * Absurd sizes where the format keeps them: in HDF5, a small little-endian 64-bit value (a
 * dataspace dimension, a size or an address) replaced by a huge one; in a PNG, IHDR's width or
 * height (with the CRC fixed, so libpng reads on); in a JPEG, the frame's height or width.
 */
function hugeDim(b: Uint8Array, r: () => number, kind: Seed['kind']): Uint8Array {
  const out = b.slice();
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const huge = HUGE_DIMS[int(r, HUGE_DIMS.length)]!;
  if (kind === 'h5') {
    const spots: number[] = [];
    for (let i = 0; i + 8 <= out.length; i += 1) {
      const lo = dv.getUint32(i, true);
      if (lo > 0 && lo < 100000 && dv.getUint32(i + 4, true) === 0) spots.push(i);
    }
    if (spots.length === 0) return out;
    const at = spots[int(r, spots.length)]!;
    dv.setUint32(at, huge % 2 ** 32, true);
    dv.setUint32(at + 4, Math.floor(huge / 2 ** 32), true);
    return out;
  }
  if (out[0] === 0x89 && out[1] === 0x50 && out.length >= 33) {
    dv.setUint32(16 + 4 * int(r, 2), Math.min(huge, 2 ** 32 - 1), false);
    dv.setUint32(29, crc32(out.subarray(12, 29)), false);
    return out;
  }
  for (let at = 2; at + 9 <= out.length; ) {
    if (out[at] !== 0xff) break;
    const marker = out[at + 1]!;
    if (marker >= 0xc0 && marker <= 0xc2) {
      dv.setUint16(at + 5 + 2 * int(r, 2), Math.min(huge, 65535), false);
      return out;
    }
    at += 2 + dv.getUint16(at + 2, false);
  }
  return out;
}

/** Damage where the format's header is: the HDF5 superblock, the PNG signature/IHDR, the JPEG markers. */
function header(b: Uint8Array, r: () => number): Uint8Array {
  const out = b.slice();
  const span = Math.min(out.length, 160);
  if (span === 0) return out;
  for (let k = 1 + int(r, 3); k > 0; k--) {
    const i = int(r, span);
    out[i] = r() < 0.5 ? out[i]! ^ (1 << int(r, 8)) : [0, 0xff, 0x7f, 0x80, 0x08][int(r, 5)]!;
  }
  return out;
}

/** One format-aware mutation of an HDF5 or image input, or null for other kinds. */
export function mediaMutation(seed: Seed, bytes: Uint8Array, r: () => number): { name: string; bytes: Uint8Array } | null {
  if (seed.kind !== 'h5' && seed.kind !== 'image') return null;
  return r() < 0.5 ? { name: 'hugeDim', bytes: hugeDim(bytes, r, seed.kind) } : { name: 'header', bytes: header(bytes, r) };
}

const byteNames = Object.keys(byteMutators);
const textNames = Object.keys(textMutators);

const mutableCache = new WeakMap<readonly Seed[], Seed[]>();
function mutable(seeds: readonly Seed[]): Seed[] {
  let m = mutableCache.get(seeds);
  if (!m) mutableCache.set(seeds, (m = seeds.filter((s) => !s.fixed)));
  return m;
}

/**
 * Input `index` of a run with `runSeed`: a seed (round-robin) with 1-3 stacked mutations (text
 * mutations for prototxts half the time). Identical for identical (runSeed, index, seeds).
 */
export function makeInput(seeds: readonly Seed[], runSeed: number, index: number): FuzzInput {
  const r = rngFor(runSeed, index);
  // The first round runs every seed as is; later rounds mutate the others.
  const pool = index < seeds.length ? seeds : mutable(seeds);
  const seed = pool[index % pool.length]!;
  let bytes = seed.bytes;
  const applied: string[] = [];
  // Every so often the seed itself goes through unmutated (the reader must accept real files).
  const n = index < seeds.length ? 0 : 1 + int(r, 3);
  if (n > 0 && (seed.kind === 'caffemodel' || seed.kind === 'binaryproto') && r() < 0.4) {
    const structured = structuralMutation(seed, r);
    if (structured) return { index, seed: seed.name, kind: seed.kind, mutation: 'structure', bytes: structured };
  }
  if (n > 0 && r() < 0.4) {
    const media = mediaMutation(seed, bytes, r);
    if (media) {
      bytes = media.bytes;
      applied.push(media.name);
    }
  }
  for (let k = applied.length; k < n; k++) {
    const text = seed.kind === 'prototxt' && r() < 0.6;
    const name = text ? textNames[int(r, textNames.length)]! : byteNames[int(r, byteNames.length)]!;
    bytes = (text ? textMutators[name]! : byteMutators[name]!)(bytes, r, seeds);
    applied.push(name);
  }
  return { index, seed: seed.name, kind: seed.kind, mutation: applied.join('+') || 'none', bytes };
}

// ---- readers ----------------------------------------------------------------------------------

export interface ReaderContext {
  seeds: readonly Seed[];
  /** Registry with only the built-in layers: no data layers, no registered Python modules. */
  registry: LayerRegistry;
  /** Nets built from each caffemodel seed's prototxt, for copyTrainedLayersFrom. */
  nets: Map<string, Net | null>;
  /** Values produced by earlier readers for the same input. */
  scratch: Map<string, unknown>;
  /** Largest input (bytes) Net construction is attempted on; bigger nets only get parsed. */
  maxNetTextBytes: number;
}

export function createContext(seeds: readonly Seed[], maxNetTextBytes = 16384): ReaderContext {
  const registry = registerBuiltinLayers(new LayerRegistry());
  return { seeds, registry, nets: new Map(), scratch: new Map(), maxNetTextBytes };
}

function attempt(fn: () => unknown, keep?: (v: unknown) => void): Outcome {
  try {
    const v = fn();
    keep?.(v);
    return { status: 'ok' };
  } catch (e) {
    if (CaffeError.isInstance(e)) return { status: 'typed', errorClass: (e as Error).name };
    return { status: 'crash', error: e };
  }
}

function decoder(typeName: string): Reader {
  return {
    name: `decodeBinary:${typeName}`,
    run: (input, ctx) => attempt(() => decodeBinary(typeName, input.bytes, { file: input.seed }), (v) => ctx.scratch.set(typeName, v)),
  };
}

function textParser(typeName: string): Reader {
  return {
    name: `parseText:${typeName}`,
    run: (input, ctx) =>
      attempt(() => parseText(typeName, utf8Decode.decode(input.bytes), { file: input.seed }), (v) => ctx.scratch.set(`text:${typeName}`, v)),
  };
}

function targetNet(seed: Seed, ctx: ReaderContext): Net | null {
  if (!seed.netText) return null;
  let net = ctx.nets.get(seed.name);
  if (net === undefined) {
    try {
      net = new Net(parseText<NetParameter>('NetParameter', seed.netText), { registry: ctx.registry, log: false, phase: Phase.TEST });
    } catch {
      net = null;
    }
    ctx.nets.set(seed.name, net);
  }
  return net;
}

export const READERS: readonly Reader[] = [
  textParser('NetParameter'),
  textParser('SolverParameter'),
  {
    name: 'Net(parsed prototxt)',
    run(input, ctx) {
      const param = ctx.scratch.get('text:NetParameter') as NetParameter | undefined;
      if (!param || input.bytes.length > ctx.maxNetTextBytes) return undefined;
      return attempt(() => new Net(param, { registry: ctx.registry, log: false, name: input.seed }));
    },
  },
  decoder('NetParameter'),
  decoder('SolverState'),
  decoder('BlobProto'),
  decoder('BlobProtoVector'),
  decoder('Datum'),
  {
    name: 'Blob.fromProto',
    run(_input, ctx) {
      const proto = ctx.scratch.get('BlobProto') as BlobProto | undefined;
      if (!proto) return undefined;
      return attempt(() => new Blob().fromProto(proto, { what: 'fuzzed BlobProto' }));
    },
  },
  {
    name: 'copyTrainedLayersFrom',
    run(input, ctx) {
      const param = ctx.scratch.get('NetParameter') as NetParameter | undefined;
      const seed = ctx.seeds.find((s) => s.name === input.seed);
      if (!param || !seed) return undefined;
      const net = targetNet(seed, ctx);
      if (!net) return undefined;
      return attempt(() => net.copyTrainedLayersFrom(upgradeNetAsNeeded(param, { log: false })));
    },
  },
];

/** Optional extra readers: the .npy readers (@caffe-ts/zoo's, which users' mean files go through, and the tests'). */
export function npyReader(parse: (bytes: Uint8Array, file: string) => unknown, name = 'parseNpy'): Reader {
  return { name, run: (input) => attempt(() => parse(input.bytes, input.seed)) };
}

// ---- bookkeeping ------------------------------------------------------------------------------

export interface ReaderStats {
  tried: number;
  ok: number;
  typed: Record<string, number>;
  crashes: number;
}

export interface CrashRecord {
  index: number;
  reader: string;
  seed: string;
  mutation: string;
  kind: 'exception' | 'timeout' | 'out-of-memory' | 'worker-exit';
  error: string;
  savedAs?: string;
}

export interface FuzzSummary {
  runSeed: number;
  count: number;
  inputsDone: number;
  seeds: string[];
  seedCount: number;
  readers: Record<string, ReaderStats>;
  mutations: Record<string, number>;
  crashes: CrashRecord[];
  slowest: { index: number; seed: string; mutation: string; ms: number }[];
  elapsedMs: number;
  settings: Record<string, unknown>;
  /** Peaks over the run's workers: h5wasm's WebAssembly memory and the process's resident set. */
  memory?: { wasmHeapMiB: number; rssMiB: number };
}

export function emptySummary(runSeed: number, count: number, seeds: readonly Seed[], settings: Record<string, unknown>): FuzzSummary {
  return {
    runSeed,
    count,
    inputsDone: 0,
    seeds: seeds.map((s) => s.name),
    seedCount: seeds.length,
    readers: {},
    mutations: {},
    crashes: [],
    slowest: [],
    elapsedMs: 0,
    settings,
  };
}

export function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 8).join('\n')}`;
  return String(e);
}

/** Feeds one input to every reader, updating `summary`; returns the crashes it caused. */
export function runInput(input: FuzzInput, readers: readonly Reader[], ctx: ReaderContext, summary: FuzzSummary): CrashRecord[] {
  const crashes: CrashRecord[] = [];
  ctx.scratch.clear();
  const t0 = performance.now();
  for (const reader of readers) {
    const outcome = reader.run(input, ctx);
    if (outcome) record(summary, reader.name, input, outcome, crashes);
  }
  const ms = performance.now() - t0;
  summary.inputsDone++;
  for (const m of input.mutation.split('+')) summary.mutations[m] = (summary.mutations[m] ?? 0) + 1;
  if (summary.slowest.length < 5 || ms > summary.slowest[summary.slowest.length - 1]!.ms) {
    summary.slowest.push({ index: input.index, seed: input.seed, mutation: input.mutation, ms: Math.round(ms * 10) / 10 });
    summary.slowest.sort((a, b) => b.ms - a.ms);
    summary.slowest.length = Math.min(summary.slowest.length, 5);
  }
  summary.crashes.push(...crashes);
  return crashes;
}

/** A reader that may be asynchronous (sharp) and gets a context of its own (fuzz-media.ts). */
export interface AsyncReader<C = unknown> {
  name: string;
  run(input: FuzzInput, ctx: C): Promise<Outcome | undefined> | Outcome | undefined;
}

function record(summary: FuzzSummary, reader: string, input: FuzzInput, outcome: Outcome, crashes: CrashRecord[]): void {
  const st = (summary.readers[reader] ??= { tried: 0, ok: 0, typed: {}, crashes: 0 });
  st.tried++;
  if (outcome.status === 'ok') st.ok++;
  else if (outcome.status === 'typed') st.typed[outcome.errorClass] = (st.typed[outcome.errorClass] ?? 0) + 1;
  else {
    st.crashes++;
    crashes.push({ index: input.index, reader, seed: input.seed, mutation: input.mutation, kind: 'exception', error: describeError(outcome.error) });
  }
}

/**
 * `runInput`, then the asynchronous readers on the same input (their outcomes and time counted
 * in the same summary); returns the crashes of both.
 */
export async function runInputAsync<C>(
  input: FuzzInput,
  readers: readonly Reader[],
  ctx: ReaderContext,
  asyncReaders: readonly AsyncReader<C>[],
  asyncCtx: C,
  summary: FuzzSummary,
): Promise<CrashRecord[]> {
  const t0 = performance.now();
  const crashes = runInput(input, readers, ctx, summary);
  const more: CrashRecord[] = [];
  for (const reader of asyncReaders) {
    const outcome = await reader.run(input, asyncCtx);
    if (outcome) record(summary, reader.name, input, outcome, more);
  }
  summary.crashes.push(...more);
  const ms = performance.now() - t0;
  const last = summary.slowest.find((s) => s.index === input.index);
  if (last) last.ms = Math.round(ms * 10) / 10;
  else if (summary.slowest.length < 5 || ms > summary.slowest[summary.slowest.length - 1]!.ms) {
    summary.slowest.push({ index: input.index, seed: input.seed, mutation: input.mutation, ms: Math.round(ms * 10) / 10 });
  }
  summary.slowest.sort((a, b) => b.ms - a.ms);
  summary.slowest.length = Math.min(summary.slowest.length, 5);
  return [...crashes, ...more];
}

/** Adds `b`'s counts into `a` (summaries from successive workers of one run). */
export function mergeSummary(a: FuzzSummary, b: FuzzSummary): void {
  a.inputsDone += b.inputsDone;
  for (const [name, st] of Object.entries(b.readers)) {
    const t = (a.readers[name] ??= { tried: 0, ok: 0, typed: {}, crashes: 0 });
    t.tried += st.tried;
    t.ok += st.ok;
    t.crashes += st.crashes;
    for (const [k, v] of Object.entries(st.typed)) t.typed[k] = (t.typed[k] ?? 0) + v;
  }
  for (const [k, v] of Object.entries(b.mutations)) a.mutations[k] = (a.mutations[k] ?? 0) + v;
  a.crashes.push(...b.crashes);
  a.slowest = [...a.slowest, ...b.slowest].sort((x, y) => y.ms - x.ms).slice(0, 5);
  if (b.memory) {
    a.memory = {
      wasmHeapMiB: Math.max(a.memory?.wasmHeapMiB ?? 0, b.memory.wasmHeapMiB),
      rssMiB: Math.max(a.memory?.rssMiB ?? 0, b.memory.rssMiB),
    };
  }
}
