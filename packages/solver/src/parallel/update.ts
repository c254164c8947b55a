/*
 * The reduction and the solver's update spread over the replicas. Both are elementwise over the
 * flat arenas, so each rank takes one contiguous share of the elements: rank r sums every rank's
 * diff arena over its share, then updates params, history and data over its share with a solver
 * of the same type whose "params" are views of those element ranges. Every element goes through
 * the same operations in the same order as in the single-threaded update, so the result is the
 * same bit for bit; only the work is divided. Measured on LeNet, the update and reduction were a
 * fifth of a step, all on rank 0 while the workers waited.
 *
 * With plain SGD on float32 (the common case) each rank reduces exactly the params it updates, so
 * reduceAndApply does both in one pass and one command (no barrier between them), through the
 * WebAssembly SIMD kernels of update-wasm.ts where the arenas live in a shared WebAssembly.Memory
 * (LeNet, half of the params: 1.1 ms in the JavaScript loops, 0.5 ms in the kernel; same values).
 */
import { Blob, type DType, type FloatArray } from '@caffe-ts/blob';
import type { Net } from '@caffe-ts/net';
import type { SolverParameter } from '@caffe-ts/proto';
import { allFinite } from '../non-finite.js';
import { SGDSolver } from '../sgd-solver.js';
import { createSolver } from '../solver-registry.js';
import type { Solver } from '../solver.js';
import { arenaArray, arenaView } from './replica.js';
import type { Arena, ArenaRef, ParamSlot } from './protocol.js';
import type { UpdateKernels } from './update-wasm.js';

/** Elements [start, start + count) of learnable param `param`. */
export interface Piece {
  param: number;
  start: number;
  count: number;
}

/** Element range [from, to) of the aligned arena that rank `rank` of `n` reduces (16-element aligned). */
export function arenaShare(total: number, rank: number, n: number): [number, number] {
  const cut = (r: number) => Math.min(total, Math.ceil((total * r) / n / 16) * 16);
  return [cut(rank), cut(rank + 1)];
}

/** Rank `rank`'s share of the param elements (params split where the shares fall). */
export function paramShare(slots: readonly ParamSlot[], rank: number, n: number): Piece[] {
  const total = slots.reduce((a, s) => a + s.count, 0);
  const from = Math.floor((total * rank) / n);
  const to = Math.floor((total * (rank + 1)) / n);
  const out: Piece[] = [];
  let base = 0;
  slots.forEach((s, param) => {
    const a = Math.max(from, base);
    const b = Math.min(to, base + s.count);
    if (b > a) out.push({ param, start: a - base, count: b - a });
    base += s.count;
  });
  return out;
}

/**
 * out[i] = (d_0[i] + … + d_{n-1}[i]) × scale over [from, to), written into d_0 (the sum order of
 * the serial reduction); d_1 … d_{n-1} are zeroed there as they are read (the workers' diffs are
 * then clear for their next step without a pass of their own).
 */
export function reduceRange(diffs: readonly FloatArray[], scale: number, from: number, to: number): void {
  const out = diffs[0]!;
  if (diffs.length === 2) {
    const a = diffs[1]!;
    for (let i = from; i < to; i++) {
      out[i] = (out[i]! + a[i]!) * scale;
      a[i] = 0;
    }
    return;
  }
  for (let i = from; i < to; i++) {
    let s = out[i]!;
    for (let r = 1; r < diffs.length; r++) {
      const d = diffs[r]!;
      s += d[i]!;
      d[i] = 0;
    }
    out[i] = s * scale;
  }
}

/**
 * reduceRange(diffs, scale (default 1 / ranks), from, to) over every rank's diff arena (rank 0's first): through
 * the WebAssembly kernel when `kernels` run on the arenas' memory (float32 only), else the
 * JavaScript loop; the same values either way.
 */
export function arenaReducer(diffs: readonly ArenaRef[], dtype: DType, kernels: UpdateKernels | null, scale = 1 / diffs.length): (from: number, to: number) => void {
  const views = diffs.map((d) => arenaArray(d, dtype));
  if (!kernels || dtype !== 'float32' || diffs.length < 2) return (from, to) => reduceRange(views, scale, from, to);
  const g = diffs[0]!.base * 4;
  const stride = (diffs[1]!.base - diffs[0]!.base) * 4;
  return (from, to) => {
    if (to > from) kernels.reduce(g + from * 4, stride, diffs.length, to - from, scale);
  };
}

/** The shared memory a share's solver works on. */
export interface UpdateArenas {
  dtype: DType;
  slots: readonly ParamSlot[];
  /** Param values (the shared data arena). */
  data: Arena;
  /** Rank 0's (reduced) diffs. */
  diff: Arena;
  /** The solver's history blobs: `historyPerParam` sections of the arena's size. */
  history: Arena;
  /** Aligned arena size in elements (one history section). */
  total: number;
  /**
   * Every rank's diff arena (rank 0's first) and the kernels over their memory (null: the
   * JavaScript loops), for reduceAndApply. Without, only apply() can be used.
   */
  reduce?: { diffs: readonly ArenaRef[]; kernels: UpdateKernels | null; scale?: number };
}

/** A solver of the run's type whose learnable params are the views of one share. */
export class ShareUpdater {
  private readonly solver: SGDSolver;
  private readonly blobs: Blob[];
  /** Plain SGD on float32 with iter_size 1: one fused pass (see applyFusedSgd), else the solver's steps. */
  private readonly fused: { lr: number[]; decay: number[]; momentum: number; history: Float32Array[] } | null;
  private readonly pieces: readonly Piece[];
  /** reduceAndApply's inputs: every rank's diffs as whole arenas, the kernels and each piece's byte addresses. */
  private readonly reducer: {
    diffs: FloatArray[];
    scale: number;
    kernels: UpdateKernels | null;
    stride: number;
    at: { w: number; g: number; h: number; start: number }[];
  } | null;

  constructor(param: SolverParameter, pieces: readonly Piece[], lrMult: readonly number[], decayMult: readonly number[], a: UpdateArenas) {
    this.pieces = pieces;
    this.blobs = pieces.map((p) => {
      const slot = a.slots[p.param]!;
      const b = new Blob([p.count], { dtype: a.dtype });
      b.data.setCpuData(arenaView(a.data, a.dtype, slot.offset + p.start, p.count));
      b.diff.setCpuData(arenaView(a.diff, a.dtype, slot.offset + p.start, p.count));
      return b;
    });
    // Just what the SGD family's per-param steps read from a net.
    const facade = {
      learnableParams: this.blobs,
      paramsLr: pieces.map((p) => lrMult[p.param] ?? 1),
      paramsWeightDecay: pieces.map((p) => decayMult[p.param] ?? 1),
      debugInfo: false,
      backend: { name: 'cpu' },
    } as unknown as Net;
    const solver = createSolver(param, { prebuiltNets: { train: facade, tests: [] }, log: false, dtype: a.dtype });
    if (!(solver instanceof SGDSolver)) throw new Error(`solver type '${solver.type}' does not follow the SGD update template`);
    this.solver = solver;
    // Its history blobs (k × pieces) view the shared history of the whole run.
    const perParam = this.solver.history.length / Math.max(1, pieces.length);
    for (let k = 0; k < perParam; k++) {
      pieces.forEach((p, j) => {
        const slot = a.slots[p.param]!;
        this.solver.history[k * pieces.length + j]!.data.setCpuData(arenaView(a.history, a.dtype, k * a.total + slot.offset + p.start, p.count));
      });
    }
    const plainSgd =
      Object.getPrototypeOf(solver) === SGDSolver.prototype &&
      a.dtype === 'float32' &&
      param.iter_size === 1 &&
      (param.weight_decay === 0 || param.regularization_type === 'L2');
    this.fused = plainSgd
      ? {
          lr: pieces.map((p) => lrMult[p.param] ?? 1),
          decay: pieces.map((p) => param.weight_decay * (decayMult[p.param] ?? 1)),
          momentum: param.momentum,
          history: this.solver.history.map((h) => h.mutableCpuData() as Float32Array),
        }
      : null;
    const r = a.reduce;
    if (this.fused && r && r.diffs.length > 0) {
      const base = (arena: Arena) => (arena instanceof SharedArrayBuffer ? 0 : arena.base);
      const d0 = r.diffs[0]!;
      this.reducer = {
        diffs: r.diffs.map((d) => arenaArray(d, a.dtype)),
        scale: r.scale ?? 1 / r.diffs.length,
        kernels: r.kernels,
        stride: r.diffs.length > 1 ? (r.diffs[1]!.base - d0.base) * 4 : 0,
        at: pieces.map((p) => {
          const off = a.slots[p.param]!.offset + p.start;
          return { w: (base(a.data) + off) * 4, g: (d0.base + off) * 4, h: (base(a.history) + off) * 4, start: off };
        }),
      };
    } else {
      this.reducer = null;
    }
  }

  /** Whether this share takes the fused plain-SGD pass. */
  get fusedSgd(): boolean {
    return this.fused !== null;
  }

  /**
   * normalize → regularize → update value → data −= step, over this share (SGDSolver.applyUpdate's
   * loop). Returns whether the share's params are all finite afterwards (the solver's check after
   * each update, divided among the ranks too).
   */
  apply(rate: number, iter: number): boolean {
    if (this.fused) return this.applyFusedSgd(rate);
    const s = this.solver;
    s.iter = iter;
    s.computeUpdateSteps(rate);
    let finite = true;
    for (const b of this.blobs) {
      b.update();
      if (finite && !allFinite(b.cpuData())) finite = false;
    }
    return finite;
  }

  /** Whether reduceAndApply can run (plain SGD, built with every rank's diff arena). */
  get canReduceAndApply(): boolean {
    return this.reducer !== null;
  }

  /**
   * The reduction of this share's elements (reduceRange over the pieces) and the fused SGD update,
   * piece by piece in one pass over memory: the WebAssembly kernels where they run on the arenas'
   * memory, else the JavaScript loops; the same values either way. Returns whether the share's
   * params are all finite.
   */
  reduceAndApply(rate: number): boolean {
    const r = this.reducer!;
    const f = this.fused!;
    const k = r.kernels;
    const ranks = r.diffs.length;
    let finite = true;
    for (let j = 0; j < this.pieces.length; j++) {
      const at = r.at[j]!;
      const n = this.pieces[j]!.count;
      const lr = rate * f.lr[j]!;
      const decay = f.decay[j]!;
      if (k) {
        const ok = decay
          ? k.sgd_decay(at.w, at.g, r.stride, ranks, at.h, n, r.scale, lr, decay, f.momentum)
          : k.sgd(at.w, at.g, r.stride, ranks, at.h, n, r.scale, lr, decay, f.momentum);
        if (!ok) finite = false;
      } else {
        reduceRange(r.diffs, r.scale, at.start, at.start + n);
        if (!this.fusedPiece(j, rate)) finite = false;
      }
    }
    return finite;
  }

  /**
   * Plain SGD's regularize → update value → data −= step (SGDSolver.regularize, sgdUpdate,
   * Blob.update) in one pass over memory instead of three. Every intermediate is rounded to
   * float32 where those steps store it, so the values are bit for bit the solver's own.
   */
  private applyFusedSgd(rate: number): boolean {
    let finite = true;
    for (let j = 0; j < this.blobs.length; j++) if (!this.fusedPiece(j, rate)) finite = false;
    return finite;
  }

  /** applyFusedSgd on piece j; returns whether its params are finite. */
  private fusedPiece(j: number, rate: number): boolean {
    const f = this.fused!;
    const fr = Math.fround;
    const m = f.momentum;
    const b = this.blobs[j]!;
    const w = b.mutableCpuData() as Float32Array;
    const g = b.mutableCpuDiff() as Float32Array;
    const h = f.history[j]!;
    const n = g.length;
    const localRate = rate * f.lr[j]!;
    const decay = f.decay[j]!;
    if (decay) {
      for (let i = 0; i < n; i++) {
        const wi = w[i]!;
        const step = fr(localRate * fr(g[i]! + decay * wi) + m * h[i]!);
        h[i] = step;
        g[i] = step;
        w[i] = wi - step;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const step = fr(localRate * g[i]! + m * h[i]!);
        h[i] = step;
        g[i] = step;
        w[i] = w[i]! - step;
      }
    }
    // The finiteness check while the values are in cache (a separate pass: a running sum in the
    // loop above makes it 2.5× slower in V8).
    return allFinite(w);
  }
}

/**
 * Whether `solver` updates through SGDSolver's template on the CPU (every built-in type does),
 * so that its update can be divided by element ranges.
 */
export function divisibleUpdate(solver: Solver): boolean {
  const s = solver as unknown as { applyUpdate: unknown };
  return (
    solver instanceof SGDSolver &&
    s.applyUpdate === (SGDSolver.prototype as unknown as { applyUpdate: unknown }).applyUpdate &&
    !solver.net.backend.solverOps &&
    !solver.param.debug_info
  );
}
