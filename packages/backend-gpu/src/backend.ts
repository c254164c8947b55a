import type { Backend } from '@caffe-ts/blob';
import type { Layer, LayerKernel } from '@caffe-ts/layers';
import { GpuDevice, type GpuDeviceStats } from './device.js';
import { accuracyKernel } from './kernels/accuracy.js';
import { batchNormKernel } from './kernels/batch-norm.js';
import { perImageParts } from './kernels/batch-parts.js';
import { concatKernel, concatSplitsByImage } from './kernels/concat.js';
import { convolutionKernel } from './kernels/convolution.js';
import { dropoutKernel } from './kernels/dropout.js';
import { eltwiseKernel } from './kernels/eltwise.js';
import { HOST_ONLY_TYPES, hostOnlyKernel, shareKernel } from './kernels/host.js';
import { innerProductKernel } from './kernels/inner-product.js';
import { inputKernel } from './kernels/input.js';
import { lrnKernel } from './kernels/lrn.js';
import { sigmoidKernel, tanhKernel } from './kernels/neuron.js';
import { poolingKernel } from './kernels/pooling.js';
import { reluKernel } from './kernels/relu.js';
import { affineSplitsByImage, biasKernel, scaleKernel } from './kernels/scale.js';
import { createGpuOps, type GpuOps } from './kernels/sgd-update.js';
import { softmaxKernel } from './kernels/softmax.js';
import { releaseSoftmaxLossState, softmaxWithLossKernel } from './kernels/softmax-with-loss.js';
import { releaseScratch } from './kernels/util.js';
import { splitKernel } from './kernels/split.js';
import { startRuntime, type GpuMode, type GpuRuntimeInfo } from './runtime.js';
import { drainTexturePool } from './texture-pool.js';

export interface GpuBackendOptions {
  /** A specific gpu.js mode; by default the first that works of headlessgl, webgl2, webgl, wasm, cpu. */
  mode?: GpuMode;
  /** Run layers that have no gpu kernel on the host (counted in stats().cpuFallbacks, warned once per layer). */
  allowCpuFallback?: boolean;
  /** How this backend's users turn the fallback on, named in the error of a layer without a kernel. */
  cpuFallbackHint?: string;
  /** Name under which the backend reports itself (default 'gpu'). */
  name?: string;
  /**
   * Use at most this texture side (default: the device's). Buffers hold up to side² floats laid
   * out in 2-D, so this forces the split/refusal paths on small inputs (tests, browsers with
   * small limits).
   */
  maxTextureSize?: number;
  /**
   * Split buffers longer than this many floats into parts (default and maximum 2^24, the
   * largest range gpu.js indexes exactly in float32); lower it to test the split paths.
   */
  splitLimit?: number;
  /**
   * Run Convolution and InnerProduct as packed GEMMs (4 floats per texel, 4 outputs per thread):
   * default on in the GL modes, where it is several times faster; `false` (or
   * CAFFE_TS_GPU_PACKED=0) keeps the direct kernels. Off the GL modes it is always off.
   */
  packed?: boolean;
  /**
   * Time every kernel run, bracketed by device synchronisations (GpuDevice.kernelProfile): exact
   * per-kernel figures at the cost of the overlap a step normally has. Off by default.
   */
  profileKernels?: boolean;
}

export interface GpuBackendInfo extends GpuRuntimeInfo {
  /** Layer types with a device kernel. */
  kernels: string[];
  /** Layer types that run on the host by design (data layers; tops uploaded once per batch). */
  hostOnly: string[];
  /** Whether Convolution and InnerProduct run as packed GEMMs (GpuBackendOptions.packed). */
  packed: boolean;
}

export interface GpuBackend extends Backend {
  readonly device: GpuDevice;
  readonly ops: GpuOps;
  /** The same ops, as the Backend contract's device solver hook (Solver and Net use them). */
  readonly solverOps: GpuOps;
  layerKernel(type: string): LayerKernel | undefined;
  info(): GpuBackendInfo;
  stats(): GpuDeviceStats & { cpuFallbacks: Record<string, number> };
  /** Wait until the device has finished the work queued so far (GL: glFinish), so host timers measure it. */
  synchronize(): void;
  /** Release gpu.js kernels and its context. */
  destroy(): void;
}

const KERNELS: Record<string, LayerKernel> = {
  Accuracy: accuracyKernel,
  // Batch statistics tie the images together; global statistics (TEST) do not.
  BatchNorm: perImageParts(batchNormKernel, { splits: (l) => l.useGlobalStats }) as LayerKernel,
  Bias: perImageParts(biasKernel, { splits: affineSplitsByImage }) as LayerKernel,
  Concat: perImageParts(concatKernel, { splits: concatSplitsByImage }) as LayerKernel,
  Convolution: perImageParts(convolutionKernel),
  Dropout: perImageParts(dropoutKernel),
  Eltwise: perImageParts(eltwiseKernel) as LayerKernel,
  Flatten: shareKernel,
  InnerProduct: innerProductKernel,
  Input: inputKernel,
  LRN: perImageParts(lrnKernel),
  Pooling: perImageParts(poolingKernel) as LayerKernel,
  ReLU: perImageParts(reluKernel),
  Reshape: shareKernel,
  Scale: perImageParts(scaleKernel, { splits: affineSplitsByImage }) as LayerKernel,
  Sigmoid: perImageParts(sigmoidKernel),
  Softmax: perImageParts(softmaxKernel, { splits: (l, b) => b[0]!.canonicalAxisIndex(l.param.softmax_param?.axis ?? 1) > 0 }),
  SoftmaxWithLoss: softmaxWithLossKernel,
  Split: perImageParts(splitKernel, { forwardShares: true }),
  TanH: perImageParts(tanhKernel),
};
for (const type of HOST_ONLY_TYPES) KERNELS[type] = hostOnlyKernel;

/** Layer types the gpu backend runs on the device. */
export const gpuKernelTypes = (): string[] => Object.keys(KERNELS).filter((t) => KERNELS[t] !== hostOnlyKernel).sort();

/** Layer types that run on the host by design (data layers): their tops are uploaded once per batch. */
export const gpuHostOnlyTypes = (): string[] => [...HOST_ONLY_TYPES];

export function createGpuBackend(options: GpuBackendOptions = {}): GpuBackend {
  const started = startRuntime(options.mode);
  const runtime =
    options.maxTextureSize !== undefined && options.maxTextureSize < started.info.maxTextureSize
      ? { ...started, info: { ...started.info, maxTextureSize: options.maxTextureSize } }
      : started;
  const envPacked = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.CAFFE_TS_GPU_PACKED;
  const packed = runtime.textures && (options.packed ?? envPacked?.trim() !== '0');
  const device = new GpuDevice(runtime, { splitLimit: options.splitLimit, packed, profileKernels: options.profileKernels });
  const ops = createGpuOps(device);
  return {
    specificationVersion: 'v1',
    name: options.name ?? 'gpu',
    device,
    ops,
    solverOps: ops,
    allowCpuFallback: options.allowCpuFallback ?? false,
    cpuFallbackHint: options.cpuFallbackHint ?? 'create the backend with { allowCpuFallback: true }',
    layerKernel: (type) => KERNELS[type],
    releaseLayer(layer) {
      releaseScratch(layer as Layer);
      releaseSoftmaxLossState(device, layer as Layer);
    },
    info: () => ({ ...runtime.info, skipped: runtime.info.skipped.slice(), kernels: gpuKernelTypes(), hostOnly: gpuHostOnlyTypes(), packed }),
    // One live object: Layer counts CPU fallbacks into it and the device counts transfers.
    stats: () => device.stats,
    synchronize() {
      device.finish();
    },
    destroy() {
      device.destroy();
      drainTexturePool(runtime.gpu);
      runtime.gpu.destroy();
    },
  };
}
