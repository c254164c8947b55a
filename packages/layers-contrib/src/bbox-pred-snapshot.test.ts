import { LayerError, LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { decodeNetParameter, encodeNetParameter, parseNetParameter, Phase } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { bboxPredSnapshotWeights } from './bbox-pred-snapshot.js';
import { fasterRcnnConfig } from './faster-rcnn-config.js';

const registry = registerBuiltinLayers(new LayerRegistry());

/** fc (3 inputs) → bbox_pred with `outputs` outputs (2 classes × 4 deltas by default) and cls_score beside it. */
function detectorHead(outputs = 8): Net {
  const net = new Net(
    parseNetParameter(`name: "head"
layer { name: "in" type: "Input" top: "fc" input_param { shape { dim: 1 dim: 3 } } }
layer { name: "bbox_pred" type: "InnerProduct" bottom: "fc" top: "bbox_pred" inner_product_param { num_output: ${outputs} } }
layer { name: "cls_score" type: "InnerProduct" bottom: "fc" top: "cls_score" inner_product_param { num_output: 2 } }`),
    { phase: Phase.TEST, registry },
  );
  // Weights w[i][j] = i + j / 10, biases 0.5 − i / 4: every value distinct.
  const [w, b] = net.params.get('bbox_pred')!;
  w!.mutableCpuData().set(Array.from({ length: outputs * 3 }, (_, k) => Math.floor(k / 3) + (k % 3) / 10));
  b!.mutableCpuData().set(Array.from({ length: outputs }, (_, i) => 0.5 - i / 4));
  net.params.get('cls_score')![0]!.mutableCpuData().fill(3);
  return net;
}

const values = (a: ArrayLike<number>) => Array.from(a, (v) => Math.round(v * 1e5) / 1e5);

describe('bboxPredSnapshotWeights (SolverWrapper.snapshot)', () => {
  const config = fasterRcnnConfig({ TRAIN: { BBOX_NORMALIZE_MEANS: [0.01, -0.02, 0, 0.5] } });

  it('saves weights × std and bias × std + mean for each class\'s 4 outputs, leaving the net and other layers alone', () => {
    const net = detectorHead();
    const adapter = bboxPredSnapshotWeights(config)!;
    const file = adapter.toFile(net.toProto());
    const [w, b] = file.layer.find((l) => l.name === 'bbox_pred')!.blobs;
    // Output 5 is class 1's y delta (std 0.1, mean −0.02): weights 5, 5.1, 5.2 × 0.1; bias −0.75 × 0.1 − 0.02.
    expect(values(Array.from(w!.data).slice(15, 18))).toEqual([0.5, 0.51, 0.52]);
    expect(values([b!.data[5]!])).toEqual([-0.095]);
    // Output 2 (class 0's w: std 0.2, mean 0) and output 7 (class 1's h: std 0.2, mean 0.5).
    expect(values(Array.from(w!.data).slice(6, 9))).toEqual([0.4, 0.42, 0.44]);
    expect(values([b!.data[2]!, b!.data[7]!])).toEqual([0, 0.5 + (0.5 - 7 / 4) * 0.2]);
    expect(Array.from(file.layer.find((l) => l.name === 'cls_score')!.blobs[0]!.data)).toEqual([3, 3, 3, 3, 3, 3]);
    // The net trains on: its own weights are untouched.
    expect(net.params.get('bbox_pred')![0]!.cpuData()[15]).toBe(5);
  });

  it('resuming from such a file gives back the trained weights', () => {
    const trained = detectorHead();
    const adapter = bboxPredSnapshotWeights(config)!;
    const bytes = encodeNetParameter(adapter.toFile(trained.toProto()));
    const resumed = detectorHead();
    resumed.params.get('bbox_pred')![0]!.mutableCpuData().fill(0);
    resumed.copyTrainedLayersFrom(decodeNetParameter(bytes));
    adapter.fromFile(resumed);
    const [w0, b0] = trained.params.get('bbox_pred')!;
    const [w1, b1] = resumed.params.get('bbox_pred')!;
    Array.from(w1!.cpuData()).forEach((v, i) => expect(v).toBeCloseTo(w0!.cpuData()[i]!, 5));
    Array.from(b1!.cpuData()).forEach((v, i) => expect(v).toBeCloseTo(b0!.cpuData()[i]!, 5));
  });

  it('is off where train.py saves weights as they are, and leaves nets without bbox_pred alone', () => {
    expect(bboxPredSnapshotWeights(fasterRcnnConfig({ TRAIN: { BBOX_REG: false } }))).toBeNull();
    expect(bboxPredSnapshotWeights(fasterRcnnConfig({ TRAIN: { BBOX_NORMALIZE_TARGETS: false } }))).toBeNull();
    const adapter = bboxPredSnapshotWeights(config, { layer: 'no_such_layer' })!;
    const net = detectorHead();
    const proto = net.toProto();
    const weightsOf = (p: typeof proto) => Array.from(p.layer.find((l) => l.name === 'bbox_pred')!.blobs[0]!.data);
    const before = weightsOf(proto);
    expect(weightsOf(adapter.toFile(proto))).toEqual(before);
    adapter.fromFile(net);
    expect(Array.from(net.params.get('bbox_pred')![0]!.cpuData())).toEqual(before);
  });

  it('refuses a bbox_pred that is not 4 outputs per class, and Fast R-CNN\'s empirical normalization', () => {
    const adapter = bboxPredSnapshotWeights(config)!;
    expect(() => adapter.toFile(detectorHead(6).toProto())).toThrow("layer 'bbox_pred': its weight has 6 outputs, not 4 per class (x, y, w, h deltas)");
    expect(() => adapter.fromFile(detectorHead(6))).toThrow(LayerError);
    const fastRcnn = { ...config, TRAIN: { ...config.TRAIN, BBOX_NORMALIZE_TARGETS_PRECOMPUTED: false } };
    expect(() => bboxPredSnapshotWeights(fastRcnn)).toThrow(/precomputed proposals \(Fast R-CNN\)/);
  });
});
