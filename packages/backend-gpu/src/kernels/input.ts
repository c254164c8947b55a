import type { LayerKernel } from '@caffe-ts/layers';

/** Input tops are filled by the caller (host writes upload on the next device read): nothing to compute. */
export const inputKernel: LayerKernel = {
  forward() {},
};
