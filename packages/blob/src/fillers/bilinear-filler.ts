import { checkNotEmpty, checkNotSparse, FillerError, type FillerDef } from './filler.js';

/**
 * Bilinear-interpolation weights for a Deconvolution used as an upsampler (kernel
 * 2·factor − factor % 2, stride factor): every k×k kernel slice gets
 * (1 − |x/f − c|)·(1 − |y/f − c|) with f = ⌈k/2⌉ and c = (k − 1)/(2f). Needs a 4-D blob with
 * a square kernel.
 */
export const bilinearFillerDef: FillerDef = {
  type: 'bilinear',
  fill(blob, param) {
    checkNotEmpty(param, blob);
    if (blob.numAxes !== 4) throw new FillerError(`bilinear filler: blob must be 4-D, got shape ${blob.shapeString()}`);
    const [, , h, w] = blob.shape as [number, number, number, number];
    if (h !== w) throw new FillerError(`bilinear filler: kernel must be square, got ${h}×${w} (shape ${blob.shapeString()})`);
    checkNotSparse(param, blob);
    const f = Math.ceil(w / 2);
    const c = (w - 1) / (2 * f);
    const data = blob.mutableCpuData();
    for (let i = 0; i < data.length; i++) {
      const x = i % w;
      const y = Math.floor(i / w) % h;
      data[i] = (1 - Math.abs(x / f - c)) * (1 - Math.abs(y / f - c));
    }
  },
};
