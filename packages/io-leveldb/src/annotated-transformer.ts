import { LayerError } from '@caffe-ts/layers';
import { type FloatArray, type Rng } from '@caffe-ts/blob';
import { createMessage, hasField, Phase, type Message, type TransformationParameter } from '@caffe-ts/proto';
import { DataTransformer } from './data-transformer.js';
import { DataError } from './errors.js';
import { cropImage, datumDecodeMode, type ImreadMode, type PixelImage } from './image-io.js';
import {
  clipBox,
  EMIT_CENTER,
  extrapolateBox,
  inferNewSize,
  makeBox,
  meetsEmitConstraint,
  projectBox,
  RESIZE_WARP,
  updateBoxByResizePolicy,
  type BoxAnnotation,
  type BoxGroup,
  type EmitSpec,
  type NormBox,
} from './ssd-bbox.js';
import {
  applyDistort,
  applyNoise,
  applyResize,
  cropToBox,
  distortProblem,
  expandImage,
  PAD_CONSTANT,
  UNSUPPORTED_NOISE_OPTIONS,
  type DistortSpec,
  type NoiseSpec,
  type ResizeSpec,
} from './ssd-im-transforms.js';
import { generateBatchSamples, type BatchSamplerSpec } from './ssd-sampler.js';

/*
 * The SSD fork's DataTransformer for AnnotatedDatums (data_transformer.cpp, branch ssd): an image
 * and its boxes go through the same geometric steps, so the boxes keep pointing at their objects.
 *
 *   distort (colour only) → expand (zoom out) → [the layer samples a crop] → crop to the sample
 *   → mirror · resize · noise · crop_h×crop_w · (pixel − mean)·scale
 *
 * Each geometric step re-expresses the boxes in the new image: the box of the new image in the
 * old image's normalised coordinates is the "crop box", each ground-truth box is kept only when
 * it meets transform_param.emit_constraint against it, then projected into it and clipped
 * (boxes left with no area are dropped; a group left with no box is dropped).
 *
 * Images stay decoded between the steps. (The fork re-encodes an encoded image as JPEG after each
 * of distort, expand and crop, which loses a little detail each time; here the pixels are kept
 * exactly.) Raw Datums go through the same steps as encoded ones: the fork resizes and distorts
 * only encoded images, and fails its size checks on raw ones with a resize policy.
 */

const f = Math.fround;

/** An image with its ground truth, between the steps of the pipeline. */
export interface AnnotatedImage {
  image: PixelImage;
  groups: BoxGroup[];
  /** Whether the record's annotation type is set (the fork's has_type(); a crop or expand sets it). */
  typeSet: boolean;
}

/** TransformationParameter's SSD policies as plain data. */
export interface SsdTransformSpec {
  mirror: boolean;
  /** Random crop offsets (TRAIN) or centred ones. */
  train: boolean;
  /** crop_size, or crop_h × crop_w; 0 × 0 when not cropping. */
  cropH: number;
  cropW: number;
  resize: ResizeSpec | null;
  emit: EmitSpec | null;
  distort: DistortSpec | null;
  expand: { prob: number; maxRatio: number } | null;
  noise: NoiseSpec | null;
  /** mean_value (expand fills its canvas with them). */
  meanValues: number[];
}

const num = (m: Message, k: string) => m[k] as number;

/**
 * Read the SSD parts of a transform_param (registerSsdForkSchema must have run). Throws a plain
 * Error with the rule broken (the fork's CHECKs, plus the options refused here).
 */
export function ssdTransformSpec(tp: TransformationParameter | null | undefined, phase: Phase): SsdTransformSpec {
  const m = (tp ?? {}) as Message;
  const has = (k: string) => tp != null && hasField(tp, k);
  const cropSize = (m.crop_size as number | undefined) ?? 0;
  let cropH = (m.crop_h as number | undefined) ?? 0;
  let cropW = (m.crop_w as number | undefined) ?? 0;
  if (cropSize > 0) cropH = cropW = cropSize;
  if ((cropH > 0) !== (cropW > 0)) throw new Error(`crop_h and crop_w must be set together (got crop_h ${cropH}, crop_w ${cropW})`);
  const spec: SsdTransformSpec = {
    mirror: (m.mirror as boolean | undefined) ?? false,
    train: phase === Phase.TRAIN,
    cropH,
    cropW,
    resize: null,
    emit: null,
    distort: null,
    expand: null,
    noise: null,
    meanValues: [...((m.mean_value as number[] | undefined) ?? [])],
  };
  if (has('resize_param')) {
    const r = m.resize_param as Message;
    const height = num(r, 'height');
    const width = num(r, 'width');
    if (!(height > 0 && width > 0)) throw new Error(`resize_param height and width must be positive (got ${height}×${width})`);
    spec.resize = {
      mode: (r.resize_mode as number | undefined) ?? RESIZE_WARP,
      height,
      width,
      heightScale: num(r, 'height_scale') ?? 0,
      widthScale: num(r, 'width_scale') ?? 0,
      padMode: (r.pad_mode as number | undefined) ?? PAD_CONSTANT,
      padValue: [...((r.pad_value as number[] | undefined) ?? [])],
      interpModes: [...((r.interp_mode as number[] | undefined) ?? [])],
    };
  }
  if (has('emit_constraint')) {
    const e = m.emit_constraint as Message;
    spec.emit = { type: (e.emit_type as number | undefined) ?? EMIT_CENTER, overlap: (e.emit_overlap as number | undefined) ?? 0 };
  }
  if (has('distort_param')) {
    const d = m.distort_param as Message;
    spec.distort = {
      brightnessProb: num(d, 'brightness_prob'),
      brightnessDelta: num(d, 'brightness_delta'),
      contrastProb: num(d, 'contrast_prob'),
      contrastLower: num(d, 'contrast_lower'),
      contrastUpper: num(d, 'contrast_upper'),
      hueProb: num(d, 'hue_prob'),
      hueDelta: num(d, 'hue_delta'),
      saturationProb: num(d, 'saturation_prob'),
      saturationLower: num(d, 'saturation_lower'),
      saturationUpper: num(d, 'saturation_upper'),
      randomOrderProb: num(d, 'random_order_prob'),
    };
    const problem = distortProblem(spec.distort);
    if (problem) throw new Error(problem);
  }
  if (has('expand_param')) {
    const x = m.expand_param as Message;
    const maxRatio = num(x, 'max_expand_ratio');
    if (!(maxRatio > 1)) throw new Error(`expand_param max_expand_ratio must be greater than 1 (got ${maxRatio})`);
    if (has('mean_file')) {
      throw new Error('expand_param cannot be used with mean_file (the fork fills the canvas from a mean image of the expanded size, which varies); use mean_value');
    }
    spec.expand = { prob: num(x, 'prob'), maxRatio };
  }
  if (has('noise_param')) {
    const n = m.noise_param as Message;
    for (const opt of UNSUPPORTED_NOISE_OPTIONS) {
      const on = opt === 'jpeg' ? num(n, 'jpeg') > 0 : n[opt] === true;
      if (on) throw new Error(`noise_param ${opt} is not supported (it needs OpenCV's own ${NOISE_ALGORITHM[opt]}); remove it from transform_param`);
    }
    const sp = (n.saltpepper_param ?? null) as Message | null;
    spec.noise = {
      decolorize: n.decolorize === true,
      erode: n.erode === true,
      posterize: n.posterize === true,
      inverse: n.inverse === true,
      saltpepper: n.saltpepper === true,
      saltpepperFraction: sp ? num(sp, 'fraction') : 0,
      saltpepperValues: sp ? [...(sp.value as number[])] : [],
      convertToHsv: n.convert_to_hsv === true,
    };
  }
  return spec;
}

const NOISE_ALGORITHM: Record<(typeof UNSUPPORTED_NOISE_OPTIONS)[number], string> = {
  gauss_blur: 'GaussianBlur',
  hist_eq: 'equalizeHist',
  clahe: 'CLAHE',
  jpeg: 'JPEG re-encoding',
  convert_to_lab: 'Lab conversion to a float image',
};

/** How transformAnnotation moves boxes. */
export interface AnnotationStep {
  /** The new image's box in the old image's normalised coordinates. */
  crop: NormBox;
  mirror: boolean;
  /** The resize policy the boxes went through (only for the final transform), with the image size before it. */
  resize?: { spec: ResizeSpec; width: number; height: number } | undefined;
  emit: EmitSpec | null;
}

/**
 * The fork's TransformAnnotation: each box moved by the resize policy (when given), kept if it
 * meets the emit constraint against the crop, projected into the crop (dropped when nothing is
 * left), mirrored (x → 1 − x), then extrapolated for FIT_SMALL_SIZE with scales. Groups left
 * empty are dropped.
 */
export function transformAnnotation(groups: readonly BoxGroup[], step: AnnotationStep): BoxGroup[] {
  const out: BoxGroup[] = [];
  for (const g of groups) {
    const kept: BoxAnnotation[] = [];
    for (const a of g.annotations) {
      let box = a.box;
      if (step.resize) box = updateBoxByResizePolicy(step.resize.spec, step.resize.width, step.resize.height, box);
      if (step.emit && !meetsEmitConstraint(step.crop, box, step.emit)) continue;
      let proj = projectBox(step.crop, box);
      if (!proj) continue;
      if (step.mirror) proj = { ...proj, xmin: f(1 - proj.xmax), xmax: f(1 - proj.xmin) };
      if (step.resize) {
        const ex = extrapolateBox(step.resize.spec, step.resize.height, step.resize.width, step.crop, proj);
        if (typeof ex === 'string') throw new DataError(ex);
        proj = ex;
      }
      kept.push({ instanceId: a.instanceId, box: proj });
    }
    if (kept.length > 0) out.push({ groupLabel: g.groupLabel, annotations: kept });
  }
  return out;
}

/** Every box of the groups, in order (the fork's GroupObjectBBoxes). */
export function objectBoxes(groups: readonly BoxGroup[]): NormBox[] {
  return groups.flatMap((g) => g.annotations.map((a) => a.box));
}

/** Caffe's planar uint8 Datum pixels as an interleaved image. */
export function planarToImage(channels: number, height: number, width: number, planar: Uint8Array): PixelImage {
  const data = new Uint8Array(channels * height * width);
  const plane = height * width;
  for (let c = 0; c < channels; c++) for (let p = 0; p < plane; p++) data[p * channels + c] = planar[c * plane + p]!;
  return { height, width, channels, data };
}

export interface AnnotatedTransformerOptions {
  /** Names the owner in errors, e.g. "AnnotatedData layer 'data'". */
  owner?: string;
  /** Reads mean_file bytes (default fs.readFileSync). */
  readFile?: (path: string) => Uint8Array;
}

/**
 * The fork's DataTransformer for AnnotatedDatums, on decoded images. The mean and scale are the
 * package's DataTransformer (mean_file / mean_value, as the Data layer); the rest is
 * ssd-im-transforms.ts. All random draws come from `rng`, in the fork's order per image: distort,
 * expand, (the layer's sampling,) then mirror, the interpolation, noise, the crop offsets.
 */
export class AnnotatedTransformer {
  readonly spec: SsdTransformSpec;
  readonly rng: Rng;
  /** How encoded images decode (force_color / force_gray). */
  readonly decodeMode: ImreadMode;
  private readonly owner: string;
  private readonly pixels: DataTransformer;

  constructor(tp: TransformationParameter | null | undefined, phase: Phase, rng: Rng, options: AnnotatedTransformerOptions = {}) {
    this.owner = options.owner ?? 'AnnotatedDataTransformer';
    this.rng = rng;
    try {
      this.spec = ssdTransformSpec(tp, phase);
      this.decodeMode = datumDecodeMode(tp?.force_color ?? false, tp?.force_gray ?? false);
    } catch (e) {
      throw new LayerError(`${this.owner}: ${(e as Error).message}`);
    }
    // Mean and scale only: crops and mirroring happen on the image here, with their own draws.
    const meanOnly = createMessage<TransformationParameter>('TransformationParameter', {
      scale: tp?.scale ?? 1,
      mean_value: [...(tp?.mean_value ?? [])],
      ...(tp && hasField(tp, 'mean_file') ? { mean_file: tp.mean_file } : {}),
    });
    this.pixels = new DataTransformer(meanOnly, phase, rng, { owner: this.owner, ...(options.readFile ? { readFile: options.readFile } : {}) });
  }

  /** The channels an image with `fileChannels` channels has once decoded (force_color / force_gray). */
  decodedChannels(fileChannels: number): number {
    return this.decodeMode === 'color' ? 3 : this.decodeMode === 'gray' ? 1 : fileChannels;
  }

  /** The transformed shape [C, H, W] of a C × height × width image (the fork's InferBlobShape). */
  inferShape(channels: number, height: number, width: number): [number, number, number] {
    const s = this.spec;
    if (!(channels > 0)) this.fail(`image has ${channels} channels; expected at least 1`);
    let [w, h] = [width, height];
    if (s.resize) [w, h] = inferNewSize(s.resize, width, height);
    if (h < s.cropH || w < s.cropW) this.fail(`crop ${s.cropH}×${s.cropW} is larger than the ${s.resize ? 'resized ' : ''}image (${h}×${w})`);
    return [channels, s.cropH || h, s.cropW || w];
  }

  /** Photometric distortion (distort_param); boxes are unchanged. */
  distort(ai: AnnotatedImage): AnnotatedImage {
    if (!this.spec.distort) return ai;
    return { ...ai, image: this.guard(() => applyDistort(ai.image, this.spec.distort!, this.rng)) };
  }

  /**
   * Zoom out (expand_param): with probability `prob`, a canvas 1 to max_expand_ratio times the
   * image's size, filled with the mean values, the image placed at random; boxes re-projected.
   */
  expand(ai: AnnotatedImage): AnnotatedImage {
    const x = this.spec.expand;
    if (!x) return ai;
    const u = f(this.rng.uniform());
    if (u > f(x.prob) || Math.abs(x.maxRatio - 1) < 1e-2) return ai;
    const ratio = f(this.rng.uniformIn(1, x.maxRatio));
    const { image, box } = expandImage(ai.image, ratio, this.spec.meanValues, this.rng);
    const groups = transformAnnotation(ai.groups, { crop: box, mirror: false, emit: this.spec.emit });
    return { image, groups, typeSet: true };
  }

  /** Crop to a sampled box (normalised, clipped to the image); boxes projected into it (the fork's CropImage). */
  crop(ai: AnnotatedImage, box: NormBox): AnnotatedImage {
    const image = cropToBox(ai.image, box);
    const groups = transformAnnotation(ai.groups, { crop: clipBox(box), mirror: false, emit: this.spec.emit });
    return { image, groups, typeSet: true };
  }

  /**
   * The fork's augmentation of one record before `transform`: distort, expand, then a crop to one
   * of the crops the batch samplers accept (drawn uniformly), when there are samplers and any crop.
   */
  augment(ai: AnnotatedImage, samplers: readonly BatchSamplerSpec[]): AnnotatedImage {
    let out = this.expand(this.distort(ai));
    if (samplers.length > 0) {
      const crops = generateBatchSamples(objectBoxes(out.groups), samplers, this.rng);
      if (crops.length > 0) out = this.crop(out, crops[this.rng.int(crops.length)]!);
    }
    return out;
  }

  /**
   * The final transform into out[offset …] (C·H·W values, planar): mirror drawn first, then
   * resize (with its interpolation draw), noise, the crop (random offsets in TRAIN, centred
   * otherwise), and (pixel − mean)·scale. Returns the boxes in the output image when
   * `annotations` is asked for.
   */
  transform(ai: AnnotatedImage, out: FloatArray, offset: number, annotations: boolean): BoxGroup[] {
    const s = this.spec;
    const mirror = s.mirror && this.rng.int(2) === 1;
    let img = ai.image;
    if (s.resize) {
      const pads = s.resize.padValue.length;
      if (pads > 1 && pads !== img.channels) this.fail(`Specify either 1 pad_value or as many as channels: ${img.channels} (got ${pads})`);
      img = this.guard(() => applyResize(img, s.resize!, this.rng));
    }
    if (s.noise) img = this.guard(() => applyNoise(img, s.noise!, this.rng));
    const ih = img.height;
    const iw = img.width;
    if (ih < s.cropH || iw < s.cropW) this.fail(`crop ${s.cropH}×${s.cropW} is larger than the image (${ih}×${iw})`);
    let hOff = 0;
    let wOff = 0;
    if (s.cropH > 0) {
      if (s.train) {
        hOff = this.rng.int(ih - s.cropH + 1);
        wOff = this.rng.int(iw - s.cropW + 1);
      } else {
        hOff = Math.floor((ih - s.cropH) / 2);
        wOff = Math.floor((iw - s.cropW) / 2);
      }
      img = cropImage(img, wOff, hOff, s.cropW, s.cropH);
    }
    this.pixels.transformImage(img, out, offset, { mirrored: mirror, hU: 0, wU: 0 });
    if (!annotations) return [];
    const crop = makeBox(wOff / iw, hOff / ih, (wOff + img.width) / iw, (hOff + img.height) / ih);
    const resize = s.resize ? { spec: s.resize, width: ai.image.width, height: ai.image.height } : undefined;
    return transformAnnotation(ai.groups, { crop, mirror, resize, emit: s.emit });
  }

  /** Image-level failures (a gray image to a colour distortion, …) as DataErrors naming the owner. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (DataError.isInstance(e) || LayerError.isInstance(e)) throw e;
      this.fail((e as Error).message);
    }
  }

  private fail(message: string): never {
    throw new DataError(`${this.owner}: ${message}`);
  }
}
