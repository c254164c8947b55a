import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import cliProgress from 'cli-progress';
import type { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, writeFileAtomicSync } from '@caffe-ts/net/node';
import { CaffeError } from '@caffe-ts/proto';

/** A weights file that cannot be had: download failure, checksum mismatch, missing file. */
export class WeightsError extends CaffeError {
  override readonly name = 'WeightsError';
}

/** Where weights come from: a local file, or an HTTP(S) URL with the checksum it must have. */
export type WeightsSource = { path: string } | { url: string; sha1?: string; sha256?: string };

export interface FetchWeightsOptions {
  /** Download cache (default: $CAFFE_TS_CACHE_DIR, else ~/.cache/caffe-ts). */
  cacheDir?: string;
  /** Show a progress bar (default: when stderr is a TTY). */
  progress?: boolean;
}

/** The cache folder downloads go to: $CAFFE_TS_CACHE_DIR, else ~/.cache/caffe-ts. */
export function weightsCacheDir(): string {
  return process.env.CAFFE_TS_CACHE_DIR || join(homedir(), '.cache', 'caffe-ts');
}

function digest(algorithm: 'sha1' | 'sha256', bytes: Uint8Array): string {
  return createHash(algorithm).update(bytes).digest('hex');
}

function expectedChecksum(source: { url: string; sha1?: string; sha256?: string }): { algorithm: 'sha1' | 'sha256'; hex: string } {
  if (source.sha256) return { algorithm: 'sha256', hex: source.sha256.toLowerCase() };
  if (source.sha1) return { algorithm: 'sha1', hex: source.sha1.toLowerCase() };
  throw new WeightsError(`Refusing to download ${source.url} without a checksum: give sha1 or sha256 (the model's README lists it)`);
}

/**
 * A local path holding the weights: `path` as given (it must exist), or the URL's file in the
 * cache, downloaded first when missing or when the cached copy's checksum is wrong. Downloads go
 * to a temporary file that becomes the cached one only after its checksum matches.
 */
export async function fetchWeights(source: WeightsSource, options: FetchWeightsOptions = {}): Promise<string> {
  if ('path' in source) {
    if (!existsSync(source.path)) throw new WeightsError(`Weights file ${source.path} does not exist`);
    return source.path;
  }
  const { algorithm, hex } = expectedChecksum(source);
  let url: URL;
  try {
    url = new URL(source.url);
  } catch {
    throw new WeightsError(`'${source.url}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new WeightsError(`Only http(s) URLs are downloaded, got ${url.protocol} (${source.url})`);
  const dir = options.cacheDir ?? weightsCacheDir();
  mkdirSync(dir, { recursive: true });
  // The checksum prefix keeps two different files of the same name apart.
  const file = join(dir, `${hex.slice(0, 12)}-${basename(url.pathname) || 'weights.caffemodel'}`);
  if (existsSync(file) && digest(algorithm, readFileSync(file)) === hex) return file;

  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new WeightsError(`Cannot download ${source.url}: ${(e as Error).message}`, { cause: e });
  }
  if (!response.ok || !response.body) throw new WeightsError(`Cannot download ${source.url}: HTTP ${response.status} ${response.statusText}`);
  const total = Number(response.headers.get('content-length')) || 0;
  const showBar = options.progress ?? Boolean(process.stderr.isTTY);
  const bar = showBar
    ? new cliProgress.SingleBar(
        {
          // Without a content-length only the byte count means anything.
          format: total > 0 ? `${basename(file)} [{bar}] {percentage}% | {value}/{total} bytes | ETA {eta}s` : `${basename(file)} {value} bytes`,
          stream: process.stderr,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(total, 0);
  const tmp = `${file}.${process.pid}.part`;
  const hash = createHash(algorithm);
  const out = createWriteStream(tmp);
  let received = 0;
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      received += chunk.length;
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
      bar?.update(received);
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  } catch (e) {
    out.destroy();
    rmSync(tmp, { force: true });
    throw new WeightsError(`Download of ${source.url} failed after ${received} bytes: ${(e as Error).message}`, { cause: e });
  } finally {
    bar?.stop();
  }
  const got = hash.digest('hex');
  if (got !== hex) {
    rmSync(tmp, { force: true });
    throw new WeightsError(`Checksum mismatch for ${source.url}: expected ${algorithm} ${hex}, got ${got} (${received} bytes); nothing was cached`);
  }
  renameSync(tmp, file);
  return file;
}

/**
 * Load weights into `net` (Caffe's CopyTrainedLayersFrom by layer name) from a local file or a
 * checksummed URL (downloaded once into the cache). V1 and V0 .caffemodels are upgraded on
 * read, so BVLC's original zoo files load. Returns the local path used.
 */
export async function loadWeights(net: Net, source: WeightsSource, options: FetchWeightsOptions = {}): Promise<string> {
  const path = await fetchWeights(source, options);
  copyTrainedLayersFromFile(net, path);
  return path;
}

// ---- fast .caffemodel writer -------------------------------------------------------------------

/** Growable byte buffer with the protobuf wire primitives the writer needs. */
class Wire {
  bytes = new Uint8Array(1 << 16);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let cap = this.bytes.length * 2;
    while (cap < this.length + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.bytes.subarray(0, this.length));
    this.bytes = b;
  }
  varint(v: number): void {
    this.ensure(10);
    while (v >= 0x80) {
      this.bytes[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.bytes[this.length++] = v;
  }
  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.bytes.set(b, this.length);
    this.length += b.length;
  }
  /** A length-delimited field. */
  field(field: number, payload: Uint8Array): void {
    this.tag(field, 2);
    this.varint(payload.length);
    this.raw(payload);
  }
  string(field: number, s: string): void {
    this.field(field, new TextEncoder().encode(s));
  }
  done(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The net's weights as a binary .caffemodel (NetParameter with each layer's name, type and param
 * blobs), written straight from the blobs' typed arrays. Same message as `saveNet` writes minus
 * the layers' other settings, which loading by name ignores; much faster for 100-MB models.
 */
export function encodeWeights(net: Net): Uint8Array {
  if (!littleEndian) throw new WeightsError('encodeWeights assumes a little-endian host');
  const w = new Wire();
  w.string(1, net.name);
  net.layers.forEach((layer, i) => {
    if (layer.blobs.length === 0) return;
    const lw = new Wire();
    lw.string(1, net.layerNames[i]!);
    lw.string(2, layer.type);
    for (const blob of layer.blobs) {
      const bw = new Wire();
      const sw = new Wire();
      const dims = new Wire();
      for (const d of blob.shape) dims.varint(d);
      sw.field(1, dims.done());
      bw.field(7, sw.done());
      const data = blob.cpuData();
      // data (5, packed float) or double_data (8, packed double).
      bw.field(data instanceof Float64Array ? 8 : 5, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      lw.field(7, bw.done());
    }
    w.field(100, lw.done());
  });
  return w.done();
}

/** Write `encodeWeights(net)` to `path` atomically. */
export function saveWeights(net: Net, path: string): void {
  writeFileAtomicSync(path, encodeWeights(net));
}
