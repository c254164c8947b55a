/**
 * SolverParameter features end to end on the tiny regression net: debug_info, snapshot_diff,
 * snapshot_after_train, max_iter, train_net/test_net files and several test nets, per-param
 * decay_mult with L1, clip_gradients below its threshold, random_seed determinism, and resuming a
 * snapshot to the same weights as training straight through.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setLogSink, type LogSink } from '@caffe-ts/blob';
import { dropoutLayerDef, type LayerDef } from '@caffe-ts/layers';
import { decodeNetParameter, parseNetParameter, Phase } from '@caffe-ts/proto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createNodeSolver } from './node.js';
import type { SGDSolver } from './sgd-solver.js';
import type { TestResult } from './solver.js';
import { createSolver } from './solver-registry.js';
import { regressionNetText, sample, sequentialFeed, solverParam, testRegistry, type Feed } from './test-fixtures.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'caffe-ts-features-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
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
const text = (l: string) => l.slice(l.indexOf('] ') + 2);

const base = { base_lr: 0.1, lr_policy: 'fixed', momentum: 0.9 };
const net = (batch = 2) => parseNetParameter(regressionNetText(batch));

describe('SolverParameter features', () => {
  it('debug_info: per-layer [Forward]/[Backward]/[Update] mean-abs lines on display iterations only', async () => {
    const lines = captureLog();
    const solver = createSolver(solverParam({ net_param: net(), ...base, max_iter: 2, display: 2, debug_info: true, snapshot_after_train: false }), {
      registry: testRegistry(sequentialFeed(2)),
      dtype: 'float64',
    });
    await solver.step(2);
    const out = lines.map(text);
    // Iteration 0 is displayed (debug lines), iteration 1 is not.
    const x = [...sample(0).x, ...sample(1).x];
    const meanAbs = x.reduce((s, v) => s + Math.abs(v), 0) / x.length;
    const { formatG } = await import('./format.js');
    expect(out.filter((l) => l.startsWith('    [Forward] Layer feed, top blob data data: '))).toEqual([
      `    [Forward] Layer feed, top blob data data: ${formatG(meanAbs)}`,
    ]);
    for (const re of [
      /^ {4}\[Forward\] Layer ip, top blob out data: \S+$/,
      /^ {4}\[Forward\] Layer ip, param blob 0 data: 0\.1$/,
      /^ {4}\[Forward\] Layer loss, top blob loss data: \S+$/,
      /^ {4}\[Backward\] Layer ip, param blob 0 diff: \S+$/,
      /^ {4}\[Backward\] Layer ip, param blob 1 diff: \S+$/,
      /^ {4}\[Backward\] All net params \(data, diff\): L1 norm = \(\S+, \S+\); L2 norm = \(\S+, \S+\)$/,
      /^ {4}\[Update\] Layer ip, param 0 data: \S+; diff: \S+$/,
    ]) {
      expect(out.some((l) => re.test(l)), String(re)).toBe(true);
    }
    // One display iteration: each line once.
    expect(out.filter((l) => l.startsWith('    [Backward] All net params')).length).toBe(1);
    expect(lines.find((l) => l.includes('[Backward] All net params'))).toMatch(/^E/); // Caffe logs it at ERROR
  });

  it('max_iter bounds solve(); snapshot_after_train writes the final state unless the interval just did', async () => {
    const dir = tmp();
    const build = (props: Record<string, unknown>) =>
      createNodeSolver(solverParam({ net_param: net(), ...base, snapshot_prefix: join(dir, props.tag as string), ...props, tag: undefined }), {
        registry: testRegistry(sequentialFeed(2)),
        rootDir: dir,
        log: false,
      });
    const a = await build({ tag: 'a', max_iter: 5, snapshot: 2 });
    await a.solve();
    expect(a.iter).toBe(5);
    const b = await build({ tag: 'b', max_iter: 4, snapshot: 2 });
    await b.solve();
    const c = await build({ tag: 'c', max_iter: 3, snapshot_after_train: false });
    await c.solve();
    expect(c.iter).toBe(3);
    expect(readdirSync(dir).sort()).toEqual([
      'a_iter_2.caffemodel', 'a_iter_2.solverstate', 'a_iter_4.caffemodel', 'a_iter_4.solverstate',
      'a_iter_5.caffemodel', 'a_iter_5.solverstate', // after training
      'b_iter_2.caffemodel', 'b_iter_2.solverstate', 'b_iter_4.caffemodel', 'b_iter_4.solverstate', // not twice
    ]);
  });

  it('snapshot_diff stores the diffs in the .caffemodel (and not without it)', async () => {
    const dir = tmp();
    for (const diff of [true, false]) {
      const s = await createNodeSolver(
        solverParam({ net_param: net(), ...base, max_iter: 1, snapshot_diff: diff, snapshot_prefix: join(dir, `d${diff}`) }),
        { registry: testRegistry(sequentialFeed(2)), rootDir: dir, log: false },
      );
      await s.solve();
      const model = decodeNetParameter(readFileSync(join(dir, `d${diff}_iter_1.caffemodel`)));
      const ip = model.layer.find((l) => l.name === 'ip')!;
      if (diff) {
        expect(Array.from(ip.blobs[0]!.diff)).toEqual(Array.from(s.net.learnableParams[0]!.cpuDiff()));
        expect(ip.blobs[0]!.diff.some((v) => v !== 0)).toBe(true);
      } else expect(ip.blobs[0]!.diff).toEqual([]);
    }
  });

  it('train_net and test_net files, several test nets with their own test_iter and test_state', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'train.prototxt'), regressionNetText(2).replace('tiny_regression', 'train_file'));
    const withStage =
      regressionNetText(2).replace('tiny_regression', 'test_file') +
      'layer { name: "extra" type: "TestEuclideanLoss" bottom: "out" bottom: "target" top: "extra" include { stage: "more" } }';
    writeFileSync(join(dir, 'test.prototxt'), withStage);
    const feed = sequentialFeed(2);
    const solver = await createNodeSolver(
      solverParam({
        ...base,
        train_net: 'train.prototxt',
        test_net: ['test.prototxt', 'test.prototxt'],
        test_net_param: [parseNetParameter(regressionNetText(2).replace('tiny_regression', 'inline_test'))],
        test_iter: [1, 2, 3],
        test_state: [{}, { stage: ['more'] }, {}],
        test_interval: 2,
        max_iter: 2,
        snapshot_after_train: false,
      }),
      { registry: testRegistry(feed), rootDir: dir, log: false },
    );
    expect(solver.net.name).toBe('train_file');
    // test_net_param first, then test_net files, as Caffe orders them.
    expect(solver.testNets.map((n) => n.name)).toEqual(['inline_test', 'test_file', 'test_file']);
    expect(solver.testNets.map((n) => n.phase)).toEqual([Phase.TEST, Phase.TEST, Phase.TEST]);
    expect(solver.testNets[1]!.outputBlobNames).toEqual(['extra', 'loss']);
    expect(solver.testNets[2]!.outputBlobNames).toEqual(['loss']);
    const results: TestResult[] = [];
    solver.addCallback({ onTest: (r) => results.push(r) });
    await solver.solve();
    // Tests at iteration 0 and 2, each of the three nets.
    expect(results.map((r) => [r.iter, r.testNetId])).toEqual([[0, 0], [0, 1], [0, 2], [2, 0], [2, 1], [2, 2]]);
    expect(results[1]!.scores.map((s) => s.name)).toEqual(['extra', 'loss']);
    // 6 test forwards per round (1 + 2 + 3), two rounds.
    expect(feed.counters[Phase.TEST]).toBe(12);
  });

  it('L1 with per-param decay_mult: the bias decays with its own multiplier', async () => {
    const plain = createSolver(solverParam({ net_param: net(), ...base, momentum: 0, weight_decay: 0.5, regularization_type: 'L1' }), {
      registry: testRegistry(sequentialFeed(2)),
      dtype: 'float64',
      log: false,
    }) as SGDSolver;
    const multText = regressionNetText(2, { lrMults: [1, 1], decayMults: [0, 3] });
    const mult = createSolver(solverParam({ net_param: parseNetParameter(multText), ...base, momentum: 0, weight_decay: 0.5, regularization_type: 'L1' }), {
      registry: testRegistry(sequentialFeed(2)),
      dtype: 'float64',
      log: false,
    }) as SGDSolver;
    const noDecay = createSolver(solverParam({ net_param: parseNetParameter(multText), ...base, momentum: 0 }), {
      registry: testRegistry(sequentialFeed(2)),
      dtype: 'float64',
      log: false,
    }) as SGDSolver;
    await mult.step(1);
    await noDecay.step(1);
    await plain.step(1);
    // Weights: decay_mult 0, so the same as no decay. Bias (-0.2): L1 adds 0.5·3·sign(b) = -1.5 to the gradient.
    expect(mult.net.learnableParams[0]!.cpuData()).toEqual(noDecay.net.learnableParams[0]!.cpuData());
    const b = mult.net.learnableParams[1]!.cpuData();
    const b0 = noDecay.net.learnableParams[1]!.cpuData();
    for (let i = 0; i < 2; i++) expect(b[i]! - b0[i]!).toBeCloseTo(0.1 * 1.5, 7); // base_lr is a float field
    expect(plain.net.learnableParams[0]!.cpuData()).not.toEqual(noDecay.net.learnableParams[0]!.cpuData());
  });

  it('clip_gradients leaves gradients under the threshold alone', async () => {
    const clipped = createSolver(solverParam({ net_param: net(), ...base, clip_gradients: 1e6 }), { registry: testRegistry(sequentialFeed(2)), log: false });
    const free = createSolver(solverParam({ net_param: net(), ...base }), { registry: testRegistry(sequentialFeed(2)), log: false });
    await clipped.step(3);
    await free.step(3);
    clipped.net.learnableParams.forEach((p, i) => expect(p.cpuData()).toEqual(free.net.learnableParams[i]!.cpuData()));
  });
});

/** The regression net with random (gaussian) weights and a Dropout: training draws random numbers. */
function randomNetText(): string {
  return regressionNetText(4)
    .replace('weight_filler { type: "constant" value: 0.1 }', 'weight_filler { type: "gaussian" std: 0.5 }')
    .replace('bottom: "data" top: "out"', 'bottom: "dropped" top: "out"')
    .replace('layer {\n  name: "ip"', 'layer { name: "drop" type: "Dropout" bottom: "data" top: "dropped" dropout_param { dropout_ratio: 0.3 } }\nlayer {\n  name: "ip"');
}

function randomRegistry(feed: Feed) {
  const r = testRegistry(feed);
  r.register(dropoutLayerDef as LayerDef);
  return r;
}

describe('determinism', () => {
  async function lossesOf(seed: number, iters = 8): Promise<{ losses: number[]; params: Float32Array[] }> {
    const solver = createSolver(
      solverParam({ net_param: parseNetParameter(randomNetText()), ...base, weight_decay: 0.001, random_seed: seed, max_iter: iters, snapshot_after_train: false }),
      { registry: randomRegistry(sequentialFeed(4)), log: false },
    );
    const losses: number[] = [];
    solver.addCallback({ onIteration: (i) => losses.push(i.loss) });
    await solver.solve();
    return { losses, params: solver.net.learnableParams.map((p) => p.cpuData() as Float32Array) };
  }

  it('random_seed: two runs give identical loss sequences and weights; another seed does not', async () => {
    const a = await lossesOf(7);
    const b = await lossesOf(7);
    const c = await lossesOf(8);
    expect(randomNetText()).toContain('type: "Dropout"');
    expect(a.losses).toEqual(b.losses);
    a.params.forEach((p, i) => expect(b.params[i]).toEqual(p));
    expect(c.losses).not.toEqual(a.losses);
  });

  it('N iterations, snapshot, resume to 2N equals 2N straight, bit for bit (deterministic data, no Dropout)', async () => {
    const dir = tmp();
    const text = regressionNetText(4).replace('weight_filler { type: "constant" value: 0.1 }', 'weight_filler { type: "gaussian" std: 0.5 }');
    const make = (props: Record<string, unknown>, feed: Feed) =>
      createNodeSolver(
        solverParam({ net_param: parseNetParameter(text), ...base, type: 'Adam', momentum: 0.9, base_lr: 0.01, weight_decay: 0.01, random_seed: 3, ...props }),
        { registry: testRegistry(feed), rootDir: dir, log: false },
      );
    const straight = await make({ max_iter: 10, snapshot_after_train: false }, sequentialFeed(4));
    await straight.solve();
    const first = await make({ max_iter: 5, snapshot_prefix: join(dir, 'half') }, sequentialFeed(4));
    await first.solve();
    // The data source resumes where the first run stopped (Caffe does not store the data cursor).
    const feed = sequentialFeed(4);
    feed.counters = { [Phase.TRAIN]: 5 };
    // A different seed: the fillers' values are overwritten by the snapshot anyway.
    const resumed = await make({ max_iter: 10, snapshot_after_train: false, random_seed: 99 }, feed);
    await resumed.solve(join(dir, 'half_iter_5.solverstate'));
    straight.net.learnableParams.forEach((p, i) => expect(resumed.net.learnableParams[i]!.cpuData()).toEqual(p.cpuData()));
    (straight as SGDSolver).history.forEach((h, i) => expect((resumed as SGDSolver).history[i]!.cpuData()).toEqual(h.cpuData()));
  });
});
