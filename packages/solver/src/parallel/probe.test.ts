import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getNumThreads, globalRng, setNumThreads, setRandomSeed } from '@caffe-ts/blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSolverFromFile, readSolverFile } from '../node.js';
import { Phase } from '@caffe-ts/proto';
import { FeedLayer, sequentialFeed, testRegistry } from '../test-fixtures.js';
import { chooseParallelism } from './plan.js';
import { describePlan, parallelCandidates, probeMode, probeParallelism, probeWanted, PROBE_MIN_ITERATIONS, type ParallelProbeOptions } from './probe.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'caffe-ts-probe-'));
  // Gaussian weights: building a net draws from the global generator.
  writeFileSync(
    join(dir, 'net.prototxt'),
    `name: "probe"
layer { name: "feed" type: "TestFeed" top: "data" top: "target" input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "out"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "TestEuclideanLoss" bottom: "out" bottom: "target" top: "loss" }
`,
  );
  writeFileSync(
    join(dir, 'exclusive.prototxt'),
    `name: "exclusive"
layer { name: "feed" type: "ExclusiveFeed" top: "data" top: "target" input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "out" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "TestEuclideanLoss" bottom: "out" bottom: "target" top: "loss" }
`,
  );
  writeFileSync(join(dir, 'exclusive_solver.prototxt'), 'net: "exclusive.prototxt"\nbase_lr: 0.05\nlr_policy: "fixed"\nmax_iter: 20\n');
  // No random_seed: the run's weights come from wherever the global generator stands.
  writeFileSync(join(dir, 'solver.prototxt'), 'net: "net.prototxt"\nbase_lr: 0.05\nmomentum: 0.9\nlr_policy: "fixed"\nmax_iter: 20\ndisplay: 0\nsnapshot_after_train: false\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const plan = (workers: number, kernelThreads: number) => ({ workers, kernelThreads, mode: 'split' as const });

/** A sequential feed that calls `before(k)` ahead of serving a copy's k-th batch. */
function feedBefore(before: (k: number) => void) {
  const base = sequentialFeed(4);
  return { ...base, counters: {}, batch: (phase: Phase, k: number, name: string) => {
    before(k);
    return base.batch(phase, k, name);
  } };
}

/** probeParallelism's options for these tests: quiet copies, each probe with a feed of its own, plus `extra`. */
const quiet = (extra: ParallelProbeOptions): ParallelProbeOptions => ({
  solverOptions: { log: false, registry: testRegistry(sequentialFeed(4)) },
  log: false,
  ...extra,
});

describe('parallelCandidates', () => {
  it('times the static default against one replica on every core, and half the replicas from four cores', () => {
    expect(parallelCandidates({ cores: 2 })).toEqual([plan(2, 1), plan(1, 2)]);
    expect(parallelCandidates({ cores: 4, batchSizes: [64] })).toEqual([plan(4, 1), plan(1, 4), plan(2, 2)]);
    // The default takes as many replicas as divide the batch; half the cores as replicas only where they divide it too.
    expect(parallelCandidates({ cores: 4, batchSizes: [6] })).toEqual([plan(3, 1), plan(1, 4), plan(2, 2)]);
    expect(parallelCandidates({ cores: 4, batchSizes: [9] })).toEqual([plan(3, 1), plan(1, 4)]);
    expect(parallelCandidates({ cores: 8, batchSizes: [100] })).toEqual([plan(5, 1), plan(1, 8), plan(4, 2)]);
    // Duplicates are dropped: with a batch of 2 on four cores the default is already 2 × 2.
    expect(parallelCandidates({ cores: 4, batchSizes: [2] })).toEqual([plan(2, 2), plan(1, 4)]);
    expect(parallelCandidates({ cores: 1 })).toEqual([plan(1, 1)]);
    for (const cores of [2, 3, 4, 6, 8, 16]) {
      for (const p of parallelCandidates({ cores, batchSizes: [64] })) expect(p.workers * p.kernelThreads).toBeLessThanOrEqual(cores);
    }
    expect(parallelCandidates({ cores: 2 })[0]).toEqual(chooseParallelism({ cores: 2 }));
  });

  it('names a plan in words', () => {
    expect(describePlan(plan(2, 1))).toBe('2 split replicas × 1 kernel thread');
    expect(describePlan(plan(1, 2))).toBe('1 replica × 2 kernel threads');
  });
});

describe('probeWanted', () => {
  it('times long runs by default; CAFFE_TS_PARALLEL_PROBE forces it on or off', () => {
    expect(probeWanted({ max_iter: PROBE_MIN_ITERATIONS }, undefined)).toBe(true);
    expect(probeWanted({ max_iter: PROBE_MIN_ITERATIONS - 1 }, undefined)).toBe(false);
    expect(probeWanted({ max_iter: 10 }, ' ON ')).toBe(true);
    expect(probeWanted({ max_iter: 100_000 }, 'off')).toBe(false);
    expect(probeWanted({ max_iter: 100_000 }, 'auto')).toBe(true);
    expect([probeMode(' On'), probeMode('OFF'), probeMode(undefined), probeMode('maybe')]).toEqual(['on', 'off', 'auto', 'auto']);
  });
});

describe('probeParallelism', () => {
  it('times each candidate, leaves the generator and the thread count as they were, and the run as it would have been', async () => {
    const read = await readSolverFile('solver.prototxt', { rootDir: dir, log: false });
    const threads = getNumThreads();
    // A count neither candidate uses, to see it restored.
    setNumThreads(3);
    setRandomSeed(1234);
    const before = globalRng().getState();
    // The probe's copies read their own feed (each data layer of a real net has its own cursor).
    const probe = await probeParallelism(read, quiet({
      candidates: [plan(1, 1), plan(1, 2)],
      warmup: 1,
      rounds: 2,
      iterations: 2,
      maxShare: Infinity,
    }));
    expect(globalRng().getState()).toEqual(before);
    expect(getNumThreads()).toBe(3);
    setNumThreads(threads);
    expect(probe.sequential).toBe(false);
    expect(probe.timings.map((t) => t.plan)).toEqual([plan(1, 1), plan(1, 2)]);
    for (const t of probe.timings) expect(t.msPerIteration).toBeGreaterThan(0);
    expect([plan(1, 1), plan(1, 2)]).toContainEqual(probe.plan);
    // The file's parameters were not touched (the copies drop tests, snapshots and display).
    expect(read.param.max_iter).toBe(20);

    // After the probe, the run trains exactly as a run that never probed.
    const train = async () => {
      const solver = await buildSolverFromFile(read, { log: false, registry: testRegistry(sequentialFeed(4)) });
      await solver.step(5);
      const values = solver.net.learnableParams.map((b) => Array.from(b.cpuData()));
      await solver.close();
      return values;
    };
    const probed = await train();
    setRandomSeed(1234);
    const plain = await train();
    expect(probed).toEqual(plain);
  });

  it('keeps the first candidate on a near tie or for a net too large to copy, reports a candidate that cannot run, and picks what runs', async () => {
    const read = await readSolverFile('solver.prototxt', { rootDir: dir, log: false });
    const probe = await probeParallelism(read, quiet({
      // workers 0 is refused when it is built: the probe goes on with the others.
      candidates: [plan(0, 1), plan(1, 1)],
      warmup: 0,
      rounds: 1,
      iterations: 1,
      maxShare: Infinity,
    }));
    expect(probe.timings[0]!.msPerIteration).toBeNull();
    expect(probe.timings[0]!.failure).toMatch(/workers must be an integer >= 1 \(got 0\)/);
    expect(probe.plan).toEqual(plan(1, 1));
    // A margin no candidate can beat keeps the first (the static default).
    const tie = await probeParallelism(read, quiet({
      candidates: [plan(1, 1), plan(1, 2)],
      warmup: 0,
      rounds: 1,
      iterations: 1,
      margin: 1,
      maxShare: Infinity,
    }));
    expect(tie.plan).toEqual(plan(1, 1));
    const [a, b] = tie.timings;
    expect(a!.msPerIteration).not.toBeNull();
    expect(b!.msPerIteration).not.toBeNull();
    // A net whose copies would hold more than maxBytes is not timed: the first candidate stands.
    const big = await probeParallelism(read, quiet({
      candidates: [plan(1, 2), plan(1, 1)],
      maxBytes: 64,
      maxShare: Infinity,
    }));
    expect(big.plan).toEqual(plan(1, 2));
    expect(big.skipped).toMatch(/the copies' train nets would hold \d+ MiB, over 0 MiB/);
    expect(big.timings.every((t) => t.msPerIteration === null)).toBe(true);
    // Nor is a run too short for the timing to pay (its 20 iterations, against the default 5 %).
    const short = await probeParallelism(read, quiet({
      candidates: [plan(1, 2), plan(1, 1)],
    }));
    expect(short.plan).toEqual(plan(1, 2));
    expect(short.skipped).toMatch(/timing them would take about [\d.]+ s, over 5 % of the run's [\d.]+ s/);
    // The same run told it has a million iterations to go is timed.
    const long = await probeParallelism(read, quiet({
      candidates: [plan(1, 2), plan(1, 1)],
      runIterations: 1e6,
      warmupMs: 20,
      roundMs: 20,
    }));
    expect(long.skipped).toBeUndefined();
    expect(long.timings.every((t) => t.msPerIteration !== null && t.iterations! >= 4)).toBe(true);
  });

  it("sets the rounds' length from a warm call, not from the copies' slow first iterations", async () => {
    // Each copy's first two batches take 25 ms (a cold start), the rest well under a millisecond.
    const feed = feedBefore((k) => {
      if (k < 2) for (const t0 = performance.now(); performance.now() - t0 < 25; );
    });
    const read = await readSolverFile('solver.prototxt', { rootDir: dir, log: false });
    const probe = await probeParallelism(read, {
      candidates: [plan(1, 1), plan(1, 2)],
      solverOptions: { log: false, registry: testRegistry(feed) },
      warmup: 2, warmupMs: 1, roundMs: 40, rounds: 1, log: false, maxShare: Infinity,
    });
    // Timed at the cold speed, 40 ms would make the shortest rounds allowed (4 iterations); at
    // the warm speed more (16 or more on a quiet machine, fewer when it is loaded).
    for (const t of probe.timings) expect(t.iterations).toBeGreaterThan(4);
  });

  it('times the candidates one after the other when a second copy cannot be built while the first is open', async () => {
    // A data source only one net at a time may hold (until its net is closed).
    let held = false;
    class ExclusiveFeed extends FeedLayer {
      constructor(...args: ConstructorParameters<typeof FeedLayer>) {
        super(...args);
        if (held) throw new Error('the feed is held by another net');
        held = true;
      }
      override close(): void {
        super.close();
        held = false;
      }
    }
    const registry = testRegistry(sequentialFeed(4));
    registry.register({
      type: 'ExclusiveFeed',
      create: (p, ctx) => {
        const l = new ExclusiveFeed(p, ctx);
        l.feed = sequentialFeed(4);
        return l;
      },
    });
    const read = await readSolverFile('exclusive_solver.prototxt', { rootDir: dir, log: false });
    const probe = await probeParallelism(read, { candidates: [plan(1, 1), plan(1, 2)], solverOptions: { log: false, registry }, warmup: 0, rounds: 2, iterations: 1, log: false, maxShare: Infinity });
    expect(probe.sequential).toBe(true);
    for (const t of probe.timings) expect(t.msPerIteration).toBeGreaterThan(0);
    // Every copy was closed: the run itself can take the feed.
    expect(held).toBe(false);
  });

  it('ends the timing, not the run, when a copy fails while stepping, and closes every copy', async () => {
    const feed = feedBefore((k) => {
      if (k >= 6) throw new Error('the feed ran dry');
    });
    const read = await readSolverFile('solver.prototxt', { rootDir: dir, log: false });
    const probe = await probeParallelism(read, {
      candidates: [plan(1, 2), plan(1, 1)],
      solverOptions: { log: false, registry: testRegistry(feed) },
      warmup: 2, warmupMs: 0, rounds: 3, iterations: 2, log: false, maxShare: Infinity,
    });
    expect(probe.skipped).toMatch(/^the timing stopped: .*the feed ran dry/);
    expect(probe.plan).toEqual(plan(1, 2));
    expect(probe.timings.every((t) => t.msPerIteration === null)).toBe(true);
    expect((feed as { closed?: number }).closed).toBe(2);
  });
});
