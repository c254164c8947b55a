import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, makeBlob } from '@caffe-ts/layers/testing';
import { decodeBinary, encodeBinary, parseText } from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { poolingCeilModeLayerDef } from './pooling-ceil-mode.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('Pooling with ceil_mode (DenseNet prototxts)', () => {
  beforeAll(registerContribSchema);

  const pool = (extra: Record<string, unknown>) => {
    const layer = createLayer(poolingCeilModeLayerDef, { name: 'pool', pooling_param: { pool: 'AVE', kernel_size: 2, stride: 2, ...extra } });
    const x = makeBlob([1, 1, 5, 5], { filler: Array.from({ length: 25 }, (_, i) => i) });
    const top = f64();
    layer.setUp([x], [top]);
    layer.forward([x], [top]);
    return top;
  };

  it('ceil_mode false rounds down, true (and unset) up', () => {
    expect(pool({ ceil_mode: false }).shape).toEqual([1, 1, 2, 2]);
    expect(blobValues(pool({ ceil_mode: false }))).toEqual([3, 5, 13, 15]);
    expect(pool({ ceil_mode: true }).shape).toEqual([1, 1, 3, 3]);
    expect(pool({}).shape).toEqual([1, 1, 3, 3]);
  });

  it('reads from prototxt text and survives the binary round trip', () => {
    const msg = parseText<{ pooling_param: { ceil_mode: boolean } }>('LayerParameter', 'name: "p" type: "Pooling" pooling_param { kernel_size: 3 ceil_mode: false }');
    expect(msg.pooling_param.ceil_mode).toBe(false);
    const again = decodeBinary<{ pooling_param: { ceil_mode: boolean } }>('LayerParameter', encodeBinary('LayerParameter', msg));
    expect(again.pooling_param.ceil_mode).toBe(false);
  });

  it('refuses a contradicting round_mode, naming the layer', () => {
    expect(() => pool({ ceil_mode: false, round_mode: 'CEIL' })).toThrow("Pooling layer 'pool': ceil_mode false contradicts round_mode CEIL; give one of them.");
  });
});
