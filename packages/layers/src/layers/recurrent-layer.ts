import { fillBlob, gemm, logger, type Blob, type FloatArray } from '@caffe-ts/blob';
import { createMessage, type FillerParameter, type RecurrentParameter } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';

const log = logger('recurrent_layer.cpp');

/** One learnable blob of a recurrent layer, as Caffe's unrolled net names it. */
export interface RecurrentParamSpec {
  name: string;
  shape: number[];
  filler: 'weight' | 'bias';
}

/** What a subclass's recurrence reads in forward. */
export interface RecurrenceForward {
  /** Time steps, streams, outputs per step, pre-activation width per step (O or 4·O). */
  T: number;
  N: number;
  O: number;
  G: number;
  /** W_x·x_t + b (+ W_static·x_static), T×N×G. */
  inputProjection: FloatArray;
  /** Sequence continuation indicators, T×N: 0 at t starts a new sequence there. */
  cont: FloatArray;
  /** The state entering step 0 (Caffe's h_0, c_0), each N×O. */
  initial: FloatArray[];
  /** Where the state after step T−1 goes (Caffe's h_T, c_T), each N×O. */
  final: FloatArray[];
  /** top[0], T×N×O. */
  output: FloatArray;
}

/** What a subclass's recurrence reads and writes in backward. */
export interface RecurrenceBackward extends RecurrenceForward {
  /** top[0]'s diff, T×N×O. */
  outputDiff: FloatArray;
  /** The diffs arriving at the final state (exposed tops' diffs, else zeros), each N×O. */
  finalDiff: FloatArray[];
  /** To fill: ∂E/∂(pre-activation), T×N×G. */
  inputProjectionDiff: FloatArray;
  /** To fill: ∂E/∂(initial state), each N×O. */
  initialDiff: FloatArray[];
}

/**
 * Base of Caffe's recurrent layers (RNN, LSTM). Caffe unrolls them into an internal Net of
 * InnerProduct/Eltwise/… layers; this implementation runs the same recurrence directly, with
 * the same learnable blobs in the same order and shapes, so Caffe's caffemodels load as they are.
 * - Bottoms: x (T×N×…, T time steps of N independent streams), cont (T×N), optionally a static
 *   input x_static (N×…) seen at every step, and with `expose_hidden` the initial state
 *   (h_0, and c_0 for LSTM; each 1×N×num_output).
 * - Tops: the outputs (T×N×num_output), and with `expose_hidden` the final state (h_T[, c_T]).
 * - cont_t = 0 resets the state before step t: the recurrent input is multiplied by cont_t.
 * - Without `expose_hidden`, the state at the end of one forward is the initial state of the
 *   next (as Caffe); `reset()` zeroes it, and so does a change of N.
 * Params: [W_x (G×input), b (G), (W_x_static (G×static_input)), …the subclass's], G = num_output
 * (RNN) or 4·num_output (LSTM); W's are filled with `weight_filler`, b's with `bias_filler`.
 * Backward runs through time exactly; it reaches x, x_static, the exposed initial state and
 * every param, never cont. Unlike Caffe's unrolled net, the exposed state tops and bottoms
 * take part in backward (Caffe shares only their data, so their gradients were dropped).
 * Unlike Caffe, T may change between forwards.
 */
export abstract class RecurrentLayer extends Layer {
  static override readonly blobCounts: BlobCounts = { minBottomBlobs: 2, maxBottomBlobs: 3, exactNumTopBlobs: 1 };

  /** Caffe's RecurrentInputBlobNames: the state entering step 0 (e.g. ['h_0', 'c_0']). */
  protected abstract readonly recurrentInputNames: readonly string[];
  /** Width of the per-step pre-activation fed by x: num_output (RNN), 4·num_output (LSTM). */
  protected abstract gateDim(numOutput: number): number;
  /** The params after the input transform, in Caffe's order. */
  protected abstract recurrentParamSpecs(numOutput: number): RecurrentParamSpec[];
  /** Run the recurrence over all steps: write `output` and `final`; keep what backward needs. */
  protected abstract forwardRecurrence(f: RecurrenceForward): void;
  /**
   * Backpropagate through time: fill `inputProjectionDiff` and `initialDiff`, and accumulate the
   * diffs of the subclass's params (`this.recurrentParam(i)`, when `this.wantsParamDiff`).
   */
  protected abstract backwardRecurrence(b: RecurrenceBackward): void;

  /** Time steps, streams, outputs, gate width, input size, static input size (0 if none). */
  protected T = 0;
  protected N = 0;
  protected O = 0;
  protected G = 0;
  protected inputDim = 0;
  protected staticDim = 0;
  protected staticInput = false;
  protected exposeHidden = false;

  /** Caffe's recur_input_blobs_ / recur_output_blobs_: the state before step 0 and after the last. */
  readonly initialState: Blob[] = [];
  readonly finalState: Blob[] = [];
  private readonly inputProjection: Blob = this.newBlob();
  private readonly inputProjectionDiff: Blob = this.newBlob();
  private readonly staticProjection: Blob = this.newBlob();

  private get recurrentSettings(): RecurrentParameter {
    return this.param.recurrent_param ?? createMessage<RecurrentParameter>('RecurrentParameter', {});
  }

  /** Blob counts depend on `expose_hidden` (Caffe's MinBottomBlobs/ExactNumTopBlobs). */
  override get blobCounts(): BlobCounts {
    const exposed = this.recurrentSettings.expose_hidden ? this.recurrentInputNames.length : 0;
    return { minBottomBlobs: 2 + exposed, maxBottomBlobs: 3 + exposed, exactNumTopBlobs: 1 + exposed };
  }

  /** Index of the first param after the input transform(s). */
  protected get recurrentParamOffset(): number {
    return this.staticInput ? 3 : 2;
  }

  /** The subclass's i-th param (0 = the first after the input transform). */
  protected recurrentParam(i: number): Blob {
    return this.blobs[this.recurrentParamOffset + i]!;
  }

  protected wantsParamDiff(blobIndex: number): boolean {
    return this.paramPropagateDown[blobIndex] ?? true;
  }

  /** Zero the state carried from one forward to the next (Caffe's RecurrentLayer::Reset). */
  reset(): void {
    for (const s of this.finalState) s.mutableCpuData().fill(0);
    for (const s of this.initialState) s.mutableCpuData().fill(0);
  }

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const rp = this.recurrentSettings;
    const [x, cont] = [bottom[0]!, bottom[1]!];
    this.checkSequenceShapes(x, cont);
    this.T = x.shape[0]!;
    this.N = x.shape[1]!;
    log.info(`Initializing recurrent layer: assuming input batch contains ${this.T} timesteps of ${this.N} independent streams.`);
    this.exposeHidden = rp.expose_hidden;
    const numRecur = this.recurrentInputNames.length;
    this.staticInput = bottom.length > 2 + (this.exposeHidden ? numRecur : 0);
    this.O = rp.num_output;
    this.check(this.O > 0, () => `num_output must be positive (got ${this.O})`);
    this.G = this.gateDim(this.O);
    this.inputDim = x.count(2);
    if (this.staticInput) {
      const s = bottom[2]!;
      this.check(s.numAxes >= 1 && s.shape[0] === this.N, () => `bottom 2 (x_static) must have shape N×… with N = ${this.N} (got ${s.shapeString()})`);
      this.staticDim = s.count(1);
    }

    const specs: RecurrentParamSpec[] = [
      { name: this.inputWeightName, shape: [this.G, this.inputDim], filler: 'weight' },
      { name: this.inputBiasName, shape: [this.G], filler: 'bias' },
      ...(this.staticInput ? [{ name: `${this.inputWeightName}_static`, shape: [this.G, this.staticDim], filler: 'weight' as const }] : []),
      ...this.recurrentParamSpecs(this.O),
    ];
    if (this.blobs.length > 0) {
      // Weights were supplied (loaded from a model): check them instead of filling.
      this.check(
        this.blobs.length === specs.length,
        () => `Incorrect number of weight blobs (expected ${specs.length}: ${specs.map((s) => s.name).join(', ')}; got ${this.blobs.length}).`,
      );
      specs.forEach((spec, i) => {
        const b = this.blobs[i]!;
        this.check(
          b.shapeEquals(spec.shape),
          () => `Incorrect shape of param ${i} (${spec.name}): expected shape ${shapeString(spec.shape)}; instead, shape was ${b.shapeString()}`,
        );
      });
    } else {
      const fillers: Record<'weight' | 'bias', FillerParameter | null> = { weight: rp.weight_filler, bias: rp.bias_filler };
      this.blobs = specs.map((spec) => {
        const b = this.newBlob(spec.shape);
        fillBlob(b, fillers[spec.filler], this.rng);
        return b;
      });
    }
    this.paramPropagateDown = this.blobs.map(() => true);
    this.initialState.length = 0;
    this.finalState.length = 0;
    for (let i = 0; i < numRecur; i++) {
      this.initialState.push(this.newBlob([1, this.N, this.O]));
      this.finalState.push(this.newBlob([1, this.N, this.O]));
    }
  }

  /** Caffe's names for the input transform's weight and bias (W_xh/b_h, W_xc/b_c). */
  protected abstract readonly inputWeightName: string;
  protected abstract readonly inputBiasName: string;

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [x, cont] = [bottom[0]!, bottom[1]!];
    this.checkSequenceShapes(x, cont);
    this.T = x.shape[0]!;
    this.N = x.shape[1]!;
    this.check(
      x.count(2) === this.inputDim,
      () => `Input size incompatible with the input weights (expected ${this.inputDim} values per time step and stream from bottom 0, ${x.shapeString()} gives ${x.count(2)}).`,
    );
    if (this.staticInput) {
      const s = bottom[2]!;
      this.check(
        s.numAxes >= 1 && s.shape[0] === this.N && s.count(1) === this.staticDim,
        () => `bottom 2 (x_static) must have shape N×… with N = ${this.N} and ${this.staticDim} values per stream (got ${s.shapeString()})`,
      );
    }
    const stateShape = [1, this.N, this.O];
    for (let i = 0; i < this.finalState.length; i++) {
      if (!this.finalState[i]!.shapeEquals(stateShape)) {
        // A new number of streams: the carried state no longer fits, start from zeros.
        this.finalState[i]!.reshape(stateShape);
        this.finalState[i]!.mutableCpuData().fill(0);
      }
      this.initialState[i]!.reshape(stateShape);
    }
    if (this.exposeHidden) {
      const offset = this.stateBottomOffset;
      for (let j = 0; j < this.recurrentInputNames.length; j++) {
        const b = bottom[offset + j]!;
        this.check(
          b.shapeEquals(stateShape),
          () => `shape mismatch - ${this.recurrentInputNames[j]} must be ${shapeString(stateShape)}; bottom ${offset + j} is ${b.shapeString()}`,
        );
      }
    }
    this.inputProjection.reshape([this.T, this.N, this.G]);
    this.inputProjectionDiff.reshape([this.T, this.N, this.G]);
    this.staticProjection.reshape([this.N, this.G]);
    top[0]!.reshape([this.T, this.N, this.O]);
    for (let j = 1; j < top.length; j++) top[j]!.reshape(stateShape);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const { T, N, G } = this;
    const numRecur = this.recurrentInputNames.length;
    for (let j = 0; j < numRecur; j++) {
      // The state entering step 0: the exposed bottom, else what the last forward left.
      const src = this.exposeHidden ? bottom[this.stateBottomOffset + j]! : this.finalState[j]!;
      this.initialState[j]!.mutableCpuData().set(src.cpuData());
    }
    // W_x·x + b for all steps at once, plus the static input's projection at every step.
    const proj = this.inputProjection.mutableCpuData();
    gemm(false, true, T * N, G, this.inputDim, 1, bottom[0]!.cpuData(), this.blobs[0]!.cpuData(), 0, proj);
    const bias = this.blobs[1]!.cpuData();
    for (let r = 0; r < T * N; r++) for (let g = 0; g < G; g++) proj[r * G + g]! += bias[g]!;
    if (this.staticInput) {
      const sp = this.staticProjection.mutableCpuData();
      gemm(false, true, N, G, this.staticDim, 1, bottom[2]!.cpuData(), this.blobs[2]!.cpuData(), 0, sp);
      for (let t = 0; t < T; t++) for (let k = 0; k < N * G; k++) proj[t * N * G + k]! += sp[k]!;
    }
    this.forwardRecurrence(this.recurrenceData(bottom, top));
    if (this.exposeHidden) {
      for (let j = 0; j < numRecur; j++) top[1 + j]!.mutableCpuData().set(this.finalState[j]!.cpuData());
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (propagateDown[1]) this.fail('Cannot backpropagate to sequence indicators.');
    const { T, N, G } = this;
    const numRecur = this.recurrentInputNames.length;
    const zeros = new Float64Array(N * this.O);
    const initialDiff = this.initialState.map((s) => s.mutableCpuDiff());
    this.backwardRecurrence({
      ...this.recurrenceData(bottom, top),
      outputDiff: top[0]!.cpuDiff(),
      // Without exposed tops nothing flows back into the final state (Caffe zeroes those diffs).
      finalDiff: Array.from({ length: numRecur }, (_, j) => (this.exposeHidden ? top[1 + j]!.cpuDiff() : zeros)),
      inputProjectionDiff: this.inputProjectionDiff.mutableCpuDiff(),
      initialDiff,
    });
    const dPre = this.inputProjectionDiff.cpuDiff();
    const x = bottom[0]!.cpuData();
    if (this.wantsParamDiff(0)) gemm(true, false, G, this.inputDim, T * N, 1, dPre, x, 1, this.blobs[0]!.mutableCpuDiff());
    if (this.wantsParamDiff(1)) {
      const db = this.blobs[1]!.mutableCpuDiff();
      for (let r = 0; r < T * N; r++) for (let g = 0; g < G; g++) db[g]! += dPre[r * G + g]!;
    }
    if (propagateDown[0]) gemm(false, false, T * N, this.inputDim, G, 1, dPre, this.blobs[0]!.cpuData(), 0, bottom[0]!.mutableCpuDiff());
    if (this.staticInput && (this.wantsParamDiff(2) || propagateDown[2])) {
      // The static projection is added at every step: its diff is the sum over steps.
      const dS = this.staticProjection.mutableCpuDiff();
      dS.fill(0);
      for (let t = 0; t < T; t++) for (let k = 0; k < N * G; k++) dS[k]! += dPre[t * N * G + k]!;
      if (this.wantsParamDiff(2)) gemm(true, false, G, this.staticDim, N, 1, dS, bottom[2]!.cpuData(), 1, this.blobs[2]!.mutableCpuDiff());
      if (propagateDown[2]) gemm(false, false, N, this.staticDim, G, 1, dS, this.blobs[2]!.cpuData(), 0, bottom[2]!.mutableCpuDiff());
    }
    if (this.exposeHidden) {
      for (let j = 0; j < numRecur; j++) {
        const bi = this.stateBottomOffset + j;
        if (propagateDown[bi]) bottom[bi]!.mutableCpuDiff().set(initialDiff[j]!);
      }
    }
  }

  /** The continuation indicators take no gradient. */
  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex !== 1;
  }

  /** Index of the first exposed state bottom (after x, cont and x_static). */
  private get stateBottomOffset(): number {
    return 2 + (this.staticInput ? 1 : 0);
  }

  private recurrenceData(bottom: Blob[], top: Blob[]): RecurrenceForward {
    return {
      T: this.T,
      N: this.N,
      O: this.O,
      G: this.G,
      inputProjection: this.inputProjection.cpuData(),
      cont: bottom[1]!.cpuData(),
      initial: this.initialState.map((s) => s.cpuData()),
      final: this.finalState.map((s) => s.mutableCpuData()),
      output: top[0]!.mutableCpuData(),
    };
  }

  private checkSequenceShapes(x: Blob, cont: Blob): void {
    this.check(x.numAxes >= 2, () => `bottom[0] must have at least 2 axes -- (#timesteps, #streams, ...) (got ${x.shapeString()})`);
    this.check(cont.numAxes === 2, () => `bottom[1] must have exactly 2 axes -- (#timesteps, #streams) (got ${cont.shapeString()})`);
    this.check(
      cont.shape[0] === x.shape[0] && cont.shape[1] === x.shape[1],
      () => `bottom[1] (cont) must be T×N = ${x.shape[0]}×${x.shape[1]} like bottom[0] (got ${cont.shapeString()})`,
    );
  }
}

function shapeString(shape: readonly number[]): string {
  return `${shape.join(' ')} (${shape.reduce((a, b) => a * b, 1)})`;
}
