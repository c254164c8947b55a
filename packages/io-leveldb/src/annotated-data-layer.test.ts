import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Blob, Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { LayerError, LayerRegistry } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { createMessage, encodeDatum, parseNetParameter, Phase, registerSsdForkSchema, type Datum, type LayerParameter } from '@caffe-ts/proto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AnnotatedDataLayer, BBOX_LABEL_WIDTH } from './annotated-data-layer.js';
import { writeAnnotatedDatumDb, type AnnotatedDatumInit } from './annotated-datum.js';
import { AnnotatedTransformer, transformAnnotation } from './annotated-transformer.js';
import { registerDataLayers } from './data-layer.js';
import { closeDataSources, primeDataLayer } from './data-sources.js';
import { openDatumDb, type DbBackend } from './datum-db.js';
import { DataError } from './errors.js';
import { encodeImage, type PixelImage } from './image-io.js';
import { EMIT_CENTER, EMIT_MIN_OVERLAP, makeBox, type BoxGroup } from './ssd-bbox.js';

let dir: string;
let lines: string[];
let prevSink: LogSink;

beforeAll(async () => {
  registerSsdForkSchema();
  dir = await mkdtemp(join(tmpdir(), 'caffe-ts-annodata-'));
});
afterAll(async () => {
  await closeDataSources();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  lines = [];
  prevSink = setLogSink((l) => lines.push(l));
});
afterEach(async () => {
  setLogSink(prevSink);
  await closeDataSources();
});

// The fork's test_annotated_data_layer.cpp fixture: 6 raw 2×10×10 records; pixel j of every image
// is j; record i has i groups, group g has g boxes, box a of group g is
// [0.1a, 0.1a, min(0.1a + 0.2, 1), min(0.1a + 0.2, 1)] with difficult = a % 2 and instance_id a.
const NUM = 6;
const C = 2;
const H = 10;
const W = 10;
function forkRecord(i: number, rich: boolean): AnnotatedDatumInit {
  const data = Uint8Array.from({ length: C * H * W }, (_, j) => j);
  const datum = rich ? { channels: C, height: H, width: W, data } : { channels: C, height: H, width: W, data, label: i };
  if (!rich) return { datum, type: null };
  const groups = Array.from({ length: i }, (_, g) => ({
    group_label: g,
    boxes: Array.from({ length: g }, (_, a) => {
      const lo = a * 0.1;
      const hi = Math.min(a * 0.1 + 0.2, 1);
      return { xmin: lo, ymin: lo, xmax: hi, ymax: hi, difficult: a % 2 === 1, instance_id: a };
    }),
  }));
  return { datum, groups };
}

async function writeFixture(name: string, backend: DbBackend, records: Array<readonly [string, AnnotatedDatumInit]>): Promise<string> {
  const path = join(dir, name);
  await writeAnnotatedDatumDb(path, records, { backend });
  return path;
}

function layerParam(props: Record<string, unknown>): LayerParameter {
  return createMessage<LayerParameter>('LayerParameter', { name: 'data', type: 'AnnotatedData', top: ['data', 'label'], ...props });
}

async function build(param: LayerParameter, options: { phase?: Phase; rng?: Rng; tops?: number } = {}) {
  await primeDataLayer(param);
  const layer = new AnnotatedDataLayer(param, { phase: options.phase ?? Phase.TRAIN, rng: options.rng ?? new Rng(1701) });
  const top = Array.from({ length: options.tops ?? 2 }, () => new Blob());
  layer.setUp([], top);
  return { layer, top };
}

async function step(layer: AnnotatedDataLayer, top: Blob[]): Promise<void> {
  await layer.prepare();
  layer.forward([], top);
}

const rowsOf = (label: Blob): number[][] => {
  const d = [...label.cpuData()];
  return Array.from({ length: d.length / BBOX_LABEL_WIDTH }, (_, r) => d.slice(r * BBOX_LABEL_WIDTH, (r + 1) * BBOX_LABEL_WIDTH));
};

describe('AnnotatedData: the fork test fixture', () => {
  it.each(['leveldb', 'lmdb'] as const)('reads boxes into 1×1×N×8 rows and scaled pixels (%s)', async (backend) => {
    const src = await writeFixture(`fork_${backend}`, backend, Array.from({ length: NUM }, (_, i) => [String(i), forkRecord(i, true)] as const));
    const { layer, top } = await build(layerParam({ data_param: { source: src, batch_size: NUM, backend: backend === 'lmdb' ? 1 : 0 }, transform_param: { scale: 3 } }));
    expect(top[0]!.shape).toEqual([NUM, C, H, W]);
    expect(top[1]!.shape).toEqual([1, 1, 1, 8]); // the first record has no box: at least one row
    for (let iter = 0; iter < 3; iter++) {
      await step(layer, top);
      // Σ over records i of Σ_{g<i} g = 0 + 0 + 1 + 3 + 6 + 10
      expect(top[1]!.shape).toEqual([1, 1, 20, 8]);
      const want: number[][] = [];
      for (let i = 0; i < NUM; i++) {
        for (let g = 0; g < i; g++) {
          for (let a = 0; a < g; a++) {
            const lo = Math.fround(a * 0.1);
            const hi = Math.fround(Math.min(a * 0.1 + 0.2, 1));
            want.push([i, g, a, lo, lo, hi, hi, a % 2]);
          }
        }
      }
      expect(rowsOf(top[1]!)).toEqual(want);
      const data = top[0]!.cpuData();
      for (let i = 0; i < NUM; i++) for (let j = 0; j < C * H * W; j += 37) expect(data[i * C * H * W + j]).toBe(3 * j);
    }
    await layer.close();
  });

  it('without annotation types the label top holds the Datum labels, batch_size × 1 × 1 × 1', async () => {
    const src = await writeFixture('plain_leveldb', 'leveldb', Array.from({ length: NUM }, (_, i) => [String(i), forkRecord(i, false)] as const));
    const { layer, top } = await build(layerParam({ data_param: { source: src, batch_size: 4 } }));
    expect(top[1]!.shape).toEqual([4, 1, 1, 1]);
    await step(layer, top);
    expect([...top[1]!.cpuData()]).toEqual([0, 1, 2, 3]);
    await step(layer, top);
    expect([...top[1]!.cpuData()]).toEqual([4, 5, 0, 1]);
    await layer.close();
  });

  it('varying sizes with batch_size 1 (TEST): one row of −1 for an image without boxes', async () => {
    const records = Array.from({ length: 4 }, (_, i) => {
      const h = (i % 2) + 1;
      const w = (i % 4) + 1;
      const data = Uint8Array.from({ length: C * h * w }, (_, j) => j);
      const rec = forkRecord(i, true);
      return [String(i), { ...rec, datum: { channels: C, height: h, width: w, data } }] as const;
    });
    const src = await writeFixture('reshape_lmdb', 'lmdb', records);
    const { layer, top } = await build(layerParam({ data_param: { source: src, batch_size: 1, backend: 1 } }), { phase: Phase.TEST });
    for (let iter = 0; iter < 3; iter++) {
      await step(layer, top);
      expect(top[0]!.shape).toEqual([1, C, (iter % 2) + 1, (iter % 4) + 1]);
      if (iter <= 1) {
        expect(top[1]!.shape).toEqual([1, 1, 1, 8]);
        expect([...top[1]!.cpuData()]).toEqual([-1, -1, -1, -1, -1, -1, -1, -1]);
      } else {
        expect(rowsOf(top[1]!)).toEqual([[0, 1, 0, 0, 0, Math.fround(0.2), Math.fround(0.2), 0]]);
      }
      const n = top[0]!.count();
      expect([...top[0]!.cpuData()]).toEqual(Array.from({ length: n }, (_, j) => j));
    }
    await layer.close();
  });
});

describe('AnnotatedData: label layout and annotation types', () => {
  const img = (v: number) => ({ channels: 1, height: 4, width: 4, data: new Uint8Array(16).fill(v) });
  const RECORDS: Array<readonly [string, AnnotatedDatumInit]> = [
    ['a', { datum: img(1), groups: [] }],
    ['b', { datum: img(2), groups: [{ group_label: 3, boxes: [{ xmin: 0.1, ymin: 0.2, xmax: 0.5, ymax: 0.6 }] }] }],
    [
      'c',
      {
        datum: img(3),
        groups: [
          { group_label: 1, boxes: [{ xmin: 0, ymin: 0, xmax: 0.25, ymax: 0.5, difficult: true }, { xmin: 0.5, ymin: 0.5, xmax: 1, ymax: 1, instance_id: 7 }] },
          { group_label: 5, boxes: [{ xmin: 0.75, ymin: 0, xmax: 1, ymax: 0.25 }] },
        ],
      },
    ],
  ];
  const f = Math.fround;

  it('one row per box across the batch, in item then group order; items without boxes add none', async () => {
    const src = await writeFixture('layout_leveldb', 'leveldb', RECORDS);
    const { layer, top } = await build(layerParam({ data_param: { source: src, batch_size: 3 } }));
    await step(layer, top);
    expect(top[1]!.shape).toEqual([1, 1, 4, 8]);
    expect(rowsOf(top[1]!)).toEqual([
      [1, 3, 0, f(0.1), f(0.2), f(0.5), f(0.6), 0],
      [2, 1, 0, 0, 0, 0.25, 0.5, 1],
      [2, 1, 7, 0.5, 0.5, 1, 1, 0],
      [2, 5, 0, 0.75, 0, 1, 0.25, 0],
    ]);
    expect([...top[0]!.cpuData()].filter((_, i) => i % 16 === 0)).toEqual([1, 2, 3]);
    await layer.close();
  });

  it('mirror flips the boxes of exactly the mirrored images', async () => {
    const src = await writeFixture('mirror_leveldb', 'leveldb', [
      ['m', { datum: { channels: 1, height: 1, width: 4, data: Uint8Array.of(10, 20, 30, 40) }, groups: [{ group_label: 2, boxes: [{ xmin: 0, ymin: 0.2, xmax: 0.25, ymax: 0.8 }] }] }],
    ]);
    const { layer, top } = await build(layerParam({ data_param: { source: src, batch_size: 1 }, transform_param: { mirror: true } }));
    const seen = new Set<boolean>();
    for (let k = 0; k < 12; k++) {
      await step(layer, top);
      const mirrored = top[0]!.cpuData()[0] === 40;
      seen.add(mirrored);
      expect([...top[0]!.cpuData()]).toEqual(mirrored ? [40, 30, 20, 10] : [10, 20, 30, 40]);
      expect(rowsOf(top[1]!)).toEqual([[0, 2, 0, mirrored ? 0.75 : 0, f(0.2), mirrored ? 1 : 0.25, f(0.8), 0]]);
    }
    expect(seen).toEqual(new Set([true, false]));
    await layer.close();
  });

  it('anno_type overrides the stored type, but every record must store one (the fork CHECKs has_type)', async () => {
    const src = await writeFixture('notype_leveldb', 'leveldb', RECORDS.map(([k, r]) => [k, { ...r, type: null }] as const));
    // Without anno_type: plain labels (the Datums have none: an error naming the record).
    const plain = await build(layerParam({ data_param: { source: src, batch_size: 3 } }));
    expect(plain.top[1]!.shape).toEqual([3, 1, 1, 1]);
    await expect(plain.layer.prepare()).rejects.toThrow(`AnnotatedData layer 'data', source '${src}': record 'a': Cannot find any label`);
    await plain.layer.close();
    const over = await build(layerParam({ data_param: { source: src, batch_size: 3 }, annotated_data_param: { anno_type: 'BBOX' } }));
    expect(over.top[1]!.shape).toEqual([1, 1, 1, 8]);
    expect(lines.some((l) => l.includes('type stored in AnnotatedDatum is shadowed.'))).toBe(true);
    const err = await over.layer.prepare().catch((e: unknown) => e);
    expect(DataError.isInstance(err)).toBe(true);
    expect((err as Error).message).toBe(
      `AnnotatedData layer 'data', source '${src}': record 'a': Some datum misses AnnotationType: the record has no type, and the label top expects boxes`,
    );
    await over.layer.close();
  });

  it('with one top only the data is produced', async () => {
    const src = await writeFixture('onetop_leveldb', 'leveldb', RECORDS);
    const { layer, top } = await build(layerParam({ top: ['data'], data_param: { source: src, batch_size: 2 } }), { tops: 1 });
    await step(layer, top);
    expect(top[0]!.shape).toEqual([2, 1, 4, 4]);
    await layer.close();
  });
});

describe('AnnotatedData: boxes through the transforms', () => {
  const groups: BoxGroup[] = [
    { groupLabel: 1, annotations: [{ instanceId: 0, box: makeBox(0.3, 0.3, 0.8, 0.8) }] },
    { groupLabel: 2, annotations: [{ instanceId: 4, box: makeBox(0.1, 0.1, 0.6, 0.6) }] },
  ];
  const crop = makeBox(0, 0, 0.5, 0.5);
  const corners = (gs: BoxGroup[]) => gs.map((g) => [g.groupLabel, ...g.annotations.flatMap((a) => [a.instanceId, a.box.xmin, a.box.ymin, a.box.xmax, a.box.ymax])]);

  it('crop with emit CENTER drops the box whose centre is outside (and its emptied group); MIN_OVERLAP keeps it', () => {
    // Box 1 projected into [0, 0, 0.5, 0.5]: [0.6, 0.6, 1, 1] (clipped); box 2: [0.2, 0.2, 1, 1].
    const centre = transformAnnotation(groups, { crop, mirror: false, emit: { type: EMIT_CENTER, overlap: 0 } });
    expect(corners(centre)).toEqual([[2, 4, Math.fround(0.2), Math.fround(0.2), 1, 1]]);
    const overlap = transformAnnotation(groups, { crop, mirror: false, emit: { type: EMIT_MIN_OVERLAP, overlap: 0.1 } });
    expect(overlap.map((g) => g.groupLabel)).toEqual([1, 2]);
    expect(overlap[0]!.annotations[0]!.box.xmin).toBeCloseTo(0.6, 6);
    expect(overlap[0]!.annotations[0]!.box.xmax).toBe(1);
    expect(transformAnnotation(groups, { crop, mirror: false, emit: { type: EMIT_MIN_OVERLAP, overlap: 0.2 } }).map((g) => g.groupLabel)).toEqual([2]);
    // No emit constraint: every box with area left in the crop.
    expect(transformAnnotation(groups, { crop, mirror: false, emit: null }).length).toBe(2);
  });

  it('mirror maps x to 1 − x', () => {
    const m = transformAnnotation([{ groupLabel: 0, annotations: [{ instanceId: 0, box: makeBox(0.1, 0.2, 0.3, 0.4) }] }], { crop: makeBox(0, 0, 1, 1), mirror: true, emit: null });
    const b = m[0]!.annotations[0]!.box;
    expect([b.xmin, b.ymin, b.xmax, b.ymax].map((v) => +v.toFixed(6))).toEqual([0.7, 0.2, 0.9, 0.4]);
  });

  it('expand re-projects boxes onto the canvas', () => {
    const tp = createMessage<LayerParameter['transform_param'] & object>('TransformationParameter', { mean_value: [5], expand_param: { prob: 1, max_expand_ratio: 3 } });
    // Draws: u = 0 ≤ prob; ratio = 1 + 2·0.5 = 2; offsets ⌊0.5·10⌋ = 5 rows, ⌊0.5·20⌋ = 10 columns.
    const draws = [0, 0.5, 0.5, 0.5];
    const rng = { uniform: () => draws.shift()!, uniformIn: (a: number, b: number) => a + (b - a) * draws.shift()!, int: () => 0, fork: () => rng } as unknown as Rng;
    const t = new AnnotatedTransformer(tp, Phase.TRAIN, rng);
    const image: PixelImage = { height: 10, width: 20, channels: 1, data: new Uint8Array(200).fill(200) };
    const out = t.expand({ image, typeSet: false, groups: [{ groupLabel: 9, annotations: [{ instanceId: 0, box: makeBox(0.5, 0.2, 1, 0.6) }] }] });
    expect([out.image.height, out.image.width]).toEqual([20, 40]);
    expect(out.typeSet).toBe(true);
    expect(out.image.data[0]).toBe(5);
    expect(out.image.data[5 * 40 + 10]).toBe(200);
    // The canvas is [−0.5, −0.5, 1.5, 1.5] in image coordinates: x (0.5 + 0.5)/2, (1 + 0.5)/2; y (0.2 + 0.5)/2, (0.6 + 0.5)/2.
    const b = out.groups[0]!.annotations[0]!.box;
    [0.5, 0.35, 0.75, 0.55].forEach((v, i) => expect([b.xmin, b.ymin, b.xmax, b.ymax][i]).toBeCloseTo(v, 6));
  });

  it('FIT_LARGE_SIZE_AND_PAD: the image is letterboxed and the boxes land in the band', async () => {
    const data = new Uint8Array(10 * 20 * 3).fill(50);
    const src = await writeFixture('fitlarge_leveldb', 'leveldb', [
      ['x', { datum: { channels: 3, height: 10, width: 20, data }, groups: [{ group_label: 1, boxes: [{ xmin: 0, ymin: 0, xmax: 1, ymax: 1 }] }] }],
    ]);
    const { layer, top } = await build(
      layerParam({
        data_param: { source: src, batch_size: 1 },
        transform_param: { resize_param: { resize_mode: 'FIT_LARGE_SIZE_AND_PAD', height: 30, width: 30, pad_value: [7] } },
      }),
    );
    expect(top[0]!.shape).toEqual([1, 3, 30, 30]);
    await step(layer, top);
    const d = top[0]!.cpuData();
    // 15 content rows (7..21) between 7 pad rows above and 8 below.
    expect([d[6 * 30], d[7 * 30], d[21 * 30], d[22 * 30]]).toEqual([7, 50, 50, 7]);
    expect(rowsOf(top[1]!)).toEqual([[0, 1, 0, 0, 0.25, 1, 0.75, 0]]);
    await layer.close();
  });
});

describe('AnnotatedData: errors', () => {
  it('a database of plain Datums is refused at priming, naming the record', async () => {
    const path = join(dir, 'plain_datum_leveldb');
    const db = await openDatumDb(path, { mode: 'new' });
    const w = db.writer();
    await w.put('00000000', encodeDatum(createMessage<Datum>('Datum', { channels: 1, height: 2, width: 2, data: new Uint8Array(4), label: 1 })));
    await w.close();
    await db.close();
    const err = await primeDataLayer(layerParam({ data_param: { source: path, batch_size: 1 } })).catch((e: unknown) => e);
    expect(DataError.isInstance(err)).toBe(true);
    expect((err as Error).message).toBe(
      `AnnotatedData layer 'data', source '${path}': record '00000000' is not an AnnotatedDatum: expected a datum (field 1) with annotation groups, found none: it is a plain Datum (read it with a Data layer)`,
    );
  });

  it('refuses bad configurations at set-up with LayerErrors naming the layer and the rule', async () => {
    const src = await writeFixture('cfg_leveldb', 'leveldb', [['0', forkRecord(1, true)]]);
    const setUp = async (props: Record<string, unknown>) => {
      const err = await build(layerParam({ data_param: { source: src, batch_size: 2 }, ...props })).then(
        (b) => b.layer.close(),
        (e: unknown) => e,
      );
      expect(LayerError.isInstance(err)).toBe(true);
      return (err as Error).message;
    };
    expect(await setUp({ annotated_data_param: { batch_sampler: [{ sampler: { min_scale: 0.8, max_scale: 0.5 } }] } })).toBe(
      "AnnotatedData layer 'data': annotated_data_param.batch_sampler[0]: sampler min_scale 0.800000011920929 is larger than max_scale 0.5",
    );
    expect(await setUp({ transform_param: { noise_param: { gauss_blur: true } } })).toBe(
      "AnnotatedData layer 'data': noise_param gauss_blur is not supported (it needs OpenCV's own GaussianBlur); remove it from transform_param",
    );
    expect(await setUp({ transform_param: { crop_h: 4 } })).toBe("AnnotatedData layer 'data': crop_h and crop_w must be set together (got crop_h 4, crop_w 0)");
    expect(await setUp({ transform_param: { resize_param: { resize_mode: 'FIT_SMALL_SIZE', height: 4, width: 4 } } })).toBe(
      "AnnotatedData layer 'data': Only support batch size of 1 for FIT_SMALL_SIZE (got batch_size 2)",
    );
    expect(await setUp({ transform_param: { expand_param: { max_expand_ratio: 1 } } })).toBe(
      "AnnotatedData layer 'data': expand_param max_expand_ratio must be greater than 1 (got 1)",
    );
    expect(await setUp({ transform_param: { distort_param: { contrast_lower: 1.5, contrast_upper: 0.5 } } })).toBe(
      "AnnotatedData layer 'data': distort_param contrast_upper 0.5 is below contrast_lower 1.5",
    );
  });

  it('images of different sizes without a resize policy are a DataError naming both records', async () => {
    const src = await writeFixture('sizes_leveldb', 'leveldb', [
      ['0', { datum: { channels: 1, height: 2, width: 2, data: new Uint8Array(4) }, groups: [] }],
      ['1', { datum: { channels: 1, height: 3, width: 2, data: new Uint8Array(6) }, groups: [] }],
    ]);
    const { layer } = await build(layerParam({ data_param: { source: src, batch_size: 2 } }));
    await expect(layer.prepare()).rejects.toThrow(
      `AnnotatedData layer 'data', source '${src}': record '1': image size mismatch: record '1' transforms to 1×3×2, expected 1×2×2 like record '0'`,
    );
    await layer.close();
  });
});

describe('AnnotatedData: sharding and nets', () => {
  it('shards records across data-parallel replicas as the Data layer (TRAIN); TEST reads all', async () => {
    const src = await writeFixture('shard_lmdb', 'lmdb', Array.from({ length: NUM }, (_, i) => [String(i), forkRecord(i, false)] as const));
    const registry = new LayerRegistry();
    registerDataLayers(registry);
    const param = createMessage('NetParameter', {
      layer: [{ name: 'data', type: 'AnnotatedData', top: ['data', 'label'], data_param: { source: src, backend: 1, batch_size: 3 } }],
    }) as Parameters<typeof Net.create>[0];
    const read = async (shard: { index: number; count: number }, phase = Phase.TRAIN) => {
      const net = await Net.create(param, { registry, phase, log: false, shard });
      await net.prepare();
      net.forward();
      const out = [...net.blob('label').cpuData()];
      await net.close();
      return out;
    };
    expect(await read({ index: 0, count: 2 })).toEqual([0, 2, 4]);
    expect(await read({ index: 1, count: 2 })).toEqual([1, 3, 5]);
    expect(await read({ index: 1, count: 2 }, Phase.TEST)).toEqual([0, 1, 2]);
  });

  // The data layer of MobileNet-SSD's training net (chuanqi305/MobileNet-SSD voc/MobileNetSSD_train.prototxt),
  // as written there except the source (the generated LMDB) and the resize (300 → 64, for speed).
  const MOBILENET_SSD_TRAIN_DATA = (source: string) => `
name: "MobileNet-SSD"
layer {
  name: "data"
  type: "AnnotatedData"
  top: "data"
  top: "label"
  include {
    phase: TRAIN
  }
  transform_param {
    scale: 0.007843
    mirror: true
    mean_value: 127.5
    mean_value: 127.5
    mean_value: 127.5
    resize_param {
      prob: 1.0
      resize_mode: WARP
      height: 64
      width: 64
      interp_mode: LINEAR
      interp_mode: AREA
      interp_mode: NEAREST
      interp_mode: CUBIC
      interp_mode: LANCZOS4
    }
    emit_constraint {
      emit_type: CENTER
    }
    distort_param {
      brightness_prob: 0.5
      brightness_delta: 32.0
      contrast_prob: 0.5
      contrast_lower: 0.5
      contrast_upper: 1.5
      hue_prob: 0.5
      hue_delta: 18.0
      saturation_prob: 0.5
      saturation_lower: 0.5
      saturation_upper: 1.5
      random_order_prob: 0.0
    }
    expand_param {
      prob: 0.5
      max_expand_ratio: 4.0
    }
  }
  data_param {
    source: "${source}"
    batch_size: 24
    backend: LMDB
  }
  annotated_data_param {
    batch_sampler {
      max_sample: 1
      max_trials: 1
    }
    batch_sampler {
      sampler { min_scale: 0.3 max_scale: 1.0 min_aspect_ratio: 0.5 max_aspect_ratio: 2.0 }
      sample_constraint { min_jaccard_overlap: 0.1 }
      max_sample: 1
      max_trials: 50
    }
    batch_sampler {
      sampler { min_scale: 0.3 max_scale: 1.0 min_aspect_ratio: 0.5 max_aspect_ratio: 2.0 }
      sample_constraint { min_jaccard_overlap: 0.3 }
      max_sample: 1
      max_trials: 50
    }
    batch_sampler {
      sampler { min_scale: 0.3 max_scale: 1.0 min_aspect_ratio: 0.5 max_aspect_ratio: 2.0 }
      sample_constraint { min_jaccard_overlap: 0.5 }
      max_sample: 1
      max_trials: 50
    }
    batch_sampler {
      sampler { min_scale: 0.3 max_scale: 1.0 min_aspect_ratio: 0.5 max_aspect_ratio: 2.0 }
      sample_constraint { min_jaccard_overlap: 0.7 }
      max_sample: 1
      max_trials: 50
    }
    batch_sampler {
      sampler { min_scale: 0.3 max_scale: 1.0 min_aspect_ratio: 0.5 max_aspect_ratio: 2.0 }
      sample_constraint { min_jaccard_overlap: 0.9 }
      max_sample: 1
      max_trials: 50
    }
    batch_sampler {
      sampler { min_scale: 0.3 max_scale: 1.0 min_aspect_ratio: 0.5 max_aspect_ratio: 2.0 }
      sample_constraint { max_jaccard_overlap: 1.0 }
      max_sample: 1
      max_trials: 50
    }
    label_map_file: "labelmap.prototxt"
  }
}`;

  // The TEST net's data layer (voc/MobileNetSSD_test.prototxt), resize 300 → 48.
  const MOBILENET_SSD_TEST_DATA = (source: string) => `
layer {
  name: "data"
  type: "AnnotatedData"
  top: "data"
  top: "label"
  include { phase: TEST }
  transform_param {
    scale: 0.007843
    mean_value: 127.5
    mean_value: 127.5
    mean_value: 127.5
    resize_param { prob: 1.0 resize_mode: WARP height: 48 width: 56 interp_mode: LINEAR }
  }
  data_param { source: "${source}" batch_size: 8 backend: LMDB }
  annotated_data_param {
    batch_sampler { }
    label_map_file: "labelmap.prototxt"
  }
}`;

  /** Encoded PNG records: image k is a (30 + 7k) × (40 + 5k) colour pattern with k % 3 boxes in classes 1..20. */
  async function pngRecords(count: number): Promise<Array<readonly [string, AnnotatedDatumInit]>> {
    const rng = new Rng(42);
    const out: Array<readonly [string, AnnotatedDatumInit]> = [];
    for (let k = 0; k < count; k++) {
      const height = 30 + 7 * k;
      const width = 40 + 5 * k;
      const data = new Uint8Array(height * width * 3);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7 + k * 31 + (i % 3) * 50) & 255;
      const png = await encodeImage({ height, width, channels: 3, data }, 'png');
      const boxes = Array.from({ length: k % 3 }, () => {
        const x = rng.uniformIn(0, 0.5);
        const y = rng.uniformIn(0, 0.5);
        return { xmin: x, ymin: y, xmax: x + rng.uniformIn(0.2, 0.5), ymax: y + rng.uniformIn(0.2, 0.5), difficult: rng.int(2) === 1 };
      });
      const groups = boxes.map((b, i) => ({ group_label: 1 + ((k + i) % 20), boxes: [b] }));
      out.push([`${String(k).padStart(8, '0')}_img${k}.png`, { datum: { data: png, encoded: true, label: -1 }, groups }]);
    }
    return out;
  }

  it("runs MobileNet-SSD's TRAIN data layer config on an LMDB of encoded PNGs", async () => {
    const records = await pngRecords(7);
    const src = await writeFixture('mobilenet_ssd_lmdb', 'lmdb', records);
    const registry = new LayerRegistry();
    registerDataLayers(registry); // registers the SSD schema before the prototxt is parsed
    const net = await Net.create(parseNetParameter(MOBILENET_SSD_TRAIN_DATA(src)), { registry, phase: Phase.TRAIN, log: false, rng: new Rng(7) });
    expect(net.blob('data').shape).toEqual([24, 3, 64, 64]);
    const lo = (0 - 127.5) * Math.fround(0.007843);
    const hi = (255 - 127.5) * Math.fround(0.007843);
    let total = 0;
    for (let b = 0; b < 3; b++) {
      await net.prepare();
      net.forward();
      expect(net.blob('data').shape).toEqual([24, 3, 64, 64]);
      let min = Infinity;
      let max = -Infinity;
      for (const v of net.blob('data').cpuData()) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      expect(min).toBeGreaterThanOrEqual(lo - 1e-5);
      expect(max).toBeLessThanOrEqual(hi + 1e-5);
      const label = net.blob('label');
      expect(label.shape.slice(0, 2)).toEqual([1, 1]);
      expect(label.shape[3]).toBe(8);
      const rows = rowsOf(label);
      if (rows.length === 1 && rows[0]![0] === -1) continue;
      total += rows.length;
      let prevItem = 0;
      for (const [item, group, instance, x0, y0, x1, y1, diff] of rows as number[][]) {
        expect(Number.isInteger(item) && item! >= prevItem && item! < 24).toBe(true);
        prevItem = item!;
        expect(group).toBeGreaterThanOrEqual(1);
        expect(group).toBeLessThanOrEqual(20);
        expect(instance).toBe(0);
        for (const c of [x0!, y0!, x1!, y1!]) expect(c >= 0 && c <= 1).toBe(true);
        expect(x0!).toBeLessThan(x1!);
        expect(y0!).toBeLessThan(y1!);
        expect([0, 1]).toContain(diff);
      }
    }
    // 24 images per batch, 2 of 3 of them with boxes: some must survive the augmentation.
    expect(total).toBeGreaterThan(10);
    await net.close();
  });

  it("runs MobileNet-SSD's TEST data layer config: WARP keeps every box where it was", async () => {
    const records = await pngRecords(5);
    const src = await writeFixture('mobilenet_ssd_test_lmdb', 'lmdb', records);
    const registry = new LayerRegistry();
    registerDataLayers(registry);
    const net = await Net.create(parseNetParameter(MOBILENET_SSD_TEST_DATA(src)), { registry, phase: Phase.TEST, log: false });
    await net.prepare();
    net.forward();
    expect(net.blob('data').shape).toEqual([8, 3, 48, 56]);
    // Batch items 0..7 read records 0,1,2,3,4,0,1,2.
    const want: number[][] = [];
    for (let item = 0; item < 8; item++) {
      const groups = records[item % 5]![1].groups ?? [];
      for (const g of groups) {
        for (const b of g.boxes) {
          const c = [b.xmin, b.ymin, Math.min(b.xmax, 1), Math.min(b.ymax, 1)].map(Math.fround);
          want.push([item, g.group_label, 0, ...c, b.difficult ? 1 : 0]);
        }
      }
    }
    const got = rowsOf(net.blob('label'));
    expect(got.length).toBe(want.length);
    got.forEach((row, r) => row.forEach((v, i) => expect(v).toBeCloseTo(want[r]![i]!, 5)));
    await net.close();
  });
});
