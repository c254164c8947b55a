import { Rng, type Blob } from '@caffe-ts/blob';
import { parseNetParameter } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { createSolver } from '../solver-registry.js';
import type { Solver } from '../solver.js';
import { regressionNetText, sequentialFeed, solverParam, testRegistry } from '../test-fixtures.js';
import { alignElements, type ParamSlot } from './protocol.js';
import { arenaShare, divisibleUpdate, paramShare, reduceRange, ShareUpdater } from './update.js';
import { arenaArray, arenaView } from './replica.js';

type Props = Record<string, unknown>;

function build(props: Props, dtype: 'float32' | 'float64'): Solver {
  const param = solverParam({
    net_param: parseNetParameter(regressionNetText(2, { lrMults: [1, 2], decayMults: [1, 0] })),
    base_lr: 0.1,
    lr_policy: 'fixed',
    max_iter: 3,
    ...props,
  });
  return createSolver(param, { registry: testRegistry(sequentialFeed(2)), dtype, log: false });
}

interface Internals {
  applyUpdate(): void;
  learningRateValue: number;
  history: Blob[];
  iter: number;
}

/** Fill params, diffs and history with the same random values in both solvers. */
function randomize(solvers: Solver[], seed: number): void {
  const rng = new Rng(seed);
  const first = solvers[0]! as unknown as Internals;
  const blobs = [...solvers[0]!.net.learnableParams, ...first.history];
  // History stays non-negative (Adam's and AdaDelta's second moments are squares).
  const values = blobs.map((b, i) => [
    Array.from(b.cpuData(), () => (i < solvers[0]!.net.learnableParams.length ? rng.gaussian(0, 1) : Math.abs(rng.gaussian(0, 0.1)))),
    Array.from(b.cpuDiff(), () => rng.gaussian(0, 0.1)),
  ]);
  for (const s of solvers) {
    const all = [...s.net.learnableParams, ...(s as unknown as Internals).history];
    all.forEach((b, i) => {
      b.mutableCpuData().set(values[i]![0]!);
      b.mutableCpuDiff().set(values[i]![1]!);
    });
  }
}

/**
 * The update of `divided` done by ShareUpdaters over n shares (as the replicas do) against the
 * solver's own applyUpdate on `serial`, for three iterations.
 */
function compare(props: Props, dtype: 'float32' | 'float64', n: number, fused: boolean): void {
  const serial = build(props, dtype);
  const divided = build(props, dtype);
  expect(divisibleUpdate(divided)).toBe(true);
  randomize([serial, divided], 5);
  const net = divided.net;
  const slots: ParamSlot[] = [];
  let total = 0;
  for (const b of net.learnableParams) {
    slots.push({ offset: total, count: b.count(), frozen: false });
    total += alignElements(b.count(), dtype);
  }
  const bytes = total * (dtype === 'float64' ? 8 : 4);
  const history = (divided as unknown as Internals).history;
  const perParam = history.length / slots.length;
  const data = new SharedArrayBuffer(bytes);
  const diff = new SharedArrayBuffer(bytes);
  const hist = new SharedArrayBuffer(bytes * perParam);
  net.learnableParams.forEach((b, i) => {
    const s = slots[i]!;
    const d = arenaView(data, dtype, s.offset, s.count);
    d.set(b.cpuData());
    b.data.setCpuData(d);
    const g = arenaView(diff, dtype, s.offset, s.count);
    g.set(b.cpuDiff());
    b.diff.setCpuData(g);
    for (let k = 0; k < perParam; k++) {
      const h = arenaView(hist, dtype, k * total + s.offset, s.count);
      h.set(history[k * slots.length + i]!.cpuData());
      history[k * slots.length + i]!.data.setCpuData(h);
    }
  });
  const updaters = Array.from(
    { length: n },
    (_, r) =>
      new ShareUpdater(divided.param, paramShare(slots, r, n), net.paramsLr, net.paramsWeightDecay, {
        dtype,
        slots,
        data,
        diff,
        history: hist,
        total,
      }),
  );
  for (const u of updaters) expect(u.fusedSgd).toBe(fused);
  for (let it = 0; it < 3; it++) {
    (serial as unknown as Internals).applyUpdate();
    // The rate exactly as the solver computed it (lr policies round through float fields).
    for (const u of updaters) expect(u.apply((serial as unknown as Internals).learningRateValue, it)).toBe(true);
    serial.net.learnableParams.forEach((b, i) => {
      expect(Array.from(net.learnableParams[i]!.cpuData())).toEqual(Array.from(b.cpuData()));
      expect(Array.from(net.learnableParams[i]!.cpuDiff())).toEqual(Array.from(b.cpuDiff()));
    });
    (serial as unknown as Internals).history.forEach((h, i) => expect(Array.from(history[i]!.cpuData())).toEqual(Array.from(h.cpuData())));
    // The next iteration starts from fresh gradients, equal in both.
    const rng = new Rng(100 + it);
    serial.net.learnableParams.forEach((b, i) => {
      const g = Array.from(b.cpuDiff(), () => rng.gaussian(0, 0.1));
      b.mutableCpuDiff().set(g);
      net.learnableParams[i]!.mutableCpuDiff().set(g);
    });
    (serial as unknown as Internals).iter++;
  }
}

describe('the update divided among replicas', () => {
  it('plain SGD on float32 (the fused pass) is bit for bit the solver\'s update, with weight decay, lr_mult and decay_mult', () => {
    compare({ momentum: 0.9, weight_decay: 0.01 }, 'float32', 2, true);
    compare({ momentum: 0.9, weight_decay: 0 }, 'float32', 3, true);
  });

  it('the other solver types and iter_size > 1 (the solver\'s own steps per share) are bit for bit the same', () => {
    compare({ type: 'Adam', momentum: 0.9, momentum2: 0.999, delta: 1e-8, weight_decay: 0.01 }, 'float32', 2, false);
    compare({ type: 'Nesterov', momentum: 0.9, weight_decay: 0.01, regularization_type: 'L1' }, 'float64', 2, false);
    compare({ type: 'AdaDelta', momentum: 0.95, delta: 1e-6, base_lr: 1 }, 'float32', 3, false);
    compare({ momentum: 0.9, weight_decay: 0.01, iter_size: 2 }, 'float32', 2, false);
  });

  it('apply reports a share whose params became non-finite (fused pass and the solver\'s steps)', () => {
    for (const [props, fused] of [
      [{ momentum: 0.9 }, true],
      [{ type: 'Adam', momentum: 0.9, momentum2: 0.999, delta: 1e-8 }, false],
    ] as const) {
      const solver = build(props, 'float32');
      const net = solver.net;
      const slots: ParamSlot[] = [];
      let total = 0;
      for (const b of net.learnableParams) {
        slots.push({ offset: total, count: b.count(), frozen: false });
        total += alignElements(b.count(), 'float32');
      }
      const perParam = (solver as unknown as Internals).history.length / slots.length;
      const data = new SharedArrayBuffer(total * 4);
      const diff = new SharedArrayBuffer(total * 4);
      const arenas = { dtype: 'float32' as const, slots, data, diff, history: new SharedArrayBuffer(total * 4 * perParam), total };
      const updaters = [0, 1].map((r) => new ShareUpdater(solver.param, paramShare(slots, r, 2), net.paramsLr, net.paramsWeightDecay, arenas));
      expect(updaters[0]!.fusedSgd).toBe(fused);
      const g = arenaArray(diff, 'float32');
      g.fill(0.5);
      expect(updaters.map((u) => u.apply(0.1, 0))).toEqual([true, true]);
      // A NaN gradient in the last param (rank 1's share) only.
      const last = slots[slots.length - 1]!;
      g[last.offset + last.count - 1] = NaN;
      expect(updaters.map((u) => u.apply(0.1, 1))).toEqual([true, false]);
    }
  });

  it('shares cover the arena and the params exactly once', () => {
    const slots: ParamSlot[] = [
      { offset: 0, count: 10, frozen: false },
      { offset: 16, count: 37, frozen: false },
      { offset: 64, count: 1, frozen: true },
    ];
    for (const n of [1, 2, 3, 5]) {
      const seen = slots.map((s) => new Array<number>(s.count).fill(0));
      for (let r = 0; r < n; r++) for (const p of paramShare(slots, r, n)) for (let i = p.start; i < p.start + p.count; i++) seen[p.param]![i]!++;
      expect(seen.flat().every((c) => c === 1)).toBe(true);
      const cover = new Array<number>(80).fill(0);
      for (let r = 0; r < n; r++) {
        const [a, b] = arenaShare(80, r, n);
        for (let i = a; i < b; i++) cover[i]!++;
      }
      expect(cover.every((c) => c === 1)).toBe(true);
    }
  });

  it('reduceRange sums every rank in rank order and scales, only inside its range, zeroing the other ranks there', () => {
    const mk = (v: number[]) => {
      const a = arenaArray(new SharedArrayBuffer(v.length * 4), 'float32');
      a.set(v);
      return a;
    };
    const d = [mk([1, 2, 3, 4]), mk([10, 20, 30, 40]), mk([100, 200, 300, 400])];
    reduceRange(d, 1 / 3, 1, 3);
    expect(Array.from(d[0]!)).toEqual([1, Math.fround(222 * (1 / 3)), Math.fround(333 * (1 / 3)), 4]);
    expect(Array.from(d[1]!)).toEqual([10, 0, 0, 40]);
    expect(Array.from(d[2]!)).toEqual([100, 0, 0, 400]);
    const two = [mk([1, 2, 3]), mk([3, 4, 5])];
    reduceRange(two, 0.5, 0, 2);
    expect(Array.from(two[0]!)).toEqual([2, 3, 3]);
    expect(Array.from(two[1]!)).toEqual([0, 0, 5]);
  });
});
