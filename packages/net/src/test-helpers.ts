/**
 * Shared by this package's tests (not exported): small nets, quiet options, a registry with
 * the built-in layers plus a few test-only ones, and a log capture.
 */
import { Blob, setLogSink, type LogLevel } from '@caffe-ts/blob';
import { Layer, LayerRegistry, registerBuiltinLayers, type BlobCounts } from '@caffe-ts/layers';
import { parseNetParameter, type NetParameter } from '@caffe-ts/proto';

export function net(text: string): NetParameter {
  return parseNetParameter(text);
}

/**
 * `AutoTop`: one bottom, exactly two tops, the second created by the net when the definition
 * names only one (AutoTopBlobs). top0 = x, top1 = 2x.
 */
export class AutoTopTestLayer extends Layer {
  readonly type = 'AutoTop';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 2, autoTopBlobs: true };
  override reshape(bottom: Blob[], top: Blob[]): void {
    for (const t of top) t.reshapeLike(bottom[0]!);
  }
  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    top[0]!.mutableCpuData().set(x);
    const y = top[1]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = 2 * x[i]!;
  }
}

/** `Noop`: any bottoms, any tops shaped [1]; no compute. For structural tests. */
export class NoopTestLayer extends Layer {
  readonly type = 'Noop';
  override reshape(_bottom: Blob[], top: Blob[]): void {
    for (const t of top) t.reshape([1]);
  }
  protected forwardCpu(): void {}
  protected override backwardCpu(): void {}
}

/** Built-in layers plus the test-only ones, in a fresh registry. */
export function testRegistry(): LayerRegistry {
  const r = registerBuiltinLayers(new LayerRegistry());
  r.register({ type: 'AutoTop', create: (p, ctx) => new AutoTopTestLayer(p, ctx) });
  r.register({ type: 'Noop', create: (p, ctx) => new NoopTestLayer(p, ctx) });
  return r;
}

/** Run `fn` and return the messages it logged (glog prefix removed). */
export function captureLog(fn: () => void): { message: string; level: LogLevel }[] {
  const lines: { message: string; level: LogLevel }[] = [];
  const prev = setLogSink((line, level) => lines.push({ message: line.slice(line.indexOf('] ') + 2), level }));
  try {
    fn();
  } finally {
    setLogSink(prev);
  }
  return lines;
}

/** Fill a blob with deterministic pseudo-random values in [-1, 1). */
export function fillRandom(blob: Blob, seed: number): void {
  let s = seed >>> 0 || 1;
  const d = blob.mutableCpuData();
  for (let i = 0; i < d.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    d[i] = s / 2 ** 31 - 1;
  }
}
