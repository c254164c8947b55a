// The Python layer API: once @caffe-ts/layers' index exports it, import these from
// '@caffe-ts/layers' instead (see the README).
import { defaultPythonLayerRegistry, registerPythonLayer, type PythonLayerFactory } from '@caffe-ts/layers';

/**
 * A TypeScript port of the Euclidean loss in BVLC Caffe's examples/pycaffe/layers/pyloss.py
 * (`python_param { module: "pyloss" layer: "EuclideanLossLayer" }`): loss = Σ(a − b)² / (2N)
 * with N the batch size; the prototxt gives it `loss_weight: 1`, since Python layers have no
 * default loss weight.
 */
export const euclideanLossLayer: PythonLayerFactory = (_paramStr, self) => {
  // The difference a − b, kept from forward for backward (the Python version's self.diff).
  const diff = self.newBlob();
  return {
    setup(bottom) {
      if (bottom.length !== 2) self.fail(`Need two inputs to compute distance (got ${bottom.length}).`);
    },
    reshape(bottom, top) {
      if (bottom[0]!.count() !== bottom[1]!.count()) {
        self.fail(`Inputs must have the same dimension (${bottom[0]!.shapeString()} vs ${bottom[1]!.shapeString()}).`);
      }
      diff.reshapeLike(bottom[0]!);
      top[0]!.reshape([1]);
    },
    forward(bottom, top) {
      const a = bottom[0]!.cpuData();
      const b = bottom[1]!.cpuData();
      const d = diff.mutableCpuData();
      let sum = 0;
      for (let i = 0; i < d.length; i++) {
        d[i] = a[i]! - b[i]!;
        sum += d[i]! * d[i]!;
      }
      top[0]!.mutableCpuData()[0] = sum / bottom[0]!.shape[0]! / 2;
    },
    backward(top, propagateDown, bottom) {
      // Caffe seeds the top diff with the loss weight; pyloss.py ignores it (it is 1 there).
      // Scaling by it keeps the gradient right for any loss_weight.
      const weight = top[0]!.cpuDiff()[0]!;
      const d = diff.cpuData();
      for (let i = 0; i < 2; i++) {
        if (!propagateDown[i]) continue;
        const scale = ((i === 0 ? 1 : -1) * weight) / bottom[i]!.shape[0]!;
        const out = bottom[i]!.mutableCpuDiff();
        for (let j = 0; j < d.length; j++) out[j] = scale * d[j]!;
      }
    },
  };
};

/** Register the port under the names a pycaffe-era prototxt uses (once; a second call is a no-op). */
export function registerPyloss(): void {
  if (!defaultPythonLayerRegistry().has('pyloss', 'EuclideanLossLayer')) {
    registerPythonLayer('pyloss', 'EuclideanLossLayer', euclideanLossLayer);
  }
}
