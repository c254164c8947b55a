// Fused elementwise passes for inference. Deploy nets follow most convolutions with in-place
// BatchNorm → Scale → ReLU layers (and residual sums with an in-place ReLU); run one by one,
// each is a full pass over the activation, and together they cost about as much as the
// convolutions. Where the net never runs backward through them, Net.forwardFromTo runs such a
// chain as one pass and leaves per-layer calls (forwardFromTo(i, i)) unfused. Float32 runs in
// WebAssembly SIMD (the chain folded into one per-channel a·x + b, so roundings differ from the
// layers' by about 1e-7 relative); float64, or float32 without WebAssembly SIMD, runs JS loops
// with exactly the layers' arithmetic and roundings (bit-identical results).
// A float32 Convolution followed by such in-place layers (or just an in-place ReLU) folds them
// into the epilogue of its packed inference kernel (ConvolutionLayer.forwardWithEpilogue): the
// per-channel affine and the ReLU are applied as the GEMM tiles are stored, so the activation is
// written once instead of being read and rewritten by each layer.
import { defaultWasmInfer, type Blob, type FloatArray } from '@caffe-ts/blob';
import { NetError } from './errors.js';
import { BatchNormLayer, ConcatLayer, ConvolutionLayer, EltwiseLayer, EltwiseOp, ReLULayer, ScaleLayer, type Layer } from '@caffe-ts/layers';

/** Layers start … end (inclusive) of a net, run by `run` as one pass. */
export interface FusedChain {
  readonly start: number;
  readonly end: number;
  /** Reshapes every layer of the chain and computes the chain's output; false when the shapes turned out not to fit (then run the layers one by one). */
  run(): boolean;
}

interface NetView {
  readonly blobs: ReadonlyMap<string, Blob>;
  readonly layers: readonly Layer[];
  readonly bottomVecs: readonly Blob[][];
  readonly topVecs: readonly Blob[][];
  readonly layerNeedBackward: readonly boolean[];
}

/** The ReLU's slope when layer i is an in-place ReLU on `blob`, else null. */
function inPlaceRelu(net: NetView, i: number, blob: Blob): number | null {
  const l = net.layers[i];
  if (!(l instanceof ReLULayer) || !isInPlaceOn(net, i, blob)) return null;
  return l.negativeSlope;
}

function isInPlaceOn(net: NetView, i: number, blob: Blob): boolean {
  const b = net.bottomVecs[i]!, t = net.topVecs[i]!;
  return b.length === 1 && t.length === 1 && b[0] === blob && t[0] === blob;
}

/** Whether layer i may take part: a CPU layer, no loss weight, no backward through it. */
function plain(net: NetView, i: number): boolean {
  const l = net.layers[i]!;
  return !net.layerNeedBackward[i] && !l.backend.device && l.lossWeights.every((w) => w === 0);
}

/** [BatchNorm (global statistics)] [Scale (learned)] [ReLU] from layer i on, in place on `y`, as far as they go. */
function affineRun(net: NetView, i: number, y: Blob): { end: number; bn: BatchNormLayer | null; scale: ScaleLayer | null; slope: number | null } {
  const L = net.layers.length;
  let j = i - 1;
  let bn: BatchNormLayer | null = null, scale: ScaleLayer | null = null, slope: number | null = null;
  const next = j + 1;
  if (next < L && plain(net, next) && net.layers[next] instanceof BatchNormLayer && (net.layers[next] as BatchNormLayer).useGlobalStats && isInPlaceOn(net, next, y)) {
    bn = net.layers[++j] as BatchNormLayer;
  }
  if (j + 1 < L && plain(net, j + 1) && net.layers[j + 1] instanceof ScaleLayer && isInPlaceOn(net, j + 1, y)) {
    scale = net.layers[++j] as ScaleLayer;
  }
  if (j + 1 < L && plain(net, j + 1) && (slope = inPlaceRelu(net, j + 1, y)) !== null) j++;
  return { end: j, bn, scale, slope };
}

/**
 * The chains of `net` that can run fused: a float32 2-D Convolution followed by in-place
 * [BatchNorm (global statistics)] [Scale (learned)] [ReLU] (at least one of them, in this
 * order) and/or an Eltwise SUM of its output and another blob into a third [then an in-place
 * ReLU], those three on their own (at least two of them, in this order, consecutive, the later
 * ones in place on the first one's top), and Eltwise SUM of two bottoms followed by an in-place
 * ReLU.
 */
export function planFusedChains(net: NetView): FusedChain[] {
  const chains = planLayerChains(net);
  return [...chains, ...planConcats(net, chains)];
}

/** The chains of planFusedChains other than the Concat groups. */
function planLayerChains(net: NetView): FusedChain[] {
  const chains: FusedChain[] = [];
  const L = net.layers.length;
  for (let i = 0; i < L; i++) {
    if (!plain(net, i)) continue;
    const head = net.layers[i]!;
    const bottom = net.bottomVecs[i]!, top = net.topVecs[i]!;
    if (top.length !== 1) continue;
    const y = top[0]!;
    if (head instanceof ConvolutionLayer) {
      if (head.dtype !== 'float32' || bottom.length !== 1 || bottom[0] === y) continue;
      const run = affineRun(net, i + 1, y);
      const sum = sumAfter(net, run.end + 1, y);
      if (run.end === i && !sum) continue;
      // The layers after the convolution, as their own chain where they make one (the fallback).
      const rest = run.end > i + 1 ? affineChain(net, i + 1, run.end, run.bn, run.scale, run.slope) : null;
      chains.push(convChain(net, i, run.end, run.bn, run.scale, run.slope, rest, sum));
      i = sum ? sum.end : run.end;
      continue;
    }
    if (head instanceof EltwiseLayer) {
      // SUM of two bottoms, then an in-place ReLU.
      if (head.operation !== EltwiseOp.SUM || bottom.length !== 2) continue;
      if (i + 1 < L && plain(net, i + 1) && inPlaceRelu(net, i + 1, y) !== null) {
        chains.push(eltwiseReluChain(net, i));
        i += 1;
      }
      continue;
    }
    let j = i;
    let bn: BatchNormLayer | null = null, scale: ScaleLayer | null = null;
    if (head instanceof BatchNormLayer && bottom.length === 1 && head.useGlobalStats) bn = head;
    else if (head instanceof ScaleLayer && bottom.length === 1) scale = head;
    else continue;
    if (bn && j + 1 < L && plain(net, j + 1) && net.layers[j + 1] instanceof ScaleLayer && isInPlaceOn(net, j + 1, y)) {
      scale = net.layers[++j] as ScaleLayer;
    }
    let slope: number | null = null;
    if (j + 1 < L && plain(net, j + 1) && (slope = inPlaceRelu(net, j + 1, y)) !== null) j++;
    if (j === i) continue;
    chains.push(affineChain(net, i, j, bn, scale, slope));
    i = j;
  }
  return chains;
}

/**
 * Concat groups: a Concat whose bottoms include outputs of convolution chains that nothing else
 * reads afterwards, run from the first such chain to the Concat as one chain, in which those
 * convolutions write straight into the Concat's top (where their slices of it are contiguous:
 * one image, or a join along the first axis) and the Concat copies only the other bottoms. Those
 * convolutions' own tops are then filled lazily: their memories copy their slices of the top if
 * anyone reads them (SyncedMemory.setLazyContents), so every blob still reads as its layer's output.
 * A group starts where its first chain does and takes that chain's place in the map Net builds
 * (it comes later in the list); a forward that stops inside a group runs its layers as usual.
 */
function planConcats(net: NetView, chains: readonly FusedChain[]): FusedChain[] {
  const byStart = new Map(chains.map((c) => [c.start, c]));
  const L = net.layers.length;
  const groups: FusedChain[] = [];
  let taken = -1; // the last layer of the previous group (groups do not overlap)
  for (let c = 0; c < L; c++) {
    const layer = net.layers[c]!;
    if (!(layer instanceof ConcatLayer) || !plain(net, c)) continue;
    const bottoms = net.bottomVecs[c]!, top = net.topVecs[c]![0]!;
    if (bottoms.length < 2 || new Set(bottoms).size !== bottoms.length || bottoms.includes(top)) continue;
    // The bottoms written in place are read back from the top: nothing may rewrite it later.
    let rewritten = false;
    for (let j = c + 1; j < L && !rewritten; j++) rewritten = net.topVecs[j]!.includes(top);
    if (rewritten) continue;
    const producers = new Map<number, { chain: ConvChain; slot: number }>();
    for (const [slot, blob] of bottoms.entries()) {
      const chain = chains.find((ch): ch is ConvChain => 'runInto' in ch && (ch as ConvChain).output === blob && ch.end < c && ch.start > taken);
      if (!chain) continue;
      // Nothing after the chain but the Concat reads or rewrites its output.
      let alone = true;
      for (let j = chain.end + 1; j < L && alone; j++) {
        if (j !== c && (net.bottomVecs[j]!.includes(blob) || net.topVecs[j]!.includes(blob))) alone = false;
      }
      if (alone) producers.set(chain.start, { chain, slot });
    }
    if (producers.size === 0) continue;
    const start = Math.min(...producers.keys());
    let ok = true;
    for (let j = start; j <= c && ok; j++) ok = plain(net, j);
    if (!ok) continue;
    groups.push(concatGroup(net, start, c, producers, byStart));
    taken = c;
  }
  return groups;
}

/** The name of `blob` in the net (for messages). */
function blobName(net: NetView, blob: Blob): string {
  for (const [name, b] of net.blobs) if (b === blob) return name;
  return '?';
}

/** Layers start … c (a Concat) as one chain: see planConcats. */
function concatGroup(
  net: NetView, start: number, c: number, producers: ReadonlyMap<number, { chain: ConvChain; slot: number }>,
  byStart: ReadonlyMap<number, FusedChain>,
): FusedChain {
  const concat = net.layers[c] as ConcatLayer;
  return {
    start,
    end: c,
    run(): boolean {
      reshapeAll(net, start, c);
      const bottoms = net.bottomVecs[c]!, top = net.topVecs[c]![0]!;
      // The bottoms' slices of the top are contiguous where nothing varies before the axis.
      let outer = 1;
      for (let d = 0; d < concat.axis; d++) outer *= top.shape[d]!;
      const direct = outer === 1 && top.cpuData() instanceof Float32Array;
      const offsets: number[] = [];
      let at = 0;
      for (const b of bottoms) {
        offsets.push(at);
        at += b.count();
      }
      const placed = new Array<boolean>(bottoms.length).fill(false);
      // The last forward's pending copies are stale: this one rewrites every such bottom (in place
      // again, or through its layers), and a fallback writing one must not run the old copy first.
      for (const { slot } of producers.values()) bottoms[slot]!.data.setLazyContents(null);
      for (let i = start; i < c; i++) {
        const p = direct ? producers.get(i) : undefined;
        if (p) {
          const at = offsets[p.slot]!, n = bottoms[p.slot]!.count();
          if (p.chain.runInto((top.mutableCpuData() as Float32Array).subarray(at, at + n))) {
            placed[p.slot] = true;
            i = p.chain.end;
            continue;
          }
        }
        const chain = byStart.get(i);
        if (chain && chain.end < c && chain.run()) {
          i = chain.end;
          continue;
        }
        net.layers[i]!.forward(net.bottomVecs[i]!, net.topVecs[i]!);
      }
      if (!placed.includes(true)) {
        concat.forward(bottoms, [top]);
        return true;
      }
      const y = top.mutableCpuData();
      for (const [k, b] of bottoms.entries()) if (!placed[k]) y.set(b.cpuData(), offsets[k]!);
      // A bottom written in place still reads as its layer's output: its memory copies its slice
      // of the top when (if ever) someone reads it, unless the top was written since.
      const version = top.dataVersion;
      for (const [k, b] of bottoms.entries()) {
        if (!placed[k]) continue;
        const at = offsets[k]!, n = b.count();
        b.data.setLazyContents((host) => {
          if (top.dataVersion !== version) {
            throw new NetError(`blob '${blobName(net, b)}' was fused into Concat '${concat.name}''s top, which has been written since; run the net with fuseInference = false (CAFFE_TS_FUSION=off) to read it`);
          }
          host.set(top.cpuData().subarray(at, at + n));
        });
      }
      return true;
    },
  };
}

/** A convolution's chain, which can also write its output into another array (a Concat's top). */
interface ConvChain extends FusedChain {
  /** The chain's output blob (the convolution's top; null when the chain ends in a sum). */
  readonly output: Blob | null;
  /**
   * Runs the chain with its output written to `out` (the output's count of floats) instead of
   * its blob, which is left as it was; false, writing nothing, where the packed path declines.
   */
  runInto(out: Float32Array): boolean;
}

/** An Eltwise SUM (then an in-place ReLU) that a convolution chain folds in (ConvSum). */
interface SumPart {
  /** The Eltwise layer, and the chain's last layer (the ReLU's, or the Eltwise's). */
  readonly index: number;
  readonly end: number;
  /** Whether the convolution's output is the Eltwise's first bottom. */
  readonly convFirst: boolean;
  readonly relu: ReLULayer | null;
}

/**
 * Layer e as an Eltwise SUM of two bottoms, exactly one of them `y` (the chain's output so far),
 * into a third blob, with an in-place ReLU after it where there is one; else null.
 */
function sumAfter(net: NetView, e: number, y: Blob): SumPart | null {
  if (e >= net.layers.length || !plain(net, e)) return null;
  const l = net.layers[e]!;
  if (!(l instanceof EltwiseLayer) || l.operation !== EltwiseOp.SUM) return null;
  const b = net.bottomVecs[e]!, t = net.topVecs[e]!;
  if (b.length !== 2 || t.length !== 1 || (b[0] === y) === (b[1] === y)) return null;
  const z = t[0]!;
  if (z === b[0] || z === b[1]) return null;
  const relu = inPlaceRelu(net, e + 1, z) !== null && plain(net, e + 1) ? (net.layers[e + 1] as ReLULayer) : null;
  return { index: e, end: relu ? e + 1 : e, convFirst: b[0] === y, relu };
}

/**
 * Per-channel a, b of x ↦ scale(bn(x)) (a = s/σ', b = β − s·μ/σ', σ' = √(σ² + eps)) into the
 * given arrays, or false when the Scale does not broadcast per channel over `num` × C × spatial.
 */
function foldAffine(bn: BatchNormLayer | null, scale: ScaleLayer | null, num: number, C: number, spatial: number, a: Float32Array, b: Float32Array): boolean {
  let affine: { scale: FloatArray; bias: FloatArray | null } | null = null;
  if (scale) {
    affine = scale.learnedAffine();
    if (!affine || scale.scaleDim !== C || scale.outerDim !== num || scale.innerDim !== spatial) return false;
  }
  const stats = bn ? bn.globalStats() : null;
  const sv = affine?.scale ?? null, bv = affine?.bias ?? null;
  for (let c = 0; c < C; c++) {
    const mu = stats ? stats.mean[c]! : 0, sd = stats ? stats.std[c]! : 1;
    const f = sv ? sv[c]! : 1, beta = bv ? bv[c]! : 0;
    a[c] = f / sd;
    b[c] = beta - (f * mu) / sd;
  }
  return true;
}

/**
 * Convolution → [BatchNorm] [Scale] [ReLU] [Eltwise SUM [ReLU]] as one packed convolution with
 * the affine and ReLU in its epilogue and the sum computed in the packed runner's memory right
 * after it (ConvSum: the convolution's output is not copied back in, and the sum's output stays
 * resident for the next convolution); where the packed path declines
 * (ConvolutionLayer.forwardWithEpilogue), the convolution runs on its own and then `rest` (or the
 * layers one by one), then the sum (the Eltwise → ReLU chain, or the layers).
 */
function convChain(
  net: NetView, start: number, affineEnd: number, bn: BatchNormLayer | null, scale: ScaleLayer | null, slope: number | null,
  rest: FusedChain | null, sum: SumPart | null,
): ConvChain {
  const conv = net.layers[start] as ConvolutionLayer;
  let a = new Float32Array(0), b = new Float32Array(0);
  // The data versions of the BatchNorm / Scale param blobs a, b were folded from (versions are
  // unique across all memories, so they also tell a blob put in another's place, as sharing
  // params with another net does). Unchanged, the fold is skipped: a square root and two
  // divisions per channel, 1.3 % of MobileNet v2's forward on one thread.
  const foldVersions: number[] = [];
  const foldUnchanged = (): boolean => {
    let k = 0;
    for (const list of [bn?.blobs ?? [], scale?.blobs ?? []]) {
      for (const blob of list) if (foldVersions[k++] !== blob.dataVersion) return false;
    }
    return k === foldVersions.length;
  };
  const noteFold = (): void => {
    foldVersions.length = 0;
    for (const list of [bn?.blobs ?? [], scale?.blobs ?? []]) for (const blob of list) foldVersions.push(blob.dataVersion);
  };
  const end = sum ? sum.end : affineEnd;
  // The Eltwise (→ ReLU) on its own, for the fallback.
  const sumRest = sum?.relu ? eltwiseReluChain(net, sum.index) : null;
  /** Reshapes the chain and folds its affine into a, b; false where it does not fold. */
  const prepare = (): { folded: boolean } | null => {
    reshapeAll(net, start, end);
    const yBlob = net.topVecs[start]![0]!;
    const shape = yBlob.shape;
    const num = shape[0] ?? 1, C = shape.length > 1 ? shape[1]! : 1;
    const spatial = yBlob.count() / Math.max(1, num * C);
    if (!(bn || scale)) return { folded: false };
    if (yBlob.count() === 0) return null;
    if (a.length !== C) {
      a = new Float32Array(C);
      b = new Float32Array(C);
      foldVersions.length = 0;
    } else if (foldUnchanged()) return { folded: true };
    if (!foldAffine(bn, scale, num, C, spatial, a, b)) {
      foldVersions.length = 0;
      return null;
    }
    noteFold();
    return { folded: true };
  };
  return {
    start,
    end,
    output: sum ? null : net.topVecs[start]![0]!,
    runInto(out: Float32Array): boolean {
      const p = sum ? null : prepare();
      if (!p) return false;
      const xBlob = net.bottomVecs[start]![0]!, yBlob = net.topVecs[start]![0]!;
      return conv.forwardWithEpilogue(xBlob, yBlob, p.folded ? a : null, p.folded ? b : null, slope, undefined, out);
    },
    run(): boolean {
      const p = prepare();
      if (!p) return false;
      const folded = p.folded;
      const xBlob = net.bottomVecs[start]![0]!, yBlob = net.topVecs[start]![0]!;
      let fusedSum: Parameters<ConvolutionLayer['forwardWithEpilogue']>[5];
      if (sum) {
        const [b0, b1] = net.bottomVecs[sum.index]! as [Blob, Blob];
        const [c0, c1] = (net.layers[sum.index] as EltwiseLayer).coefficients() as [number, number];
        fusedSum = { other: sum.convFirst ? b1 : b0, convFirst: sum.convFirst, c0, c1, relu: sum.relu ? sum.relu.negativeSlope : null, out: net.topVecs[sum.index]![0]! };
      }
      if (conv.forwardWithEpilogue(xBlob, yBlob, folded ? a : null, folded ? b : null, slope, fusedSum)) return true;
      conv.forward(net.bottomVecs[start]!, net.topVecs[start]!);
      if (!(rest && rest.run())) for (let i = start + 1; i <= affineEnd; i++) net.layers[i]!.forward(net.bottomVecs[i]!, net.topVecs[i]!);
      if (sum && !(sumRest && sumRest.run())) for (let i = sum.index; i <= sum.end; i++) net.layers[i]!.forward(net.bottomVecs[i]!, net.topVecs[i]!);
      return true;
    },
  };
}

function reshapeAll(net: NetView, start: number, end: number): void {
  for (let i = start; i <= end; i++) net.layers[i]!.reshape(net.bottomVecs[i]!, net.topVecs[i]!);
}

/** y = relu(bn(x) · s + b) per channel, each step rounded to the blob's type as the layers store it. */
function affineChain(net: NetView, start: number, end: number, bn: BatchNormLayer | null, scale: ScaleLayer | null, slope: number | null): FusedChain & { a: Float32Array; b: Float32Array } {
  return {
    start,
    end,
    /** Per-channel factors of the WebAssembly path, kept between calls. */
    a: new Float32Array(0),
    b: new Float32Array(0),
    run(): boolean {
      reshapeAll(net, start, end);
      const xBlob = net.bottomVecs[start]![0]!, yBlob = net.topVecs[start]![0]!;
      const shape = xBlob.shape;
      const num = shape[0] ?? 1, C = shape.length > 1 ? shape[1]! : 1;
      const spatial = xBlob.count() / Math.max(1, num * C);
      let affine: { scale: FloatArray; bias: FloatArray | null } | null = null;
      if (scale) {
        affine = scale.learnedAffine();
        // The fused loop walks num × C × spatial; the scale must broadcast the same way.
        if (!affine || scale.scaleDim !== C || scale.outerDim !== num || scale.innerDim !== spatial) return false;
      }
      if (bn && (shape.length < 2 || xBlob.count() === 0)) return false;
      const stats = bn ? bn.globalStats() : null;
      const x = xBlob.cpuData();
      const y = yBlob.mutableCpuData();
      const f32 = y instanceof Float32Array;
      const useRelu = slope !== null, s2 = slope ?? 0;
      const sv = affine?.scale ?? null, bv = affine?.bias ?? null;
      const k = f32 ? defaultWasmInfer() : null;
      if (k) {
        // Float32 in WebAssembly SIMD: the chain folded into y = a·x + b per channel (then the
        // ReLU); a = s/σ', b = β − s·μ/σ' (σ' = √(σ² + eps)), which rounds differently from the
        // layers' steps (to about 1e-7 relative).
        if (this.a.length < C) {
          this.a = new Float32Array(C);
          this.b = new Float32Array(C);
        }
        const a = this.a, b = this.b;
        for (let c = 0; c < C; c++) {
          const mu = stats ? stats.mean[c]! : 0, sd = stats ? stats.std[c]! : 1;
          const f = sv ? sv[c]! : 1, beta = bv ? bv[c]! : 0;
          a[c] = f / sd;
          b[c] = beta - (f * mu) / sd;
        }
        k.affine(x as Float32Array, y as Float32Array, num, C, spatial, a, b, slope);
        return true;
      }
      for (let n = 0, k = 0; n < num; n++) {
        for (let c = 0; c < C; c++) {
          const mu = stats ? stats.mean[c]! : 0, sd = stats ? stats.std[c]! : 1;
          const f = sv ? sv[c]! : 1, b = bv ? bv[c]! : 0;
          const end = k + spatial;
          if (stats && sv && useRelu && s2 === 0 && f32) {
            // The common case (BatchNorm → Scale → ReLU, float32), without per-element tests.
            if (bv) {
              for (; k < end; k++) {
                const v = Math.fround(Math.fround(f * Math.fround((x[k]! - mu) / sd)) + b);
                y[k] = (v + Math.abs(v)) * 0.5;
              }
            } else {
              for (; k < end; k++) {
                const v = Math.fround(f * Math.fround((x[k]! - mu) / sd));
                y[k] = (v + Math.abs(v)) * 0.5;
              }
            }
            continue;
          }
          for (; k < end; k++) {
            let v = x[k]!;
            if (stats) {
              v = (v - mu) / sd;
              if (f32) v = Math.fround(v);
            }
            if (sv) {
              v = f * v;
              if (bv) {
                if (f32) v = Math.fround(v);
                v = v + b;
              }
              if (f32) v = Math.fround(v);
            }
            if (useRelu) {
              const a = Math.abs(v);
              v = s2 === 0 ? (v + a) * 0.5 : (v + a) * 0.5 + s2 * ((v - a) * 0.5);
            }
            y[k] = v;
          }
        }
      }
      return true;
    },
  };
}

/** y = relu(c0·a + c1·b): Eltwise SUM's float64 sum, then the ReLU (which commutes with the final rounding). */
function eltwiseReluChain(net: NetView, start: number): FusedChain {
  const eltwise = net.layers[start] as EltwiseLayer;
  const relu = net.layers[start + 1] as ReLULayer;
  return {
    start,
    end: start + 1,
    run(): boolean {
      reshapeAll(net, start, start + 1);
      const [aBlob, bBlob] = net.bottomVecs[start]! as [Blob, Blob];
      const [c0, c1] = eltwise.coefficients() as [number, number];
      const slope = relu.negativeSlope;
      const a = aBlob.cpuData(), b = bBlob.cpuData();
      const y = net.topVecs[start]![0]!.mutableCpuData();
      const n = y.length;
      const k = y instanceof Float32Array ? defaultWasmInfer() : null;
      if (k) {
        // Float32 in WebAssembly SIMD (rounded after each product, unlike Eltwise's float64 sum).
        k.sum2(a as Float32Array, b as Float32Array, y as Float32Array, n, c0, c1, slope);
        return true;
      }
      if (slope === 0) {
        for (let i = 0; i < n; i++) {
          const v = 0 + c0 * a[i]! + c1 * b[i]!;
          y[i] = (v + Math.abs(v)) * 0.5;
        }
      } else {
        // A leaky slope multiplies the sum as Eltwise stored it (rounded to float32 there).
        const f32 = y instanceof Float32Array;
        for (let i = 0; i < n; i++) {
          let v = 0 + c0 * a[i]! + c1 * b[i]!;
          if (f32) v = Math.fround(v);
          const av = Math.abs(v);
          y[i] = (v + av) * 0.5 + slope * ((v - av) * 0.5);
        }
      }
      return true;
    },
  };
}
