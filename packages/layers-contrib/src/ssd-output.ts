import { ResizeMode, type ResizeParameter } from './fork-types.js';
import { floatBoxSize, type SizedBox } from './multibox.js';

/*
 * What the SSD fork's test layers share: the `name height width` list of the test images
 * (DetectionEvaluate's and DetectionOutput's name_size_file) and the mapping of a normalised box
 * back to an image's pixels (the fork's OutputBBox), in float as the fork computes it.
 */

const f32 = Math.fround;

/** One test image of a name_size_file. */
export interface NamedSize {
  name: string;
  /** [height, width]. */
  size: [number, number];
}

/**
 * A name_size_file's entries: whitespace-separated `name height width` triples, as the fork's
 * `infile >> name >> height >> width` reads them. A RangeError names the file and the entry that
 * has no positive integer size, or says the file lists no image.
 */
export function parseNameSizes(text: string, file: string): NamedSize[] {
  const words = text.split(/\s+/).filter(Boolean);
  const out: NamedSize[] = [];
  for (let i = 0; i + 2 < words.length; i += 3) {
    const h = Number(words[i + 1]), w = Number(words[i + 2]);
    if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) {
      throw new RangeError(`name_size_file '${file}': entry ${i / 3 + 1} ('${words[i]} ${words[i + 1]} ${words[i + 2]}') needs a positive integer height and width.`);
    }
    out.push({ name: words[i]!, size: [h, w] });
  }
  if (out.length === 0) throw new RangeError(`name_size_file '${file}' lists no images ("name height width" per line).`);
  return out;
}

/**
 * A normalised box in the pixels of an image of `size` ([height, width]) (the fork's OutputBBox):
 * clipped to [0, 1] and scaled, after undoing FIT_LARGE_SIZE_AND_PAD's padding; FIT_SMALL_SIZE
 * with its scales set scales by them and clips to the image instead. The size it carries counts
 * end pixels (+1), as the fork's ScaleBBox stores it.
 */
export function outputBox(box: SizedBox, size: readonly [number, number], resize: ResizeParameter | null): SizedBox & { size: number } {
  const [height, width] = size;
  let b: SizedBox = box;
  if (resize && resize.resize_mode === ResizeMode.FIT_LARGE_SIZE_AND_PAD) {
    if (!(resize.height > 0 && resize.width > 0)) throw new RangeError('resize_param needs a positive height and width.');
    const resizeAspect = f32(resize.width / resize.height);
    const aspect = f32(width / height);
    let src: SizedBox;
    if (aspect > resizeAspect) {
      const pad = f32((resize.height - f32(resize.width / aspect)) / 2);
      src = { xmin: 0, ymin: f32(pad / resize.height), xmax: 1, ymax: f32(1 - f32(pad / resize.height)) };
    } else {
      const pad = f32((resize.width - f32(resize.height * aspect)) / 2);
      src = { xmin: f32(pad / resize.width), ymin: 0, xmax: f32(1 - f32(pad / resize.width)), ymax: 1 };
    }
    b = projectBox(src, b) ?? b;
  } else if (resize && resize.resize_mode === ResizeMode.FIT_SMALL_SIZE && resize.height_scale !== 0 && resize.width_scale !== 0) {
    return clipBox(scaleBox(b, resize.height_scale, resize.width_scale), height, width);
  }
  return scaleBox(clipBox(b, 1, 1), height, width);
}

/** Clip to [0, w] × [0, h] (the fork's ClipBBox), the size recomputed as w·h. */
function clipBox(b: SizedBox, height: number, width: number): SizedBox & { size: number } {
  const c = (v: number, hi: number) => Math.max(Math.min(v, hi), 0);
  const out = { xmin: c(b.xmin, width), ymin: c(b.ymin, height), xmax: c(b.xmax, width), ymax: c(b.ymax, height) };
  return { ...out, size: floatBoxSize(out) };
}

/** Scale to pixels (the fork's ScaleBBox): the size counts end pixels (+1) once the image is bigger than 1 × 1. */
function scaleBox(b: SizedBox, height: number, width: number): SizedBox & { size: number } {
  const out = { xmin: f32(b.xmin * width), ymin: f32(b.ymin * height), xmax: f32(b.xmax * width), ymax: f32(b.ymax * height) };
  const pixels = width > 1 || height > 1;
  const valid = out.xmax >= out.xmin && out.ymax >= out.ymin;
  const w = f32(out.xmax - out.xmin), h = f32(out.ymax - out.ymin);
  const size = !valid ? 0 : pixels ? f32(f32(w + 1) * f32(h + 1)) : f32(w * h);
  return { ...out, size };
}

/** `b` in the coordinates of `src` (the fork's ProjectBBox), clipped; undefined when they do not touch. */
function projectBox(src: SizedBox, b: SizedBox): SizedBox | undefined {
  if (b.xmin >= src.xmax || b.xmax <= src.xmin || b.ymin >= src.ymax || b.ymax <= src.ymin) return undefined;
  const w = f32(src.xmax - src.xmin), h = f32(src.ymax - src.ymin);
  return clipBox({ xmin: f32((b.xmin - src.xmin) / w), ymin: f32((b.ymin - src.ymin) / h), xmax: f32((b.xmax - src.xmin) / w), ymax: f32((b.ymax - src.ymin) / h) }, 1, 1);
}
