/*
 * Faster R-CNN on several data-parallel replicas (@caffe-ts/solver/parallel's replicaSetup; what
 * `caffe train --roidb … --workers N` passes): each replica registers the fork layers with the
 * run's config, then hands its RoIDataLayer every count-th roidb entry from its rank on, so
 * that no two replicas read the same image in an epoch. py-faster-rcnn itself trains on one GPU;
 * N replicas are Caffe's -gpu semantics: N images per iteration, gradients averaged.
 */
import { defaultLayerRegistry, defaultPythonLayerRegistry } from '@caffe-ts/layers';
import { registerContribLayers, registerFasterRcnnPythonLayers } from './index.js';
import { roidbShare, setRoidb, type RoidbReplicaData } from './layers/roi-data-layer.js';

/** Before the replica's net is built: the fork layers, and the py-faster-rcnn ports with the run's config. */
export function beforeBuild(data: unknown): void {
  const { config } = data as RoidbReplicaData;
  registerContribLayers(defaultLayerRegistry());
  if (config) registerFasterRcnnPythonLayers(defaultPythonLayerRegistry(), config);
}

/** After: the replica's share of the roidb to its RoIDataLayer. */
export function afterBuild(net: Parameters<typeof setRoidb>[0], data: unknown, replica: { rank: number; count: number }): void {
  const { roidb } = data as RoidbReplicaData;
  setRoidb(net, roidbShare(roidb, replica.rank, replica.count));
}
