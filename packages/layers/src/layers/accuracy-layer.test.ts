import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, makeBlob } from '../testing.js';
import { accuracyLayerDef } from './accuracy-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function run(props: Record<string, unknown>, scores: Blob, label: Blob, nTops = 1): Blob[] {
  const layer = createLayer(accuracyLayerDef, props);
  const tops = Array.from({ length: nTops }, f64);
  layer.setUp([scores, label], tops);
  expect(layer.forward([scores, label], tops)).toBe(0);
  return tops;
}

/** Reference: label among the top k scores, a tie counting against it (as Caffe). */
function reference(scores: number[][], labels: number[], k: number, ignore?: number) {
  let correct = 0;
  let count = 0;
  const perClass = new Array(scores[0]!.length).fill(0);
  const perClassN = new Array(scores[0]!.length).fill(0);
  scores.forEach((row, i) => {
    const l = labels[i]!;
    if (l === ignore) return;
    perClassN[l]++;
    const better = row.filter((s) => s >= row[l]!).length - 1;
    if (better < k) {
      correct++;
      perClass[l]++;
    }
    count++;
  });
  return { acc: count ? correct / count : 0, perClass: perClass.map((c, i) => (perClassN[i] ? c / perClassN[i] : 0)) };
}

describe('Accuracy', () => {
  const rng = new Rng(1701);
  const [n, c] = [40, 6];
  const scores = makeBlob([n, c], { filler: 'uniform', rng });
  const labels = Array.from({ length: n }, () => rng.int(c));
  const label = makeBlob([n], { filler: labels });
  const rows = Array.from({ length: n }, (_, i) => blobValues(scores).slice(i * c, (i + 1) * c));

  it('forwards the argmax accuracy, top_k accuracy and per-class accuracy', () => {
    expect(blobValues(run({}, scores, label)[0]!)).toEqual([reference(rows, labels, 1).acc]);
    expect(run({ accuracy_param: { top_k: 3 } }, scores, label)[0]!.cpuData()[0]).toBeCloseTo(reference(rows, labels, 3).acc, 12);
    const [acc, perClass] = run({}, scores, label, 2);
    expect(acc!.shape).toEqual([]);
    expect(perClass!.shape).toEqual([c]);
    blobValues(perClass!).forEach((v, i) => expect(v).toBeCloseTo(reference(rows, labels, 1).perClass[i]!, 12));
  });

  it('hand-computed small case, with a tie counted as wrong', () => {
    const s = makeBlob([3, 3], { filler: [0.1, 0.7, 0.2, 0.5, 0.5, 0, 0.3, 0.3, 0.4] });
    const l = makeBlob([3], { filler: [1, 0, 2] });
    expect(blobValues(run({}, s, l)[0]!)).toEqual([2 / 3]);
    expect(blobValues(run({ accuracy_param: { top_k: 2 } }, s, l)[0]!)).toEqual([1]);
  });

  it('skips ignore_label', () => {
    const ignore = labels[0]!;
    const got = run({ accuracy_param: { ignore_label: ignore } }, scores, label)[0]!.cpuData()[0];
    expect(got).toBeCloseTo(reference(rows, labels, 1, ignore).acc, 12);
  });

  it('works over spatial axes (axis 1 of N×C×H×W)', () => {
    const r = new Rng(5);
    const s = makeBlob([2, 4, 2, 3], { filler: 'uniform', rng: r });
    const labs = Array.from({ length: 12 }, () => r.int(4));
    const l = makeBlob([2, 1, 2, 3], { filler: labs });
    const rowsHW: number[][] = [];
    const labsHW: number[] = [];
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 6; j++) {
        rowsHW.push([0, 1, 2, 3].map((ch) => s.cpuData()[i * 24 + ch * 6 + j]!));
        labsHW.push(labs[i * 6 + j]!);
      }
    }
    expect(run({}, s, l)[0]!.cpuData()[0]).toBeCloseTo(reference(rowsHW, labsHW, 1).acc, 12);
  });

  it('never backpropagates', () => {
    const layer = createLayer(accuracyLayerDef, { name: 'acc' });
    expect(layer.allowForceBackward(0)).toBe(false);
    expect(layer.allowForceBackward(1)).toBe(false);
    const top = f64();
    layer.setUp([scores, label], [top]);
    expect(() => layer.backward([top], [true, false], [scores, label])).toThrow("Accuracy layer 'acc': Accuracy Layer cannot backpropagate");
  });

  it('rejects bad params and shapes', () => {
    expect(() => run({ name: 'acc', accuracy_param: { top_k: 7 } }, scores, label)).toThrow(
      "Accuracy layer 'acc': top_k must be less than or equal to the number of classes",
    );
    expect(() => run({ name: 'acc' }, makeBlob([4, 3]), makeBlob([3]))).toThrow(
      "Accuracy layer 'acc': Number of labels must match number of predictions; e.g., if label axis == 1 and prediction shape is (N, C, H, W), label count (number of labels) must be N*H*W, with integer values in {0, 1, ..., C-1}.",
    );
    expect(() => run({ name: 'acc' }, scores, label, 3)).toThrow(
      "Accuracy layer 'acc': Accuracy Layer produces at most 2 top blob(s) as output (got 3).",
    );
  });
});
