/**
 * The runnable examples under examples/, each run through its main() with small settings:
 * NetSpec, training with a pycaffe-style loop, classification from files, fine-tuning.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { parseNetParameter } from '@caffe-ts/proto';
import { main as netspec } from '../../examples/netspec/src/main.js';
import { DigitBatches, TEST_SPLIT, TRAIN_SPLIT, main as train, type TrainResult } from '../../examples/train/src/main.js';
import { main as classify } from '../../examples/classify/src/main.js';
import { main as fineTune } from '../../examples/fine-tune/src/main.js';
import { tempDir } from './helpers.js';

describe('examples', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  let trained: TrainResult;

  it('netspec writes LeNet as prototxt and runs it', async () => {
    const r = await netspec({ batch: 2 });
    const back = parseNetParameter(r.prototxt);
    expect(back.layer.map((l) => l.name)).toEqual(['data', 'conv1', 'pool1', 'conv2', 'pool2', 'ip1', 'relu1', 'ip2', 'prob']);
    expect(r.shapes.prob).toEqual([2, 10]);
    expect(r.shapes.pool2).toEqual([2, 50, 4, 4]);
    const p = r.outputs.prob!;
    expect(p[0]! + p[1]! + p[2]! + p[3]! + p[4]! + p[5]! + p[6]! + p[7]! + p[8]! + p[9]!).toBeCloseTo(1, 5);
  });

  it('digit batches hold only real images, from each class\'s own train or test share', async () => {
    // 120 draws a class: past the end of the smallest class's test share (86 images), so the
    // range wraps; reading past a class's last image would give NaN pixels.
    for (const split of [TRAIN_SPLIT, TEST_SPLIT]) {
      const { data, label } = (await DigitBatches.load(split)).batch(1200);
      expect(data.every((v) => Number.isFinite(v) && v >= 0 && v < 1)).toBe(true);
      expect(Array.from(label.subarray(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
  });

  it('train lowers the loss and writes weights and a deploy net', async () => {
    trained = await train({ iterations: 30, batch: 8, outDir: dir.path });
    const first = trained.losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = trained.losses.slice(-5).reduce((a, b) => a + b) / 5;
    expect(first).toBeGreaterThan(1.5);
    expect(last).toBeLessThan(first * 0.7);
    expect(trained.testAccuracy).toBeGreaterThan(0.3);
    expect(trained.weights).toMatch(/lenet\.caffemodel$/);
  });

  it('classify loads the deploy net and weights and labels held-out digits', async () => {
    const r = await classify({ model: trained.deploy!, weights: trained.weights!, perClass: 3 });
    expect(r.inputs).toEqual(['data']);
    expect(r.outputs).toEqual(['prob']);
    expect(r.predictions).toHaveLength(30);
    // Every held-out image is a real one (reading past a class's last image gave NaN inputs).
    expect(r.predictions.every((p) => Number.isFinite(p.probability))).toBe(true);
    expect(r.accuracy).toBeGreaterThan(0.3);
  });

  it('fine-tune keeps the frozen convolutions and learns the new task', async () => {
    const r = await fineTune({ weights: trained.weights!, iterations: 15, batch: 8 });
    expect(r.convFrozen).toBe(true);
    expect(r.accuracyAfter).toBeGreaterThan(0.6);
    expect(r.losses.slice(-5).reduce((a, b) => a + b) / 5).toBeLessThan(r.losses.slice(0, 5).reduce((a, b) => a + b) / 5);
  });
});
