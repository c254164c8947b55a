/* Helpers both sides of a data-parallel run use on their replica of the net. */
import { readFileSync } from 'node:fs';
import { getNumThreads, setNumThreads, type DType, type FloatArray } from '@caffe-ts/blob';
import type { Net } from '@caffe-ts/net';
import type { Arena } from './protocol.js';

/** A typed view of `count` elements at element `offset` of a shared arena. */
export function arenaView(arena: Arena, dtype: DType, offset: number, count: number): FloatArray {
  const [buffer, at] = arena instanceof SharedArrayBuffer ? [arena, offset] : [arena.buffer, arena.base + offset];
  return dtype === 'float64' ? new Float64Array(buffer, at * 8, count) : new Float32Array(buffer, at * 4, count);
}

/** A whole arena as one typed array. */
export function arenaArray(arena: Arena, dtype: DType): FloatArray {
  if (arena instanceof SharedArrayBuffer) return dtype === 'float64' ? new Float64Array(arena) : new Float32Array(arena);
  return arenaView(arena, dtype, 0, arena.length);
}

/** An error raised by one layer of a replica, with the layer it came from. */
export class LayerFailure extends Error {
  constructor(
    readonly layer: string,
    readonly layerType: string,
    override readonly cause: unknown,
  ) {
    super(`layer '${layer}' (${layerType}): ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/** This thread's wall ms in the data layers' prepare() inside runLayers, so far. */
export const runTimes = { prepareMs: 0 };

/**
 * prepare → forward (→ backward) one layer at a time, as Net.forwardBackward does, so that a
 * failure can name its layer. Returns the weighted loss. `from`: the first layer to run (the
 * layers before keep their tops: a step computed again on the same batch starts after the data
 * layers).
 */
export async function runLayers(net: Net, backward: boolean, from = 0): Promise<number> {
  const n = net.layers.length;
  let i = 0;
  try {
    const t0 = performance.now();
    for (i = from; i < n; i++) {
      const layer = net.layers[i]!;
      if (layer.prepare) await layer.prepare();
    }
    runTimes.prepareMs += performance.now() - t0;
    let loss = 0;
    for (i = from; i < n; i++) loss += net.forwardFromTo(i, i);
    if (backward) for (i = n - 1; i >= 0; i--) net.backwardFromTo(i, i);
    return loss;
  } catch (e) {
    const layer = net.layers[i];
    throw layer ? new LayerFailure(net.layerNames[i]!, layer.type, e) : e;
  }
}

/** How many layers at the start of `net` take no bottoms (data layers), 0 if none. */
export function leadingSourceLayers(net: Net): number {
  let n = 0;
  while (n < net.layers.length && net.bottomVecs[n]!.length === 0) n++;
  return n;
}

/**
 * Give this thread's CPU kernels `n` threads (the calling thread included; @caffe-ts/blob's
 * setNumThreads). Each replica calls it before building its net, so with 1 no kernel worker is
 * ever started, and replicas × kernel threads stays within the cores. Returns the previous count.
 */
export async function applyKernelThreads(n: number): Promise<number> {
  const previous = getNumThreads();
  setNumThreads(n);
  return previous;
}

/**
 * Spin (Atomics.load in a loop) for up to `ms` while ctrl[index] is `value`; returns whether it
 * changed. A barrier spins before it blocks in Atomics.wait: a thread that blocks gives its core
 * away, and on a loaded machine it waits for its next time slice after the notify (measured on the
 * shared 2-core machine: ms per barrier, four barriers a step), while one that spins sees the
 * change at once. Waits longer than `ms` block as before (spinning burns the core). Off by default:
 * on the shared 2-core machine it measured no faster (LeNet split ×2, interleaved runs).
 */
export function spinWhileEqual(ctrl: Int32Array, index: number, value: number, ms: number): boolean {
  if (ms <= 0) return Atomics.load(ctrl, index) !== value;
  const deadline = performance.now() + ms;
  for (;;) {
    for (let i = 0; i < 256; i++) if (Atomics.load(ctrl, index) !== value) return true;
    if (performance.now() >= deadline) return Atomics.load(ctrl, index) !== value;
  }
}

/** Spin before blocking (spinWhileEqual): ms, from CAFFE_TS_PARALLEL_SPIN_MS (default 0: block at once). */
export function defaultSpinMs(): number {
  const env = process.env.CAFFE_TS_PARALLEL_SPIN_MS;
  const n = env === undefined || env.trim() === '' ? NaN : Number(env);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

type WaitAsyncResult = { async: false; value: string } | { async: true; value: Promise<string> };
const atomicsWaitAsync = (Atomics as unknown as { waitAsync: (a: Int32Array, i: number, v: number) => WaitAsyncResult }).waitAsync;

/** Resolves once ctrl[index] is no longer `value` (Atomics.waitAsync: this thread's event loop keeps running). */
export async function waitWhileEqual(ctrl: Int32Array, index: number, value: number): Promise<void> {
  const w = atomicsWaitAsync(ctrl, index, value);
  if (w.async) await w.value;
}

/**
 * A thread's CPU ms and the ms it was runnable but waited for a core, from its /proc task folder
 * (default: the calling thread's; `/proc/self/task/<tid>` for another of this process). Linux:
 * the scheduler's own account in ns (`schedstat`), else the 10-ms ticks of `stat`, too coarse for
 * one step of a small net, and no wait (NaN). Either lags by up to one scheduler tick while the
 * thread runs (the kernel adds the time at ticks and switches), so a span that ends mid-run reads
 * a little low. Throws where the folder cannot be read (not Linux, a thread that ended).
 */
export function threadTimes(taskDir = '/proc/thread-self'): { cpu: number; wait: number } {
  try {
    // "run_time wait_time timeslices": ns on a CPU, ns runnable but waiting for one, slices.
    const [run, wait] = readFileSync(`${taskDir}/schedstat`, 'latin1').split(' ').map(Number);
    if (Number.isFinite(run) && run! > 0) return { cpu: run! / 1e6, wait: wait! / 1e6 };
  } catch {
    // No schedstat (a kernel without CONFIG_SCHED_INFO): the ticks below.
  }
  const stat = readFileSync(`${taskDir}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command: state(0) … utime(11) stime(12), in clock ticks (USER_HZ = 100).
  return { cpu: (Number(f[11]) + Number(f[12])) * 10, wait: NaN };
}

/** CPU time of the calling thread in ms (threadTimes), or NaN where unavailable. Used by the profile timers. */
export function threadCpuMs(): number {
  try {
    return threadTimes().cpu;
  } catch {
    return NaN;
  }
}
