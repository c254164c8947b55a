import { checkNotEmpty, fillGaussian, FillerError, type FillerDef } from './filler.js';

/**
 * Normal(mean, std). With sparse ≥ 0 each element is kept with probability sparse / shape[0]
 * and zeroed otherwise: Caffe's sparse mode for weight matrices, where `sparse` is the expected
 * number of non-zero inputs per output.
 */
export const gaussianFillerDef: FillerDef = {
  type: 'gaussian',
  fill(blob, param, rng) {
    checkNotEmpty(param, blob);
    const what = `gaussian filler for blob ${blob.shapeString()}`;
    const data = blob.mutableCpuData();
    fillGaussian(data, param.mean, param.std, rng, what);
    const sparse = param.sparse;
    if (!Number.isInteger(sparse) || sparse < -1) throw new FillerError(`${what}: sparse must be -1 or a count >= 0, got ${sparse}`);
    if (sparse < 0) return;
    if (blob.numAxes < 1) throw new FillerError(`${what}: sparse mode needs a blob with at least 1 axis`);
    const p = sparse / blob.shape[0]!;
    if (p > 1) {
      throw new FillerError(`${what}: sparse = ${sparse} exceeds the number of outputs ${blob.shape[0]} (non-zero probability ${p} > 1)`);
    }
    for (let i = 0; i < data.length; i++) if (!rng.bernoulli(p)) data[i] = 0;
  },
};
