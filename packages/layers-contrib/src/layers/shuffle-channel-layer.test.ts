import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { ShuffleChannelLayer, shuffleChannelLayerDef } from './shuffle-channel-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('ShuffleChannel', () => {
  beforeAll(registerContribSchema);

  it('transposes group × (C/group) channels', () => {
    // 6 channels of 2 values each, channel c holding c.
    const bottom = makeBlob([1, 6, 1, 2], { filler: [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5] });
    const top = f64();
    const layer = createLayer(shuffleChannelLayerDef, { shuffle_channel_param: { group: 2 } });
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    // Groups [0 1 2] [3 4 5] → 0 3 1 4 2 5.
    expect(blobValues(top)).toEqual([0, 0, 3, 3, 1, 1, 4, 4, 2, 2, 5, 5]);
  });

  it('defaults to group 1 (identity)', () => {
    const layer = createLayer<ShuffleChannelLayer>(shuffleChannelLayerDef, {});
    const bottom = makeBlob([2, 3, 2, 2]);
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(layer.group).toBe(1);
    expect(blobValues(top)).toEqual(blobValues(bottom));
  });

  it('passes the gradient check (1e-2, 1e-3)', () => {
    const layer = createLayer(shuffleChannelLayerDef, { shuffle_channel_param: { group: 3 } });
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(layer, [makeBlob([2, 6, 1, 2])], [f64()]);
  });

  it('needs channels divisible by group, naming the layer', () => {
    const layer = createLayer(shuffleChannelLayerDef, { name: 's', shuffle_channel_param: { group: 4 } });
    expect(() => layer.setUp([makeBlob([1, 6, 2, 2])], [f64()])).toThrow("ShuffleChannel layer 's': the channels (6) must be a multiple of group (4).");
  });
});
