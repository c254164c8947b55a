/*
 * Normalised boxes of the SSD fork (weiliu89/caffe, branch ssd: util/bbox_util.cpp), as its data
 * pipeline uses them: boxes in [0, 1] image coordinates, cropped, projected into crops, filtered
 * by an emit constraint and re-mapped by a resize policy.
 *
 * The fork computes in C++ `float`; every step here is rounded to float32 (Math.fround) so that
 * comparisons on box edges (a centre exactly on a crop border, a coverage equal to a threshold)
 * come out as in the fork. A box may carry a `size`: the fork stores the area of a box when it
 * clips it and later reads that stored area instead of recomputing it (even after the box's
 * corners were moved by a resize policy); `size` reproduces that.
 */

const f = Math.fround;

/** A NormalizedBBox: corners in [0, 1] image coordinates (may lie outside while being transformed). */
export interface NormBox {
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
  difficult: boolean;
  /** The stored area (NormalizedBBox.size), when the box has one; see the note at the top. */
  size?: number;
}

/** One annotation of a group: Annotation { instance_id, bbox }. */
export interface BoxAnnotation {
  instanceId: number;
  box: NormBox;
}

/** An AnnotationGroup: the boxes of one class (`groupLabel`). */
export interface BoxGroup {
  groupLabel: number;
  annotations: BoxAnnotation[];
}

/** A box from plain corners (float32-rounded, as stored in a NormalizedBBox). */
export function makeBox(xmin: number, ymin: number, xmax: number, ymax: number, difficult = false): NormBox {
  return { xmin: f(xmin), ymin: f(ymin), xmax: f(xmax), ymax: f(ymax), difficult };
}

/** The whole image, [0, 0, 1, 1]. */
export function unitBox(): NormBox {
  return makeBox(0, 0, 1, 1);
}

/**
 * The area of a box: 0 when it is inverted, its stored `size` when it has one, else width·height
 * (normalised) or (width + 1)·(height + 1) (pixel boxes).
 */
export function boxSize(b: NormBox, normalized = true): number {
  if (b.xmax < b.xmin || b.ymax < b.ymin) return 0;
  if (b.size !== undefined) return b.size;
  const w = f(b.xmax - b.xmin);
  const h = f(b.ymax - b.ymin);
  return normalized ? f(w * h) : f(f(w + 1) * f(h + 1));
}

const clamp01 = (v: number) => Math.max(Math.min(v, 1), 0);

/** The box clamped to [0, 1], with its area stored (the fork's ClipBBox). */
export function clipBox(b: NormBox): NormBox {
  const out: NormBox = { xmin: clamp01(b.xmin), ymin: clamp01(b.ymin), xmax: clamp01(b.xmax), ymax: clamp01(b.ymax), difficult: b.difficult };
  out.size = boxSize(out);
  return out;
}

/** The overlap of two boxes, [0, 0, 0, 0] when they do not meet (the fork's IntersectBBox). */
export function intersectBox(a: NormBox, b: NormBox): NormBox {
  if (b.xmin > a.xmax || b.xmax < a.xmin || b.ymin > a.ymax || b.ymax < a.ymin) return makeBox(0, 0, 0, 0);
  return {
    xmin: Math.max(a.xmin, b.xmin),
    ymin: Math.max(a.ymin, b.ymin),
    xmax: Math.min(a.xmax, b.xmax),
    ymax: Math.min(a.ymax, b.ymax),
    difficult: false,
  };
}

/** Intersection over union of two normalised boxes. */
export function jaccardOverlap(a: NormBox, b: NormBox): number {
  const i = intersectBox(a, b);
  const w = f(i.xmax - i.xmin);
  const h = f(i.ymax - i.ymin);
  if (!(w > 0 && h > 0)) return 0;
  const inter = f(w * h);
  return f(inter / f(f(boxSize(a) + boxSize(b)) - inter));
}

/** The part of `a` that `b` covers: area(a ∩ b) / area(a) (the fork's BBoxCoverage). */
export function boxCoverage(a: NormBox, b: NormBox): number {
  const inter = boxSize(intersectBox(a, b));
  return inter > 0 ? f(inter / boxSize(a)) : 0;
}

/** `b`, given relative to `src`, in the coordinates `src` is given in (the fork's LocateBBox). */
export function locateBox(src: NormBox, b: NormBox): NormBox {
  const w = f(src.xmax - src.xmin);
  const h = f(src.ymax - src.ymin);
  return {
    xmin: f(src.xmin + f(b.xmin * w)),
    ymin: f(src.ymin + f(b.ymin * h)),
    xmax: f(src.xmin + f(b.xmax * w)),
    ymax: f(src.ymin + f(b.ymax * h)),
    difficult: b.difficult,
  };
}

/**
 * `b` in the coordinates of the crop `src` (both normalised to the same image), clipped to the
 * crop; null when nothing of it is left inside (the fork's ProjectBBox).
 */
export function projectBox(src: NormBox, b: NormBox): NormBox | null {
  if (b.xmin >= src.xmax || b.xmax <= src.xmin || b.ymin >= src.ymax || b.ymax <= src.ymin) return null;
  const w = f(src.xmax - src.xmin);
  const h = f(src.ymax - src.ymin);
  const proj = clipBox({
    xmin: f(f(b.xmin - src.xmin) / w),
    ymin: f(f(b.ymin - src.ymin) / h),
    xmax: f(f(b.xmax - src.xmin) / w),
    ymax: f(f(b.ymax - src.ymin) / h),
    difficult: b.difficult,
  });
  return boxSize(proj) > 0 ? proj : null;
}

/** EmitConstraint.EmitType. */
export const EMIT_CENTER = 0;
export const EMIT_MIN_OVERLAP = 1;

export interface EmitSpec {
  /** EMIT_CENTER or EMIT_MIN_OVERLAP. */
  type: number;
  /** For MIN_OVERLAP: the part of the box the crop must cover, strictly more than this. */
  overlap: number;
}

/**
 * Whether box `b` survives the crop `src`: CENTER keeps it when its centre lies in the crop
 * (borders included); MIN_OVERLAP when the crop covers more than `overlap` of it.
 */
export function meetsEmitConstraint(src: NormBox, b: NormBox, emit: EmitSpec): boolean {
  if (emit.type === EMIT_CENTER) {
    const xc = f(f(b.xmin + b.xmax) / 2);
    const yc = f(f(b.ymin + b.ymax) / 2);
    return xc >= src.xmin && xc <= src.xmax && yc >= src.ymin && yc <= src.ymax;
  }
  return boxCoverage(b, src) > f(emit.overlap);
}

// ---------------------------------------------------------------------------------------------
// Resize policies (ResizeParameter), as they move boxes

/** ResizeParameter.Resize_mode. */
export const RESIZE_WARP = 1;
export const RESIZE_FIT_SMALL_SIZE = 2;
export const RESIZE_FIT_LARGE_SIZE_AND_PAD = 3;

/** What of a ResizeParameter the box arithmetic needs. */
export interface ResizePolicy {
  mode: number;
  height: number;
  width: number;
  heightScale: number;
  widthScale: number;
}

/**
 * The image size a resize policy gives an image of oldWidth × oldHeight, as [width, height]
 * (the fork's InferNewSize): WARP and FIT_LARGE_SIZE_AND_PAD give the policy's size;
 * FIT_SMALL_SIZE scales the image so that its smaller side (relative to the policy's aspect)
 * meets the policy's size, truncating the other.
 */
export function inferNewSize(p: ResizePolicy, oldWidth: number, oldHeight: number): [number, number] {
  let { width, height } = p;
  if (p.mode === RESIZE_FIT_SMALL_SIZE) {
    const origAspect = f(oldWidth / oldHeight);
    const aspect = f(width / height);
    if (origAspect < aspect) height = Math.trunc(f(width / origAspect));
    else width = Math.trunc(f(origAspect * height));
  }
  return [width, height];
}

/**
 * Move a box of an oldWidth × oldHeight image to where the resize policy puts it (the fork's
 * UpdateBBoxByResizePolicy): unchanged by WARP (up to clamping), squeezed into the unpadded band
 * by FIT_LARGE_SIZE_AND_PAD. A stored `size` is kept as it was (as the fork does).
 */
export function updateBoxByResizePolicy(p: ResizePolicy, oldWidth: number, oldHeight: number, b: NormBox): NormBox {
  let newH = f(p.height);
  let newW = f(p.width);
  const origAspect = f(oldWidth / oldHeight);
  const newAspect = f(newW / newH);
  let x0 = f(b.xmin * oldWidth);
  let y0 = f(b.ymin * oldHeight);
  let x1 = f(b.xmax * oldWidth);
  let y1 = f(b.ymax * oldHeight);
  const scaleX = (x: number, nw: number) => f(f(x * nw) / oldWidth);
  const scaleY = (y: number, nh: number) => f(f(y * nh) / oldHeight);
  if (p.mode === RESIZE_FIT_LARGE_SIZE_AND_PAD) {
    if (origAspect > newAspect) {
      const pad = f(f(newH - f(newW / origAspect)) / 2);
      x0 = Math.max(0, scaleX(x0, newW));
      x1 = Math.min(newW, scaleX(x1, newW));
      const band = f(newH - f(2 * pad));
      y0 = f(pad + Math.max(0, f(f(y0 * band) / oldHeight)));
      y1 = f(pad + Math.min(newH, f(f(y1 * band) / oldHeight)));
    } else {
      const pad = f(f(newW - f(origAspect * newH)) / 2);
      const band = f(newW - f(2 * pad));
      x0 = f(pad + Math.max(0, f(f(x0 * band) / oldWidth)));
      x1 = f(pad + Math.min(newW, f(f(x1 * band) / oldWidth)));
      y0 = Math.max(0, scaleY(y0, newH));
      y1 = Math.min(newH, scaleY(y1, newH));
    }
  } else {
    if (p.mode === RESIZE_FIT_SMALL_SIZE) {
      if (origAspect < newAspect) newH = f(newW / origAspect);
      else newW = f(origAspect * newH);
    }
    x0 = Math.max(0, scaleX(x0, newW));
    x1 = Math.min(newW, scaleX(x1, newW));
    y0 = Math.max(0, scaleY(y0, newH));
    y1 = Math.min(newH, scaleY(y1, newH));
  }
  const out: NormBox = { xmin: f(x0 / newW), ymin: f(y0 / newH), xmax: f(x1 / newW), ymax: f(y1 / newH), difficult: b.difficult };
  if (b.size !== undefined) out.size = b.size;
  return out;
}

/**
 * FIT_SMALL_SIZE with height_scale and width_scale: rescale a box in the crop so that its
 * coordinates are relative to a width_scale × height_scale window (the fork's ExtrapolateBBox);
 * other policies leave the box as it is. `height`/`width` are the image's before resizing.
 * Returns a message when the crop is smaller than the window (the fork's CHECK).
 */
export function extrapolateBox(p: ResizePolicy, height: number, width: number, crop: NormBox, b: NormBox): NormBox | string {
  const hs = f(p.heightScale);
  const ws = f(p.widthScale);
  if (!(hs > 0 && ws > 0 && p.mode === RESIZE_FIT_SMALL_SIZE)) return b;
  const origAspect = f(width / height);
  let rh = f(p.height);
  let rw = f(p.width);
  if (origAspect < f(rw / rh)) rh = f(rw / origAspect);
  else rw = f(rh * origAspect);
  const ch = f(rh * f(crop.ymax - crop.ymin));
  const cw = f(rw * f(crop.xmax - crop.xmin));
  if (cw < ws || ch < hs) return `resize_param height_scale/width_scale (${hs}×${ws}) exceed the resized crop (${ch}×${cw})`;
  const out: NormBox = {
    xmin: f(f(b.xmin * cw) / ws),
    xmax: f(f(b.xmax * cw) / ws),
    ymin: f(f(b.ymin * ch) / hs),
    ymax: f(f(b.ymax * ch) / hs),
    difficult: b.difficult,
  };
  if (b.size !== undefined) out.size = b.size;
  return out;
}
