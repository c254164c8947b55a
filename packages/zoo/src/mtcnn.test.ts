import { describe, expect, it } from 'vitest';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter } from '@caffe-ts/proto';
import { bbreg, detectFaces, drawFaces, generateBoundingBoxes, MtcnnError, nms, pyramidScales, rerec, type ScoredBox } from './mtcnn.js';

const box = (x1: number, y1: number, x2: number, y2: number, score: number): ScoredBox => ({ x1, y1, x2, y2, score });

describe('MTCNN helpers', () => {
  it('nms keeps the best box and drops overlaps by union or by the smaller box', () => {
    const boxes = [box(0, 0, 9, 9, 0.9), box(0, 0, 4, 4, 0.8), box(20, 20, 29, 29, 0.95), box(1, 1, 10, 10, 0.85)];
    // IoU(0, 1) = 25/100; IoU(0, 3) = 81/119 ≈ 0.68; box 1 inside box 0 overlaps it fully by 'Min'.
    expect(nms(boxes, 0.5, 'Union')).toEqual([2, 0, 1]);
    expect(nms(boxes, 0.7, 'Union')).toEqual([2, 0, 3, 1]);
    expect(nms(boxes, 0.7, 'Min')).toEqual([2, 0]);
    expect(nms([], 0.5)).toEqual([]);
    // Equal scores: the later box is taken first (the reference's stable ascending sort, last out).
    expect(nms([box(0, 0, 9, 9, 0.5), box(0, 0, 9, 9, 0.5)], 0.5)).toEqual([1]);
  });

  it('builds the pyramid from 12/minSize down by factor while the short side stays ≥ 12', () => {
    const s = pyramidScales(344, 450);
    // 344·0.6 = 206.4 px, ×0.709 each level: 9 levels ≥ 12 px.
    expect(s).toHaveLength(9);
    expect(s[0]).toBeCloseTo(0.6, 12);
    for (let i = 1; i < s.length; i++) expect(s[i]! / s[i - 1]!).toBeCloseTo(0.709, 12);
    expect(344 * s[8]!).toBeGreaterThanOrEqual(12);
    expect(344 * s[8]! * 0.709).toBeLessThan(12);
    expect(pyramidScales(11, 100, 12)).toEqual([]);
    expect(pyramidScales(24, 24, 12, 0.5)).toEqual([1, 0.5]);
  });

  it('squares boxes around their centre and regresses by the inclusive size', () => {
    expect(rerec(box(10, 20, 30, 60, 0.5))).toEqual(box(0, 20, 40, 60, 0.5));
    expect(rerec(box(0, 0, 10, 4, 1))).toEqual(box(0, -3, 10, 7, 1));
    // Width and height 11: offsets are fractions of 11.
    expect(bbreg(box(0, 0, 10, 10, 1), [0.1, -0.2, 0, 1])).toEqual(box(1.1, -2.2, 10, 21, 1));
  });

  it('maps P-Net cells to 12-pixel windows at stride 2, x along the blob\'s axis 2 (transposed input)', () => {
    // Maps [A = 3 along x][B = 2 along y]; cells (a=2, b=0) and (a=0, b=1) pass.
    const prob = Float32Array.from([0.1, 0.7, 0.2, 0.1, 0.9, 0.3]); // index a·B + b
    const reg = new Float32Array(4 * 6).map((_, i) => i / 100);
    const out = generateBoundingBoxes(prob, reg, 3, 2, 0.5, 0.6);
    // Reference order: y outer, x inner.
    expect(out.map((c) => [c.x1, c.y1, c.x2, c.y2, c.score])).toEqual([
      [10, 2, 32, 24, Math.fround(0.9)],
      [2, 6, 24, 28, Math.fround(0.7)],
    ]);
    // Regression from each of the 4 planes at the cell's index (a=2, b=0 → 4; a=0, b=1 → 1).
    expect(out[0]!.reg).toEqual([0.04, 0.1, 0.16, 0.22].map(Math.fround));
    expect(out[1]!.reg).toEqual([0.01, 0.07, 0.13, 0.19].map(Math.fround));
  });

  it('draws boxes green and landmarks red on a copy of the image', () => {
    const img = { height: 20, width: 20, channels: 3, data: new Uint8Array(1200) };
    const out = drawFaces(img, [{ box: { x1: 3, y1: 3, x2: 12, y2: 12 }, score: 1, landmarks: [{ x: 7, y: 7 }] }]);
    const px = (x: number, y: number) => Array.from(out.data.subarray((y * 20 + x) * 3, (y * 20 + x) * 3 + 3));
    expect(px(2, 5)).toEqual([0, 255, 0]); // reference x1 = 3 is 0-based column 2
    expect(px(11, 11)).toEqual([0, 255, 0]);
    expect(px(7, 7)).toEqual([0, 0, 255]); // BGR red
    expect(px(15, 15)).toEqual([0, 0, 0]);
    expect(img.data.every((v) => v === 0)).toBe(true);
  });
});

describe('detectFaces', () => {
  const net = (text: string) => new Net(parseNetParameter(text), { log: false });
  const input = (c: number, s: number) => `layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: ${c} dim: ${s} dim: ${s} } } }`;
  // A P-Net whose every cell scores 0 (softmax of equal logits is 0.5 < threshold 0.6).
  const pnet = () =>
    net(`name: "PNet" ${input(3, 12)}
      layer { name: "conv4-1" type: "Convolution" bottom: "data" top: "conv4-1" convolution_param { num_output: 2 kernel_size: 12 stride: 2 } }
      layer { name: "conv4-2" type: "Convolution" bottom: "data" top: "conv4-2" convolution_param { num_output: 4 kernel_size: 12 stride: 2 } }
      layer { name: "prob1" type: "Softmax" bottom: "conv4-1" top: "prob1" }`);
  // R-Net / O-Net stand-ins with the output blobs the cascade reads.
  const stage = (name: string, size: number, regName: string, extra = '') =>
    net(`name: "${name}" ${input(3, size)}
      layer { name: "score" type: "Convolution" bottom: "data" top: "score" convolution_param { num_output: 2 kernel_size: ${size} } }
      layer { name: "prob1" type: "Softmax" bottom: "score" top: "prob1" }
      layer { name: "${regName}" type: "Convolution" bottom: "data" top: "${regName}" convolution_param { num_output: 4 kernel_size: ${size} } }
      ${extra}`);
  const rnet = () => stage('RNet', 24, 'conv5-2');
  const onet = () =>
    stage('ONet', 48, 'conv6-2', 'layer { name: "conv6-3" type: "Convolution" bottom: "data" top: "conv6-3" convolution_param { num_output: 10 kernel_size: 48 } }');
  const image = { height: 30, width: 40, channels: 3, data: new Uint8Array(3600).fill(128) };

  it('runs P-Net per pyramid level (input reshaped to 3×W×H) and stops when no cell passes', () => {
    const p = pnet();
    const stages: [string, number][] = [];
    expect(detectFaces(image, { pnet: p, rnet: rnet(), onet: onet(), minSize: 12, onStage: (s, n) => stages.push([s, n]) })).toEqual([]);
    expect(stages).toEqual([['pnet', 0]]);
    // The last level: 30·0.709² = 15.08 → ceil 16 rows, 40·0.709² → 29 columns, transposed.
    expect(p.blob('data').shape).toEqual([1, 3, 21, 16]);
    expect(p.blob('prob1').shape).toEqual([1, 2, 5, 3]);
  });

  it('runs all three stages, cropping windows that reach past the image edges', () => {
    // Biases that make every window a face (softmax of [0, 8]) with no regression, and O-Net
    // landmarks at the window centre: the cascade's bookkeeping is all that shapes the result.
    const nets = { pnet: pnet(), rnet: rnet(), onet: onet() };
    for (const [n, layer] of [[nets.pnet, 'conv4-1'], [nets.rnet, 'score'], [nets.onet, 'score']] as const) n.params.get(layer)![1]!.mutableCpuData().set([0, 8]);
    nets.onet.params.get('conv6-3')![1]!.mutableCpuData().fill(0.5);
    const stages: number[] = [];
    const faces = detectFaces(image, { ...nets, minSize: 12, onStage: (_, n) => stages.push(n) });
    expect(stages).toHaveLength(3);
    expect(stages[0]).toBeGreaterThan(1);
    expect(faces.length).toBeGreaterThan(0);
    expect(faces.length).toBe(stages[2]);
    expect(nets.onet.blob('data').shape[0]).toBe(stages[1]);
    for (const f of faces) {
      expect(f.score).toBeCloseTo(1 / (1 + Math.exp(-8)), 6);
      const { x1, y1, x2, y2 } = f.box;
      expect(x2 - x1).toBe(y2 - y1); // squared, truncated, no regression
      for (const p of f.landmarks) {
        expect(p.x).toBeCloseTo((x2 - x1 + 1) * 0.5 + x1 - 1, 4);
        expect(p.y).toBeCloseTo((y2 - y1 + 1) * 0.5 + y1 - 1, 4);
      }
    }
    // Every window of the first level is a face: some reach past the 40×30 image (zero padding).
    expect(faces.some((f) => f.box.x1 < 1 || f.box.y1 < 1 || f.box.x2 > 40 || f.box.y2 > 30)).toBe(true);
  });

  it('names what is wrong with the settings or the nets', () => {
    const nets = { pnet: pnet(), rnet: rnet(), onet: onet() };
    expect(() => detectFaces(image, { ...nets, minSize: 0 })).toThrow(MtcnnError);
    expect(() => detectFaces(image, { ...nets, factor: 1 })).toThrow(/factor must be in \(0, 1\), got 1/);
    expect(() => detectFaces(image, { ...nets, thresholds: [0.6, 0.7, 2] })).toThrow(/thresholds must be three probabilities/);
    expect(() => detectFaces(image, { ...nets, rnet: nets.onet })).toThrow(/R-Net 'ONet' takes 1 3 48 48 \(6912\); expected N×3×24×24/);
    expect(() => detectFaces({ ...image, channels: 1 }, nets)).toThrow(/image of 40x30x1 holds 3600 values/);
    const noProb = net(`name: "PNet" ${input(3, 12)}
      layer { name: "conv4-2" type: "Convolution" bottom: "data" top: "conv4-2" convolution_param { num_output: 4 kernel_size: 12 stride: 2 } }`);
    expect(() => detectFaces(image, { ...nets, pnet: noProb })).toThrow(/P-Net 'PNet' has no blob 'prob1' \(outputs: conv4-2\)/);
  });
});
