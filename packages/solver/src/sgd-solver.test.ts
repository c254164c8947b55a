import { defaultWasmConv2d, defaultWasmTrain, installedConv2dRunner, setConv2dRunner, setLogSink, type Conv2dRunner, type LogSink } from '@caffe-ts/blob';
import { parseNetParameter } from '@caffe-ts/proto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SolverConfigError, SolverStateError } from './errors.js';
import { SGDSolver } from './sgd-solver.js';
import { createSolver } from './solver-registry.js';
import type { Solver } from './solver.js';
import { regressionNetText, sample, sequentialFeed, solverParam, testRegistry, type Feed } from './test-fixtures.js';

function build(
  props: Record<string, unknown>,
  {
    batch = 2,
    dtype = 'float64' as 'float32' | 'float64',
    feed = sequentialFeed(batch),
    log = false,
    lrMults = [1, 2],
    decayMults = [1, 0],
  } = {},
): { solver: Solver; feed: Feed } {
  const param = solverParam({
    net_param: parseNetParameter(regressionNetText(batch, { lrMults, decayMults })),
    base_lr: 0.1,
    lr_policy: 'fixed',
    max_iter: 3,
    ...props,
  });
  return { solver: createSolver(param, { registry: testRegistry(feed), dtype, log }), feed };
}

/** The tiny regression net's training, in plain doubles: the oracle for the solver. */
function referenceSgd(opts: {
  iters: number;
  batch: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  lrMults?: number[];
  decayMults?: number[];
  l1?: boolean;
}): { W: number[]; b: number[]; losses: number[] } {
  const { lrMults = [1, 2], decayMults = [1, 0] } = opts;
  // The fillers' values are float fields, so they arrive float32-rounded.
  const W = Array(6).fill(Math.fround(0.1));
  const b = [Math.fround(-0.2), Math.fround(-0.2)];
  const hW = Array(6).fill(0);
  const hb = [0, 0];
  const losses: number[] = [];
  for (let k = 0; k < opts.iters; k++) {
    const gW = Array(6).fill(0);
    const gb = [0, 0];
    let loss = 0;
    for (let n = 0; n < opts.batch; n++) {
      const { x, t } = sample(k * opts.batch + n);
      for (let o = 0; o < 2; o++) {
        const y = W[o * 3]! * x[0]! + W[o * 3 + 1]! * x[1]! + W[o * 3 + 2]! * x[2]! + b[o]!;
        const d = y - t[o]!;
        loss += (d * d) / (2 * opts.batch);
        const dy = d / opts.batch;
        for (let i = 0; i < 3; i++) gW[o * 3 + i] += dy * x[i]!;
        gb[o] += dy;
      }
    }
    losses.push(loss);
    const reg = (w: number) => (opts.l1 ? Math.sign(w) : w);
    for (let i = 0; i < 6; i++) {
      gW[i] += opts.weightDecay * decayMults[0]! * reg(W[i]!);
      hW[i] = opts.lr * lrMults[0]! * gW[i] + opts.momentum * hW[i]!;
      W[i] -= hW[i]!;
    }
    for (let o = 0; o < 2; o++) {
      gb[o] += opts.weightDecay * decayMults[1]! * reg(b[o]!);
      hb[o] = opts.lr * lrMults[1]! * gb[o]! + opts.momentum * hb[o]!;
      b[o] -= hb[o]!;
    }
  }
  return { W, b, losses };
}

const params = (s: Solver) => s.net.learnableParams.map((p) => Array.from(p.cpuData()));

let restoreSink: LogSink | undefined;
afterEach(() => {
  if (restoreSink) setLogSink(restoreSink);
  restoreSink = undefined;
});
function captureLog(): string[] {
  const lines: string[] = [];
  restoreSink = setLogSink((line) => lines.push(line));
  return lines;
}

describe('SGDSolver on a tiny net (InnerProduct + Euclidean loss)', () => {
  it('momentum, weight decay, lr_mult and decay_mult match a hand computation', async () => {
    const { solver } = build({ momentum: 0.9, weight_decay: 0.01, max_iter: 4 });
    expect(solver).toBeInstanceOf(SGDSolver);
    const losses: number[] = [];
    solver.addCallback({ onIteration: (info) => losses.push(info.loss) });
    await solver.step(4);
    const p = solver.param;
    const ref = referenceSgd({ iters: 4, batch: 2, lr: p.base_lr, momentum: p.momentum, weightDecay: p.weight_decay });
    const [W, b] = params(solver);
    ref.W.forEach((w, i) => expect(W![i]).toBeCloseTo(w, 12));
    ref.b.forEach((v, i) => expect(b![i]).toBeCloseTo(v, 12));
    ref.losses.forEach((l, i) => expect(losses[i]).toBeCloseTo(l, 12));
    expect(solver.iter).toBe(4);
    // The history of the weights is the last step taken.
    expect((solver as SGDSolver).history).toHaveLength(2);
  });

  it('L1 regularization adds decay·sign(w)', async () => {
    const { solver } = build({ momentum: 0.5, weight_decay: 0.1, regularization_type: 'L1', max_iter: 3 }, { decayMults: [1, 1] });
    await solver.step(3);
    const p = solver.param;
    const ref = referenceSgd({ iters: 3, batch: 2, lr: p.base_lr, momentum: p.momentum, weightDecay: p.weight_decay, decayMults: [1, 1], l1: true });
    const [W, b] = params(solver);
    ref.W.forEach((w, i) => expect(W![i]).toBeCloseTo(w, 12));
    ref.b.forEach((v, i) => expect(b![i]).toBeCloseTo(v, 12));
  });

  it('rejects an unknown regularization type', () => {
    expect(() => build({ weight_decay: 0.1, regularization_type: 'L3' })).toThrow(SolverConfigError);
    expect(() => build({ weight_decay: 0.1, regularization_type: 'L3' })).toThrow('Unknown regularization type: L3 (known types: L1, L2)');
  });

  it('iter_size 2 with half batches equals iter_size 1 with full batches', async () => {
    const full = build({ momentum: 0.9, weight_decay: 0.005, iter_size: 1 }, { batch: 4 }).solver;
    const half = build({ momentum: 0.9, weight_decay: 0.005, iter_size: 2 }, { batch: 2 }).solver;
    const lossFull: number[] = [];
    const lossHalf: number[] = [];
    full.addCallback({ onIteration: (i) => lossFull.push(i.loss) });
    half.addCallback({ onIteration: (i) => lossHalf.push(i.loss) });
    await full.step(3);
    await half.step(3);
    const a = params(full).flat();
    const b = params(half).flat();
    a.forEach((v, i) => expect(b[i]).toBeCloseTo(v, 13));
    lossFull.forEach((l, i) => expect(lossHalf[i]).toBeCloseTo(l, 13));
    // Not trivially equal to the untrained weights.
    expect(Math.abs(a[0]! - 0.1)).toBeGreaterThan(1e-4);
  });

  it('clip_gradients scales all diffs when their L2 norm exceeds the threshold', async () => {
    const lines = captureLog();
    const { solver } = build({ clip_gradients: 1e-3, momentum: 0 }, { log: true });
    const before = params(solver).flat();
    await solver.step(1);
    const after = params(solver).flat();
    // One SGD step of a clipped gradient moves the params by lr·lr_mult·clip at most.
    const stepNorm = Math.sqrt(before.reduce((s, v, i) => s + (v - after[i]!) ** 2, 0));
    expect(stepNorm).toBeLessThanOrEqual(0.1 * 2 * 1e-3 + 1e-12);
    expect(stepNorm).toBeGreaterThan(0.1 * 1e-3 - 1e-12);
    expect(lines.some((l) => /sgd_solver\.cpp\] Gradient clipping: scaling down gradients \(L2 norm \S+ > 0\.001\) by scale factor \S+$/.test(l))).toBe(true);
  });

  it('multistep advances current_step and logs it', async () => {
    const lines = captureLog();
    const { solver } = build({ lr_policy: 'multistep', gamma: 0.5, stepvalue: [1, 2], max_iter: 3 }, { log: true });
    const lrs: number[] = [];
    solver.addCallback({ onIteration: (i) => lrs.push(i.lr) });
    await solver.step(3);
    const base = solver.param.base_lr;
    expect(lrs).toEqual([base, base * 0.5, base * 0.25]);
    expect(solver.currentStep).toBe(2);
    expect(lines.filter((l) => l.includes('sgd_solver.cpp] MultiStep Status: Iteration')).map((l) => l.split('] ')[1])).toEqual([
      'MultiStep Status: Iteration 1, step = 1',
      'MultiStep Status: Iteration 2, step = 2',
    ]);
  });

  it('restoreFrom rejects a state whose history does not fit', () => {
    const { solver } = build({});
    const data = solver.snapshotData();
    data.state.history.pop();
    expect(() => solver.restoreFrom(data.net, data.state)).toThrow(SolverStateError);
    expect(() => solver.restoreFrom(data.net, data.state)).toThrow(
      'Incorrect length of history blobs. (the state has 1; the SGD solver keeps 2 for 2 learnable params)',
    );
  });

  it('float32 SGD steps in one WebAssembly pass per param, bit-identical to the JS template (L2 decay, decay_mult 0, lr_mult 2, iter_size 2)', async () => {
    // A subclass keeps the template's separate JS passes (the fused step is SGD's own).
    class TemplateSGD extends SGDSolver {}
    const props = { momentum: 0.9, weight_decay: 0.01, lr_policy: 'step', stepsize: 2, gamma: 0.5, iter_size: 2, max_iter: 5 };
    const fused = build(props, { dtype: 'float32' });
    const template = build(props, { dtype: 'float32' });
    const plain = new TemplateSGD(template.solver.param, { registry: testRegistry(sequentialFeed(2)), dtype: 'float32', log: false });
    // Where WebAssembly is off (CAFFE_TS_GEMM=js) both run the template.
    const train = defaultWasmTrain();
    const counted = train ? vi.spyOn(train, 'sgdStep') : null;
    try {
      await fused.solver.step(5);
      await plain.step(5);
      // Two params (weights, bias) per iteration.
      if (counted) expect(counted.mock.calls.length).toBe(5 * 2);
    } finally {
      counted?.mockRestore();
    }
    const a = plain.net.learnableParams.map((p) => Array.from(p.cpuData()));
    const b = fused.solver.net.learnableParams.map((p) => Array.from(p.cpuData()));
    expect(b).toEqual(a);
    const ha = plain.history.map((h) => Array.from(h.cpuData()));
    const hb = (fused.solver as SGDSolver).history.map((h) => Array.from(h.cpuData()));
    expect(hb).toEqual(ha);
  });

  it('an installed pass runner with sgdStep takes the fused steps (same results); one that declines leaves them to WebAssembly', async () => {
    const train = defaultWasmTrain();
    if (!train) return; // CAFFE_TS_GEMM=js: no fused step to hand over
    const props = { momentum: 0.9, weight_decay: 0.01, max_iter: 4 };
    const reference = build(props, { dtype: 'float32' });
    await reference.solver.step(4);
    const want = reference.solver.net.learnableParams.map((p) => Array.from(p.cpuData()));
    const before = installedConv2dRunner();
    for (const decline of [false, true]) {
      const calls: number[] = [];
      const base = defaultWasmConv2d()!;
      const runner: Conv2dRunner = {
        name: 'recording',
        run: (g, num, chunk, pass) => base.run(g, num, chunk, pass),
        sgdStep: (w, g, h, rate, momentum, decay) => {
          calls.push(w.length);
          return decline ? null : train.sgdStep(w, g, h, rate, momentum, decay);
        },
      };
      const counted = vi.spyOn(train, 'sgdStep');
      setConv2dRunner(runner);
      try {
        const { solver } = build(props, { dtype: 'float32' });
        await solver.step(4);
        expect(solver.net.learnableParams.map((p) => Array.from(p.cpuData()))).toEqual(want);
        // Two params (weights, bias) per iteration, each offered to the runner first.
        expect(calls.length).toBe(4 * 2);
        // The runner's own steps ran here through the spied kernel too; a decline adds the fallback's.
        expect(counted.mock.calls.length).toBe(4 * 2);
      } finally {
        setConv2dRunner(before);
        counted.mockRestore();
      }
    }
  });

  it('snapshotData/restoreFrom in memory resumes bit-identically', async () => {
    const straight = build({ momentum: 0.9, weight_decay: 0.01, lr_policy: 'step', stepsize: 2, gamma: 0.5 }, { dtype: 'float32' });
    await straight.solver.step(5);
    const first = build({ momentum: 0.9, weight_decay: 0.01, lr_policy: 'step', stepsize: 2, gamma: 0.5 }, { dtype: 'float32' });
    await first.solver.step(3);
    const snap = first.solver.snapshotData();
    expect(snap.modelFile).toBe('_iter_3.caffemodel');
    const resumed = build({ momentum: 0.9, weight_decay: 0.01, lr_policy: 'step', stepsize: 2, gamma: 0.5 }, { dtype: 'float32' });
    resumed.feed.counters = { ...first.feed.counters };
    resumed.solver.restoreFrom(snap.net, snap.state);
    expect(resumed.solver.iter).toBe(3);
    await resumed.solver.step(2);
    const a = straight.solver.net.learnableParams.map((p) => p.cpuData());
    const b = resumed.solver.net.learnableParams.map((p) => p.cpuData());
    a.forEach((arr, i) => expect(b[i]).toEqual(arr));
  });

  it("applyUpdate is public (pycaffe's solver.apply_update): a hand-written iteration trains as step(1) does", async () => {
    const { solver: stepped } = build({ momentum: 0.9, weight_decay: 0.01 });
    const { solver: manual } = build({ momentum: 0.9, weight_decay: 0.01 });
    for (let k = 0; k < 3; k++) {
      await stepped.step(1);
      manual.net.clearParamDiffs();
      await manual.net.prepare();
      manual.net.forwardBackward();
      manual.applyUpdate();
      // applyUpdate leaves the iteration where it was, as Caffe's ApplyUpdate does.
      expect(manual.iter).toBe(0);
      for (const [name, blobs] of stepped.net.params) {
        blobs.forEach((b, i) => expect(Array.from(manual.net.params.get(name)![i]!.cpuData())).toEqual(Array.from(b.cpuData())));
      }
    }
  });
});

