import { describe, expect, it } from 'vitest';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { readNetParameter } from '@caffe-ts/net/node';
import { Phase, type NetParameter } from '@caffe-ts/proto';
import { SurgeryError, transplantParams, zooModel } from '@caffe-ts/zoo';

function build(model: string, shape: number[]): Net {
  const param: NetParameter = readNetParameter(zooModel(model).files.deploy!, { log: false });
  param.layer[0]!.input_param!.shape[0]!.dim = shape;
  return new Net(param, { phase: Phase.TEST, log: false });
}

/** Fill every param with a cheap deterministic pseudo-random sequence (61M of them). */
function randomize(net: Net): void {
  let state = 987654321;
  for (const blobs of net.params.values()) {
    for (const blob of blobs) {
      const d = blob.mutableCpuData();
      for (let i = 0; i < d.length; i++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        d[i] = (state / 2 ** 32 - 0.5) * 0.05;
      }
    }
  }
}

describe('transplantParams (net surgery)', () => {
  it('makes CaffeNet fully convolutional: its output on a 227×227 window equals CaffeNet\'s', () => {
    const caffenet = build('caffenet', [1, 3, 227, 227]);
    randomize(caffenet);
    // One 227×227 window gives a 1×1 map: the same computation as CaffeNet, position (0, 0). (At a
    // larger size the border windows see their neighbours where CaffeNet sees conv padding, so
    // other positions are close but not equal.)
    const full = build('caffenet_full_conv', [1, 3, 227, 227]);
    const report = transplantParams(caffenet, full, { map: { fc6: 'fc6-conv', fc7: 'fc7-conv', fc8: 'fc8-conv' } });
    expect(report.copied).toEqual([
      ['conv1', 'conv1'], ['conv2', 'conv2'], ['conv3', 'conv3'], ['conv4', 'conv4'], ['conv5', 'conv5'],
      ['fc6', 'fc6-conv'], ['fc7', 'fc7-conv'], ['fc8', 'fc8-conv'],
    ]);
    expect(report.reshaped).toEqual(['fc6-conv[0]', 'fc7-conv[0]', 'fc8-conv[0]']);
    expect(full.params.get('fc6-conv')![0]!.shape).toEqual([4096, 256, 6, 6]);

    const image = full.blob('data').mutableCpuData();
    for (let i = 0; i < image.length; i++) image[i] = Math.sin(i * 0.37) * 60 + Math.cos(i * 0.011) * 40;
    caffenet.blob('data').mutableCpuData().set(image);
    full.forward();
    caffenet.forward();
    expect(full.blob('fc8-conv').shape).toEqual([1, 1000, 1, 1]);
    const a = caffenet.blob('fc8').cpuData();
    const b = full.blob('fc8-conv').cpuData();
    let maxAbs = 0;
    let maxDiff = 0;
    for (let k = 0; k < 1000; k++) {
      maxAbs = Math.max(maxAbs, Math.abs(a[k]!));
      maxDiff = Math.max(maxDiff, Math.abs(a[k]! - b[k]!));
    }
    expect(maxAbs).toBeGreaterThan(1e-3); // the scores are not all zero
    expect(maxDiff).toBeLessThan(1e-4 * Math.max(1, maxAbs));
    // At the prototxt's 451×451 the same weights give an 8×8 map.
    full.blob('data').reshape([1, 3, 451, 451]);
    full.reshape();
    expect(full.blob('prob').shape).toEqual([1, 1000, 8, 8]);
  }, 60_000);

  it('names what does not fit', () => {
    const a = build('lenet', [1, 1, 28, 28]);
    const b = build('cifar10_quick', [1, 3, 32, 32]);
    expect(() => transplantParams(a, b, { map: { ip9: 'ip1' } })).toThrow(SurgeryError);
    expect(() => transplantParams(a, b, { map: { ip9: 'ip1' } })).toThrow(/source net 'LeNet' has no layer 'ip9' with params/);
    expect(() => transplantParams(a, b)).toThrow(/cannot transplant param 0 of 'conv1' \(20 1 5 5 \(500\)\) into 'conv1' \(32 3 5 5 \(2400\)\): element counts differ/);
  });
});
