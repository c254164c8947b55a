import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Blob, Rng } from '@caffe-ts/blob';
import { createMessage, encodeBlobProto, LossParameter_NormalizationMode as NormalizationMode, type BlobProto } from '@caffe-ts/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { createInfogainLossLayerDef, infogainLossLayerDef } from './infogain-loss-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** Caffe's fixture: data 4×2×5×2 ~ U(−0.5, 2), labels 4×2×1×2 in {0…4}, H 1×1×5×5 ~ U(0.1, 2); axis 2. */
function fixture() {
  const rng = new Rng(1701);
  const data = makeBlob([4, 2, 5, 2], { filler: 'uniform', min: -0.5, max: 2, rng });
  const label = makeBlob([4, 2, 1, 2], { filler: Array.from({ length: 16 }, () => rng.int(5)) });
  const h = makeBlob([1, 1, 5, 5], { filler: 'uniform', min: 0.1, max: 2, rng });
  return { data, label, h };
}

/** Naive infogain loss with softmax along an axis of size K between outer and inner. */
function reference(data: Blob, label: Blob, h: Blob, outer: number, k: number, inner: number, ignore?: number) {
  const x = data.cpuData();
  let loss = 0;
  let valid = 0;
  const prob = new Float64Array(x.length);
  for (let i = 0; i < outer; i++) {
    for (let j = 0; j < inner; j++) {
      let den = 0;
      for (let l = 0; l < k; l++) den += Math.exp(x[i * k * inner + l * inner + j]!);
      for (let l = 0; l < k; l++) prob[i * k * inner + l * inner + j] = Math.exp(x[i * k * inner + l * inner + j]!) / den;
      const gt = label.cpuData()[i * inner + j]!;
      if (gt === ignore) continue;
      for (let l = 0; l < k; l++) loss -= h.cpuData()[gt * k + l]! * Math.log(Math.max(prob[i * k * inner + l * inner + j]!, 1e-20));
      valid++;
    }
  }
  return { loss, valid, prob };
}

function hProto(values: number[], k: number): Uint8Array {
  return encodeBlobProto(createMessage<BlobProto>('BlobProto', { shape: { dim: [1, 1, k, k] }, data: values }));
}

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('InfogainLoss', () => {
  it('forwards softmax probabilities and the infogain loss along axis 2 (Caffe TestInfogainLoss)', () => {
    const { data, label, h } = fixture();
    const layer = createLayer(infogainLossLayerDef, { infogain_loss_param: { axis: 2 }, loss_weight: [1, 0] });
    const [loss, prob] = [f64(), f64()];
    layer.setUp([data, label, h], [loss, prob]);
    layer.forward([data, label, h], [loss, prob]);
    const ref = reference(data, label, h, 8, 5, 2);
    expect(prob.shape).toEqual(data.shape);
    blobValues(prob).forEach((v, i) => expect(v).toBeCloseTo(ref.prob[i]!, 12));
    expect(loss.cpuData()[0]).toBeCloseTo(ref.loss / 16, 12);
  });

  it('with H = identity equals −mean log p[label]', () => {
    const data = makeBlob([2, 3], { filler: [1, 2, 3, 0, 0, Math.log(2)] });
    const label = makeBlob([2], { filler: [2, 0] });
    const h = makeBlob([3, 3], { filler: [1, 0, 0, 0, 1, 0, 0, 0, 1] });
    const layer = createLayer(infogainLossLayerDef);
    const top = f64();
    layer.setUp([data, label, h], [top]);
    const e = Math.exp(1) + Math.exp(2) + Math.exp(3);
    expect(layer.forward([data, label, h], [top])).toBeCloseTo((-Math.log(Math.exp(3) / e) - Math.log(1 / 4)) / 2, 12);
  });

  it('normalizes by VALID (default), FULL, BATCH_SIZE and NONE, skipping ignore_label', () => {
    const { data, label, h } = fixture();
    label.mutableCpuData()[3] = 4;
    const lossOf = (lp: Record<string, unknown>) => {
      const layer = createLayer(infogainLossLayerDef, { infogain_loss_param: { axis: 2 }, loss_param: lp });
      const top = f64();
      layer.setUp([data, label, h], [top]);
      return layer.forward([data, label, h], [top]);
    };
    const all = reference(data, label, h, 8, 5, 2);
    const kept = reference(data, label, h, 8, 5, 2, 4);
    expect(kept.valid).toBeLessThan(16);
    expect(lossOf({})).toBeCloseTo(all.loss / 16, 12);
    expect(lossOf({ normalization: NormalizationMode.NONE })).toBeCloseTo(all.loss, 12);
    expect(lossOf({ normalization: NormalizationMode.BATCH_SIZE })).toBeCloseTo(all.loss / 8, 12);
    expect(lossOf({ ignore_label: 4 })).toBeCloseTo(kept.loss / kept.valid, 12);
    expect(lossOf({ ignore_label: 4, normalization: NormalizationMode.FULL })).toBeCloseTo(kept.loss / 16, 12);
  });

  it('passes the gradient check of Caffe (1e-4, 2e-2, 1701; bottom 0)', () => {
    const { data, label, h } = fixture();
    const checker = new GradientChecker(1e-4, 2e-2, { seed: 1701 });
    checker.checkGradientExhaustive(createLayer(infogainLossLayerDef, { infogain_loss_param: { axis: 2 } }), [data, label, h], [f64()], 0);
    label.mutableCpuData()[0] = 1;
    checker.checkGradientExhaustive(
      createLayer(infogainLossLayerDef, { infogain_loss_param: { axis: 2 }, loss_param: { ignore_label: 1 }, loss_weight: [2] }),
      [data, label, h],
      [f64()],
      0,
    );
  });

  it('reads H from source: as given, then beside the net file, then its base name there', () => {
    const dir = mkdtempSync(join(tmpdir(), 'infogain-'));
    dirs.push(dir);
    const values = [2, 0, 0, 1];
    writeFileSync(join(dir, 'H.binaryproto'), hProto(values, 2));
    const data = makeBlob([1, 2], { filler: [0, 0] });
    const label = makeBlob([1], { filler: [0] });
    const expected = -2 * Math.log(0.5);
    for (const source of [join(dir, 'H.binaryproto'), 'H.binaryproto', 'examples/old/place/H.binaryproto']) {
      const layer = createLayer(infogainLossLayerDef, { infogain_loss_param: { source } }, { netFile: join(dir, 'train.prototxt') });
      const top = f64();
      layer.setUp([data, label], [top]);
      expect(layer.forward([data, label], [top])).toBeCloseTo(expected, 12);
      expect(blobValues(layer.infogain)).toEqual(values);
    }
    const missing = createLayer(infogainLossLayerDef, { name: 'ig', infogain_loss_param: { source: 'nope/none.binaryproto' } }, { netFile: join(dir, 'n.prototxt') });
    expect(() => missing.setUp([data, label], [f64()])).toThrow(
      `InfogainLoss layer 'ig': cannot read infogain_loss_param.source 'nope/none.binaryproto' (named in ${join(dir, 'n.prototxt')}); ` +
        `tried nope/none.binaryproto (no such file), ${dir}/nope/none.binaryproto (no such file), ${dir}/none.binaryproto (no such file)`,
    );
  });

  it('reads through an injected reader, trying the working directory first', () => {
    const asked: string[] = [];
    const files = new Map([['nets/H.bin', hProto([1, 0, 0, 3], 2)]]);
    const def = createInfogainLossLayerDef({
      readFile: (path) => {
        asked.push(path);
        const f = files.get(path);
        if (!f) throw Object.assign(new Error('gone'), { code: 'ENOENT' });
        return f;
      },
    });
    const layer = createLayer(def, { infogain_loss_param: { source: 'H.bin' } }, { netFile: 'nets/train.prototxt' });
    const [data, label, top] = [makeBlob([1, 2], { filler: [0, 0] }), makeBlob([1], { filler: [1] }), f64()];
    layer.setUp([data, label], [top]);
    expect(asked).toEqual(['H.bin', 'nets/H.bin']);
    expect(layer.forward([data, label], [top])).toBeCloseTo(-3 * Math.log(0.5), 12);
  });

  it('checks its configuration, H size and labels, and refuses backward into labels or H', () => {
    const { data, label, h } = fixture();
    const mk = (props: Record<string, unknown>) => createLayer(infogainLossLayerDef, { name: 'ig', ...props });
    expect(() => mk({}).setUp([data, label], [f64()])).toThrow(
      "InfogainLoss layer 'ig': Infogain matrix source must be specified (infogain_loss_param.source, or H as a third bottom).",
    );
    expect(() => mk({ loss_param: { normalize: true } }).setUp([data, label, h], [f64()])).toThrow(
      'InfogainLoss layer \'ig\': normalize is deprecated. use "normalization"',
    );
    expect(() => mk({}).setUp([data, makeBlob([4, 1, 5, 2], { filler: 0 }), h], [f64()])).toThrow(
      "InfogainLoss layer 'ig': H must be 2x2 for 2 labels (infogain matrix bottom has shape 1 1 5 5 (25))",
    );
    expect(() => mk({ infogain_loss_param: { axis: 2 } }).setUp([data, makeBlob([4, 2]), h], [f64()])).toThrow(
      "InfogainLoss layer 'ig': Number of labels must match number of predictions",
    );
    const layer = mk({ infogain_loss_param: { axis: 2 } });
    const top = f64();
    const bad = makeBlob([4, 2, 1, 2], { filler: 5 });
    layer.setUp([data, bad, h], [top]);
    expect(() => layer.forward([data, bad, h], [top])).toThrow("InfogainLoss layer 'ig': label 5 in bottom 1 (batch item 0, label 0 of 4 in the item) is outside the valid range [0, 4] (5 classes)");
    layer.forward([data, label, h], [top]);
    expect(() => layer.backward([top], [true, true, false], [data, label, h])).toThrow(
      "InfogainLoss layer 'ig': InfogainLoss Layer cannot backpropagate to label inputs.",
    );
    expect(() => layer.backward([top], [true, false, true], [data, label, h])).toThrow(
      "InfogainLoss layer 'ig': InfogainLoss Layer cannot backpropagate to infogain inputs.",
    );
    expect([0, 1, 2].map((i) => layer.allowForceBackward(i))).toEqual([true, false, false]);
  });
});
