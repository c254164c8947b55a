import type { Blob } from '@caffe-ts/blob';
import { Layer, type LayerDef } from '@caffe-ts/layers';
import { hasField } from '@caffe-ts/proto';
import { decodeBox, nms, type Box } from '../bbox.js';
import { CodeType, forkParam, type DetectionOutputParameter } from '../fork-types.js';

/**
 * DetectionOutput (SSD fork), inference only: decode every prior's box from the location
 * predictions, then per image and class keep the boxes scoring above confidence_threshold,
 * run non-maximum suppression (nms_threshold, top_k, eta) and keep the keep_top_k best overall.
 * Bottoms: loc `[N, P·L·4]` (L = 1 with share_location, else num_classes), conf `[N, P·C]`
 * (probabilities), priors `[1, 2, P·4]` (PriorBox's boxes then variances).
 * Top: `[1, 1, D, 7]`, one row per detection: image_id, label, score, xmin, ymin, xmax, ymax
 * (normalised; not clipped, as in the fork, unless `clip: true`, OpenCV's field, which clamps
 * each decoded box to [0, 1] before NMS as OpenCV's dnn does). With no detection at all, one row
 * per image of [image_id, −1, −1, −1, −1, −1, −1], as the fork writes.
 * The fork's save_output_param (writing result files) and visualize are not supported.
 */
export class DetectionOutputLayer extends Layer {
  static override readonly blobCounts = { exactNumBottomBlobs: 3, exactNumTopBlobs: 1 };
  readonly type = 'DetectionOutput';
  numClasses = 0;
  shareLocation = true;
  numLocClasses = 1;
  backgroundLabelId = 0;
  codeType = CodeType.CORNER;
  varianceEncodedInTarget = false;
  keepTopK = -1;
  confidenceThreshold = -Number.MAX_VALUE;
  nmsThreshold = 0.3;
  topK = -1;
  eta = 1;
  clip = false;
  numPriors = 0;
  /** The detections of the last forward, rows of 7 values (what the top holds). */
  private rows: number[][] = [];

  override layerSetUp(): void {
    const p = forkParam<DetectionOutputParameter>(this.param, 'detection_output_param', 'DetectionOutputParameter');
    this.check(hasField(p, 'num_classes'), () => 'Must specify num_classes.');
    this.numClasses = p.num_classes;
    this.check(this.numClasses > 0, () => `num_classes must be positive (got ${this.numClasses}).`);
    this.shareLocation = p.share_location;
    this.numLocClasses = this.shareLocation ? 1 : this.numClasses;
    this.backgroundLabelId = p.background_label_id;
    this.codeType = p.code_type;
    this.check(
      this.codeType === CodeType.CORNER || this.codeType === CodeType.CENTER_SIZE || this.codeType === CodeType.CORNER_SIZE,
      () => `Unknown code_type ${this.codeType}.`,
    );
    this.varianceEncodedInTarget = p.variance_encoded_in_target;
    this.keepTopK = p.keep_top_k;
    this.confidenceThreshold = hasField(p, 'confidence_threshold') ? p.confidence_threshold : -Number.MAX_VALUE;
    const nmsParam = p.nms_param;
    this.nmsThreshold = nmsParam ? nmsParam.nms_threshold : 0.3;
    this.check(this.nmsThreshold >= 0, () => `nms_threshold must be non negative (got ${this.nmsThreshold}).`);
    this.eta = nmsParam ? nmsParam.eta : 1;
    this.check(this.eta > 0 && this.eta <= 1, () => `eta must be in (0, 1] (got ${this.eta}).`);
    this.topK = nmsParam && hasField(nmsParam, 'top_k') ? nmsParam.top_k : -1;
    this.clip = p.clip === true;
    if (p.save_output_param && p.save_output_param.output_directory) {
      this.fail('save_output_param (writing detection files) is not supported; read the top blob instead.');
    }
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [loc, conf, prior] = bottom as [Blob, Blob, Blob];
    this.check(prior.numAxes === 3 && prior.shape[1] === 2, () => `bottom[2] (priors) must be [1, 2, P·4] (got ${prior.shapeString()}).`);
    this.numPriors = prior.shape[2]! / 4;
    this.check(Number.isInteger(this.numPriors), () => `bottom[2] (priors) length ${prior.shape[2]} is not a multiple of 4.`);
    const num = loc.shape[0]!;
    this.check(
      loc.count() === num * this.numPriors * this.numLocClasses * 4,
      () => `Number of priors must match number of location predictions (${this.numPriors} priors, loc ${loc.shapeString()}).`,
    );
    this.check(
      conf.count() === num * this.numPriors * this.numClasses,
      () => `Number of priors must match number of confidence predictions (${this.numPriors} priors × ${this.numClasses} classes, conf ${conf.shapeString()}).`,
    );
    // The real number of detections is known after forward; Caffe sizes the top for one row.
    top[0]!.reshape([1, 1, Math.max(this.rows.length, 1), 7]);
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const loc = bottom[0]!.cpuData();
    const conf = bottom[1]!.cpuData();
    const prior = bottom[2]!.cpuData();
    const num = bottom[0]!.shape[0]!;
    const P = this.numPriors;
    const C = this.numClasses;
    const L = this.numLocClasses;
    const priors: Box[] = [];
    for (let p = 0; p < P; p++) {
      priors.push({ xmin: prior[p * 4]!, ymin: prior[p * 4 + 1]!, xmax: prior[p * 4 + 2]!, ymax: prior[p * 4 + 3]! });
    }
    const variances = prior.subarray(P * 4, P * 8);
    const rows: number[][] = [];
    for (let i = 0; i < num; i++) {
      // Decoded boxes per location class.
      const boxes: Box[][] = [];
      for (let c = 0; c < L; c++) {
        const list: Box[] = [];
        for (let p = 0; p < P; p++) {
          const o = ((i * P + p) * L + c) * 4;
          const box = decodeBox(priors[p]!, variances.subarray(p * 4, p * 4 + 4), this.codeType, this.varianceEncodedInTarget, loc.subarray(o, o + 4));
          if (this.clip) clipUnit(box);
          list.push(box);
        }
        boxes.push(list);
      }
      const kept = new Map<number, number[]>();
      const scoresOf = new Map<number, Float64Array>();
      let numDet = 0;
      for (let c = 0; c < C; c++) {
        if (c === this.backgroundLabelId) continue;
        const scores = new Float64Array(P);
        for (let p = 0; p < P; p++) scores[p] = conf[(i * P + p) * C + c]!;
        scoresOf.set(c, scores);
        const list = boxes[this.shareLocation ? 0 : c]!;
        const idx = nms(list, scores, this.confidenceThreshold, this.nmsThreshold, this.eta, this.topK);
        kept.set(c, idx);
        numDet += idx.length;
      }
      let final = kept;
      if (this.keepTopK > -1 && numDet > this.keepTopK) {
        const all: { score: number; c: number; p: number }[] = [];
        for (const [c, idx] of kept) for (const p of idx) all.push({ score: scoresOf.get(c)![p]!, c, p });
        all.sort((a, b) => b.score - a.score);
        all.length = this.keepTopK;
        final = new Map();
        for (const { c, p } of all) {
          if (!final.has(c)) final.set(c, []);
          final.get(c)!.push(p);
        }
      }
      // Rows by ascending label, as the fork's std::map iteration.
      for (const c of [...final.keys()].sort((a, b) => a - b)) {
        const list = boxes[this.shareLocation ? 0 : c]!;
        for (const p of final.get(c)!) {
          const b = list[p]!;
          rows.push([i, c, scoresOf.get(c)![p]!, b.xmin, b.ymin, b.xmax, b.ymax]);
        }
      }
    }
    if (rows.length === 0) for (let i = 0; i < num; i++) rows.push([i, -1, -1, -1, -1, -1, -1]);
    this.rows = rows;
    top[0]!.reshape([1, 1, rows.length, 7]);
    const out = top[0]!.mutableCpuData();
    rows.forEach((r, k) => out.set(r, k * 7));
  }

  protected override backwardCpu(_top: Blob[], propagateDown: boolean[]): void {
    if (propagateDown.some(Boolean)) this.fail('DetectionOutput cannot backpropagate (it is an inference-only layer).');
  }
}

export const detectionOutputLayerDef: LayerDef<DetectionOutputLayer> = {
  type: 'DetectionOutput',
  create: (p, ctx) => new DetectionOutputLayer(p, ctx),
};

/** Clamp a normalised box to the image, [0, 1] on both axes (OpenCV's `clip`). */
function clipUnit(box: Box): void {
  box.xmin = Math.min(Math.max(box.xmin, 0), 1);
  box.ymin = Math.min(Math.max(box.ymin, 0), 1);
  box.xmax = Math.min(Math.max(box.xmax, 0), 1);
  box.ymax = Math.min(Math.max(box.ymax, 0), 1);
}
