import { Rng } from '@caffe-ts/blob';

/** The bundled digits, split as train and held-out test sets. Images are 28×28 uint8. */
export interface DigitSet {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export interface Digits {
  train: DigitSet;
  test: DigitSet;
}

const SIZE = 784;

/** Inflate the file vite.config.ts's plugin serves ('CTSD', 10 counts, the images by class). */
async function fetchDigitsFile(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  const inflated = res.body.pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(inflated).arrayBuffer());
}

function shuffled(set: { image: Uint8Array; label: number }[], rng: Rng): DigitSet {
  for (let i = set.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [set[i], set[j]] = [set[j]!, set[i]!];
  }
  const images = new Uint8Array(set.length * SIZE);
  const labels = new Uint8Array(set.length);
  set.forEach((d, i) => {
    images.set(d.image, i * SIZE);
    labels[i] = d.label;
  });
  return { images, labels, count: set.length };
}

/**
 * Load the digits and split them as `caffe convert_mnist --bundled` does in spirit: a sixth of each
 * class held out for testing (the last sixth here, so the split needs no seed), each set shuffled
 * with a fixed seed so that batches mix the classes.
 */
export async function loadDigits(url: string, testFraction = 1 / 6, seed = 1701): Promise<Digits> {
  const bytes = await fetchDigitsFile(url);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 44 || view.getUint32(0) !== 0x43545344) throw new Error(`${url}: not a digits file (no 'CTSD' header)`);
  const train: { image: Uint8Array; label: number }[] = [];
  const test: { image: Uint8Array; label: number }[] = [];
  let at = 44;
  for (let label = 0; label < 10; label++) {
    const n = view.getUint32(4 + 4 * label, true);
    if (at + n * SIZE > bytes.length) throw new Error(`${url}: truncated at class ${label} (${n} digits promised)`);
    const held = Math.round(n * testFraction);
    for (let i = 0; i < n; i++) {
      const image = bytes.subarray(at + i * SIZE, at + (i + 1) * SIZE);
      (i < n - held ? train : test).push({ image, label });
    }
    at += n * SIZE;
  }
  const rng = new Rng(seed);
  return { train: shuffled(train, rng), test: shuffled(test, rng) };
}

/**
 * Batches drawn in order from a set, wrapping around: images scaled by 1/256 into [0, 1), as the
 * zoo's LeNet (transform_param { scale: 0.00390625 }), labels as floats.
 */
export class BatchReader {
  private next = 0;
  constructor(private readonly set: DigitSet) {}

  batch(size: number): { data: Float32Array; label: Float32Array } {
    const data = new Float32Array(size * SIZE);
    const label = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      const k = this.next;
      this.next = (this.next + 1) % this.set.count;
      const img = this.set.images.subarray(k * SIZE, (k + 1) * SIZE);
      for (let p = 0; p < SIZE; p++) data[i * SIZE + p] = img[p]! / 256;
      label[i] = this.set.labels[k]!;
    }
    return { data, label };
  }

  rewind(): void {
    this.next = 0;
  }
}
