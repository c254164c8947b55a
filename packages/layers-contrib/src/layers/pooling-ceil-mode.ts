import { LayerError, poolingLayerDef, type LayerDef, type PoolingLayer } from '@caffe-ts/layers';
import { hasField, PoolingParameter_RoundMode as RoundMode } from '@caffe-ts/proto';

/**
 * Caffe's Pooling, also honouring `pooling_param.ceil_mode` (BVLC pull request #3057, used by
 * DenseNet prototxts and registered by registerContribSchema): ceil_mode false rounds the output
 * size down (round_mode FLOOR), true up (CEIL, Caffe's behaviour). Setting both ceil_mode and a
 * contradicting round_mode is an error. Registered in place of the built-in 'Pooling'.
 */
export const poolingCeilModeLayerDef: LayerDef<PoolingLayer> = {
  type: 'Pooling',
  create: (param, ctx) => {
    const pp = param.pooling_param as (typeof param.pooling_param & { ceil_mode?: boolean }) | null;
    if (pp && hasField(pp, 'ceil_mode')) {
      const wanted = pp.ceil_mode ? RoundMode.CEIL : RoundMode.FLOOR;
      if (hasField(pp, 'round_mode') && pp.round_mode !== wanted) {
        throw new LayerError(
          `Pooling layer '${param.name}': ceil_mode ${pp.ceil_mode} contradicts round_mode ${RoundMode[pp.round_mode]}; give one of them.`,
        );
      }
      pp.round_mode = wanted;
    }
    return poolingLayerDef.create(param, ctx);
  },
  ...(poolingLayerDef.prime ? { prime: poolingLayerDef.prime } : {}),
};
