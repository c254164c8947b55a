/**
 * How the spatial coordinates of NetSpec tops relate, for aligning feature maps (pycaffe's
 * caffe.coord_map): each spatial layer maps its input's coordinate x to a · x + b in its output
 * (per spatial axis), maps compose along the graph, and `crop(from, to)` makes the Crop layer that
 * cuts `from` to `to`'s region, as fully convolutional nets (FCN) do after upsampling.
 */
import { NetError } from './errors.js';
import { L, type LayerFunction, type Top } from './net-spec.js';

/**
 * x_out = scale · x_in + shift along spatial axes from `axis` on (null: any axis; the map of a
 * pointwise layer). `scale` and `shift` hold one value per spatial axis, or one for all.
 */
export interface CoordMap {
  axis: number | null;
  scale: number[];
  shift: number[];
}

/** Layers that leave coordinates as they are. */
const PASS_THROUGH = new Set([
  'AbsVal', 'BatchNorm', 'Bias', 'BNLL', 'Dropout', 'Eltwise', 'ELU', 'Log', 'LRN', 'Exp', 'MVN', 'Power',
  'ReLU', 'PReLU', 'Scale', 'Sigmoid', 'Split', 'TanH', 'Threshold',
]);

const IDENTITY: CoordMap = { axis: null, scale: [1], shift: [0] };

/** Elementwise over two vectors of one value or the same length (NumPy broadcasting of 1-D arrays). */
function zip(a: number[], b: number[], f: (x: number, y: number) => number): number[] {
  if (a.length !== b.length && a.length !== 1 && b.length !== 1) throw new NetError(`coord map: ${a.length} and ${b.length} spatial values do not broadcast`);
  return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => f(a[a.length === 1 ? 0 : i]!, b[b.length === 1 ? 0 : i]!));
}
const vector = (v: unknown, fallback: number): number[] => (v === undefined ? [fallback] : (Array.isArray(v) ? v : [v]).map(Number));

/** The message a layer's fields are in (e.g. `convolution_param`), else its flat keyword arguments. */
function fields(fn: LayerFunction, message: string): Record<string, unknown> {
  return (fn.params[message] as Record<string, unknown> | undefined) ?? fn.params;
}

/** Axis, stride, effective kernel extent ((k − 1)·dilation + 1) and pad of a convolution or pooling. */
function windowParams(fn: LayerFunction): { axis: number; stride: number[]; extent: number[]; pad: number[] } {
  const p = fields(fn, fn.type === 'Pooling' ? 'pooling_param' : 'convolution_param');
  for (const legacy of ['pad_h', 'pad_w', 'kernel_h', 'kernel_w', 'stride_h', 'stride_w']) {
    if (legacy in p) throw new NetError(`coord map: layer ${fn.type} uses ${legacy}; cropping supports kernel_size/stride/pad only (not the _h/_w forms)`);
  }
  if (p.kernel_size === undefined) throw new NetError(`coord map: layer ${fn.type} has no kernel_size`);
  const kernel = vector(p.kernel_size, 1);
  const dilation = vector(p.dilation, 1);
  return { axis: p.axis === undefined ? 1 : Number(p.axis), stride: vector(p.stride, 1), extent: zip(kernel, dilation, (k, d) => (k - 1) * d + 1), pad: vector(p.pad, 0) };
}

/** The coordinate map of one layer function, or null where it has none (then the walk stops there). */
export function layerCoordMap(fn: LayerFunction): CoordMap | null {
  if (fn.type === 'Convolution' || fn.type === 'Pooling' || fn.type === 'Im2col') {
    const { axis, stride, extent, pad } = windowParams(fn);
    const half = extent.map((e) => (e - 1) / 2);
    return { axis, scale: stride.map((s) => 1 / s), shift: zip(zip(pad, half, (p, h) => p - h), stride, (d, s) => d / s) };
  }
  if (fn.type === 'Deconvolution') {
    const { axis, stride, extent, pad } = windowParams(fn);
    return { axis, scale: stride, shift: zip(extent, pad, (e, p) => (e - 1) / 2 - p) };
  }
  if (PASS_THROUGH.has(fn.type)) return IDENTITY;
  if (fn.type === 'Crop') {
    const p = fields(fn, 'crop_param');
    // The map's axis counts from the last non-spatial one (Crop's default axis 2 → 1).
    return { axis: (p.axis === undefined ? 2 : Number(p.axis)) - 1, scale: [1], shift: vector(p.offset, 0).map((o) => -o) };
  }
  return null;
}

/** `next` after `base`: scales multiply, and `next`'s shift is scaled by `base`'s scale. */
export function composeCoordMaps(base: CoordMap, next: CoordMap): CoordMap {
  let axis: number | null;
  if (base.axis === null) axis = next.axis;
  else if (next.axis === null || base.axis === next.axis) axis = base.axis;
  else throw new NetError(`coord map: axes ${base.axis} and ${next.axis} do not match`);
  return { axis, scale: zip(base.scale, next.scale, (a, b) => a * b), shift: zip(zip(base.scale, next.shift, (a, b) => a * b), base.shift, (x, y) => x + y) };
}

/** The map back from output to input coordinates. */
export function invertCoordMap(m: CoordMap): CoordMap {
  return { axis: m.axis, scale: m.scale.map((a) => 1 / a), shift: zip(m.shift, m.scale, (b, a) => -b / a) };
}

/** The bottoms a walk follows: all of a layer's, but only the first (the one cut) of a Crop. */
function walkBottoms(top: Top): readonly Top[] {
  return top.fn.type === 'Crop' ? top.fn.inputs.slice(0, 1) : top.fn.inputs;
}

/**
 * The map from `from`'s coordinates to `to`'s: both walk down the graph composing layer maps
 * until `to`'s walk reaches a top `from`'s walk has seen; there `from`'s map is inverted.
 */
export function coordMapFromTo(from: Top, to: Top): CoordMap {
  const fromMaps = new Map<Top, CoordMap>([[from, IDENTITY]]);
  const frontier: Top[] = [from];
  while (frontier.length > 0) {
    const top = frontier.shift()!;
    const map = layerCoordMap(top.fn);
    if (!map) continue;
    for (const bottom of walkBottoms(top)) {
      fromMaps.set(bottom, composeCoordMaps(fromMaps.get(top)!, map));
      frontier.push(bottom);
    }
  }
  const toMaps = new Map<Top, CoordMap>([[to, IDENTITY]]);
  frontier.push(to);
  while (frontier.length > 0) {
    const top = frontier.shift()!;
    const seen = fromMaps.get(top);
    if (seen) return composeCoordMaps(toMaps.get(top)!, invertCoordMap(seen));
    const map = layerCoordMap(top.fn);
    if (!map) continue;
    for (const bottom of walkBottoms(top)) {
      toMaps.set(bottom, composeCoordMaps(toMaps.get(top)!, map));
      frontier.push(bottom);
    }
  }
  throw new NetError(`coord map: no path between ${from.fn.type} and ${to.fn.type} through layers with coordinate maps (are they connected by spatial layers?)`);
}

/**
 * pycaffe's `caffe.coord_map.crop(from, to)`: a Crop layer cutting `from` to the region of `to`,
 * its axis and offsets worked out from the layers between them. The two must have the same scale,
 * and `from` must cover `to` at a whole-pixel offset.
 */
export function crop(from: Top, to: Top): Top {
  const { axis, scale, shift } = coordMapFromTo(from, to);
  if (axis === null) throw new NetError('crop: the tops are related by pointwise layers only; there is nothing to crop');
  if (!scale.every((a) => Math.abs(a - 1) < 1e-12)) throw new NetError(`crop: scale mismatch on crop (a = ${scale.join(', ')})`);
  if (!shift.every((b) => b <= 1e-12)) throw new NetError(`crop: cannot crop negative offset (b = ${shift.join(', ')})`);
  if (!shift.every((b) => Math.abs(Math.round(b) - b) < 1e-9)) throw new NetError(`crop: cannot crop noninteger offset (b = ${shift.join(', ')})`);
  return L.Crop(from, to, { crop_param: { axis: axis + 1, offset: shift.map((b) => 0 - Math.round(b)) } }) as Top;
}
