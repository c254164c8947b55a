import { createMessage, type LayerParameter, type NetParameter } from '@caffe-ts/proto';
import { UnknownBottomError } from './errors.js';
import { layerDefinedAt, shallowClone } from './message-util.js';

/** Name of the Split layer that fans out top `blobIndex` (`blob`) of layer `layer`. */
export function splitLayerName(layer: string, blob: string, blobIndex: number): string {
  return `${blob}_${layer}_${blobIndex}_split`;
}

/** Name of output `splitIndex` of that Split layer. */
export function splitBlobName(layer: string, blob: string, blobIndex: number, splitIndex: number): string {
  return `${blob}_${layer}_${blobIndex}_split_${splitIndex}`;
}

/**
 * A copy of `param` in which every top consumed more than once gets a Split layer right after
 * its producer, and each consumer reads its own split output (Caffe's InsertSplits). Each
 * consumer then writes its own diff and the Split layer sums them, so fan-out gradients add up.
 *
 * A top with a non-zero loss weight counts as one extra consumer, as in Caffe: such a blob gets
 * a split even with a single reader; the loss weight moves to the split's first output and
 * readers take outputs 1, 2, …
 *
 * Throws UnknownBottomError (a NetError) for a bottom that no earlier layer produces.
 */
export function insertSplits(param: NetParameter): NetParameter {
  const key = (layer: number, top: number) => `${layer}:${top}`;
  const lastProducer = new Map<string, [number, number]>(); // blob name -> (layer, top index)
  const bottomSource = new Map<string, [number, number]>(); // (layer, bottom) -> (layer, top)
  const consumers = new Map<string, number>(); // (layer, top) -> readers (+1 if loss-weighted)
  const lossWeight = new Map<string, number>();
  const layers = param.layer;

  layers.forEach((lp, i) => {
    lp.bottom.forEach((name, j) => {
      const src = lastProducer.get(name);
      if (!src) throw new UnknownBottomError(`Unknown bottom blob '${name}' (layer '${lp.name}', bottom index ${j})${layerDefinedAt(lp)}`, name, lp.name);
      bottomSource.set(key(i, j), src);
      const k = key(src[0], src[1]);
      consumers.set(k, (consumers.get(k) ?? 0) + 1);
    });
    lp.top.forEach((name, j) => lastProducer.set(name, [i, j]));
    // Being a loss counts as one use of the blob.
    const n = Math.min(lp.loss_weight.length, lp.top.length);
    for (let j = 0; j < n; j++) {
      const src = lastProducer.get(lp.top[j]!)!;
      const k = key(src[0], src[1]);
      const w = lp.loss_weight[j]!;
      lossWeight.set(k, w);
      if (w !== 0) consumers.set(k, (consumers.get(k) ?? 0) + 1);
    }
  });

  const nextSplitIndex = new Map<string, number>();
  const out: LayerParameter[] = [];
  layers.forEach((orig, i) => {
    let lp = orig;
    const own = () => {
      if (lp === orig) lp = shallowClone(orig);
      return lp;
    };
    orig.bottom.forEach((name, j) => {
      const [srcLayer, srcTop] = bottomSource.get(key(i, j))!;
      const k = key(srcLayer, srcTop);
      if ((consumers.get(k) ?? 0) > 1) {
        const idx = nextSplitIndex.get(k) ?? 0;
        nextSplitIndex.set(k, idx + 1);
        own().bottom[j] = splitBlobName(layers[srcLayer]!.name, name, srcTop, idx);
      }
    });
    const splits: LayerParameter[] = [];
    orig.top.forEach((name, j) => {
      const k = key(i, j);
      const count = consumers.get(k) ?? 0;
      if (count <= 1) return;
      const w = lossWeight.get(k) ?? 0;
      splits.push(splitLayer(orig.name, name, j, count, w));
      if (w !== 0) {
        // The split's first output carries the loss now. Caffe clears all of the producer's
        // loss weights here, which lets a loss layer fall back to its default weight 1 and
        // count the loss twice; zeroing only this top avoids that.
        const l = own();
        if (l.loss_weight.length === l.top.length) l.loss_weight[j] = 0;
        else l.loss_weight = [];
        nextSplitIndex.set(k, (nextSplitIndex.get(k) ?? 0) + 1);
      }
    });
    out.push(lp, ...splits);
  });

  const result = shallowClone(param);
  result.layer = out;
  return result;
}

function splitLayer(layer: string, blob: string, blobIndex: number, count: number, lossWeight: number): LayerParameter {
  const tops: string[] = [];
  const weights: number[] = [];
  for (let k = 0; k < count; k++) {
    tops.push(splitBlobName(layer, blob, blobIndex, k));
    if (lossWeight !== 0) weights.push(k === 0 ? lossWeight : 0);
  }
  return createMessage<LayerParameter>('LayerParameter', {
    name: splitLayerName(layer, blob, blobIndex),
    type: 'Split',
    bottom: [blob],
    top: tops,
    loss_weight: weights,
  });
}
