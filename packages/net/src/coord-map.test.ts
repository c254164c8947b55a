import { describe, expect, it } from 'vitest';
import { Phase } from '@caffe-ts/proto';
import { composeCoordMaps, coordMapFromTo, crop, invertCoordMap, layerCoordMap } from './coord-map.js';
import { L, NetSpec, P, type Top } from './net-spec.js';
import { Net } from './net.js';
import { testRegistry } from './test-helpers.js';

/** FCN's pattern: padded convolutions, pooling, a score layer, a learned ×2 upsampling, then a crop back to the input. */
function fcn(): NetSpec {
  const n = new NetSpec();
  n.data = L.Input({ shape: [{ dim: [1, 3, 100, 100] }] });
  n.conv1 = L.Convolution(n.data, { kernel_size: 3, pad: 100, num_output: 4, weight_filler: { type: 'xavier' } });
  n.relu1 = L.ReLU(n.conv1, { in_place: true });
  n.pool1 = L.Pooling(n.relu1, { pool: P.Pooling!.MAX, kernel_size: 2, stride: 2 });
  n.score = L.Convolution(n.pool1, { kernel_size: 3, num_output: 2, weight_filler: { type: 'xavier' } });
  n.upscore = L.Deconvolution(n.score, { convolution_param: { kernel_size: 4, stride: 2, num_output: 2, bias_term: false } });
  return n;
}

describe('coord maps (pycaffe caffe.coord_map)', () => {
  it('each layer maps x to a·x + b as pycaffe defines it', () => {
    const n = fcn();
    const of = (t: Top) => layerCoordMap(t.fn);
    // Convolution k3 pad 100: b = pad − (k − 1)/2.
    expect(of(n.conv1!)).toEqual({ axis: 1, scale: [1], shift: [99] });
    // Pooling k2 s2: a = 1/2, b = (0 − 1/2)/2.
    expect(of(n.pool1!)).toEqual({ axis: 1, scale: [0.5], shift: [-0.25] });
    // Deconvolution k4 s2 (fields in convolution_param): a = 2, b = (4 − 1)/2.
    expect(of(n.upscore!)).toEqual({ axis: 1, scale: [2], shift: [1.5] });
    expect(of(n.relu1!)).toEqual({ axis: null, scale: [1], shift: [0] });
    expect(of(n.data!)).toBeNull();
    // Dilation widens the kernel: (3 − 1)·2 + 1 = 5, per axis where given per axis.
    const d = L.Convolution(n.data!, { kernel_size: [3, 1], dilation: 2, pad: [2, 0], num_output: 1 }) as Top;
    expect(of(d)).toEqual({ axis: 1, scale: [1], shift: [0, 0] });
    const legacy = L.Convolution(n.data!, { kernel_h: 3, kernel_w: 3, num_output: 1 }) as Top;
    expect(() => of(legacy)).toThrow(/uses kernel_h; cropping supports kernel_size\/stride\/pad only/);
    const m = composeCoordMaps({ axis: 1, scale: [2], shift: [1.5] }, { axis: 1, scale: [1], shift: [-1] });
    expect(m).toEqual({ axis: 1, scale: [2], shift: [-0.5] });
    expect(invertCoordMap({ axis: 1, scale: [2], shift: [1] })).toEqual({ axis: 1, scale: [0.5], shift: [-0.5] });
  });

  it('crop(upscore, data) finds the offset that aligns the upsampled scores with the input, and the net runs', () => {
    const n = fcn();
    // Down from upscore: ×2 + 1.5, then −1 (score), then ×½ − ¼ (pool), then +99 (conv1):
    // data → upscore is x ↦ x + 98, so upscore is cut at 98.
    expect(coordMapFromTo(n.upscore!, n.data!)).toEqual({ axis: 1, scale: [1], shift: [-98] });
    n.crop = crop(n.upscore!, n.data!);
    const proto = n.toProto('fcn');
    const layer = proto.layer.find((l) => l.name === 'crop')!;
    expect(layer.type).toBe('Crop');
    expect(layer.bottom).toEqual(['upscore', 'data']);
    expect(layer.crop_param!.axis).toBe(2);
    expect(layer.crop_param!.offset).toEqual([98]);
    const net = new Net(proto, { phase: Phase.TEST, log: false, registry: testRegistry() });
    expect(net.blob('upscore').shape).toEqual([1, 2, 296, 296]);
    expect(net.blob('crop').shape).toEqual([1, 2, 100, 100]);
  });

  it('refuses crops that cannot be made', () => {
    const n = fcn();
    expect(() => crop(n.pool1!, n.data!)).toThrow(/scale mismatch on crop \(a = 2\)/);
    // data is inside conv1's padded output, not the other way round.
    expect(() => crop(n.data!, n.conv1!)).toThrow(/cannot crop negative offset \(b = 99\)/);
    const half = L.Convolution(n.data!, { kernel_size: 2, pad: 1, num_output: 1 }) as Top;
    expect(() => crop(half, n.data!)).toThrow(/cannot crop noninteger offset \(b = -0.5\)/);
    expect(() => crop(n.relu1!, n.conv1!)).toThrow(/pointwise layers only/);
    const other = L.Input({ shape: [{ dim: [1, 3, 10, 10] }] }) as Top;
    expect(() => crop(other, n.data!)).toThrow(/no path between Input and Input/);
  });
});
