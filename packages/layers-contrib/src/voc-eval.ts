/*
 * PASCAL VOC detection evaluation as py-faster-rcnn computes it (lib/datasets/voc_eval.py, the
 * Python port of the devkit's VOCevaldet): detections of one class ranked by score, each a true
 * positive when it overlaps an unclaimed ground-truth box of its image by more than `ovthresh`
 * (IoU with +1 pixel sides), difficult boxes neither rewarded nor penalised; then the average
 * precision, VOC2007's 11-point mean or VOC2010's area under the interpolated curve. Also the
 * results files' lines (pascal_voc.py's _write_voc_results_file), which are what gets evaluated:
 * their rounding (scores to 3 decimals, 1-based corners to 1) is part of the result.
 */
import { LayerError } from '@caffe-ts/layers';

/** One detection of a class: the image's index, the score and the box [x1, y1, x2, y2] in 1-based pixels. */
export interface VocDetection {
  imageId: string;
  score: number;
  box: readonly [number, number, number, number];
}

/** One image's ground truth of a class: 1-based boxes [x1, y1, x2, y2] and their difficult flags. */
export interface VocGroundTruth {
  boxes: readonly (readonly number[])[];
  difficult: readonly boolean[];
}

export interface VocClassResult {
  /** Recall and precision after each detection, best first. */
  rec: number[];
  prec: number[];
  ap: number;
  /** Ground-truth boxes that count (not difficult). */
  npos: number;
}

/**
 * Average precision of a recall / precision curve (voc_ap): with `use07`, the mean over recall
 * thresholds 0, 0.1, …, 1 (numpy's arange steps) of the best precision at that recall or beyond;
 * otherwise the area under the curve made monotone from the right.
 */
export function vocAp(rec: readonly number[], prec: readonly number[], use07: boolean): number {
  if (use07) {
    let ap = 0;
    for (let k = 0; k <= 10; k++) {
      const t = k * 0.1;
      let p = 0;
      let any = false;
      rec.forEach((r, i) => {
        if (r >= t) {
          p = any ? Math.max(p, prec[i]!) : prec[i]!;
          any = true;
        }
      });
      ap += (any ? p : 0) / 11;
    }
    return ap;
  }
  const mrec = [0, ...rec, 1];
  const mpre = [0, ...prec, 0];
  for (let i = mpre.length - 1; i > 0; i--) mpre[i - 1] = Math.max(mpre[i - 1]!, mpre[i]!);
  let ap = 0;
  for (let i = 0; i + 1 < mrec.length; i++) if (mrec[i + 1] !== mrec[i]) ap += (mrec[i + 1]! - mrec[i]!) * mpre[i + 1]!;
  return ap;
}

/**
 * voc_eval for one class: `detections` against `groundTruth` (every image of the set, those
 * without a box of the class included), ranked by score (ties keep their order). A detection of an
 * image the set does not hold is an error, as in the Python. Without detections the AP is 0 (the
 * Python fails there).
 */
export function vocEvalClass(
  detections: readonly VocDetection[],
  groundTruth: ReadonlyMap<string, VocGroundTruth>,
  { ovthresh = 0.5, use07 = false }: { ovthresh?: number; use07?: boolean } = {},
): VocClassResult {
  let npos = 0;
  const claimed = new Map<string, boolean[]>();
  for (const [id, gt] of groundTruth) {
    if (gt.boxes.length !== gt.difficult.length) throw new LayerError(`vocEvalClass: image '${id}' has ${gt.boxes.length} boxes but ${gt.difficult.length} difficult flags`);
    npos += gt.difficult.filter((d) => !d).length;
    claimed.set(id, gt.boxes.map(() => false));
  }
  const order = detections.map((_, i) => i).sort((a, b) => detections[b]!.score - detections[a]!.score || a - b);
  const tp: number[] = [];
  const fp: number[] = [];
  for (const d of order) {
    const det = detections[d]!;
    const gt = groundTruth.get(det.imageId);
    if (!gt) throw new LayerError(`vocEvalClass: a detection names image '${det.imageId}', which the image set does not hold`);
    const [bx1, by1, bx2, by2] = det.box;
    let ovmax = -Infinity;
    let jmax = -1;
    gt.boxes.forEach(([gx1, gy1, gx2, gy2], j) => {
      const iw = Math.max(Math.min(gx2!, bx2) - Math.max(gx1!, bx1) + 1, 0);
      const ih = Math.max(Math.min(gy2!, by2) - Math.max(gy1!, by1) + 1, 0);
      const inter = iw * ih;
      const union = (bx2 - bx1 + 1) * (by2 - by1 + 1) + (gx2! - gx1! + 1) * (gy2! - gy1! + 1) - inter;
      const overlap = inter / union;
      if (overlap > ovmax) {
        ovmax = overlap;
        jmax = j;
      }
    });
    let t = 0, f = 0;
    if (ovmax > ovthresh) {
      if (!gt.difficult[jmax]) {
        const taken = claimed.get(det.imageId)!;
        if (!taken[jmax]) {
          t = 1;
          taken[jmax] = true;
        } else f = 1;
      }
    } else f = 1;
    tp.push((tp.at(-1) ?? 0) + t);
    fp.push((fp.at(-1) ?? 0) + f);
  }
  const rec = tp.map((v) => v / npos);
  const prec = tp.map((v, i) => v / Math.max(v + fp[i]!, Number.EPSILON));
  return { rec, prec, ap: vocAp(rec, prec, use07), npos };
}

/**
 * A number with `digits` decimals as Python's format() writes it: the double's exact value
 * rounded, halves to even (JavaScript's toFixed rounds exact halves up: 0.125 → '0.13', Python
 * '0.12').
 */
export function formatFixed(x: number, digits: number): string {
  const plain = x.toFixed(digits);
  // The double's exact decimal digits (toFixed is exact; 100 digits hold any value down to 2^-100).
  const exact = Math.abs(x).toFixed(Math.min(100, digits + 80));
  const dot = exact.indexOf('.');
  // Not an exact half past the kept digits: toFixed's nearest is Python's.
  if (!/^50*$/.test(exact.slice(dot + 1 + digits))) return plain;
  // An exact half: toFixed went away from zero; Python goes to the even neighbour.
  const truncated = exact.slice(0, dot + 1 + digits).replace(/\.$/, '');
  return Number(truncated.at(-1)) % 2 === 0 ? `${x < 0 ? '-' : ''}${truncated}` : plain;
}

/** One line of a VOC results file (comp4_det_<set>_<class>.txt): index, score, 1-based corners, from a 0-based box. */
export function vocResultLine(imageId: string, score: number, box: readonly number[]): string {
  const [x1, y1, x2, y2] = box as [number, number, number, number];
  return `${imageId} ${formatFixed(score, 3)} ${formatFixed(x1 + 1, 1)} ${formatFixed(y1 + 1, 1)} ${formatFixed(x2 + 1, 1)} ${formatFixed(y2 + 1, 1)}`;
}

/** The detections of a VOC results file's text (voc_eval's reading: six fields per line), naming the file and line on a bad one. */
export function parseVocResults(text: string, file: string): VocDetection[] {
  const out: VocDetection[] = [];
  text.split('\n').forEach((line, i) => {
    const fields = line.trim().split(/\s+/);
    if (fields.length === 1 && fields[0] === '') return;
    const values = fields.slice(1).map(Number);
    if (fields.length !== 6 || values.some((v) => !Number.isFinite(v))) {
      throw new LayerError(`${file}:${i + 1}: expected 'image score x1 y1 x2 y2' (got '${line.trim()}')`);
    }
    out.push({ imageId: fields[0]!, score: values[0]!, box: values.slice(1, 5) as unknown as [number, number, number, number] });
  });
  return out;
}
