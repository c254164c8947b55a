import type { Blob } from '@caffe-ts/blob';
import { LayerError, labelOutOfRangeMessage, type Layer } from '@caffe-ts/layers';

/**
 * The host layers' label check, for the loss/accuracy kernels: a label outside [0, classes)
 * (other than `ignore`) is a LayerError naming the bottom, batch item, record and range, as on
 * the CPU backend, instead of an out-of-range texture read. Labels still on the host (from data
 * layers or Input, the usual case) are checked for free; labels that only live on the device are
 * not read back for it.
 */
export function checkLabels(layer: Layer, labels: Blob, classes: number, ignore: number | null): void {
  if (labels.data.head === 'gpu') return;
  const l = labels.cpuData();
  for (let i = 0; i < l.length; i++) {
    const v = Math.trunc(l[i]!);
    if (v === ignore) continue;
    if (!(v >= 0 && v < classes)) {
      throw new LayerError(`${layer.type} layer '${layer.name}': ${labelOutOfRangeMessage(layer.param, labels, 1, v, i, classes)}`);
    }
  }
}
