import { Blob } from '@caffe-ts/blob';
import { parseText, type NetParameter } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { blobRecordKeys, setBlobRecordKeys } from './label-error.js';
import { accuracyLayerDef } from './layers/accuracy-layer.js';
import { softmaxWithLossLayerDef } from './layers/softmax-with-loss-layer.js';
import { createLayer, makeBlob } from './testing.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('a label out of range names the bottom, the batch item, the record and the range', () => {
  it('names the bottom blob and the batch item', () => {
    const layer = createLayer(softmaxWithLossLayerDef, { name: 'loss', bottom: ['ip2', 'label'], top: ['loss'] });
    const [data, label, top] = [makeBlob([3, 4]), makeBlob([3], { filler: [0, 3, 9] }), f64()];
    layer.setUp([data, label], [top]);
    expect(() => layer.forward([data, label], [top])).toThrow(
      "SoftmaxWithLoss layer 'loss': label 9 in bottom 'label' (batch item 2) is outside the valid range [0, 3] (4 classes)",
    );
  });

  it('with several labels per item (a spatial loss), says which one', () => {
    const layer = createLayer(softmaxWithLossLayerDef, { name: 'seg', bottom: ['score', 'gt'], top: ['loss'] });
    const gt = makeBlob([2, 1, 2, 2], { filler: [0, 1, 1, 0, 1, 0, -2, 1] });
    const [data, top] = [makeBlob([2, 2, 2, 2]), f64()];
    layer.setUp([data, gt], [top]);
    expect(() => layer.forward([data, gt], [top])).toThrow(
      "SoftmaxWithLoss layer 'seg': label -2 in bottom 'gt' (batch item 1, label 2 of 4 in the item) is outside the valid range [0, 1] (2 classes)",
    );
  });

  it('names the database record the data layer recorded, also through a split of the label', () => {
    const layer = createLayer(accuracyLayerDef, { name: 'acc', bottom: ['ip2', 'label_data_1_split_0'], top: ['accuracy'] });
    const label = makeBlob([2], { filler: [1, 12] });
    setBlobRecordKeys(label, ['00000041', '00000042']);
    const split = new Blob([2], { dtype: 'float64' });
    split.shareData(label);
    expect(blobRecordKeys(split)).toEqual(['00000041', '00000042']);
    const [data, top] = [makeBlob([2, 10]), f64()];
    layer.setUp([data, split], [top]);
    expect(() => layer.forward([data, split], [top])).toThrow(
      "Accuracy layer 'acc': label 12 in bottom 'label_data_1_split_0' (batch item 1, record '00000042') is outside the valid range [0, 9] (10 classes)",
    );
    setBlobRecordKeys(label, null);
    expect(blobRecordKeys(split)).toBeUndefined();
  });

  it('points at the prototxt line of a layer parsed from a file', () => {
    const net = parseText<NetParameter>(
      'NetParameter',
      'layer {\n  name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"\n}\n',
      { file: '/models/net.prototxt' },
    );
    const layer = softmaxWithLossLayerDef.create(net.layer[0]!, { dtype: 'float64' });
    const [data, label, top] = [makeBlob([1, 3]), makeBlob([1], { filler: [3] }), f64()];
    layer.setUp([data, label], [top]);
    expect(() => layer.forward([data, label], [top])).toThrow(
      "SoftmaxWithLoss layer 'loss': label 3 in bottom 'label' (batch item 0) is outside the valid range [0, 2] (3 classes) (layer defined at /models/net.prototxt:1:1)",
    );
  });
});
