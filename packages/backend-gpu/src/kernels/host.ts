import type { Blob } from '@caffe-ts/blob';
import type { Layer, LayerKernel } from '@caffe-ts/layers';

/** The host paths of a layer (protected on Layer; the kernels below run them by design, not as a fallback). */
interface HostPaths {
  forwardCpu(bottom: Blob[], top: Blob[]): void;
  backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void;
}
const host = (layer: Layer): HostPaths => layer as unknown as HostPaths;

/**
 * Host-only layers: data layers read records, decode and transform on the host; their tops are
 * written there and uploaded once per batch when the first device layer reads them. They are
 * not counted as CPU fallbacks.
 */
export const HOST_ONLY_TYPES = ['Data', 'ImageData', 'WindowData', 'HDF5Data', 'MemoryData', 'DummyData'] as const;

export const hostOnlyKernel: LayerKernel = {
  forward(layer, bottom, top) {
    host(layer).forwardCpu(bottom, top);
  },
  backward(layer, top, propagateDown, bottom) {
    host(layer).backwardCpu(top, propagateDown, bottom);
  },
};

/**
 * Layers that only re-label memory (Flatten, Reshape: top shares the bottom's data, bottom the
 * top's diff): their host paths touch no values, so they move nothing between host and device.
 */
export const shareKernel: LayerKernel = hostOnlyKernel;
