/*
 * Which mix of replicas and kernel threads trains a given net fastest on this machine. Neither
 * always wins: split replicas synchronise once per iteration but each computes a smaller batch,
 * kernel threads keep the whole batch but meet once per layer, and which costs less changes with
 * the net, the core count and whatever else the machine runs (LeNet and CIFAR-10 quick on two
 * cores measured either way from run to run). So `caffe train`'s default times the candidates on
 * the run's own solver before training: each candidate gets a short-lived copy of the solver (no
 * tests, no snapshots, no display), the copies step in interleaved rounds so that a machine whose
 * speed drifts slows them alike, and the fastest median wins. The copies read their own cursors
 * of the data and are closed before the real solver is built, and the random generator is put
 * back where it was, so the run itself is the one it would have been without the probe. A run too
 * short for the timing to pay (maxShare), or a net too large to copy (maxBytes), is not timed.
 */
import { getNumThreads, globalRng, logger } from '@caffe-ts/blob';
import { decodeBinary, encodeBinary, type SolverParameter } from '@caffe-ts/proto';
import { buildSolverFromFile, type NodeSolverOptions, type SolverFile } from '../node.js';
import type { Solver } from '../solver.js';
import { buildParallelSolverFromFile } from './build.js';
import { chooseParallelism, type ParallelPlan } from './plan.js';
import { availableCores } from './pool.js';
import { applyKernelThreads } from './replica.js';

/** The fewest iterations (max_iter) a run needs for `caffe train` to time the mixes first (CAFFE_TS_PARALLEL_PROBE=auto). */
export const PROBE_MIN_ITERATIONS = 1000;

/**
 * The most bytes the copies' train nets may hold together (data and diffs of every blob and
 * param), 512 MiB: their memory goes back only when they are garbage-collected, so for a large net
 * the timing is skipped rather than the run's own memory squeezed.
 */
export const PROBE_MAX_BYTES = 512 * 2 ** 20;

export interface ParallelProbeOptions {
  /** The mixes to time (default: parallelCandidates()). */
  candidates?: readonly ParallelPlan[];
  /** Options the copies are built with (their `log` is turned off). */
  solverOptions?: NodeSolverOptions;
  /** Worker plugin modules, as DataParallelOptions.register. */
  register?: readonly string[];
  /**
   * Untimed iterations per candidate first (default 2: the first steps warm caches and compile
   * code), then, where `warmupMs` (default 200) is above 0, a second untimed call of at least 3
   * iterations, more until `warmupMs` have passed in all; the rounds' length comes from that
   * call's speed.
   */
  warmup?: number;
  warmupMs?: number;
  /**
   * Timed rounds (default 3), each `iterations` iterations of every candidate (default: as many
   * as take about `roundMs`, default 200, at the speed of its warm-up, from 4 to 64; short
   * iterations need more of them to average out the switch from one copy to the other).
   */
  rounds?: number;
  iterations?: number;
  roundMs?: number;
  /**
   * How much faster (a fraction of its time) another candidate must be to replace the first one,
   * the static choice (default 0.03): a near tie keeps the plan that does not depend on timing.
   */
  margin?: number;
  /** Log what was timed and chosen (default true). */
  log?: boolean;
  /** The most bytes the copies' train nets may hold together (default PROBE_MAX_BYTES). */
  maxBytes?: number;
  /**
   * The largest share of the run the timing may take (default 0.05): from the first candidate's
   * warm-up speed, the timing's cost is estimated against `runIterations` (default the solver's
   * max_iter) iterations at that speed, and a run too short for it is not timed (the first
   * candidate stands). Infinity: always time.
   */
  maxShare?: number;
  runIterations?: number;
}

export interface ParallelTiming {
  plan: ParallelPlan;
  /** Median wall ms per iteration over the rounds; null where the candidate could not run. */
  msPerIteration: number | null;
  /** Iterations timed per round. */
  iterations?: number;
  /** Why it could not run. */
  failure?: string;
}

export interface ParallelProbeResult {
  /** The chosen mix. */
  plan: ParallelPlan;
  timings: ParallelTiming[];
  /** Why nothing was timed (a net too large to copy, a run too short to pay for it), where so. */
  skipped?: string;
  /**
   * Whether the candidates ran one after the other rather than in interleaved rounds (when they
   * could not all be open at once, e.g. a LevelDB only one handle of a process may hold).
   */
  sequential: boolean;
}

/**
 * The mixes worth timing on `cores` cores: the static default (chooseParallelism: a split replica
 * per core), one replica with every core for its kernels, and, from four cores, half as many
 * replicas with two kernel threads each. Never more threads than cores.
 */
export function parallelCandidates(options: { cores?: number; batchSizes?: readonly number[] } = {}): ParallelPlan[] {
  const cores = Math.max(1, Math.floor(options.cores ?? availableCores()));
  const plans = [chooseParallelism(options), { workers: 1, kernelThreads: cores, mode: 'split' as const }];
  if (cores >= 4) {
    const half = Math.floor(cores / 2);
    if ((options.batchSizes ?? []).every((b) => b % half === 0)) plans.push({ workers: half, kernelThreads: Math.floor(cores / half), mode: 'split' });
  }
  return plans.filter((p, i) => plans.findIndex((q) => q.workers === p.workers && q.kernelThreads === p.kernelThreads) === i);
}

/** CAFFE_TS_PARALLEL_PROBE as read: 'on', 'off', or 'auto' (unset or anything else). */
export function probeMode(env: string | undefined = process.env.CAFFE_TS_PARALLEL_PROBE): 'on' | 'off' | 'auto' {
  const v = env?.trim().toLowerCase();
  return v === 'on' || v === 'off' ? v : 'auto';
}

/**
 * Whether `caffe train` should time the mixes for this solver: CAFFE_TS_PARALLEL_PROBE 'on'
 * always, 'off' never, otherwise (auto) when the run has at least PROBE_MIN_ITERATIONS iterations,
 * a first filter before probeParallelism's own estimate of the timing's share of the run
 * (maxShare), which needs a copy built and warmed up.
 */
export function probeWanted(param: Pick<SolverParameter, 'max_iter'>, env: string | undefined = process.env.CAFFE_TS_PARALLEL_PROBE): boolean {
  const mode = probeMode(env);
  return mode === 'auto' ? param.max_iter >= PROBE_MIN_ITERATIONS : mode === 'on';
}

/** "2 split replicas × 1 kernel thread", "1 replica × 2 kernel threads". */
export function describePlan(plan: ParallelPlan): string {
  const replicas = plan.workers === 1 ? '1 replica' : `${plan.workers} ${plan.mode} replicas`;
  return `${replicas} × ${plan.kernelThreads} kernel thread${plan.kernelThreads === 1 ? '' : 's'}`;
}

/** The solver's parameters for a timing copy: the same training, without tests, snapshots or display. */
function probeParameter(param: SolverParameter): SolverParameter {
  const p = decodeBinary<SolverParameter>('SolverParameter', encodeBinary('SolverParameter', param));
  p.test_iter = [];
  p.test_net = [];
  p.test_net_param = [];
  p.test_state = [];
  p.test_interval = 0;
  p.test_initialization = false;
  p.snapshot = 0;
  p.snapshot_after_train = false;
  p.display = 0;
  p.debug_info = false;
  return p;
}

interface Built {
  plan: ParallelPlan;
  solver: Solver;
  times: number[];
  /** When each iteration of the running round ended. */
  marks: number[];
  /** Iterations per round. */
  iterations: number;
  /** Ms per iteration at the end of the warm-up. */
  msPerIteration: number;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Bytes of a solver's train net: data and diff of every blob and learnable param. */
function netBytes(solver: Solver): number {
  const net = solver.net;
  const bytesPer = net.dtype === 'float64' ? 8 : 4;
  let elements = 0;
  for (const b of net.blobs.values()) elements += 2 * b.count();
  for (const p of net.learnableParams) elements += 2 * p.count();
  return elements * bytesPer;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Times `options.candidates` on copies of the solver read from a file (readSolverFile) and
 * returns the fastest (see the top of this file). With fewer than two candidates that run, the
 * first one that does (else the first) is returned untimed.
 */
export async function probeParallelism(read: SolverFile, options: ParallelProbeOptions = {}): Promise<ParallelProbeResult> {
  const candidates = options.candidates ?? parallelCandidates();
  const warmup = options.warmup ?? 2;
  const warmupMs = options.warmupMs ?? 200;
  const rounds = Math.max(1, options.rounds ?? 3);
  const roundMs = options.roundMs ?? 200;
  const margin = options.margin ?? 0.03;
  const log = options.log === false ? null : logger('parallel.cpp');
  const rng = options.solverOptions?.rng ?? globalRng();
  const rngBefore = rng.getState();
  const threadsBefore = getNumThreads();
  const failures = new Map<ParallelPlan, string>();

  const build = async (plan: ParallelPlan): Promise<Built> => {
    await applyKernelThreads(plan.kernelThreads);
    const solverOptions = { ...options.solverOptions, log: false };
    // Each copy gets a message of its own.
    const copy = probeParameter(read.param);
    const solver = plan.workers === 1
      ? await buildSolverFromFile(read, solverOptions, copy)
      : await buildParallelSolverFromFile(read, { workers: plan.workers, mode: plan.mode, kernelThreads: plan.kernelThreads, register: options.register }, solverOptions, copy);
    const built: Built = { plan, solver, times: [], marks: [], iterations: 1, msPerIteration: 0 };
    solver.addCallback({ onIteration: () => void built.marks.push(performance.now()) });
    try {
      const t0 = performance.now();
      if (warmup > 0) await solver.step(warmup);
      // The speed after the first iteration (a worker mix's first of a step() call runs cold).
      const msPer = () => (built.marks.length >= 2 ? (built.marks[built.marks.length - 1]! - built.marks[0]!) / (built.marks.length - 1) : performance.now() - t0);
      if (warmupMs > 0) {
        // A second call, at least three iterations, whatever the first took: the speed that sets
        // the rounds' length is taken from it. The first call's iterations include a worker mix's
        // start (its threads compiling their kernels), which made its rounds the shortest allowed
        // and so its timing the noisiest.
        const left = Math.max(0, warmupMs - (performance.now() - t0));
        built.marks = [];
        await solver.step(Math.min(64, Math.max(3, Math.ceil(left / Math.max(0.1, msPer())))));
      }
      built.msPerIteration = msPer();
      built.iterations = options.iterations ?? Math.min(64, Math.max(4, Math.round(roundMs / Math.max(0.1, built.msPerIteration))));
    } catch (e) {
      await solver.close();
      throw e;
    }
    return built;
  };
  // A round is one step() call of iterations + 1 iterations, timed from the end of its first: a
  // worker mix starts each call cold (no batch read ahead, no step posted early), which a run's
  // single solve() call pays once, so timing that first iteration would bias the probe against it.
  const timeRound = async (b: Built) => {
    await applyKernelThreads(b.plan.kernelThreads);
    b.marks = [];
    await b.solver.step(b.iterations + 1);
    const m = b.marks;
    b.times.push((m[m.length - 1]! - m[0]!) / (m.length - 1));
  };
  const closeAll = async (list: Built[]) => {
    for (const b of list.splice(0)) await b.solver.close().catch(() => {});
  };

  const done: Built[] = [];
  let sequential = false;
  let skipped: string | undefined;
  const maxBytes = options.maxBytes ?? PROBE_MAX_BYTES;
  const maxShare = options.maxShare ?? 0.05;
  const runIterations = options.runIterations ?? read.param.max_iter;
  /** Why timing the candidates would not pay, judged from the first one built (its build and warm-up took `ms`). */
  const tooCostly = (first: Built, ms: number): string | undefined => {
    const bytes = netBytes(first.solver) * candidates.length;
    if (bytes > maxBytes) return `the copies' train nets would hold ${(bytes / 2 ** 20).toFixed(0)} MiB, over ${(maxBytes / 2 ** 20).toFixed(0)} MiB`;
    const perIteration = first.msPerIteration;
    const cost = candidates.length * (ms + rounds * (first.iterations + 1) * perIteration);
    const run = runIterations * perIteration;
    if (cost > maxShare * run) {
      return `timing them would take about ${(cost / 1000).toFixed(1)} s, over ${Math.round(maxShare * 100)} % of the run's ${(run / 1000).toFixed(1)} s`;
    }
    return undefined;
  };
  const open: Built[] = [];
  try {
    if (candidates.length >= 2) {
      // Interleaved: every candidate open at once, the rounds rotating their order.
      for (const plan of candidates) {
        try {
          const t0 = performance.now();
          open.push(await build(plan));
          if (open.length === 1) {
            skipped = tooCostly(open[0]!, performance.now() - t0);
            if (skipped) {
              await closeAll(open);
              break;
            }
          }
        } catch (e) {
          if (open.length === 0) {
            // Alone, it fails on its own (a batch that does not split, …).
            failures.set(plan, message(e));
            continue;
          }
          // Maybe something the others hold cannot be opened twice (a LevelDB's lock): time the
          // candidates one at a time instead.
          await closeAll(open);
          sequential = true;
          break;
        }
      }
      if (skipped) {
        // Nothing timed: the first candidate, the static default.
      } else if (!sequential) {
        for (let r = 0; r < rounds; r++) for (let k = 0; k < open.length; k++) await timeRound(open[(k + r) % open.length]!);
        done.push(...open);
        await closeAll(open);
      } else {
        for (const plan of candidates.filter((c) => !failures.has(c))) {
          let b: Built | undefined;
          try {
            b = await build(plan);
            for (let r = 0; r < rounds; r++) await timeRound(b);
            done.push(b);
          } catch (e) {
            failures.set(plan, message(e));
          } finally {
            if (b) await b.solver.close().catch(() => {});
          }
        }
      }
    }
  } catch (e) {
    // A copy that fails while stepping (a non-finite loss under stopOnNonFinite, …) ends the
    // timing, not the run: the run's own solver meets the same problem and reports it as usual.
    await closeAll(open);
    done.length = 0;
    skipped = `the timing stopped: ${message(e)}`;
  } finally {
    rng.setState(rngBefore);
    await applyKernelThreads(threadsBefore);
  }

  const timings: ParallelTiming[] = candidates.map((plan) => {
    const b = done.find((x) => x.plan === plan);
    return b ? { plan, msPerIteration: median(b.times), iterations: b.iterations } : { plan, msPerIteration: null, ...(failures.has(plan) ? { failure: failures.get(plan) } : {}) };
  });
  const ran = timings.filter((t) => t.msPerIteration !== null);
  let plan = (ran[0] ?? timings[0])?.plan ?? chooseParallelism();
  if (ran.length >= 2) {
    const first = ran[0]!;
    const fastest = ran.reduce((a, b) => (b.msPerIteration! < a.msPerIteration! ? b : a));
    plan = fastest.msPerIteration! < first.msPerIteration! * (1 - margin) ? fastest.plan : first.plan;
  }
  if (log && !skipped && ran.length === 0) {
    // Nothing could be built: the run's own solver will say why.
  } else if (log && skipped) {
    log.info(`Parallel mix: ${describePlan(plan)}, not timed against the others (${skipped})`);
  } else if (log && candidates.length >= 2) {
    const what = timings.map((t) =>
      `${describePlan(t.plan)}: ${t.msPerIteration === null ? `could not run (${t.failure ?? 'not timed'})` : `${t.msPerIteration.toFixed(1)} ms/iteration (${t.iterations} per round)`}`);
    log.info(`Timed the parallel mixes over ${rounds} round(s)${sequential ? ', one after the other' : ''}: ${what.join('; ')}`);
    log.info(`Parallel mix: ${describePlan(plan)}${ran.length >= 2 ? (plan === ran[0]!.plan ? ' (the default; no other was more than ' + Math.round(margin * 100) + ' % faster)' : ' (the fastest)') : ''}`);
  }
  return { plan, timings, sequential, ...(skipped ? { skipped } : {}) };
}
