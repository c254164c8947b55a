import { Phase } from '@caffe-ts/proto';
import type { LayerContext } from '@caffe-ts/layers';
import { DataError } from './errors.js';

/*
 * Data-parallel sharding
 * ----------------------
 * With several solvers Caffe's DataLayer keeps a running record ordinal (`offset_`, counting every
 * cursor step, wraps included) and replica r reads only the records whose ordinal % count == r
 * (DataLayer::Skip); the others step over them. In TEST only one replica tests, so nothing is
 * skipped there. Replicas built with the same seed therefore partition each pass over the data.
 */

/** A validated shard of a layer context, or null when the layer reads every record. */
export interface Shard {
  index: number;
  count: number;
}

/** The context's shard, checked (integers, 0 ≤ index < count); null when absent or count is 1. */
export function layerShard(context: LayerContext, owner: string): Shard | null {
  const s = context.shard;
  if (!s) return null;
  const { index, count } = s;
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
    throw new DataError(`${owner}: shard must have integers 0 <= index < count (got index ${index}, count ${count})`);
  }
  return count === 1 ? null : { index, count };
}

/** Whether the record with this ordinal belongs to another replica (Caffe's Skip()). */
export function skipsOrdinal(shard: Shard | null, phase: Phase, ordinal: number): boolean {
  return shard !== null && phase !== Phase.TEST && ordinal % shard.count !== shard.index;
}
