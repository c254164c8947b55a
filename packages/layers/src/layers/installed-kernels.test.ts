// Where the layers hand their float32 work once other kernels are installed in @caffe-ts/blob
// (setConv2dRunner, setInferConvRunner, setGemmKernel: e.g. @caffe-ts/backend-native's): recording wrappers around
// the default kernels show which calls go there, and the results stay those of the defaults.
import {
  Blob, builtinWasmInferConv, createWasmConv2d, customGemmKernelInstalled, defaultWasmInfer, defaultWasmInferConv, gemmJs, installedInferConvRunner,
  restoreDefaultGemmKernel, Rng, setConv2dRunner, setGemmKernel, setInferConvRunner,
  type Conv2dRunner, type GemmKernel, type InferConvRunner, type WasmInfer,
} from '@caffe-ts/blob';
import { Phase } from '@caffe-ts/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { createLayer, makeBlob, maxPoolWithArgmax } from '../testing.js';
import { convolutionLayerDef } from './convolution-layer.js';
import { innerProductLayerDef } from './inner-product-layer.js';
import { lrnLayerDef } from './lrn-layer.js';
import { poolingLayerDef } from './pooling-layer.js';

function recordingRunner(): Conv2dRunner & { passes: string[] } {
  const inner = createWasmConv2d({ relaxed: false, threads: 1 });
  if (!inner) throw new Error('WebAssembly SIMD is unavailable in this Node');
  const passes: string[] = [];
  return {
    name: 'recording',
    passes,
    run(g, num, chunk, pass) {
      passes.push(Object.entries(pass).filter(([k, v]) => v && k !== 'weights' && k !== 'bias').map(([k]) => k).join('+'));
      inner.run(g, num, chunk, pass);
    },
  };
}

/** Forward and backward of one convolution; returns top data and every gradient. */
function step(convParam: Record<string, unknown>, shape: number[], phase = Phase.TRAIN) {
  const layer = createLayer(convolutionLayerDef, { convolution_param: { weight_filler: { type: 'gaussian', std: 0.1 }, bias_filler: { type: 'gaussian', std: 0.1 }, ...convParam } }, { dtype: 'float32', rng: new Rng(3), phase });
  const bottom = makeBlob(shape, { dtype: 'float32', rng: new Rng(4) }), top = new Blob([1], { dtype: 'float32' });
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  const dy = top.mutableCpuDiff();
  const rng = new Rng(5);
  for (let i = 0; i < dy.length; i++) dy[i] = rng.uniform() - 0.5;
  layer.backward([top], [true], [bottom]);
  return [top.cpuData(), bottom.cpuDiff(), layer.blobs[0]!.cpuDiff(), layer.blobs[1]!.cpuDiff()].map((a) => Array.from(a));
}

afterEach(() => {
  setConv2dRunner(null);
  setInferConvRunner(null);
  restoreDefaultGemmKernel();
});

describe('an installed Conv2dRunner', () => {
  it('takes a strided convolution\'s forward and its backward, with the default\'s results (to rounding)', () => {
    const p = { num_output: 6, kernel_size: [3], stride: [2], pad: [1] };
    const plain = step(p, [2, 4, 9, 9]);
    const runner = recordingRunner();
    setConv2dRunner(runner);
    const got = step(p, [2, 4, 9, 9]);
    got.forEach((a, i) => a.forEach((v, j) => expect(v).toBeCloseTo(plain[i]![j]!, 5)));
    expect(runner.passes).toEqual(['colIn+gemmOut', 'colIn+gemmIn+weightDiff+colOut+biasDiff']);
  });

  it('leaves the forwards that the packed runner computes by Winograd (5×5 stride 1, 16+ channels) and depthwise ones to it', () => {
    const winograd = recordingRunner();
    setConv2dRunner(winograd);
    step({ num_output: 16, kernel_size: [5] }, [1, 16, 10, 10]);
    expect(winograd.passes).toEqual(['colIn+gemmIn+weightDiff+colOut+biasDiff']);
    const depthwise = recordingRunner();
    setConv2dRunner(depthwise);
    step({ num_output: 8, kernel_size: [3], group: 8, pad: [1] }, [1, 8, 6, 6]);
    expect(depthwise.passes.filter((p) => p.includes('gemmOut'))).toEqual([]);
  });

  it('leaves inference forwards (TEST phase) to the packed runner, which fuses their epilogues', () => {
    const runner = recordingRunner();
    setConv2dRunner(runner);
    step({ num_output: 6, kernel_size: [3], stride: [2], pad: [1] }, [1, 4, 9, 9], Phase.TEST);
    expect(runner.passes.filter((p) => p.includes('gemmOut'))).toEqual([]);
  });

  it('takes the weight gradient that the small-convolution kernels compute without one (LeNet conv1)', () => {
    const runner = recordingRunner();
    setConv2dRunner(runner);
    const layer = createLayer(convolutionLayerDef, { convolution_param: { num_output: 4, kernel_size: [5], weight_filler: { type: 'gaussian', std: 0.1 } } }, { dtype: 'float32', rng: new Rng(3) });
    const bottom = makeBlob([2, 1, 9, 9], { dtype: 'float32', rng: new Rng(4) }), top = new Blob([1], { dtype: 'float32' });
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    top.mutableCpuDiff().fill(0.5);
    layer.backward([top], [false], [bottom]);
    expect(runner.passes).toEqual(['colIn+gemmOut', 'colIn+gemmIn+weightDiff+biasDiff']);
  });

  it('takes training MAX pooling where it pools (values and argmax, then the scatter), with the default\'s results', () => {
    const run = () => {
      const layer = createLayer(poolingLayerDef, { pooling_param: { pool: 0, kernel_size: 3, stride: 2, pad: 1 } }, { dtype: 'float32' });
      const bottom = makeBlob([2, 3, 7, 8], { dtype: 'float32', rng: new Rng(8) }), top = new Blob([1], { dtype: 'float32' });
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      const dy = top.mutableCpuDiff();
      for (let i = 0; i < dy.length; i++) dy[i] = i + 1;
      layer.backward([top], [true], [bottom]);
      return [Array.from(top.cpuData()), Array.from(bottom.cpuDiff())];
    };
    const plain = run();
    const calls: string[] = [];
    const runner: Conv2dRunner = {
      ...recordingRunner(),
      // The plain loops' answers, computed here from the arguments (first maximum wins).
      maxPool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y, argmax) {
        calls.push(`maxPool ${planes}×${H}×${W}→${PH}×${PW}`);
        maxPoolWithArgmax(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y, argmax);
        return true;
      },
      maxUnpool(dy, argmax, planes, inPlane, outPlane, dx) {
        calls.push(`maxUnpool ${planes}×${inPlane}←${outPlane}`);
        dx.fill(0, 0, planes * inPlane);
        for (let p = 0; p < planes; p++) for (let o = 0; o < outPlane; o++) dx[p * inPlane + argmax[p * outPlane + o]!]! += dy[p * outPlane + o]!;
        return true;
      },
    };
    setConv2dRunner(runner);
    expect(run()).toEqual(plain);
    expect(calls).toEqual(['maxPool 6×7×8→4×5', 'maxUnpool 6×56←20']);
    // One that declines leaves the work to the default kernels.
    setConv2dRunner({ ...runner, maxPool: () => false, maxUnpool: () => false });
    expect(run()).toEqual(plain);
  });
});

/** The WebAssembly packed runner behind a wrapper that records the kind of each call. */
function recordingInferRunner(): InferConvRunner & { calls: string[] } {
  const inner = builtinWasmInferConv();
  if (!inner) throw new Error('WebAssembly SIMD is unavailable in this Node');
  const calls: string[] = [];
  return {
    name: 'recording',
    calls,
    conv2d: (...args) => (calls.push('conv2d'), inner.conv2d(...args)),
    depthwise: (...args) => (calls.push('depthwise'), inner.depthwise(...args)),
    innerProduct: (...args) => (calls.push('innerProduct'), inner.innerProduct(...args)),
    stats: () => inner.stats(),
    clear: () => inner.clear(),
    release: (w) => inner.release(w),
  };
}

describe('an installed InferConvRunner beside an installed Conv2dRunner', () => {
  it('takes the training forwards the packed runner would run (Winograd-shaped); the pass runner the rest, depthwise ones their own kernel', () => {
    const runner = recordingRunner(), infer = recordingInferRunner();
    setConv2dRunner(runner);
    setInferConvRunner(infer);
    step({ num_output: 16, kernel_size: [5] }, [1, 16, 10, 10]);
    step({ num_output: 8, kernel_size: [3], group: 8, pad: [1] }, [1, 8, 6, 6]);
    step({ num_output: 6, kernel_size: [3], stride: [2], pad: [1] }, [2, 4, 9, 9]);
    expect(infer.calls).toEqual(['conv2d']);
    expect(runner.passes.filter((p) => p.includes('gemmOut'))).toEqual(['colIn+gemmOut']);
  });
});

describe('an installed InferConvRunner', () => {
  it('takes inference (TEST) forwards, with the packed runner\'s results; training forwards stay on the packed runner', () => {
    const p = { num_output: 6, kernel_size: [3], stride: [2], pad: [1] };
    const plain = step(p, [1, 4, 9, 9], Phase.TEST);
    const runner = recordingInferRunner();
    setInferConvRunner(runner);
    expect(installedInferConvRunner()).toBe(runner);
    expect(defaultWasmInferConv()).toBe(runner);
    const got = step(p, [1, 4, 9, 9], Phase.TEST);
    expect(runner.calls).toEqual(['conv2d']);
    expect(got[0]).toEqual(plain[0]);
    step(p, [1, 4, 9, 9], Phase.TRAIN);
    step({ num_output: 16, kernel_size: [5] }, [1, 16, 10, 10], Phase.TRAIN);
    expect(runner.calls).toEqual(['conv2d']);
    setInferConvRunner(null);
    expect(defaultWasmInferConv()).toBe(builtinWasmInferConv());
  });
});

/**
 * Installs the recording runner with optional methods made by `make` from the WebAssembly
 * kernels and a state: the calls they log, and a switch that makes them decline.
 */
function installOptional(make: (wasm: WasmInfer, state: { calls: string[]; decline: boolean }) => Partial<InferConvRunner>) {
  const wasm = defaultWasmInfer();
  if (!wasm) throw new Error('WebAssembly SIMD is unavailable in this Node');
  const state = { calls: [] as string[], decline: false };
  setInferConvRunner({ ...recordingInferRunner(), ...make(wasm, state) });
  return state;
}

describe('an installed InferConvRunner with lrnAcross', () => {
  it('takes LRN across channels where no backward follows (s left unwritten), with the WebAssembly kernel\'s results; declined or with a backward, the default runs', () => {
    const hook = installOptional((wasm, state) => ({
      lrnAcross(x, s, y, num, channels, plane, size, k, an, beta) {
        state.calls.push(`lrn ${num}×${channels}×${plane} size ${size} beta ${beta} s ${s === null ? 'null' : 'given'}`);
        if (state.decline) return false;
        wasm.lrnAcross(x, new Float32Array(x.length), y, num, channels, plane, size, k, an, beta);
        return true;
      },
    }));
    const run = (backwardNeeded: boolean) => {
      const layer = createLayer(lrnLayerDef, { lrn_param: { local_size: 5, alpha: 0.1, beta: 0.75 } }, { dtype: 'float32' });
      layer.backwardNeeded = backwardNeeded;
      const bottom = makeBlob([2, 6, 3, 4], { dtype: 'float32', filler: 'uniform', min: -2, max: 2, rng: new Rng(5) });
      const top = new Blob([], { dtype: 'float32' });
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      return Array.from(top.cpuData());
    };
    const trained = run(true);
    expect(hook.calls).toEqual([]);
    expect(run(false)).toEqual(trained);
    expect(hook.calls).toEqual(['lrn 2×6×12 size 5 beta 0.75 s null']);
    hook.decline = true;
    expect(run(false)).toEqual(trained);
    expect(hook.calls).toHaveLength(2);
  });
});

describe('an installed InferConvRunner with aveGlobal', () => {
  it('takes global AVE pooling, with the WebAssembly kernel\'s results; declined, the default runs', () => {
    const hook = installOptional((wasm, state) => ({
      aveGlobal(planes, size, divisor, x, y) {
        state.calls.push(`aveGlobal ${planes}×${size} / ${divisor}`);
        if (state.decline) return false;
        wasm.aveGlobal(planes, size, divisor, x, y);
        return true;
      },
    }));
    const run = () => {
      const layer = createLayer(poolingLayerDef, { pooling_param: { pool: 1, global_pooling: true } }, { dtype: 'float32', phase: Phase.TEST });
      const bottom = makeBlob([2, 5, 3, 4], { dtype: 'float32', filler: 'uniform', min: -2, max: 2, rng: new Rng(6) });
      const top = new Blob([], { dtype: 'float32' });
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      return Array.from(top.cpuData());
    };
    const got = run();
    expect(hook.calls).toEqual(['aveGlobal 10×12 / 12']);
    hook.decline = true;
    expect(run()).toEqual(got);
    expect(hook.calls).toHaveLength(2);
    setInferConvRunner(null);
    expect(run()).toEqual(got);
  });
});

describe('an installed GEMM kernel', () => {
  it('serves InnerProduct at a batch of a few rows too (no dot-product kernel of its own)', () => {
    const calls: string[] = [];
    const recording: GemmKernel = (tA, tB, M, N, K, alpha, A, B, beta, C) => {
      calls.push(`${M}×${N}×${K}`);
      gemmJs(tA, tB, M, N, K, alpha, A, B, beta, C);
    };
    const layer = createLayer(innerProductLayerDef, { inner_product_param: { num_output: 64, weight_filler: { type: 'gaussian' } } }, { dtype: 'float32', rng: new Rng(1) });
    const bottom = makeBlob([2, 128], { dtype: 'float32' }), top = new Blob([1], { dtype: 'float32' });
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const plain = Array.from(top.cpuData());
    expect(customGemmKernelInstalled()).toBe(false);
    setGemmKernel(recording, { name: 'recording' });
    expect(customGemmKernelInstalled()).toBe(true);
    layer.forward([bottom], [top]);
    expect(calls).toEqual(['2×64×128']);
    const got = Array.from(top.cpuData());
    for (let i = 0; i < plain.length; i++) expect(got[i]).toBeCloseTo(plain[i]!, 4);
    restoreDefaultGemmKernel();
    expect(customGemmKernelInstalled()).toBe(false);
  });
});
