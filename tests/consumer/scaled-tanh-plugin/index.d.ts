import type { LayerParamFieldSpec } from '@caffe-ts/proto';
import type { Blob } from '@caffe-ts/blob';
import { NeuronLayer, type LayerDef, type LayerRegistry } from '@caffe-ts/layers';

export declare const SCALED_TANH_PARAM_FIELD: LayerParamFieldSpec;
export declare class ScaledTanhLayer extends NeuronLayer {
  readonly type: 'ScaledTanh';
  protected forwardCpu(bottom: Blob[], top: Blob[]): void;
  protected backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void;
}
export declare const scaledTanhLayerDef: LayerDef<ScaledTanhLayer>;
export declare function registerScaledTanh(registry?: LayerRegistry): LayerRegistry;
