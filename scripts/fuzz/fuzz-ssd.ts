/**
 * The fuzzer's SSD data targets: seeds made in the run (AnnotatedDatum records, raw and with
 * boxes; VOC XML, COCO-style JSON and txt annotation files; a LabelMap), and the readers a user's
 * files reach: convert_annoset's annotation parsers and LabelMap reading, and the AnnotatedData
 * layer's record decoding followed by its box pipeline (the fork's batch samplers, crop, expand,
 * mirror and resize on the decoded boxes and a raw image). Mutated boxes (NaN, ±∞, inverted,
 * far outside [0, 1]) must give a typed error or boxes, never an exception of another kind.
 * Also what py-faster-rcnn training reads from a user: its yml config (`caffe train --cfg`, through
 * parseFasterRcnnCfg) and a COCO instances file (`--roidb coco:…`, through parseCocoRoidb).
 */
import { Rng } from '@caffe-ts/blob';
import { CaffeError, createMessage, Phase, registerSsdForkSchema, type Datum, type TransformationParameter } from '@caffe-ts/proto';
import { annotationGroups, decodeAnnotatedRecord, encodeAnnotatedDatum } from '../../packages/io-leveldb/src/annotated-datum.js';
import { AnnotatedTransformer, planarToImage } from '../../packages/io-leveldb/src/annotated-transformer.js';
import { mapNameToLabel, parseJsonAnnotation, parseLabelMap, parseTxtAnnotation, parseXmlAnnotation } from '../../packages/io-leveldb/src/annotation-files.js';
import { batchSamplerSpecs } from '../../packages/io-leveldb/src/ssd-sampler.js';
import { applyFasterRcnnCfgList, parseFasterRcnnCfg } from '../../packages/layers-contrib/src/faster-rcnn-cfg-file.js';
import { FASTER_RCNN_CONFIG } from '../../packages/layers-contrib/src/faster-rcnn-config.js';
import { parseCocoRoidb } from '../../packages/io-leveldb/src/coco-roidb.js';
import type { Outcome, Reader, Seed } from './fuzz-core.js';

const utf8 = new TextDecoder();
const bytes = (s: string) => new TextEncoder().encode(s);

const LABEL_MAP = `item { name: "none_of_the_above" label: 0 display_name: "background" }
item { name: "cat" label: 1 display_name: "cat" }
item { name: "dog" label: 2 display_name: "dog" }
`;

const VOC_XML = `<annotation>
  <folder>VOC2007</folder>
  <filename>000001.jpg</filename>
  <size><width>353</width><height>500</height><depth>3</depth></size>
  <object><name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
    <bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox></object>
  <object><name>cat</name><bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352</xmax><ymax>498</ymax></bndbox><difficult>1</difficult></object>
</annotation>
`;

const COCO_JSON = JSON.stringify({
  image: { id: 42, file_name: 'COCO_val2014_000000000042.jpg', height: 480, width: 640 },
  annotation: [
    { id: 1, category_id: 1, iscrowd: 0, bbox: [10.5, 20, 100, 200.25] },
    { id: 2, category_id: 2, iscrowd: 1, bbox: [300, 50, 40, 60] },
  ],
});

const TXT = '1 10 20 110 220\n2 300 50 340 110\n1 0 0 639 479\n';

/** faster_rcnn_end2end.yml with a few more keys of each kind (lists, nested means, strings). */
const FRCNN_YML = `EXP_DIR: faster_rcnn_end2end
TRAIN:
  HAS_RPN: True
  IMS_PER_BATCH: 1
  BBOX_NORMALIZE_TARGETS_PRECOMPUTED: True
  RPN_POSITIVE_OVERLAP: 0.7
  SCALES: !!python/tuple [400, 500]
  BBOX_NORMALIZE_STDS: [0.1, 0.1, 0.2, 0.2]
  SNAPSHOT_INFIX: ''
  PROPOSAL_METHOD: gt
  BG_THRESH_LO: 0.0
TEST:
  HAS_RPN: True
PIXEL_MEANS: [[[102.9801, 115.9465, 122.7717]]]
RNG_SEED: 3
`;

/** A COCO instances file: two categories, two images, a crowd box, one box to clip and one to drop. */
const COCO_INSTANCES = JSON.stringify({
  categories: [{ id: 18, name: 'dog' }, { id: 1, name: 'person' }],
  images: [{ id: 42, file_name: 'COCO_val2014_000000000042.jpg', width: 640, height: 480 }, { id: 7, file_name: 'b.jpg', width: 100, height: 50 }],
  annotations: [
    { id: 1, image_id: 42, category_id: 1, bbox: [10.7, 20.2, 100.5, 50.9], area: 5000, iscrowd: 0 },
    { id: 2, image_id: 42, category_id: 18, bbox: [-5, 400, 700, 100], area: 1, iscrowd: 1 },
    { id: 3, image_id: 7, category_id: 18, bbox: [5, 5, 0, 10], area: 0, iscrowd: 0 },
  ],
});

/** An 8 × 6 raw BGR image with one cat and one dog box (the second difficult). */
function annotatedRecord(): Uint8Array {
  const h = 6, w = 8;
  const data = new Uint8Array(3 * h * w).map((_, i) => (i * 37) % 251);
  const datum = createMessage<Datum>('Datum', { channels: 3, height: h, width: w, data, label: -1 });
  return encodeAnnotatedDatum({
    datum,
    groups: [
      { group_label: 1, boxes: [{ xmin: 0.1, ymin: 0.2, xmax: 0.6, ymax: 0.9, difficult: false }] },
      { group_label: 2, boxes: [{ xmin: 0.5, ymin: 0, xmax: 1, ymax: 0.5, difficult: true }] },
    ],
  });
}

export function loadSsdSeeds(): Seed[] {
  registerSsdForkSchema();
  return [
    { name: 'generated/labelmap_voc.prototxt', kind: 'annotation', bytes: bytes(LABEL_MAP) },
    { name: 'generated/000001.xml', kind: 'annotation', bytes: bytes(VOC_XML) },
    { name: 'generated/000042.json', kind: 'annotation', bytes: bytes(COCO_JSON) },
    { name: 'generated/000007.txt', kind: 'annotation', bytes: bytes(TXT) },
    { name: 'generated/annotated-datum', kind: 'anno-datum', bytes: annotatedRecord() },
    { name: 'generated/faster_rcnn_end2end.yml', kind: 'frcnn-cfg', bytes: bytes(FRCNN_YML) },
    { name: 'generated/instances_val2014.json', kind: 'coco-instances', bytes: bytes(COCO_INSTANCES) },
  ];
}

function attempt(fn: () => unknown): Outcome {
  try {
    fn();
    return { status: 'ok' };
  } catch (e) {
    if (CaffeError.isInstance(e)) return { status: 'typed', errorClass: (e as Error).name };
    return { status: 'crash', error: e };
  }
}

const NAMES = mapNameToLabel(parseLabelMap(LABEL_MAP), true);
// COCO's label maps name classes by their category ids.
const COCO_NAMES = mapNameToLabel(parseLabelMap('item { name: "0" label: 0 } item { name: "1" label: 1 } item { name: "2" label: 2 }'), true);

/** The fork's MobileNet-SSD training augmentations, scaled down to the seed image. */
const TRANSFORM = (): TransformationParameter =>
  createMessage<TransformationParameter>('TransformationParameter', {
    mirror: true,
    mean_value: [127.5, 127.5, 127.5],
    resize_param: { prob: 1, resize_mode: 'WARP', height: 5, width: 7, interp_mode: ['LINEAR', 'NEAREST'] },
    emit_constraint: { emit_type: 'CENTER' },
    distort_param: { brightness_prob: 0.5, brightness_delta: 32, contrast_prob: 0.5, contrast_lower: 0.5, contrast_upper: 1.5, hue_prob: 0.5, hue_delta: 18, saturation_prob: 0.5, saturation_lower: 0.5, saturation_upper: 1.5 },
    expand_param: { prob: 0.5, max_expand_ratio: 2 },
  });

const SAMPLERS = batchSamplerSpecs([
  createMessage('BatchSampler', { max_sample: 1, max_trials: 1 }),
  createMessage('BatchSampler', { sampler: { min_scale: 0.3, max_scale: 1, min_aspect_ratio: 0.5, max_aspect_ratio: 2 }, sample_constraint: { min_jaccard_overlap: 0.5 }, max_sample: 1, max_trials: 20 }),
]);

export const SSD_READERS: readonly Reader[] = [
  {
    name: 'parseCocoRoidb',
    run: (input) => (input.kind === 'coco-instances' ? attempt(() => parseCocoRoidb(utf8.decode(input.bytes), input.seed, 'images')) : undefined),
  },
  {
    name: 'parseFasterRcnnCfg',
    run: (input) => (input.kind === 'frcnn-cfg' ? attempt(() => parseFasterRcnnCfg(utf8.decode(input.bytes), input.seed)) : undefined),
  },
  {
    // The same text as train_net.py's --set words: 'KEY: VALUE' lines become KEY VALUE pairs.
    name: 'applyFasterRcnnCfgList',
    run: (input) =>
      input.kind === 'frcnn-cfg'
        ? attempt(() => applyFasterRcnnCfgList(FASTER_RCNN_CONFIG, utf8.decode(input.bytes).split('\n').flatMap((l) => l.trim().split(/:\s*/).slice(0, 2)).filter((w) => w !== '')))
        : undefined,
  },
  {
    name: 'parseLabelMap',
    run: (input) => (input.kind === 'annotation' ? attempt(() => mapNameToLabel(parseLabelMap(utf8.decode(input.bytes), input.seed), true, input.seed)) : undefined),
  },
  {
    name: 'parseXmlAnnotation',
    run: (input) => (input.kind === 'annotation' ? attempt(() => parseXmlAnnotation(utf8.decode(input.bytes), input.seed, 500, 353, NAMES)) : undefined),
  },
  {
    name: 'parseJsonAnnotation',
    run: (input) => (input.kind === 'annotation' ? attempt(() => parseJsonAnnotation(utf8.decode(input.bytes), input.seed, 480, 640, COCO_NAMES)) : undefined),
  },
  {
    name: 'parseTxtAnnotation',
    run: (input) => (input.kind === 'annotation' ? attempt(() => parseTxtAnnotation(utf8.decode(input.bytes), input.seed, 480, 640)) : undefined),
  },
  {
    name: 'AnnotatedDatum → samplers and transform',
    run(input) {
      if (input.kind !== 'anno-datum') return undefined;
      return attempt(() => {
        const record = decodeAnnotatedRecord({ key: '00000000', value: input.bytes }, 'fuzzed AnnotatedData source');
        const d = record.datum;
        // Only small raw images go through the pixel steps (a mutated size is refused by them, or too big to try).
        if (!d || d.encoded || d.channels !== 3 || d.height * d.width > 4096 || d.data.length !== 3 * d.height * d.width) return;
        const transformer = new AnnotatedTransformer(TRANSFORM(), Phase.TRAIN, new Rng(input.index), { owner: 'fuzzed AnnotatedData layer' });
        const image = { image: planarToImage(3, d.height, d.width, d.data), groups: annotationGroups(record), typeSet: true };
        transformer.transform(transformer.augment(image, SAMPLERS), new Float32Array(3 * 5 * 7), 0, true);
      });
    },
  },
];
