import { CaffeError } from '@caffe-ts/proto';

/** An error a layer raises: the message names the layer (name and type), the rule and the values. */
export class LayerError extends CaffeError {
  override readonly name: string = 'LayerError';
}

export class UnknownLayerTypeError extends LayerError {
  override readonly name: string = 'UnknownLayerTypeError';
}
