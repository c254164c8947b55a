import type { Blob } from '@caffe-ts/blob';
import { ConvolutionLayer, type LayerContext, type LayerDef } from '@caffe-ts/layers';
import { hasField, type LayerParameter } from '@caffe-ts/proto';

/**
 * Depthwise convolution as the MobileNet forks spell it: 'DepthwiseConvolution'
 * (farmingyard/caffe-mobilenet) and 'ConvolutionDepthwise' (the MobileNet-SSD / yonghenglh6
 * fork). Both take a convolution_param and compute a grouped convolution with one group per
 * input channel; this is Caffe's Convolution with group = channels (num_output a multiple of
 * the channels). The weights have Convolution's layout, `[num_output, 1, kh, kw]`, so the
 * forks' caffemodels load as they are.
 */
export class DepthwiseConvolutionLayer extends ConvolutionLayer {
  override readonly type: string;

  constructor(param: LayerParameter, context?: LayerContext) {
    super(param, context);
    // One class serves both fork spellings.
    this.type = param.type;
  }

  override layerSetUp(bottom: Blob[], top: Blob[]): void {
    const cp = this.param.convolution_param;
    this.check(cp !== null, () => 'needs a convolution_param.');
    const axis = cp.axis < 0 ? cp.axis + bottom[0]!.numAxes : cp.axis;
    const channels = bottom[0]!.shape[axis]!;
    if (hasField(cp, 'group')) {
      this.check(cp.group === channels, () => `group must equal the input channels for a depthwise convolution (group ${cp.group}, ${channels} channels).`);
    }
    this.check(
      cp.num_output % channels === 0,
      () => `num_output (${cp.num_output}) must be a multiple of the input channels (${channels}).`,
    );
    // The group is the input's channel count (what the forks' kernels assume).
    cp.group = channels;
    super.layerSetUp(bottom, top);
  }
}

export const depthwiseConvolutionLayerDef: LayerDef<DepthwiseConvolutionLayer> = {
  type: 'DepthwiseConvolution',
  create: (p, ctx) => new DepthwiseConvolutionLayer(p, ctx),
};

export const convolutionDepthwiseLayerDef: LayerDef<DepthwiseConvolutionLayer> = {
  type: 'ConvolutionDepthwise',
  create: (p, ctx) => new DepthwiseConvolutionLayer(p, ctx),
};
