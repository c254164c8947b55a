import type { Blob } from '@caffe-ts/blob';
import { createMessage, decodeBlobProto, hasField, type InfogainLossParameter, type LayerParameter } from '@caffe-ts/proto';
import type { BlobCounts, LayerContext } from '../layer.js';
import type { LayerDef } from '../registry.js';
import { LossLayer, lossNormalizer, NormalizationMode } from './loss-layer.js';
import { softmaxDims, softmaxForward } from './softmax-layer.js';
import { labelOutOfRangeMessage } from '../label-error.js';
import { readLayerFile, type BinaryFileReader } from '../layer-files.js';

/** Caffe's kLOG_THRESHOLD: probabilities are clamped to it before the log. */
const LOG_THRESHOLD = 1e-20;


export interface InfogainLossOptions {
  /**
   * How `infogain_loss_param.source` is read; defaults to Node's `fs.readFileSync` (relative
   * paths against the working directory). Supply one in a browser or to serve files from memory.
   */
  readFile?: BinaryFileReader;
}

/**
 * InfogainLoss: softmax along `infogain_loss_param.axis` (default 1), then
 * E = −Σ_positions Σₖ H[label, k]·log max(pₖ, 1e-20) / normalizer,
 * a multinomial logistic loss whose one-hot target is replaced by row `label` of an
 * "infogain" matrix H (K×K for K labels; H = I gives SoftmaxWithLoss).
 * - Bottoms: predictions, labels (one per position: count = outer·inner), and optionally H
 *   itself; without a third bottom H is read from the BlobProto file `infogain_loss_param.source`
 *   (tried against the working directory, then the net file's folder, then the file's base
 *   name in that folder).
 * - Tops: the loss, and optionally the probabilities.
 * - `loss_param`: ignore_label and normalization (VALID by default); the deprecated `normalize`
 *   is refused, as in Caffe.
 * Backward reaches the predictions only: ∂E/∂xₗ = (pₗ·Σₖ H[label, k] − H[label, l]) · w / normalizer.
 */
export class InfogainLossLayer extends LossLayer {
  readonly type = 'InfogainLoss';
  static override readonly blobCounts: BlobCounts = {
    minBottomBlobs: 2,
    maxBottomBlobs: 3,
    minTopBlobs: 1,
    maxTopBlobs: 2,
    autoTopBlobs: true,
  };

  /** The internal softmax output (Caffe's prob_). */
  readonly prob: Blob = this.newBlob();
  /** H when read from `source` (Caffe's infogain_). */
  readonly infogain: Blob = this.newBlob();
  private readonly readFile: BinaryFileReader | undefined;
  private readonly netFile: string | undefined;
  private normalization: NormalizationMode = NormalizationMode.VALID;
  private ignoreLabel: number | null = null;
  private outer = 0;
  private inner = 0;
  private numLabels = 0;

  constructor(param: LayerParameter, context: LayerContext = {}, options: InfogainLossOptions = {}) {
    super(param, context);
    this.readFile = options.readFile;
    this.netFile = context.netFile;
  }

  private get infogainParam(): InfogainLossParameter {
    return this.param.infogain_loss_param ?? createMessage<InfogainLossParameter>('InfogainLossParameter', {});
  }

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const lp = this.param.loss_param;
    this.ignoreLabel = lp && hasField(lp, 'ignore_label') ? lp.ignore_label : null;
    this.check(!(lp && hasField(lp, 'normalize')), () => 'normalize is deprecated. use "normalization"');
    this.normalization = lp ? lp.normalization : NormalizationMode.VALID;
    if (bottom.length < 3) {
      const ip = this.param.infogain_loss_param;
      this.check(!!ip && hasField(ip, 'source') && ip.source !== '', () => 'Infogain matrix source must be specified (infogain_loss_param.source, or H as a third bottom).');
      const { bytes, path } = this.readSource(ip.source);
      this.infogain.fromProto(decodeBlobProto(bytes, path), { what: `InfogainLoss layer '${this.name}': ${path}` });
    }
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    const [pred, label] = [bottom[0]!, bottom[1]!];
    const axis = this.infogainParam.axis;
    this.check(axis >= -pred.numAxes && axis < pred.numAxes, () => `axis ${axis} out of range for prediction shape ${pred.shapeString()}`);
    [this.outer, this.numLabels, this.inner] = softmaxDims(pred, axis);
    this.prob.reshapeLike(pred);
    this.check(
      this.outer * this.inner === label.count(),
      () =>
        'Number of labels must match number of predictions; e.g., if infogain axis == 1 and prediction shape is (N, C, H, W), ' +
        'label count (number of labels) must be N*H*W, with integer values in {0, 1, ..., C-1}. ' +
        `(prediction shape ${pred.shapeString()}, infogain axis ${axis}, label shape ${label.shapeString()})`,
    );
    const h = this.matrix(bottom);
    const k = this.numLabels;
    this.check(
      h.count() === k * k,
      () => `H must be ${k}x${k} for ${k} labels (infogain matrix ${bottom.length >= 3 ? 'bottom' : 'from source'} has shape ${h.shapeString()})`,
    );
    if (top.length >= 2) top[1]!.reshapeLike(pred);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const { outer, numLabels: k, inner } = this;
    softmaxForward(bottom[0]!.cpuData(), this.prob.mutableCpuData(), outer, k, inner);
    const p = this.prob.cpuData();
    const label = bottom[1]!.cpuData();
    const h = this.matrix(bottom).cpuData();
    const dim = k * inner;
    let loss = 0;
    let count = 0;
    for (let i = 0; i < outer; i++) {
      for (let j = 0; j < inner; j++) {
        const l = this.labelOf(label[i * inner + j]!, i * inner + j, bottom[1]!);
        if (l === null) continue;
        for (let c = 0; c < k; c++) loss -= h[l * k + c]! * Math.log(Math.max(p[i * dim + c * inner + j]!, LOG_THRESHOLD));
        count++;
      }
    }
    top[0]!.mutableCpuData()[0] = loss / this.normalizer(count);
    if (top.length === 2) top[1]!.shareData(this.prob);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (propagateDown[1]) this.fail('InfogainLoss Layer cannot backpropagate to label inputs.');
    if (propagateDown[2]) this.fail('InfogainLoss Layer cannot backpropagate to infogain inputs.');
    if (!propagateDown[0]) return;
    const { outer, numLabels: k, inner } = this;
    const p = this.prob.cpuData();
    const label = bottom[1]!.cpuData();
    const h = this.matrix(bottom).cpuData();
    // Row sums of H, recomputed every time since a bottom H may change between batches.
    const rowSum = new Float64Array(k);
    for (let r = 0; r < k; r++) for (let c = 0; c < k; c++) rowSum[r]! += h[r * k + c]!;
    const dx = bottom[0]!.mutableCpuDiff();
    const dim = k * inner;
    let count = 0;
    for (let i = 0; i < outer; i++) {
      for (let j = 0; j < inner; j++) {
        const l = this.labelOf(label[i * inner + j]!, i * inner + j, bottom[1]!);
        for (let c = 0; c < k; c++) {
          const idx = i * dim + c * inner + j;
          dx[idx] = l === null ? 0 : p[idx]! * rowSum[l]! - h[l * k + c]!;
        }
        if (l !== null) count++;
      }
    }
    const scale = top[0]!.cpuDiff()[0]! / this.normalizer(count);
    for (let idx = 0; idx < dx.length; idx++) dx[idx]! *= scale;
  }

  /** Only the predictions may be forced to backpropagate (not the labels, nor H). */
  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex === 0;
  }

  private matrix(bottom: Blob[]): Blob {
    return bottom.length >= 3 ? bottom[2]! : this.infogain;
  }

  private normalizer(validCount: number): number {
    return lossNormalizer(this.normalization, this.outer, this.inner, this.ignoreLabel === null ? -1 : validCount);
  }

  /** The label as an index, or null for ignore_label. */
  private labelOf(value: number, index: number, labels: Blob): number | null {
    const l = Math.trunc(value);
    if (l === this.ignoreLabel) return null;
    if (!(l >= 0 && l < this.numLabels)) this.fail(labelOutOfRangeMessage(this.param, labels, 1, value, index, this.numLabels));
    return l;
  }

  /** Reads `source`: as given (working directory), then beside the net file, then its base name there. */
  private readSource(source: string): { bytes: Uint8Array; path: string } {
    try {
      return readLayerFile(source, `infogain_loss_param.source '${source}'`, {
        netFile: this.netFile,
        readFile: this.readFile,
        readerOption: 'createInfogainLossLayerDef({ readFile })',
      });
    } catch (err) {
      this.fail((err as Error).message);
    }
  }
}

/** A LayerDef for InfogainLoss with the given options (e.g. a custom file reader). */
export function createInfogainLossLayerDef(options: InfogainLossOptions = {}): LayerDef<InfogainLossLayer> {
  return { type: 'InfogainLoss', create: (p, ctx) => new InfogainLossLayer(p, ctx, options) };
}

export const infogainLossLayerDef: LayerDef<InfogainLossLayer> = createInfogainLossLayerDef();
