import { BackendError } from '@caffe-ts/blob';
import type { LayerKernel } from '@caffe-ts/layers';
import { hasField } from '@caffe-ts/proto';
import { dataOf, deviceOf, writeData, IDIV } from './util.js';
import { checkLabels } from './labels.js';

/**
 * Thread c < nClasses with perClass = 1 gives class c's accuracy; with perClass = 0 thread 0 gives
 * the overall one. A position is right when fewer than top_k scores are ≥ the true class's score,
 * counting itself once (Caffe's rule); ignored labels count nowhere.
 */
const accuracySpec = (positions: number, C: number) => ({
  name: 'accuracy',
  loop: Math.max(positions, C),
  source: `function (X, L, outer, C, inner, topK, hasIgnore, ignore, perClass) {
    const cls = this.thread.x;
    let right = 0.0;
    let total = 0.0;
    for (let r = 0; r < outer * inner; r++) {
      // Labels are truncated to integers (Caffe's static_cast<int>): DummyData's uniform labels are fractional.
      const lraw = L[r];
      let label = Math.floor(Math.abs(lraw));
      if (lraw < 0) { label = -label; }
      if ((hasIgnore == 0 || label != ignore) && (perClass == 0 || label == cls)) {
        const o = ${IDIV('r', 'inner')};
        const j = r - o * inner;
        const base = o * C * inner + j;
        const truth = X[base + label * inner];
        let better = -1.0;
        for (let k = 0; k < C; k++) {
          if (X[base + k * inner] >= truth) { better += 1; }
        }
        if (better < topK) { right += 1; }
        total += 1;
      }
    }
    if (total == 0) { return 0; }
    return right / total;
  }`,
});

export const accuracyKernel: LayerKernel = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const ap = layer.param.accuracy_param;
    const axis = bottom[0]!.canonicalAxisIndex(ap?.axis ?? 1);
    const outer = bottom[0]!.count(0, axis);
    const inner = bottom[0]!.count(axis + 1);
    const C = bottom[0]!.shape[axis]!;
    if (bottom[1]!.count() !== outer * inner) {
      throw new BackendError(`Accuracy layer '${layer.name}': ${bottom[1]!.count()} labels for ${outer * inner} predictions`);
    }
    const ignore = ap && hasField(ap, 'ignore_label') ? ap.ignore_label : null;
    checkLabels(layer, bottom[1]!, C, ignore);
    const common = [dataOf(dev, bottom[0]!), dataOf(dev, bottom[1]!), outer, C, inner, ap?.top_k ?? 1, ignore === null ? 0 : 1, ignore ?? 0];
    writeData(dev, top[0]!, accuracySpec(outer * inner, C), [...common, 0]);
    if (top.length > 1) writeData(dev, top[1]!, accuracySpec(outer * inner, C), [...common, 1]);
  },
};
