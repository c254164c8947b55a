import { hasField, type ConvolutionParameter } from '@caffe-ts/proto';

/** The window of a convolution-like layer, one value per spatial axis. */
export interface ConvWindow {
  kernelShape: number[];
  stride: number[];
  pad: number[];
  dilation: number[];
}

/** A layer's check: throws the layer's error with the message when the condition fails. */
type Check = (condition: boolean, message: () => string) => void;

/**
 * kernel, stride, pad and dilation of a ConvolutionParameter over `numSpatialAxes` axes, with
 * Caffe's rules (kernel_size required; a value given once applies to every axis; _h/_w only in
 * 2-D and not with the repeated field) and its messages. Convolution, Deconvolution and Im2col
 * read their geometry through this.
 */
export function convWindow(cp: ConvolutionParameter, numSpatialAxes: number, check: Check): ConvWindow {
  const nsa = numSpatialAxes;
  const perAxis = (
    name: 'kernel_size' | 'stride' | 'pad',
    nameH: 'kernel_h' | 'stride_h' | 'pad_h',
    nameW: 'kernel_w' | 'stride_w' | 'pad_w',
    dflt: number | undefined,
  ): number[] => {
    const repeated = cp[name];
    const label = name === 'kernel_size' ? 'kernel' : name;
    if (hasField(cp, nameH) || hasField(cp, nameW)) {
      check(nsa === 2, () => `${nameH} & ${nameW} can only be used for 2D convolution (${nsa} spatial dims).`);
      check(repeated.length === 0, () => `Either ${name} or ${label}_h/w should be specified; not both.`);
      return [cp[nameH], cp[nameW]];
    }
    const n = repeated.length;
    const ok = dflt === undefined ? n === 1 || n === nsa : n === 0 || n === 1 || n === nsa;
    check(ok, () => `${name} must be specified once, or once per spatial dimension (${name} specified ${n} times; ${nsa} spatial dims).`);
    const out: number[] = [];
    for (let i = 0; i < nsa; i++) out.push(n === 0 ? dflt! : repeated[n === 1 ? 0 : i]!);
    return out;
  };
  const kernelShape = perAxis('kernel_size', 'kernel_h', 'kernel_w', undefined);
  for (const k of kernelShape) check(k > 0, () => 'Filter dimensions must be nonzero.');
  const stride = perAxis('stride', 'stride_h', 'stride_w', 1);
  for (const s of stride) check(s > 0, () => 'Stride dimensions must be nonzero.');
  const pad = perAxis('pad', 'pad_h', 'pad_w', 0);
  const nd = cp.dilation.length;
  check(
    nd === 0 || nd === 1 || nd === nsa,
    () => `dilation must be specified once, or once per spatial dimension (dilation specified ${nd} times; ${nsa} spatial dims).`,
  );
  const dilation: number[] = [];
  for (let i = 0; i < nsa; i++) dilation.push(nd === 0 ? 1 : cp.dilation[nd === 1 ? 0 : i]!);
  for (const d of dilation) check(d > 0, () => 'Dilation dimensions must be nonzero.');
  return { kernelShape, stride, pad, dilation };
}
