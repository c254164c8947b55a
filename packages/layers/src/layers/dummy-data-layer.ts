import { defaultFillerRegistry, fillBlob, type Blob, type FillerSpec } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/** An absent data_filler means constant 0, as in Caffe. */
const CONSTANT_ZERO: FillerSpec = { type: 'constant', value: 0 };

/**
 * DummyData (Caffe's DummyDataLayer): tops filled by `dummy_data_param.data_filler` (none: all
 * zeros; one: the same filler for every top; or one per top), shaped by `shape` (once, or once
 * per top) or by the legacy 4-D `num`/`channels`/`height`/`width` (each once, or once per top).
 * A constant filler fills its tops once at set-up; any other filler refills them on every
 * forward (Caffe's `refill_`), so a gaussian DummyData gives fresh values each iteration.
 * Tops keep their set-up shape; there is nothing to backpropagate.
 */
export class DummyDataLayer extends Layer {
  readonly type = 'DummyData';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, minTopBlobs: 1 };

  /** One filler for every top, or one per top. */
  private fillers: FillerSpec[] = [];
  /** refill[i]: whether forward refills the tops of filler i (false for constant fillers). */
  private refill: boolean[] = [];

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    const p = this.param.dummy_data_param;
    const numTop = top.length;
    const given = p?.data_filler ?? [];
    this.check(
      given.length === 0 || given.length === 1 || given.length === numTop,
      () => `Number of data fillers must be 0, 1 or equal to the number of tops: ${numTop}; you specified ${given.length} data fillers.`,
    );
    this.fillers = given.length === 0 ? [CONSTANT_ZERO] : [...given];
    const fillerTypes = this.fillers.map((f) => f.type ?? 'constant');
    const known = defaultFillerRegistry();
    for (const t of fillerTypes) {
      // Caffe builds its fillers here, so an unknown type fails at set-up, not at the first forward.
      this.check(known.has(t), () => `Unknown filler name: ${t} (known fillers: ${known.types().join(', ')})`);
    }
    this.refill = fillerTypes.map((t) => t !== 'constant');

    const shapes = p?.shape ?? [];
    const legacy = { num: p?.num ?? [], channels: p?.channels ?? [], height: p?.height ?? [], width: p?.width ?? [] };
    const legacyDims = Object.values(legacy).some((v) => v.length > 0);
    const once = (n: number) => n === 1 || n === numTop;
    if (legacyDims) {
      this.check(shapes.length === 0, () => 'Both shape and legacy fields were specified');
      for (const [field, values] of Object.entries(legacy)) {
        this.check(
          once(values.length),
          () => `Must specify '${field}' once, or once per top blob (${numTop}); specified ${values.length}.`,
        );
      }
    } else {
      this.check(once(shapes.length), () => `Must specify 'shape' once, or once per top blob (${numTop}); specified ${shapes.length}.`);
    }
    const pick = <T>(values: readonly T[], i: number): T => values[values.length === 1 ? 0 : i]!;
    top.forEach((t, i) => {
      const shape = legacyDims
        ? [pick(legacy.num, i), pick(legacy.channels, i), pick(legacy.height, i), pick(legacy.width, i)].map(Number)
        : pick(shapes, i).dim.map(Number);
      for (const [axis, d] of shape.entries()) {
        this.check(Number.isInteger(d) && d >= 0, () => `top ${i} dim ${axis} must be a non-negative integer (got ${d})`);
      }
      t.reshape(shape);
    });

    // Constant tops are filled here, once; the others on every forward.
    this.fillTops(top, false);
  }

  /** Tops keep the shape set up from the params (Caffe's DummyData has an empty Reshape). */
  override reshape(_bottom: Blob[], _top: Blob[]): void {}

  protected override forwardCpu(_bottom: Blob[], top: Blob[]): void {
    this.fillTops(top, true);
  }

  /** Data layers have nothing to backpropagate to. */
  protected override backwardCpu(_top: Blob[], _propagateDown: boolean[], _bottom: Blob[]): void {}

  /** Fill the tops whose filler's refill flag equals `refilling`. */
  private fillTops(top: Blob[], refilling: boolean): void {
    top.forEach((t, i) => {
      const id = this.fillers.length > 1 ? i : 0;
      if (this.refill[id] === refilling) fillBlob(t, this.fillers[id], this.rng);
    });
  }
}

export const dummyDataLayerDef: LayerDef<DummyDataLayer> = { type: 'DummyData', create: (p, ctx) => new DummyDataLayer(p, ctx) };
