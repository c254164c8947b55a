import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readImage, resizeImage, type PixelImage } from '@caffe-ts/io-leveldb';
import { registerContribLayers } from '@caffe-ts/layers-contrib';
import { detect } from '@caffe-ts/layers-contrib/detect';
import { registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { detectFaces, loadMtcnn, type FaceDetection, type MtcnnNets } from '@caffe-ts/zoo';
import { caffe, corpus, hasCorpus, messages, tempDir } from './helpers.js';

const dir = corpus('weights', 'mtcnn_kpzhang93');
const have = hasCorpus && existsSync(join(dir, 'det3.caffemodel'));

/*
 * Expected faces from an independent run: the cascade written separately in NumPy from the
 * authors' detect_face.m (MTCNNv2, with det4), the nets run by OpenCV 4.6's dnn module, resizes
 * by cv2.resize (INTER_LINEAR). The script is tests/src/mtcnn-oracle.py. Boxes after each stage
 * were the same counts: test1 101 → 15 → 2, test2 78 → 6 → 1.
 */
const ORACLE: Record<string, { stages: number[]; faces: { box: number[]; landmarks: number[][] }[] }> = {
  test1: {
    stages: [101, 15, 2, 2],
    faces: [
      { box: [89.44, 19.34, 149.98, 102.5], landmarks: [[113.96, 48.94], [141.03, 52.75], [128.77, 66.67], [108.88, 76.52], [137.51, 80.71]] },
      { box: [297.64, 90.34, 357.13, 169.13], landmarks: [[312.71, 122.41], [336.88, 118.65], [324.23, 136.33], [318.01, 152.01], [341.05, 148.99]] },
    ],
  },
  test2: {
    stages: [78, 6, 1, 1],
    faces: [{ box: [189.21, 75.47, 344.29, 273.11], landmarks: [[219.67, 158.88], [274.19, 141.36], [244.28, 191.04], [240.81, 225.18], [290.11, 209.03]] }],
  },
};

const iou = (a: number[], b: number[]) => {
  const w = Math.max(0, Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!));
  const h = Math.max(0, Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!));
  const area = (r: number[]) => (r[2]! - r[0]!) * (r[3]! - r[1]!);
  return (w * h) / (area(a) + area(b) - w * h);
};
const boxOf = (f: FaceDetection) => [f.box.x1, f.box.y1, f.box.x2, f.box.y2];

describe.skipIf(!have)('MTCNN face detection (kpzhang93 det1–det4)', () => {
  let nets: MtcnnNets;
  const images: Record<string, PixelImage> = {};
  const tmp = tempDir('caffe-mtcnn-');
  beforeAll(async () => {
    nets = loadMtcnn(dir);
    for (const name of ['test1', 'test2']) images[name] = await readImage(join(dir, `${name}.jpg`));
  });
  afterAll(() => tmp.remove());

  const results: Record<string, { faces: FaceDetection[]; stages: number[] }> = {};
  const run = (name: string) => {
    if (!results[name]) {
      const stages: number[] = [];
      results[name] = { faces: detectFaces(images[name]!, { ...nets, onStage: (_, n) => stages.push(n) }), stages };
    }
    return results[name]!;
  };

  it('finds the two faces of test1.jpg and the one of test2.jpg, as the independent OpenCV run does', () => {
    for (const [name, want] of Object.entries(ORACLE)) {
      const { faces, stages } = run(name);
      expect(stages, name).toEqual(want.stages);
      expect(faces).toHaveLength(want.faces.length);
      faces.forEach((f, i) => {
        const w = want.faces[i]!;
        expect(f.score).toBeGreaterThan(0.99);
        // Float32 nets and a different bilinear resize than OpenCV's agree to well under a pixel.
        boxOf(f).forEach((v, k) => expect(Math.abs(v - w.box[k]!), `${name} face ${i} box[${k}]`).toBeLessThan(0.05));
        f.landmarks.forEach((p, k) => {
          expect(Math.abs(p.x - w.landmarks[k]![0]!), `${name} face ${i} landmark ${k} x`).toBeLessThan(0.05);
          expect(Math.abs(p.y - w.landmarks[k]![1]!), `${name} face ${i} landmark ${k} y`).toBeLessThan(0.05);
        });
      });
    }
  });

  it('gives plausible faces: square-ish boxes inside the image, eyes above the nose above the mouth', () => {
    for (const name of ['test1', 'test2']) {
      const img = images[name]!;
      for (const f of run(name).faces) {
        const { x1, y1, x2, y2 } = f.box;
        expect(x1).toBeGreaterThan(-5);
        expect(y1).toBeGreaterThan(-5);
        expect(x2).toBeLessThan(img.width + 5);
        expect(y2).toBeLessThan(img.height + 5);
        expect((x2 - x1) / (y2 - y1)).toBeGreaterThan(0.5);
        expect((x2 - x1) / (y2 - y1)).toBeLessThan(1.2);
        for (const p of f.landmarks) {
          expect(p.x).toBeGreaterThan(x1);
          expect(p.x).toBeLessThan(x2);
          expect(p.y).toBeGreaterThan(y1);
          expect(p.y).toBeLessThan(y2);
        }
        const [le, re, nose, ml, mr] = f.landmarks as [{ x: number; y: number }, ...{ x: number; y: number }[]];
        expect(le.x).toBeLessThan(re!.x);
        expect(ml!.x).toBeLessThan(mr!.x);
        expect(Math.max(le.y, re!.y)).toBeLessThan(nose!.y);
        expect(nose!.y).toBeLessThan(Math.min(ml!.y, mr!.y));
      }
    }
  });

  it('misses faces smaller than minSize and keeps nothing above impossible thresholds', () => {
    // test1's faces are 60–80 px: a 200-px minimum finds none.
    expect(detectFaces(images.test1!, { ...nets, minSize: 200 })).toEqual([]);
    // A half-size image: the same two faces, half as large; none with an O-Net threshold of 1.
    const half = resizeImage(images.test1!, images.test1!.height / 2, images.test1!.width / 2);
    const faces = detectFaces(half, nets);
    expect(faces).toHaveLength(2);
    // (Both score ~1, so their order may differ from the full-size run's.)
    for (const w of ORACLE.test1!.faces) expect(Math.max(...faces.map((f) => iou(boxOf(f).map((v) => v * 2), w.box)))).toBeGreaterThan(0.7);
    expect(detectFaces(half, { ...nets, thresholds: [0.6, 0.7, 1] })).toEqual([]);
  });

  it('caffe detect_faces prints each face with its landmarks and draws them', async () => {
    const out = join(tmp.path, 'faces.png');
    const run = await caffe(['detect_faces', '--mtcnn', dir, '--image', join(dir, 'test1.jpg'), '--output', out], tmp.path);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    const num = '(-?[\\d.]+)';
    const pt = `\\(${num}, ${num}\\)`;
    const re = new RegExp(`^face (\\d) score ${num} box \\[${num}, ${num}, ${num}, ${num}\\] landmarks ${Array(5).fill(pt).join(' ')}$`);
    const printed = lines.map((l, i) => {
      const m = re.exec(l);
      expect(m, l).not.toBeNull();
      const v = m!.slice(1).map(Number);
      expect(v[0]).toBe(i + 1);
      const w = ORACLE.test1!.faces[i]!;
      v.slice(2, 6).forEach((x, k) => expect(Math.abs(x - w.box[k]!)).toBeLessThan(0.1));
      v.slice(6).forEach((x, k) => expect(Math.abs(x - w.landmarks[k >> 1]![k & 1]!)).toBeLessThan(0.1));
      return v;
    });
    expect(messages(run.log).some((l) => /test1\.jpg \(450x344\): 2 face\(s\) in \d+ ms; boxes after each stage: pnet 101, rnet 15, onet 2, lnet 2$/.test(l))).toBe(true);
    const png = PNG.sync.read(readFileSync(out));
    expect([png.width, png.height]).toEqual([450, 344]);
    // The first face's box edge is drawn green (0-based pixels: reference coordinates − 1).
    const at = (x: number, y: number) => Array.from(png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 3));
    const [x1, , , y2] = printed[0]!.slice(2, 6) as [number, number, number, number];
    const green = (x: number, y: number) => at(x, y).join() === '0,255,0';
    // Lines are 2 px wide, inward from the box edge.
    expect(green(Math.round(x1 - 1) + 1, 60)).toBe(true);
    expect(green(120, Math.round(y2 - 1) - 1)).toBe(true);
    // A landmark (the nose) is a red dot; the middle of the face is not drawn on.
    expect(at(Math.round(printed[0]![10]!), Math.round(printed[0]![11]!))).toEqual([255, 0, 0]);
    expect(at(120, 30)).not.toEqual([0, 255, 0]);
  });

  it('caffe detect_faces --no_lnet skips det4, and explains what is missing', async () => {
    const run = await caffe(['detect_faces', '--mtcnn', dir, '--image', join(dir, 'test2.jpg'), '--no_lnet'], tmp.path);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^face 1 score 0\.99\d\d box \[189\.\d, 75\.\d, 344\.\d, 273\.\d\]/);
    expect(messages(run.log).some((l) => /boxes after each stage: pnet 78, rnet 6, onet 1$/.test(l))).toBe(true);
    const noImage = await caffe(['detect_faces', '--mtcnn', dir], tmp.path);
    expect(noImage.code).not.toBe(0);
    expect(noImage.stderr).toMatch(/Need an image \(--image\) to detect faces in/);
    // A folder with only det1 and det2.
    const partial = join(tmp.path, 'partial');
    mkdirSync(partial);
    for (const f of ['det1.prototxt', 'det1.caffemodel', 'det2.prototxt', 'det2.caffemodel']) symlinkSync(join(dir, f), join(partial, f));
    const missing = await caffe(['detect_faces', '--mtcnn', partial, '--image', join(dir, 'test2.jpg')], tmp.path);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/MTCNN folder .*partial lacks det3\.prototxt\/\.caffemodel \(no .*det3\.prototxt\)/);
  });

  it('agrees with yufacedetectnet-open-v2 (an SSD face detector): the same faces in test1.jpg', () => {
    const yu = corpus('weights', 'yufacedetectnet_open_v2');
    const registry = registerContribLayers(registerBuiltinLayers());
    const net = new Net(readNetParameter(join(yu, 'yufacedetectnet-open-v2.prototxt'), { log: false }), { phase: Phase.TEST, registry, log: false });
    copyTrainedLayersFromFile(net, join(yu, 'yufacedetectnet-open-v2.caffemodel'));
    const { detections } = detect(net, images.test1!, { mean: [104, 117, 123], inputSize: { width: 320, height: 240 }, confidence: 0.5, resize: resizeImage });
    expect(detections).toHaveLength(2);
    const mtcnn = ORACLE.test1!.faces.map((f) => f.box);
    for (const d of detections) {
      const b = [d.box.xmin, d.box.ymin, d.box.xmax, d.box.ymax];
      // The two detectors frame faces differently (MTCNN: brow to chin); each SSD box overlaps one MTCNN box.
      expect(Math.max(...mtcnn.map((m) => iou(b, m)))).toBeGreaterThan(0.4);
    }
  });
});
