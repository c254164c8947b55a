import { fillBlob, type Blob, type FloatArray } from '@caffe-ts/blob';
import { createMessage, type FillerParameter, type LayerParameter, type ScaleParameter } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';
import { BiasLayer } from './bias-layer.js';

/** The scale filler when scale_param.filler is unset: constant 1, so the layer starts as the identity. */
const DEFAULT_SCALE_FILLER: Partial<FillerParameter> = { type: 'constant', value: 1 };

/**
 * Scale (Caffe's ScaleLayer): top = bottom[0] · s (+ b), with s broadcast over the axes of
 * bottom[0] outside [axis, axis + s.numAxes), as in Bias. s is bottom[1] when given, otherwise a
 * learned blob of shape bottom[0].shape[axis .. axis + num_axes) filled with scale_param.filler
 * (default constant 1). With bias_term, an internal Bias layer (axis, num_axes of s, bias_filler)
 * adds a learned b after scaling.
 * Blobs: `[scale, bias]` (learned scale), `[bias]` (scale from bottom[1], bias_term), or `[scale]`.
 * In place, the forward keeps a copy of the bottom, which the scale's gradient needs.
 */
export class ScaleLayer extends Layer {
  readonly type: string = 'Scale';
  static override readonly blobCounts: BlobCounts = { minBottomBlobs: 1, maxBottomBlobs: 2, exactNumTopBlobs: 1 };

  outerDim = 0;
  scaleDim = 0;
  innerDim = 0;
  /** The internal Bias layer (bias_term), sharing this layer's bias blob. */
  biasLayer: BiasLayer | null = null;
  /** Index of the bias blob in `blobs`, or −1 without bias_term. */
  biasParamId = -1;
  /** The bottom's data before an in-place forward overwrote it. */
  private bottomCopy: FloatArray | null = null;
  /**
   * Whether backward may run: a Net clears it for layers it never runs backward through (e.g.
   * every layer of a deploy net without a loss), and an in-place forward then keeps no copy of
   * its bottom (a whole extra pass over the data, for a gradient nobody asks for).
   */
  backwardNeeded = true;

  private get scaleParam(): ScaleParameter {
    return this.param.scale_param ?? createMessage<ScaleParameter>('ScaleParameter', {});
  }

  override layerSetUp(bottom: Blob[], top: Blob[]): void {
    const sp = this.scaleParam;
    const b0 = bottom[0]!;
    if (bottom.length === 1 && this.blobs.length === 0) {
      const axis = this.canonicalAxis(b0, sp.axis);
      const numAxes = sp.num_axes;
      this.check(numAxes >= -1, () => `num_axes must be non-negative, or -1 to extend to the end of bottom[0] (got ${numAxes})`);
      if (numAxes >= 0) {
        this.check(
          b0.numAxes >= axis + numAxes,
          () =>
            `scale blob's shape extends past bottom[0]'s shape when applied starting with bottom[0] axis = ${axis} ` +
            `(num_axes ${numAxes}, bottom[0] shape ${b0.shapeString()})`,
        );
      }
      const scale = this.newBlob(b0.shape.slice(axis, numAxes === -1 ? undefined : axis + numAxes));
      fillBlob(scale, sp.filler ?? DEFAULT_SCALE_FILLER, this.rng);
      this.blobs = [scale];
    }
    if (sp.bias_term) {
      const biasParam = createMessage<LayerParameter>('LayerParameter', {
        name: this.name,
        type: 'Bias',
        phase: this.param.phase,
        bias_param: {
          axis: sp.axis,
          // The bias spans the same axes as the scale.
          num_axes: bottom.length > 1 ? bottom[1]!.numAxes : sp.num_axes,
          filler: sp.bias_filler,
        },
      });
      const bias = new BiasLayer(biasParam, { backend: this.backend, dtype: this.dtype, phase: this.phase, rng: this.rng });
      if (this.blobs.length + bottom.length < 3) {
        // No bias blob yet (learned scale only, or scale from bottom[1] and no blobs): Bias fills one.
        bias.setUp([b0], top);
        this.biasParamId = this.blobs.length;
        this.blobs.push(bias.blobs[0]!);
      } else {
        // Loaded weights already hold the bias, last.
        this.biasParamId = this.blobs.length - 1;
        bias.blobs = [this.blobs[this.biasParamId]!];
        bias.setUp([b0], top);
      }
      this.biasLayer = bias;
    }
    while (this.paramPropagateDown.length < this.blobs.length) this.paramPropagateDown.push(true);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b0 = bottom[0]!;
    const scale = bottom.length > 1 ? bottom[1]! : this.blobs[0]!;
    // A scalar scale is the same for any axis; 0 makes outerDim 1.
    const axis = scale.numAxes === 0 ? 0 : this.canonicalAxis(b0, this.scaleParam.axis);
    this.check(
      b0.numAxes >= axis + scale.numAxes,
      () =>
        `scale blob's shape extends past bottom[0]'s shape when applied starting with bottom[0] axis = ${axis} ` +
        `(scale shape ${scale.shapeString()}, bottom[0] shape ${b0.shapeString()})`,
    );
    for (let i = 0; i < scale.numAxes; i++) {
      this.check(
        b0.shape[axis + i] === scale.shape[i],
        () =>
          `dimension mismatch between bottom[0]->shape(${axis + i}) and scale->shape(${i}) ` +
          `(${b0.shape[axis + i]} vs ${scale.shape[i]}; bottom[0] ${b0.shapeString()}, scale ${scale.shapeString()})`,
      );
    }
    this.outerDim = b0.count(0, axis);
    this.scaleDim = scale.count();
    this.innerDim = b0.count(axis + scale.numAxes);
    if (top[0] !== b0) top[0]!.reshapeLike(b0);
    // The bias is added in place to the scaled top.
    this.biasLayer?.reshape([top[0]!], [top[0]!]);
  }

  /**
   * The learned scale and, with bias_term, the bias when both broadcast alike (outerDim ×
   * scaleDim × innerDim), for fused inference passes that apply y = s·x (+ b) themselves; null
   * where the scale comes from bottom[1] or the bias broadcasts differently. Call after reshape.
   */
  learnedAffine(): { scale: FloatArray; bias: FloatArray | null } | null {
    if (this.blobs.length === 0 || (this.biasLayer && this.biasParamId === 0)) return null;
    const bl = this.biasLayer;
    if (bl && !(bl.outerDim === this.outerDim && bl.biasDim === this.scaleDim && bl.innerDim === this.innerDim)) return null;
    return { scale: this.blobs[0]!.cpuData(), bias: bl ? this.blobs[this.biasParamId]!.cpuData() : null };
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    if (bottom[0] === top[0]) {
      if (this.backwardNeeded) {
        if (!this.bottomCopy || this.bottomCopy.length !== x.length) this.bottomCopy = x.slice();
        else this.bottomCopy.set(x);
      } else {
        this.bottomCopy = null;
      }
    }
    const s = (bottom.length > 1 ? bottom[1]! : this.blobs[0]!).cpuData();
    const y = top[0]!.mutableCpuData();
    const { outerDim, scaleDim, innerDim } = this;
    const bl = this.biasLayer;
    // The bias spans the scale's axes, so it is added in the same sweep (one pass over the data
    // instead of two) when the internal Bias layer agrees on the broadcast.
    const fuseBias = bl !== null && bl.outerDim === outerDim && bl.biasDim === scaleDim && bl.innerDim === innerDim;
    const b = fuseBias ? this.blobs[this.biasParamId]!.cpuData() : null;
    let k = 0;
    for (let n = 0; n < outerDim; n++) {
      for (let d = 0; d < scaleDim; d++) {
        const f = s[d]!;
        const end = k + innerDim;
        if (!b) {
          for (; k < end; k++) y[k] = f * x[k]!;
        } else if (y instanceof Float32Array) {
          // Rounded after the product, as the two-step form (scale, then add) stores it.
          const v = b[d]!;
          for (; k < end; k++) y[k] = Math.fround(f * x[k]!) + v;
        } else {
          const v = b[d]!;
          for (; k < end; k++) y[k] = f * x[k]! + v;
        }
      }
    }
    if (bl && !fuseBias) bl.forward([top[0]!], [top[0]!]);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const t = top[0]!;
    // Param and scale gradients first: in place, the bottom diff written last is the top diff.
    if (this.biasLayer && (this.paramPropagateDown[this.biasParamId] ?? true)) {
      this.biasLayer.backward([t], [false], [t]);
    }
    const learned = bottom.length === 1;
    const scaleBlob = learned ? this.blobs[0]! : bottom[1]!;
    const { outerDim, scaleDim, innerDim } = this;
    if (learned ? (this.paramPropagateDown[0] ?? true) : propagateDown[1]) {
      const dy = t.cpuDiff();
      const x = bottom[0] === t ? this.bottomCopy : bottom[0]!.cpuData();
      if (!x) this.fail('the scale gradient needs the bottom of the last in-place forward, which was not kept (backwardNeeded was false)');
      const ds = scaleBlob.mutableCpuDiff();
      // A learned scale accumulates its diff (Caffe overwrites it in some shape cases); a bottom's is overwritten.
      if (!learned) ds.fill(0);
      let k = 0;
      for (let n = 0; n < outerDim; n++) {
        for (let d = 0; d < scaleDim; d++) {
          let acc = 0;
          for (let i = 0; i < innerDim; i++, k++) acc += dy[k]! * x[k]!;
          ds[d] = ds[d]! + acc;
        }
      }
    }
    if (propagateDown[0]) {
      const dy = t.cpuDiff();
      const s = scaleBlob.cpuData();
      const dx = bottom[0]!.mutableCpuDiff();
      let k = 0;
      for (let n = 0; n < outerDim; n++) {
        for (let d = 0; d < scaleDim; d++) {
          const f = s[d]!;
          for (let i = 0; i < innerDim; i++, k++) dx[k] = f * dy[k]!;
        }
      }
    }
  }

  private canonicalAxis(b: Blob, axis: number): number {
    const n = b.numAxes;
    this.check(axis >= -n && axis < n, () => `axis ${axis} out of range for ${n}-D bottom blob with shape ${b.shapeString()}`);
    return axis < 0 ? axis + n : axis;
  }
}

export const scaleLayerDef: LayerDef<ScaleLayer> = { type: 'Scale', create: (p, ctx) => new ScaleLayer(p, ctx) };
