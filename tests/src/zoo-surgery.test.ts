import { describe, expect, it } from 'vitest';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { readNetParameter } from '@caffe-ts/net/node';
import { Phase, type NetParameter } from '@caffe-ts/proto';
import { Detector, FLICKR_STYLE_LABELS, SurgeryError, transplantParams, zooModel } from '@caffe-ts/zoo';

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

  it("the R-CNN detector and the Flickr Style net take CaffeNet's layers by name; their new heads stay their own", () => {
    const caffenet = build('caffenet', [1, 3, 227, 227]);
    randomize(caffenet);
    const rcnn = build('rcnn_ilsvrc13', [1, 3, 227, 227]);
    const flickr = build('finetune_flickr_style', [1, 3, 227, 227]);
    const features = [['conv1', 'conv1'], ['conv2', 'conv2'], ['conv3', 'conv3'], ['conv4', 'conv4'], ['conv5', 'conv5'], ['fc6', 'fc6'], ['fc7', 'fc7']];
    // fc8 has no namesake in either net: what fine-tuning from CaffeNet's weights relies on.
    expect(transplantParams(caffenet, rcnn).copied).toEqual(features);
    expect(transplantParams(caffenet, flickr).copied).toEqual(features);
    expect(rcnn.params.get('fc-rcnn')![0]!.shape).toEqual([200, 4096]);
    expect(flickr.params.get('fc8_flickr')![0]!.shape).toEqual([20, 4096]);
    expect(zooModel('finetune_flickr_style').labels).toEqual([...FLICKR_STYLE_LABELS]);
    expect(FLICKR_STYLE_LABELS).toHaveLength(20);

    // R-CNN scores a window from CaffeNet's fc7 features of it: run through Detector, one window.
    const image = { height: 300, width: 240, channels: 3, data: Float32Array.from({ length: 300 * 240 * 3 }, (_, i) => (Math.sin(i * 0.013) + 1) / 2) };
    const detector = new Detector(rcnn, { contextPad: 16, mean: [104, 117, 123], rawScale: 255, channelSwap: [2, 1, 0] });
    const [hit] = detector.detectWindows([{ name: 'img', image, windows: [[40, 30, 250, 200]] }]);
    expect(hit!.prediction).toHaveLength(200);
    caffenet.blob('data').mutableCpuData().set(rcnn.blob('data').cpuData());
    caffenet.forward();
    expect(Array.from(rcnn.blob('fc7').cpuData())).toEqual(Array.from(caffenet.blob('fc7').cpuData()));
  }, 60_000);

  it('names what does not fit', () => {
    const a = build('lenet', [1, 1, 28, 28]);
    const b = build('cifar10_quick', [1, 3, 32, 32]);
    expect(() => transplantParams(a, b, { map: { ip9: 'ip1' } })).toThrow(SurgeryError);
    expect(() => transplantParams(a, b, { map: { ip9: 'ip1' } })).toThrow(/source net 'LeNet' has no layer 'ip9' with params/);
    expect(() => transplantParams(a, b)).toThrow(/cannot transplant param 0 of 'conv1' \(20 1 5 5 \(500\)\) into 'conv1' \(32 3 5 5 \(2400\)\): element counts differ/);
  });
});
