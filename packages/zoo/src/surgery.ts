import type { Net } from '@caffe-ts/net';
import { CaffeError } from '@caffe-ts/proto';

/** A transplant that cannot be done: unknown layer, different number of params, sizes that differ. */
export class SurgeryError extends CaffeError {
  override readonly name = 'SurgeryError';
}

export interface TransplantOptions {
  /** Source layer → destination layer, for layers renamed by the surgery (e.g. fc6 → fc6-conv). */
  map?: Readonly<Record<string, string>>;
  /** Also copy layers that keep their name in both nets (default true). */
  sameNames?: boolean;
}

export interface TransplantReport {
  /** [source layer, destination layer] pairs copied, in destination order. */
  copied: [string, string][];
  /** Of those, params whose shape differed and were copied flat (IP weights into conv kernels). */
  reshaped: string[];
}

/**
 * Copy params from `src` into `dst` (Caffe's net_surgery recipe). Layers pair by `map`, then
 * (unless `sameNames` is false) by equal names. Each param blob is copied as is when the shapes
 * are equal, or flat, in C order, when only the element counts agree: an InnerProduct's
 * N×(C·H·W) weights become a Convolution's N×C×H×W kernels, which is exactly how a fully
 * connected layer over a C×H×W input turns into a H×W convolution. Anything else throws.
 */
export function transplantParams(src: Net, dst: Net, options: TransplantOptions = {}): TransplantReport {
  const map = options.map ?? {};
  const pairs: [string, string][] = [];
  for (const [from, to] of Object.entries(map)) {
    if (!src.params.has(from)) throw new SurgeryError(`source net '${src.name}' has no layer '${from}' with params (layers with params: ${[...src.params.keys()].join(', ')})`);
    if (!dst.params.has(to)) throw new SurgeryError(`destination net '${dst.name}' has no layer '${to}' with params (layers with params: ${[...dst.params.keys()].join(', ')})`);
    pairs.push([from, to]);
  }
  const mappedTo = new Set(Object.values(map));
  if (options.sameNames !== false) {
    for (const name of dst.params.keys()) if (!mappedTo.has(name) && src.params.has(name) && !(name in map)) pairs.push([name, name]);
  }
  const order = [...dst.params.keys()];
  pairs.sort((a, b) => order.indexOf(a[1]) - order.indexOf(b[1]));
  const report: TransplantReport = { copied: [], reshaped: [] };
  for (const [from, to] of pairs) {
    const sBlobs = src.params.get(from)!;
    const dBlobs = dst.params.get(to)!;
    if (sBlobs.length !== dBlobs.length) {
      throw new SurgeryError(`layer '${from}' has ${sBlobs.length} param blobs, '${to}' has ${dBlobs.length}`);
    }
    dBlobs.forEach((d, j) => {
      const s = sBlobs[j]!;
      if (s.count() !== d.count()) {
        throw new SurgeryError(`cannot transplant param ${j} of '${from}' (${s.shapeString()}) into '${to}' (${d.shapeString()}): element counts differ`);
      }
      if (!s.shapeEquals(d)) report.reshaped.push(`${to}[${j}]`);
      d.mutableCpuData().set(s.cpuData());
    });
    report.copied.push([from, to]);
  }
  return report;
}
