import { describe, expect, it } from 'vitest';
import { NetError } from './errors.js';
import { insertSplits, splitBlobName, splitLayerName } from './insert-splits.js';
import { net } from './test-helpers.js';

const summary = (p: ReturnType<typeof net>) =>
  p.layer.map((l) => `${l.name}(${l.type}) [${l.bottom.join(',')}] -> [${l.top.join(',')}]${l.loss_weight.length ? ` lw=${l.loss_weight.join(',')}` : ''}`);

describe('insertSplits', () => {
  it("uses Caffe's names", () => {
    expect(splitLayerName('conv1', 'data', 0)).toBe('data_conv1_0_split');
    expect(splitBlobName('conv1', 'data', 0, 2)).toBe('data_conv1_0_split_2');
  });

  it('leaves a chain alone', () => {
    const p = net(`
      layer { name: "in" type: "Input" top: "x" }
      layer { name: "a" type: "ReLU" bottom: "x" top: "y" }
      layer { name: "b" type: "ReLU" bottom: "y" top: "y" }
    `);
    const out = insertSplits(p);
    expect(summary(out)).toEqual(summary(p));
  });

  it('splits a blob read by several layers, each reader getting its own output', () => {
    const p = net(`
      layer { name: "in" type: "Input" top: "data" top: "label" }
      layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" }
      layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" }
      layer { name: "cat" type: "Concat" bottom: "ip1" bottom: "ip2" bottom: "data" top: "cat" }
      layer { name: "loss" type: "SoftmaxWithLoss" bottom: "cat" bottom: "label" top: "loss" }
    `);
    expect(summary(insertSplits(p))).toEqual([
      'in(Input) [] -> [data,label]',
      'data_in_0_split(Split) [data] -> [data_in_0_split_0,data_in_0_split_1,data_in_0_split_2]',
      'ip1(InnerProduct) [data_in_0_split_0] -> [ip1]',
      'ip2(InnerProduct) [data_in_0_split_1] -> [ip2]',
      'cat(Concat) [ip1,ip2,data_in_0_split_2] -> [cat]',
      'loss(SoftmaxWithLoss) [cat,label] -> [loss]',
    ]);
    // The input is untouched.
    expect(p.layer[1]!.bottom).toEqual(['data']);
    expect(p.layer).toHaveLength(5);
  });

  it('follows in-place rewrites: readers of the in-place output split from the in-place layer', () => {
    const p = net(`
      layer { name: "in" type: "Input" top: "x" }
      layer { name: "relu" type: "ReLU" bottom: "x" top: "x" }
      layer { name: "a" type: "ReLU" bottom: "x" top: "a" }
      layer { name: "b" type: "ReLU" bottom: "x" top: "b" }
    `);
    expect(summary(insertSplits(p))).toEqual([
      'in(Input) [] -> [x]',
      'relu(ReLU) [x] -> [x]',
      'x_relu_0_split(Split) [x] -> [x_relu_0_split_0,x_relu_0_split_1]',
      'a(ReLU) [x_relu_0_split_0] -> [a]',
      'b(ReLU) [x_relu_0_split_1] -> [b]',
    ]);
  });

  it('gives a loss-weighted blob a split even with one reader; the loss goes to output 0', () => {
    const p = net(`
      layer { name: "in" type: "Input" top: "x" }
      layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" loss_weight: 0.5 }
      layer { name: "r" type: "ReLU" bottom: "y" top: "z" }
    `);
    expect(summary(insertSplits(p))).toEqual([
      'in(Input) [] -> [x]',
      'ip(InnerProduct) [x] -> [y] lw=0',
      'y_ip_0_split(Split) [y] -> [y_ip_0_split_0,y_ip_0_split_1] lw=0.5,0',
      'r(ReLU) [y_ip_0_split_1] -> [z]',
    ]);
  });

  it('does not split an unread loss', () => {
    const p = net(`
      layer { name: "in" type: "Input" top: "x" top: "l" }
      layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "l" top: "loss" loss_weight: 2 }
    `);
    expect(insertSplits(p).layer.map((l) => l.name)).toEqual(['in', 'loss']);
    expect(insertSplits(p).layer[1]!.loss_weight).toEqual([2]);
  });

  it('names the layer and bottom index of an unknown bottom', () => {
    const p = net(`
      layer { name: "in" type: "Input" top: "data" }
      layer { name: "conv1" type: "Convolution" bottom: "data2" top: "conv1" }
    `);
    expect(() => insertSplits(p)).toThrow(NetError);
    expect(() => insertSplits(p)).toThrow("Unknown bottom blob 'data2' (layer 'conv1', bottom index 0)");
  });
});
