import type { Blob } from '@caffe-ts/blob';
import { Layer, readLayerFile, type BinaryFileReader, type BlobCounts, type LayerContext, type LayerDef } from '@caffe-ts/layers';
import type { LayerParameter } from '@caffe-ts/proto';
import { hasField } from '@caffe-ts/proto';
import { forkParam, ResizeMode, type DetectionEvaluateParameter } from '../fork-types.js';
import { failOnRangeError, floatBox, floatOverlap, type SizedBox } from '../multibox.js';
import { outputBox, parseNameSizes } from '../ssd-output.js';

const f32 = Math.fround;

interface EvalBox extends SizedBox {
  size: number;
  difficult: boolean;
  score: number;
}

export interface DetectionEvaluateOptions {
  /** How `name_size_file` is read; defaults to Node's readFileSync. */
  readFile?: BinaryFileReader;
}

/**
 * DetectionEvaluate (the SSD fork's test-time scorer): compares DetectionOutput's rows
 * (1 × 1 × D × 7: [image, label, score, xmin, ymin, xmax, ymax]) with the ground truth
 * (1 × 1 × G × 8, as AnnotatedData writes it) and writes 1 × 1 × R × 5 rows
 * [image, label, score, true positive, false positive] that the solver turns into mAP
 * (`eval_type: "detection"`):
 * - first one row [−1, label, number of ground-truth boxes, −1, −1] per non-background class
 *   (difficult boxes counted only with evaluate_difficult_gt);
 * - then, per image and label, its detections by score: a true positive when its best-overlapping
 *   ground truth of that label overlaps it by at least overlap_threshold and was not taken by a
 *   higher-scored detection; a false positive otherwise; neither (0, 0) when that ground truth is
 *   difficult and evaluate_difficult_gt is false.
 * With `name_size_file` ("name height width" per test image, in order) boxes are compared in
 * pixels (the fork's +1 widths), after undoing `resize_param`'s geometry.
 */
export class DetectionEvaluateLayer extends Layer {
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 2, exactNumTopBlobs: 1 };
  readonly type = 'DetectionEvaluate';

  private p!: DetectionEvaluateParameter;
  /** [height, width] per test image, from name_size_file. */
  sizes: [number, number][] = [];
  /** The next image's index into `sizes` (the fork's count_). */
  private count = 0;
  private readonly readFile: BinaryFileReader | undefined;
  private readonly netFile: string | undefined;

  constructor(param: LayerParameter, context: LayerContext = {}, options: DetectionEvaluateOptions = {}) {
    super(param, context);
    this.readFile = options.readFile;
    this.netFile = context.netFile;
  }

  override layerSetUp(): void {
    const p = forkParam<DetectionEvaluateParameter>(this.param, 'detection_evaluate_param', 'DetectionEvaluateParameter');
    this.p = p;
    this.check(hasField(p, 'num_classes'), () => 'detection_evaluate_param.num_classes is required.');
    this.check(p.overlap_threshold > 0, () => `overlap_threshold must be positive (got ${p.overlap_threshold}).`);
    if (p.resize_param) {
      this.check(ResizeMode[p.resize_param.resize_mode] !== undefined, () => `unknown resize_param.resize_mode ${p.resize_param!.resize_mode}.`);
    }
    this.sizes = [];
    if (hasField(p, 'name_size_file')) {
      let text: string;
      try {
        const { bytes } = readLayerFile(p.name_size_file, `name_size_file '${p.name_size_file}'`, {
          netFile: this.netFile,
          readFile: this.readFile,
          readerOption: 'createDetectionEvaluateLayerDef({ readFile })',
        });
        text = new TextDecoder().decode(bytes);
      } catch (err) {
        this.fail((err as Error).message);
      }
      this.sizes = this.wrap(() => parseNameSizes(text, p.name_size_file)).map((e) => e.size);
    }
    this.count = 0;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [det, gt] = bottom as [Blob, Blob];
    this.check(det.numAxes === 4 && det.shape[0] === 1 && det.shape[1] === 1 && det.shape[3] === 7, () =>
      `bottom 0 (the detections) must be 1 × 1 × D × 7, as DetectionOutput writes them (got ${det.shapeString()}).`,
    );
    this.check(gt.numAxes === 4 && gt.shape[0] === 1 && gt.shape[1] === 1 && gt.shape[3] === 8, () =>
      `bottom 1 (the ground truth) must be 1 × 1 × G × 8, as AnnotatedData writes it (got ${gt.shapeString()}).`,
    );
    const d = det.cpuData();
    let valid = 0;
    for (let i = 0; i < det.shape[2]!; i++) if (d[i * 7 + 1] !== -1) valid++;
    const positiveClasses = this.p.background_label_id === -1 ? this.p.num_classes : this.p.num_classes - 1;
    top[0]!.reshape([1, 1, positiveClasses + valid, 5]);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const p = this.p;
    const normalized = this.sizes.length === 0;
    const detections = this.detections(bottom[0]!);
    const truth = this.groundTruth(bottom[1]!);
    const out = top[0]!.mutableCpuData();
    out.fill(0);
    let row = 0;
    const write = (image: number, label: number, score: number, tp: number, fp: number) => {
      out.set([image, label, score, tp, fp], row * 5);
      row++;
    };

    for (let c = 0; c < p.num_classes; c++) {
      if (c === p.background_label_id) continue;
      let positives = 0;
      for (const labels of truth.values()) {
        for (const b of labels.get(c) ?? []) if (p.evaluate_difficult_gt || !b.difficult) positives++;
      }
      write(-1, c, positives, -1, -1);
    }

    for (const image of [...detections.keys()].sort((a, b) => a - b)) {
      const byLabel = detections.get(image)!;
      const imageTruth = truth.get(image);
      for (const label of [...byLabel.keys()].sort((a, b) => a - b)) {
        if (label === -1) continue; // DetectionOutput's "nothing found" row
        const boxes = byLabel.get(label)!;
        let gts = imageTruth?.get(label);
        if (!gts) {
          for (const b of boxes) write(image, label, b.score, 0, 1);
          continue;
        }
        if (!normalized) gts = gts.map((g) => this.toPixels(g));
        const taken = new Array<boolean>(gts.length).fill(false);
        // Highest score first; equal scores keep their order (the fork's std::sort leaves it open).
        for (const det of [...boxes].sort((a, b) => b.score - a.score)) {
          const box = normalized ? det : this.toPixels(det);
          let best = -1, jBest = -1;
          gts.forEach((g, j) => {
            const o = floatOverlap(box, g, normalized);
            if (o > best) {
              best = o;
              jBest = j;
            }
          });
          if (best >= p.overlap_threshold) {
            if (p.evaluate_difficult_gt || !gts[jBest]!.difficult) {
              if (!taken[jBest]) {
                taken[jBest] = true;
                write(image, label, det.score, 1, 0);
              } else {
                write(image, label, det.score, 0, 1);
              }
            } else {
              write(image, label, det.score, 0, 0); // matched a difficult box that is not evaluated
            }
          } else {
            write(image, label, det.score, 0, 1);
          }
        }
      }
      if (this.sizes.length > 0) this.count = (this.count + 1) % this.sizes.length;
    }
  }

  /** DetectionOutput's rows by image and label (the fork's GetDetectionResults). */
  private detections(det: Blob): Map<number, Map<number, EvalBox[]>> {
    const d = det.cpuData();
    const all = new Map<number, Map<number, EvalBox[]>>();
    for (let i = 0; i < det.shape[2]!; i++) {
      const r = i * 7;
      const image = Math.trunc(d[r]!);
      if (image === -1) continue;
      const label = Math.trunc(d[r + 1]!);
      this.check(label !== this.p.background_label_id, () => `Found background label in the detection results: row ${i} (image ${image}) has label ${label}.`);
      addBox(all, image, label, { ...floatBox(d[r + 3]!, d[r + 4]!, d[r + 5]!, d[r + 6]!), difficult: false, score: f32(d[r + 2]!) });
    }
    return all;
  }

  /** The ground truth by image and label, difficult boxes included; stops at the first padding row. */
  private groundTruth(gt: Blob): Map<number, Map<number, EvalBox[]>> {
    const d = gt.cpuData();
    const all = new Map<number, Map<number, EvalBox[]>>();
    for (let i = 0; i < gt.shape[2]!; i++) {
      const r = i * 8;
      const image = Math.trunc(d[r]!);
      if (image === -1) break;
      const label = Math.trunc(d[r + 1]!);
      this.check(label !== this.p.background_label_id, () => `Found background label in the dataset: label row ${i} (image ${image}) has label ${label}.`);
      addBox(all, image, label, { ...floatBox(d[r + 3]!, d[r + 4]!, d[r + 5]!, d[r + 6]!), difficult: d[r + 7]! !== 0, score: 0 });
    }
    return all;
  }

  /** A normalised box in the current image's pixels (the fork's OutputBBox, see outputBox). */
  private toPixels(box: EvalBox): EvalBox {
    this.check(this.count < this.sizes.length, () => `more test images than name_size_file lists (${this.sizes.length}).`);
    return { ...box, ...this.wrap(() => outputBox(box, this.sizes[this.count]!, this.p.resize_param)) };
  }

  /** Run a step, turning its RangeError (a bad setting) into a LayerError naming the layer. */
  private wrap<T>(step: () => T): T {
    return failOnRangeError((message) => this.fail(message), step);
  }
}

/** Append `box` to its image's list for `label`. */
function addBox(all: Map<number, Map<number, EvalBox[]>>, image: number, label: number, box: EvalBox): void {
  let labels = all.get(image);
  if (!labels) all.set(image, (labels = new Map()));
  let list = labels.get(label);
  if (!list) labels.set(label, (list = []));
  list.push(box);
}

/** A LayerDef for DetectionEvaluate with the given options (e.g. a custom file reader). */
export function createDetectionEvaluateLayerDef(options: DetectionEvaluateOptions = {}): LayerDef<DetectionEvaluateLayer> {
  return { type: 'DetectionEvaluate', create: (p, ctx) => new DetectionEvaluateLayer(p, ctx, options) };
}

export const detectionEvaluateLayerDef: LayerDef<DetectionEvaluateLayer> = createDetectionEvaluateLayerDef();
