import { globalRng, Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { parseNetParameter } from '@caffe-ts/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { SolverConfigError } from './errors.js';
import { formatG } from './format.js';
import { createSolver } from './solver-registry.js';
import type { Solver, SnapshotData, TestResult } from './solver.js';
import { regressionNetText, sample, sequentialFeed, solverParam, testRegistry } from './test-fixtures.js';

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
/** The solver's own lines, without the glog prefix: `solver.cpp] text` → `text`. */
function solverLines(lines: string[]): string[] {
  return lines
    .filter((l) => / (solver\.cpp|sgd_solver\.cpp)\] /.test(l))
    .map((l) => l.slice(l.indexOf('] ') + 2));
}

const W0 = Math.fround(0.1);
const B0 = Math.fround(-0.2);
/** Loss of the untrained net on samples [from, from + n). */
function initialLoss(from: number, n: number): number {
  let loss = 0;
  for (let j = 0; j < n; j++) {
    const { x, t } = sample(from + j);
    for (let o = 0; o < 2; o++) {
      const d = W0 * (x[0]! + x[1]! + x[2]!) + B0 - t[o]!;
      loss += (d * d) / (2 * n);
    }
  }
  return loss;
}

function build(props: Record<string, unknown>, { batch = 2, log = false, netText = regressionNetText(batch) } = {}): Solver {
  const feed = sequentialFeed(batch);
  const param = solverParam({
    net_param: parseNetParameter(netText),
    base_lr: 0.1,
    lr_policy: 'fixed',
    max_iter: 2,
    ...props,
  });
  return createSolver(param, { registry: testRegistry(feed), dtype: 'float64', log });
}

describe('Solver: the training loop, tests and Caffe\'s log lines', () => {
  it('logs display, lr and test lines in Caffe\'s format, testing before iteration 0 and at the end', async () => {
    const lines = captureLog();
    const solver = build({
      display: 1,
      test_iter: [2],
      test_interval: 2,
      test_compute_loss: true,
      snapshot_after_train: false,
    }, { log: true });
    const tests: TestResult[] = [];
    solver.addCallback({ onTest: (r) => tests.push(r) });
    await solver.solve();
    const out = solverLines(lines);
    const testMean = (initialLoss(1000, 2) + initialLoss(1002, 2)) / 2;
    const l0 = initialLoss(0, 2);
    const g = formatG;
    expect(out[0]).toMatch(/^Initializing solver from parameters: \n/);
    const rest = out.slice(out.indexOf('Solver scaffolding done.'));
    expect(rest.slice(0, 8)).toEqual([
      'Solver scaffolding done.',
      'Solving tiny_regression',
      'Learning Rate Policy: fixed',
      'Iteration 0, Testing net (#0)',
      `Test loss: ${g(testMean)}`,
      `    Test net output #0: loss = ${g(testMean)} (* 1 = ${g(testMean)} loss)`,
      expect.stringMatching(new RegExp(`^Iteration 0 \\(\\S+ iter/s, \\S+s/1 iters\\), loss = ${g(l0).replace('.', '\\.')}$`)),
      `    Train net output #0: loss = ${g(l0)} (* 1 = ${g(l0)} loss)`,
    ]);
    expect(rest[8]).toBe('Iteration 0, lr = 0.1');
    expect(rest[9]).toMatch(/^Iteration 1 \(\S+ iter\/s, \S+s\/1 iters\), loss = \S+$/);
    expect(rest[11]).toBe('Iteration 1, lr = 0.1');
    // After max_iter: one forward pass for the display, then the final test.
    expect(rest[12]).toMatch(/^Iteration 2, loss = \S+$/);
    expect(rest.slice(13, 15)).toEqual(['Iteration 2, Testing net (#0)', expect.stringMatching(/^Test loss: \S+$/)]);
    expect(rest.at(-1)).toBe('Optimization Done.');
    // Each test output is averaged over test_iter batches.
    expect(tests).toHaveLength(2);
    expect(tests[0]!.scores).toEqual([{ index: 0, name: 'loss', value: testMean, lossWeight: 1 }]);
    expect(tests[0]!.loss).toBeCloseTo(testMean, 14);
    expect(tests[1]!.iter).toBe(2);
    expect(solver.iter).toBe(2);
  });

  it('smooths the displayed loss over average_loss iterations', async () => {
    const lines = captureLog();
    const solver = build({ display: 3, average_loss: 3, max_iter: 3, snapshot_after_train: false }, { log: true });
    const losses: number[] = [];
    solver.addCallback({ onIteration: (i) => losses.push(i.loss) });
    await solver.step(3);
    const shown = solverLines(lines).filter((l) => l.startsWith('Iteration 0 ('));
    expect(shown[0]).toMatch(new RegExp(`loss = ${formatG(losses[0]!).replace('.', '\\.')}$`));
    expect(solver.smoothedLossValue).toBeCloseTo((losses[0]! + losses[1]! + losses[2]!) / 3, 14);
  });

  it('test_initialization: false skips the test before iteration 0', async () => {
    const solver = build({ test_iter: [1], test_interval: 1, test_initialization: false, max_iter: 2 });
    const at: number[] = [];
    solver.addCallback({ onTest: (r) => at.push(r.iter) });
    await solver.step(2);
    expect(at).toEqual([1]);
  });

  it('test nets share the train net\'s weights', async () => {
    const solver = build({ test_iter: [1, 1], test_interval: 100 });
    expect(solver.testNets).toHaveLength(2);
    await solver.step(2);
    await solver.testAll();
    for (const t of solver.testNets) {
      t.learnableParams.forEach((p, i) => expect(p.cpuData()).toEqual(solver.net.learnableParams[i]!.cpuData()));
    }
  });

  it('requestAction: snapshot keeps training, stop ends it (and snapshot_after_train still snapshots)', async () => {
    const lines = captureLog();
    const solver = build({ max_iter: 10 }, { log: true });
    const snaps: SnapshotData[] = [];
    solver.addCallback({
      onSnapshot: (s) => snaps.push(s),
      onIteration: (i, s) => {
        if (i.iter === 2) s.requestAction('snapshot');
        if (i.iter === 4) s.requestAction('stop');
      },
    });
    await solver.solve();
    expect(solver.iter).toBe(4);
    expect(solver.stoppedEarly).toBe(true);
    expect(snaps.map((s) => s.iter)).toEqual([2, 4]);
    expect(snaps[1]!.state.iter).toBe(4);
    expect(snaps[1]!.state.history).toHaveLength(2);
    const out = solverLines(lines);
    expect(out).toContain('Optimization stopped early.');
    expect(out).not.toContain('Optimization Done.');
    expect(out.some((l) => l.startsWith('No file access configured; snapshot of iteration 2'))).toBe(true);
  });

  it('an action function (Caffe\'s SetActionFunction) is polled each iteration', async () => {
    const solver = build({ max_iter: 10, snapshot_after_train: false });
    let polls = 0;
    solver.setActionFunction(() => (++polls === 3 ? 'stop' : 'none'));
    await solver.solve();
    expect(solver.iter).toBe(3);
  });

  it('yields to the event loop between iterations (prefetch callbacks run during training)', async () => {
    const solver = build({ max_iter: 3, snapshot_after_train: false });
    const order: string[] = [];
    solver.addCallback({ onIteration: (i) => order.push(`iter ${i.iter}`) });
    const ticker = setInterval(() => order.push('tick'), 0);
    setImmediate(() => order.push('immediate'));
    await solver.solve();
    clearInterval(ticker);
    expect(order.indexOf('immediate')).toBeLessThan(order.indexOf('iter 3'));
  });

  it('awaits the nets\' prepare() (prefetched batches) before every forward, train and test; close() closes the layers', async () => {
    const feed = sequentialFeed(2);
    feed.prefetch = true;
    const solver = createSolver(
      solverParam({
        net_param: parseNetParameter(regressionNetText(2)),
        base_lr: 0.1,
        lr_policy: 'fixed',
        max_iter: 3,
        iter_size: 2,
        test_iter: [2],
        test_interval: 2,
        display: 1,
        snapshot_after_train: false,
      }),
      { registry: testRegistry(feed), dtype: 'float64', log: false },
    );
    await solver.solve();
    expect(solver.iter).toBe(3);
    // 3 iterations × iter_size 2 forwards, plus the final display forward.
    expect(feed.counters[0]).toBe(7);
    expect(feed.counters[1]).toBe(4);
    await solver.close();
    expect(feed.closed).toBe(2);
  });

  it('random_seed seeds the process RNG before the nets are built', () => {
    build({ random_seed: 1234 });
    const expected = new Rng(1234);
    expect(globalRng().nextUint32()).toBe(expected.nextUint32());
  });
});

describe('Solver: net set-up and Caffe\'s checks', () => {
  const net = () => parseNetParameter(regressionNetText(2));
  const make = (props: Record<string, unknown>) =>
    createSolver(solverParam({ base_lr: 0.1, lr_policy: 'fixed', ...props }), { registry: testRegistry(sequentialFeed(2)), log: false });

  it('needs exactly one train net', () => {
    expect(() => make({})).toThrow(
      'SolverParameter must specify a train net using one of these fields: net, net_param, train_net, train_net_param',
    );
    expect(() => make({ net_param: net(), train_net_param: net() })).toThrow(
      'SolverParameter must not contain more than one of these fields specifying a train_net: net, net_param, train_net, train_net_param',
    );
  });

  it('needs one test_iter per test net', () => {
    expect(() => make({ train_net_param: net(), test_net_param: [net()] })).toThrow(SolverConfigError);
    expect(() => make({ train_net_param: net(), test_net_param: [net()] })).toThrow(/^test_iter must be specified for each test network\./);
    expect(() => make({ net_param: net(), test_net_param: [net(), net()], test_iter: [1], test_interval: 1 })).toThrow(
      /^test_iter must be specified for each test network\./,
    );
    const s = make({ train_net_param: net(), test_net_param: [net()], test_iter: [3], test_interval: 1 });
    expect(s.testNets).toHaveLength(1);
    // With a general net, extra test_iter entries add instances of it.
    expect(make({ net_param: net(), test_net_param: [net()], test_iter: [1, 1, 1], test_interval: 1 }).testNets).toHaveLength(3);
  });

  it('checks test_state count and test_interval', () => {
    expect(() => make({ net_param: net(), test_iter: [1, 1], test_state: [{ stage: ['a'] }], test_interval: 1 })).toThrow(
      /^test_state must be unspecified or specified once per test net\./,
    );
    expect(() => make({ net_param: net(), test_iter: [1] })).toThrow(/test_interval must be > 0/);
  });

  it('checks average_loss and snapshot_prefix', () => {
    expect(() => make({ net_param: net(), average_loss: 0 })).toThrow(/^average_loss should be non-negative\./);
    expect(() => make({ net_param: net(), snapshot: 10 })).toThrow('In solver params, snapshot is specified but snapshot_prefix is not');
  });

  it('a net file without file access is a clear error', () => {
    expect(() => make({ net: 'train_val.prototxt' })).toThrow(
      "SolverParameter.net names a file ('train_val.prototxt') but this solver has no file access; use net_param, or create the solver through @caffe-ts/solver/node",
    );
  });

  it('builds the train net in phase TRAIN and test nets in TEST, merging train_state/test_state', () => {
    // loss2 exists only with stage "extra"; "aux" only at level >= 2.
    const text =
      regressionNetText(2) +
      `layer { name: "loss2" type: "TestEuclideanLoss" bottom: "out" bottom: "target" top: "loss2" include { stage: "extra" } }
       layer { name: "aux" type: "TestEuclideanLoss" bottom: "out" bottom: "target" top: "aux" include { min_level: 2 } }`;
    const s = createSolver(
      solverParam({
        base_lr: 0.1,
        lr_policy: 'fixed',
        net_param: parseNetParameter(text),
        test_iter: [1, 1],
        test_interval: 5,
        test_state: [{ stage: ['extra'] }, {}],
        train_state: { level: 1 },
      }),
      { registry: testRegistry(sequentialFeed(2)), log: false, trainState: { level: 2 } },
    );
    expect([...s.net.outputBlobNames].sort()).toEqual(['aux', 'loss']);
    expect([...s.testNets[0]!.outputBlobNames].sort()).toEqual(['loss', 'loss2']);
    expect(s.testNets[1]!.outputBlobNames).toEqual(['loss']);
    expect((s.net as unknown as { phase: number }).phase).toBe(0);
    expect((s.testNets[0] as unknown as { phase: number }).phase).toBe(1);
  });
});

describe('Solver.dispose', () => {
  it('frees the train and test nets and the update history; stepping afterwards fails naming the net', async () => {
    const solver = build({ type: 'Adam', test_iter: [1], test_interval: 100 });
    await solver.step(2);
    const history = (solver as unknown as { history: { count(): number }[] }).history;
    expect(history.length).toBe(4); // weight and bias, two histories each
    expect(history.every((h) => h.count() > 0)).toBe(true);
    await solver.close();
    solver.dispose();
    expect([solver.net, ...solver.testNets].map((n) => n.isDisposed)).toEqual([true, true]);
    expect(history.map((h) => h.count())).toEqual([0, 0, 0, 0]);
    await expect(solver.step(1)).rejects.toThrow(/was disposed/);
  });
});
