/*
 * Detection mAP at test time (the SSD fork's `eval_type: "detection"`): the test net's outputs are
 * DetectionEvaluate rows [image, label, score, true positive, false positive], with rows of image
 * −1 carrying a class's number of ground-truth boxes. Over the test iterations the rows are pooled
 * per output and label, then each label's average precision is computed and averaged.
 */

const f32 = Math.fround;

/** The AP variants the fork's `ap_version` names. */
export type ApVersion = '11point' | 'MaxIntegral' | 'Integral';

export const AP_VERSIONS: readonly ApVersion[] = ['11point', 'MaxIntegral', 'Integral'];

/** One detection's score and whether it was a true positive. */
export interface ScoredHit {
  score: number;
  truePositive: boolean;
}

/**
 * Average precision of one label's detections against `numPositives` ground-truth boxes (the
 * fork's ComputeAP, in float as there): detections by score, highest first (stable), precision and
 * recall after each, then
 * - '11point' (VOC2007): the mean over recall 0, 0.1, …, 1 of the best precision at that recall or above;
 * - 'MaxIntegral' (VOC2012, ILSVRC): the area under the precision envelope;
 * - 'Integral': Σ precision × recall step.
 * 0 without detections or ground truth.
 */
export function averagePrecision(hits: readonly ScoredHit[], numPositives: number, version: ApVersion): number {
  const n = hits.length;
  if (n === 0 || numPositives === 0) return 0;
  const eps = 1e-6;
  const sorted = [...hits].sort((a, b) => b.score - a.score);
  const prec = new Float32Array(n);
  const rec = new Float32Array(n);
  let tp = 0;
  sorted.forEach((h, i) => {
    if (h.truePositive) tp++;
    prec[i] = tp / (i + 1);
    rec[i] = tp / numPositives;
  });
  let ap = 0;
  if (version === '11point') {
    const maxPrecs = new Float32Array(11);
    let start = n - 1;
    for (let j = 10; j >= 0; j--) {
      for (let i = start; i >= 0; i--) {
        if (rec[i]! < j / 10) {
          start = i;
          if (j > 0) maxPrecs[j - 1] = maxPrecs[j]!;
          break;
        } else if (maxPrecs[j]! < prec[i]!) {
          maxPrecs[j] = prec[i]!;
        }
      }
    }
    for (let j = 10; j >= 0; j--) ap = f32(ap + f32(maxPrecs[j]! / 11));
  } else if (version === 'MaxIntegral') {
    let curRec = rec[n - 1]!;
    let curPrec = prec[n - 1]!;
    for (let i = n - 2; i >= 0; i--) {
      curPrec = Math.max(prec[i]!, curPrec);
      const step = f32(Math.abs(curRec - rec[i]!));
      if (step > eps) ap = f32(ap + f32(curPrec * step));
      curRec = rec[i]!;
    }
    ap = f32(ap + f32(curRec * curPrec));
  } else if (version === 'Integral') {
    let prevRec = 0;
    for (let i = 0; i < n; i++) {
      const step = f32(Math.abs(rec[i]! - prevRec));
      if (step > eps) ap = f32(ap + f32(prec[i]! * step));
      prevRec = rec[i]!;
    }
  } else {
    throw new RangeError(`Unknown ap_version: '${String(version)}' (expected ${AP_VERSIONS.join(', ')})`);
  }
  return ap;
}

/** The pooled rows of one test net output. */
export class DetectionTally {
  /** Ground-truth boxes per label. */
  readonly positives = new Map<number, number>();
  /** Detections per label. */
  readonly hits = new Map<number, ScoredHit[]>();

  /**
   * Add one output's rows (R × 5). Rows that are neither true nor false positives (a detection of a
   * difficult box that is not evaluated) are left out, as in the fork.
   */
  add(rows: ArrayLike<number>): void {
    for (let k = 0; k + 4 < rows.length; k += 5) {
      const image = Math.trunc(rows[k]!);
      const label = Math.trunc(rows[k + 1]!);
      if (image === -1) {
        this.positives.set(label, (this.positives.get(label) ?? 0) + Math.trunc(rows[k + 2]!));
        continue;
      }
      const tp = Math.trunc(rows[k + 3]!), fp = Math.trunc(rows[k + 4]!);
      if (tp === 0 && fp === 0) continue;
      let list = this.hits.get(label);
      if (!list) this.hits.set(label, (list = []));
      list.push({ score: f32(rows[k + 2]!), truePositive: tp === 1 });
    }
  }

  /**
   * Per-label AP (labels in ascending order) and their mean over every label with a ground-truth
   * count row; a label without detections counts 0 and is reported in `missing`.
   */
  meanAveragePrecision(version: ApVersion): { map: number; perLabel: Map<number, number>; missing: number[] } {
    const perLabel = new Map<number, number>();
    const missing: number[] = [];
    let sum = 0;
    for (const label of [...this.positives.keys()].sort((a, b) => a - b)) {
      const hits = this.hits.get(label);
      if (!hits) {
        missing.push(label);
        continue;
      }
      const ap = averagePrecision(hits, this.positives.get(label)!, version);
      perLabel.set(label, ap);
      sum = f32(sum + ap);
    }
    return { map: this.positives.size > 0 ? f32(sum / this.positives.size) : 0, perLabel, missing };
  }
}
