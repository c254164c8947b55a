import { defaultWasmInfer, defaultWasmTrain, type Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/**
 * ReLU (Caffe's ReLULayer): y = max(x, 0) + negative_slope · min(x, 0) (leaky when the
 * slope is non-zero). In place is safe: backward only needs the sign of x, which y keeps
 * for any slope ≥ 0.
 */
export class ReLULayer extends NeuronLayer {
  readonly type = 'ReLU';

  get negativeSlope(): number {
    return this.param.relu_param?.negative_slope ?? 0;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const slope = this.negativeSlope;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const n = x.length;
    if (n >= WASM_MIN_ELEMENTS && y instanceof Float32Array) {
      // Float32 in WebAssembly SIMD: max(x, 0) + slope·min(x, 0), the same values 4 at a time.
      const k = defaultWasmInfer();
      if (k) {
        k.relu(x as Float32Array, y, n, slope);
        return;
      }
    }
    // Branch-free forms of Caffe's max(x, 0) + slope · min(x, 0): (x + |x|)/2 is max(x, 0) and
    // (x − |x|)/2 is min(x, 0), exactly (halving and doubling are exact), giving +0 for
    // negatives as Caffe's form does. A branch on the sign mispredicts on real activations
    // (about half negative, in no pattern) and ran 4–5× slower.
    if (slope === 0) {
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        y[i] = (v + Math.abs(v)) * 0.5;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const a = Math.abs(v);
        y[i] = (v + a) * 0.5 + slope * ((v - a) * 0.5);
      }
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const slope = this.negativeSlope;
    const x = bottom[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    // The subgradient at 0 is the negative slope, as in Caffe.
    if (x.length >= WASM_MIN_ELEMENTS && x instanceof Float32Array && dy instanceof Float32Array && dx instanceof Float32Array) {
      // Float32 in WebAssembly SIMD (a select per lane): the JS branch on the sign mispredicts.
      const k = defaultWasmTrain();
      if (k) {
        k.reluBackward(x, dy, dx, x.length, slope);
        return;
      }
    }
    for (let i = 0; i < x.length; i++) dx[i] = x[i]! > 0 ? dy[i]! : slope * dy[i]!;
  }
}

/** Elements from which a float32 forward goes to the WebAssembly kernel (below, the copies cost more than they save). */
export const WASM_MIN_ELEMENTS = 2048;

export const reluLayerDef: LayerDef<ReLULayer> = { type: 'ReLU', create: (p, ctx) => new ReLULayer(p, ctx) };
