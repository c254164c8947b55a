/**
 * Every real Caffe file in the shared corpus (../shared/corpus beside the repository) parses,
 * prints and decodes. Skipped where the corpus is absent.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  decodeBlobProto,
  decodeNetParameter,
  decodeSolverState,
  encodeBinary,
  hasField,
  parseText,
  printText,
  ProtoTextError,
  registerSsdForkSchema,
  V1LayerParameter_LayerType,
  type NetParameter,
} from './index.js';

const corpus = fileURLToPath(new URL('../../../../shared/corpus', import.meta.url));

function walk(dir: string, out: string[] = []): string[] {
  // describe.skipIf still collects the suite, so an absent corpus must yield no files here.
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

const files = existsSync(corpus) ? walk(corpus).filter((f) => /[/\\](nets|weights)[/\\]/.test(f)) : [];
const rel = (f: string) => relative(corpus, f);
const typeFor = (f: string) => (basename(f).includes('solver') ? 'SolverParameter' : 'NetParameter');

/**
 * Fields no single schema can hold: the SSD fork's solver fields eval_type = 41 and
 * ap_version = 42 clash with BVLC master's layer_wise_reduce = 41 and weights = 42; the others
 * come from schemas (OpenCV's opencv_caffe, libfacedetection's fork) whose numbers are not
 * published with the files. These files must fail on exactly these fields and parse without them.
 */
const FOREIGN_FIELDS: Record<string, { fields: string[]; inType: string }> = {
  'nets/mobilenet_ssd/solver.prototxt': { fields: ['eval_type', 'ap_version'], inType: 'caffe.SolverParameter' },
  'weights/yufacedetectnet_open_v2/yufacedetectnet-open-v2.solver.prototxt': {
    fields: ['store_blobs_in_old_format'],
    inType: 'caffe.SolverParameter',
  },
  'nets/opencv_face_detector/deploy.prototxt': { fields: ['clip'], inType: 'caffe.DetectionOutputParameter' },
};

describe.skipIf(!existsSync(corpus))('shared corpus', () => {
  beforeAll(() => {
    // MobileNet-SSD, the OpenCV face detector and yufacedetectnet use the SSD fork's layers.
    registerSsdForkSchema();
  });

  const prototxts = files.filter((f) => f.endsWith('.prototxt'));

  it('has the files this suite expects', () => {
    expect(prototxts.length).toBeGreaterThan(80);
  });

  for (const f of prototxts) {
    it(`parses and round-trips ${rel(f)}`, () => {
      let text = readFileSync(f, 'utf8');
      const type = typeFor(f);
      const foreign = FOREIGN_FIELDS[rel(f)];
      if (foreign) {
        const forkFields = foreign.fields;
        let err: unknown;
        try {
          parseText(type, text, { file: rel(f) });
        } catch (e) {
          err = e;
        }
        expect(ProtoTextError.isInstance(err)).toBe(true);
        expect((err as ProtoTextError).reason).toMatch(new RegExp(`^unknown field '${forkFields[0]}' in ${foreign.inType}`));
        text = text
          .split('\n')
          .filter((line) => !forkFields.some((name) => line.trim().startsWith(`${name}:`)))
          .join('\n');
      }
      const msg = parseText(type, text, { file: rel(f) });
      const printed = printText(type, msg);
      const again = parseText(type, printed, { file: `${rel(f)} (printed)` });
      expect(again).toEqual(msg);
      expect(printText(type, again)).toBe(printed);
      // And through the binary format.
      expect(printText(type, parseText(type, printed))).toBe(printed);
      expect(encodeBinary(type, again)).toEqual(encodeBinary(type, msg));
    });
  }

  for (const f of files.filter((x) => x.endsWith('.caffemodel'))) {
    it(`decodes ${rel(f)}`, () => {
      const net = decodeNetParameter(readFileSync(f), rel(f));
      const layers = net.layer.length + net.layers.length;
      expect(layers).toBeGreaterThan(0);
      const blobs = [...net.layer, ...net.layers].flatMap((l) => l.blobs);
      expect(blobs.length).toBeGreaterThan(0);
      for (const b of blobs) {
        const dims = b.shape ? b.shape.dim : [b.num, b.channels, b.height, b.width];
        const count = dims.reduce((a, d) => a * d, 1);
        expect(b.data.length + b.double_data.length).toBe(count);
      }
      // Re-encoding gives a message that decodes to the same thing.
      expect(decodeNetParameter(encodeBinary('NetParameter', net))).toEqual(net);
    });
  }

  for (const f of files.filter((x) => x.endsWith('.solverstate'))) {
    it(`decodes ${rel(f)}`, () => {
      const st = decodeSolverState(readFileSync(f), rel(f));
      expect(st.iter).toBeGreaterThan(0);
      expect(st.history.length).toBeGreaterThan(0);
      expect(st.learned_net).toMatch(/\.caffemodel$/);
    });
  }

  for (const f of walk(corpus).filter((x) => x.endsWith('.binaryproto'))) {
    it(`decodes ${rel(f)}`, () => {
      const b = decodeBlobProto(readFileSync(f), rel(f));
      const dims = b.shape ? b.shape.dim : [b.num, b.channels, b.height, b.width];
      expect(b.data.length).toBe(dims.reduce((a, d) => a * d, 1));
    });
  }

  it('lenet_iter_10000.caffemodel has conv1/conv2/ip1/ip2 with the right weights', () => {
    const f = join(corpus, 'weights/lenet_nn_ex1/lenet_iter_10000.caffemodel');
    const net: NetParameter = decodeNetParameter(readFileSync(f), f);
    const withBlobs = net.layer.filter((l) => l.blobs.length > 0);
    expect(withBlobs.map((l) => l.name)).toEqual(['conv1', 'conv2', 'ip1', 'ip2']);
    const shapes = withBlobs.map((l) => l.blobs.map((b) => b.shape!.dim));
    expect(shapes).toEqual([
      [[20, 1, 5, 5], [20]],
      [[50, 20, 5, 5], [50]],
      [[500, 800], [500]],
      [[10, 500], [10]],
    ]);
    for (const d of shapes.flat(2)) expect(typeof d).toBe('number');
    const w = withBlobs[0]!.blobs[0]!.data;
    expect(w.length).toBe(500);
    expect(w.every((v) => Number.isFinite(v) && Math.fround(v) === v)).toBe(true);
    expect(withBlobs[0]!.convolution_param!.num_output).toBe(20);
  });

  it('cifar10_quick (V1 format) decodes into `layers`', () => {
    const f = join(corpus, 'weights/cifar10_quick_ikkichung/cifar10_quick_iter_5000.caffemodel');
    const net = decodeNetParameter(readFileSync(f), f);
    expect(net.layer).toEqual([]);
    expect(net.layers.length).toBeGreaterThan(0);
    const conv1 = net.layers.find((l) => l.name === 'conv1')!;
    expect(conv1.type).toBe(V1LayerParameter_LayerType.CONVOLUTION);
    expect(conv1.blobs).toHaveLength(2);
    const b = conv1.blobs[0]!;
    const dims = hasField(b, 'shape') ? b.shape!.dim : [b.num, b.channels, b.height, b.width];
    expect(dims).toEqual([32, 3, 5, 5]);
  });

  it('solverstate history matches the learnable blobs of its net', () => {
    const st = decodeSolverState(readFileSync(join(corpus, 'weights/lenet_nn_ex1/lenet_iter_10000.solverstate')));
    expect(st.iter).toBe(10000);
    expect(st.history.map((h) => h.data.length)).toEqual([500, 20, 25000, 50, 400000, 500, 5000, 10]);
  });

  it('mean.binaryproto is 1x3x256x256', () => {
    const b = decodeBlobProto(readFileSync(join(corpus, 'nets/age_net/mean.binaryproto')));
    const dims = b.shape ? b.shape.dim : [b.num, b.channels, b.height, b.width];
    expect(dims).toEqual([1, 3, 256, 256]);
  });

  it('the yufacedetectnet caffemodel decodes: SSD fork fields kept, mismatched wire types skipped', () => {
    // Its data layer carries varints under numbers 145-148, which BVLC uses for messages; C++
    // Caffe skips those as unknown fields, and so must we.
    const net = decodeNetParameter(readFileSync(join(corpus, 'weights/yufacedetectnet_open_v2/yufacedetectnet-open-v2.caffemodel')));
    expect(net.name).toBe('YuFaceDetectNet');
    expect(net.layer[0]!.type).toBe('AnnotatedData');
    expect(hasField(net.layer[0]!, 'parameter_param')).toBe(false);
    expect(net.layer[0]!.data_param!.source).toMatch(/lmdb/);
    const prior = net.layer.find((l) => hasField(l, 'prior_box_param'));
    expect(prior).toBeDefined();
    const p = (prior as unknown as { prior_box_param: { min_size: number[]; flip: boolean } }).prior_box_param;
    expect(p.min_size.length).toBeGreaterThan(0);
  });
});
