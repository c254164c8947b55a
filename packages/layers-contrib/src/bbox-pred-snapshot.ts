/*
 * py-faster-rcnn trains bbox_pred on normalized targets ((t − mean) / std per coordinate) but
 * saves it unnormalized: its SolverWrapper.snapshot writes weights × std and bias × std + mean,
 * so that a snapshot predicts plain box deltas and tests as it is. This is that mapping, for the
 * solver's snapshots (Solver.snapshotWeights), and its inverse for resuming from one.
 */
import { LayerError } from '@caffe-ts/layers';
import type { Net } from '@caffe-ts/net';
import type { BlobProto, NetParameter } from '@caffe-ts/proto';
import type { FasterRcnnConfig } from './faster-rcnn-config.js';

/** Maps a net's weights to a snapshot's and back (the shape of @caffe-ts/solver's SnapshotWeightsAdapter). */
export interface BboxPredSnapshotWeights {
  toFile(net: NetParameter): NetParameter;
  fromFile(net: Net): void;
}

/**
 * The snapshot mapping of `config` (TRAIN.BBOX_REG and BBOX_NORMALIZE_TARGETS, with the
 * precomputed BBOX_NORMALIZE_MEANS and STDS repeated for every class's 4 outputs), or null where
 * py-faster-rcnn saves the weights as they are. A net without a layer named `layer` (default
 * 'bbox_pred') is saved and loaded unchanged, as there.
 */
export function bboxPredSnapshotWeights(config: FasterRcnnConfig, { layer = 'bbox_pred' }: { layer?: string } = {}): BboxPredSnapshotWeights | null {
  const train = config.TRAIN;
  if (!train.BBOX_REG || !train.BBOX_NORMALIZE_TARGETS) return null;
  if (!train.BBOX_NORMALIZE_TARGETS_PRECOMPUTED) {
    // Fast R-CNN computes them from its proposals' targets, which only a roidb with proposals has.
    throw new LayerError('bboxPredSnapshotWeights: BBOX_NORMALIZE_TARGETS without BBOX_NORMALIZE_TARGETS_PRECOMPUTED needs the means and stds of precomputed proposals (Fast R-CNN), which are not supported');
  }
  const means = train.BBOX_NORMALIZE_MEANS;
  const stds = train.BBOX_NORMALIZE_STDS;
  const outputs = (count: number, what: string): number => {
    if (count % 4 !== 0) throw new LayerError(`layer '${layer}': ${what} has ${count} outputs, not 4 per class (x, y, w, h deltas)`);
    return count;
  };
  return {
    toFile(net) {
      const lp = net.layer.find((l) => l.name === layer);
      if (!lp || lp.blobs.length === 0) return net;
      const [w, b] = lp.blobs;
      const weights = values(w!);
      const rows = outputs(Number(w!.shape?.dim[0] ?? (b ? values(b).length : 0)), 'its weight');
      const perRow = weights.length / rows;
      for (let i = 0; i < rows; i++) {
        const s = stds[i % 4]!;
        for (let j = i * perRow; j < (i + 1) * perRow; j++) weights[j] = weights[j]! * s;
      }
      if (b) {
        const bias = values(b);
        for (let i = 0; i < rows; i++) bias[i] = bias[i]! * stds[i % 4]! + means[i % 4]!;
      }
      return net;
    },
    fromFile(net) {
      const index = net.layerNames.indexOf(layer);
      if (index < 0) return;
      const [w, b] = net.layers[index]!.blobs;
      if (!w) return;
      const rows = outputs(w.shape[0]!, 'its weight');
      const weights = w.mutableCpuData();
      const perRow = weights.length / rows;
      for (let i = 0; i < rows; i++) {
        const s = stds[i % 4]!;
        for (let j = i * perRow; j < (i + 1) * perRow; j++) weights[j] = weights[j]! / s;
      }
      if (b) {
        const bias = b.mutableCpuData();
        for (let i = 0; i < rows; i++) bias[i] = (bias[i]! - means[i % 4]!) / stds[i % 4]!;
      }
    },
  };
}

/** A blob proto's values, float or double, as the array the proto holds (changed in place). */
function values(blob: BlobProto): { length: number; [i: number]: number } {
  return (blob.double_data.length > 0 ? blob.double_data : blob.data) as unknown as Float32Array;
}
