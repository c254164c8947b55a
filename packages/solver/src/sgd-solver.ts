import { Blob, blobProtoShape, defaultWasmTrain, installedConv2dRunner, logger, type DeviceSolverOps, type FloatArray, type Logger } from '@caffe-ts/blob';
import { createMessage, type BlobProto, type SolverParameter, type SolverState } from '@caffe-ts/proto';
import { SolverConfigError, SolverStateError } from './errors.js';
import { formatG } from './format.js';
import { learningRate } from './lr-policy.js';
import { Solver, type SolverOptions } from './solver.js';

/** SGD with momentum: h = lr·g + momentum·h; the step is h. Updates `g` and `h` in place. */
export function sgdUpdate(g: FloatArray, h: FloatArray, localRate: number, momentum: number): void {
  for (let i = 0; i < g.length; i++) {
    const hi = localRate * g[i]! + momentum * h[i]!;
    h[i] = hi;
    g[i] = h[i]!;
  }
}

/**
 * Applies SGDSolver's per-param update somewhere other than the solver's own loop (data-parallel
 * training divides it among the replicas, each over a share of the elements: see
 * @caffe-ts/solver/parallel). Set it as `SGDSolver.updateApplier`.
 */
export interface UpdateApplier {
  /**
   * Called by applyUpdate once the learning rate is set and the gradients are clipped (on the host
   * path; a backend's device update runs instead when it has one). Either apply the template's
   * normalize → regularize → computeUpdateValue → data −= step to every learnable param of
   * `solver.net` and return whether every param is finite afterwards (the solver then skips its own
   * loop and net.update(), and its finiteness scan when `finite`), or return null to let the
   * solver update as usual this iteration. Whoever writes the params' values must mark them
   * written (mutableCpuData), as Blob.update does.
   */
  applyUpdate(solver: SGDSolver, rate: number): { finite: boolean } | null;
}

/**
 * Stochastic gradient descent with momentum, and the template the other solvers share:
 * `applyUpdate` = learning rate → clipGradients → per param (normalize → regularize →
 * computeUpdateValue) → net.update(). Subclasses override `computeUpdateValue` (and
 * `historyBlobsPerParam` when they keep more than one history per param).
 */
export class SGDSolver extends Solver {
  /** Update history in the net's learnable-param order (history blobs × params, Caffe's layout). */
  readonly history: Blob[] = [];
  protected readonly sgdLog: Logger;
  /** Applies the update instead of the solver's own loop when set (see UpdateApplier). */
  updateApplier: UpdateApplier | undefined;

  get type(): string {
    return 'SGD';
  }

  constructor(param: SolverParameter, options: SolverOptions = {}) {
    super(param, options);
    this.sgdLog = this.logEnabled ? logger('sgd_solver.cpp') : { info: () => {}, warn: () => {}, error: () => {} };
    const params = this.net.learnableParams;
    for (let k = 0; k < this.historyBlobsPerParam(); k++) {
      // On the param's device, so a device update never moves history to the host.
      for (const p of params) this.history.push(new Blob(p.shape, { dtype: p.dtype, device: p.device }));
    }
  }

  protected override disposeState(): void {
    for (const h of this.history) h.dispose();
  }

  /** How many history blobs each learnable param has (AdaDelta and Adam keep two). */
  protected historyBlobsPerParam(): number {
    return 1;
  }

  protected override validateParam(): void {
    const p = this.param;
    if (p.weight_decay !== 0 && p.regularization_type !== 'L2' && p.regularization_type !== 'L1') {
      throw new SolverConfigError(`Unknown regularization type: ${p.regularization_type} (known types: L1, L2)`);
    }
  }

  /** The rate at the current iteration; advances current_step for step/multistep. */
  getLearningRate(): number {
    const before = this.currentStep;
    const { rate, currentStep } = learningRate(this.param, { iter: this.iter, currentStep: this.currentStep });
    this.currentStep = currentStep;
    if (this.param.lr_policy === 'multistep' && currentStep !== before) {
      this.sgdLog.info(`MultiStep Status: Iteration ${this.iter}, step = ${currentStep}`);
    }
    return rate;
  }

  applyUpdate(): void {
    const rate = this.getLearningRate();
    this.learningRateValue = rate;
    const display = this.param.display;
    if (display > 0 && this.iter % display === 0) this.sgdLog.info(`Iteration ${this.iter}, lr = ${formatG(rate)}`);
    const ops = this.deviceUpdateOps();
    if (ops) {
      this.applyDeviceUpdate(ops, rate);
      return;
    }
    this.clipGradients();
    const n = this.net.learnableParams.length;
    this.paramsSeenFinite = 0;
    const applied = this.updateApplier?.applyUpdate(this, rate);
    if (applied) {
      if (applied.finite) this.paramsSeenFinite = n;
      return;
    }
    if (this.fusedStep()) {
      for (let id = 0; id < n; id++) {
        this.normalize(id);
        if (!this.fusedParamStep(id, rate)) {
          // Not float32 (or no WebAssembly): the template's passes for this param.
          this.regularize(id);
          this.computeUpdateValue(id, rate);
          this.net.learnableParams[id]!.update();
        }
      }
      return;
    }
    this.computeUpdateSteps(rate);
    this.net.update();
  }

  /**
   * The template's per-param steps for every learnable param of the net: normalize → regularize →
   * computeUpdateValue, leaving each param's step in its diff (net.update() then subtracts it).
   * Public so that an UpdateApplier can run the same arithmetic on a share of the params (a solver
   * of this type over views of the share's elements).
   */
  computeUpdateSteps(rate: number): void {
    const n = this.net.learnableParams.length;
    for (let id = 0; id < n; id++) {
      this.normalize(id);
      this.regularize(id);
      this.computeUpdateValue(id, rate);
    }
  }

  /**
   * Whether plain SGD runs regularize → update value → data −= step as one WebAssembly pass per
   * float32 param (defaultWasmTrain's sgdStep: the same float32 results as these JS loops, which
   * took ~4.4 ms per LeNet step, 431k params, against ~1.7): SGD itself (subclasses change the
   * update rule), L2 or no weight decay, and no debug info (Net.update logs it).
   */
  private fusedStep(): boolean {
    if (Object.getPrototypeOf(this) !== SGDSolver.prototype || this.net.debugInfo) return false;
    return this.param.regularization_type === 'L2' || this.param.weight_decay === 0;
  }

  /**
   * One param's fused SGD step (see fusedStep); false where it does not apply (float64, no
   * WebAssembly). Counts the param in paramsSeenFinite when its new weights are all finite.
   */
  private fusedParamStep(id: number, rate: number): boolean {
    const blob = this.net.learnableParams[id]!;
    const history = this.history[id]!;
    if (blob.dtype !== 'float32' || history.dtype !== 'float32') return false;
    const decay = this.param.weight_decay * (this.net.paramsWeightDecay[id] ?? 1);
    const w = blob.mutableCpuData() as Float32Array, g = blob.mutableCpuDiff() as Float32Array, h = history.mutableCpuData() as Float32Array;
    const localRate = this.localRate(id, rate), momentum = this.param.momentum;
    // An installed pass runner (setConv2dRunner, e.g. native kernels) takes the step first, with the
    // same bits; then WebAssembly.
    let finite = installedConv2dRunner()?.sgdStep?.(w, g, h, localRate, momentum, decay) ?? null;
    if (finite === null) {
      const train = defaultWasmTrain();
      if (!train) return false;
      finite = train.sgdStep(w, g, h, localRate, momentum, decay);
    }
    if (finite) this.paramsSeenFinite++;
    return true;
  }

  /** Params this iteration's fused steps saw finite after their update. */
  private paramsSeenFinite = 0;

  /**
   * The fused steps checked every new weight of every param (so the solver's check after the
   * update need not scan them again: ~2 ms of JS per LeNet iteration, 431k params).
   */
  protected override updateLeftParamsFinite(): boolean {
    return this.paramsSeenFinite === this.net.learnableParams.length;
  }

  /**
   * The backend's device update when it gives the same result as the host template: plain SGD
   * (subclasses override the update rule), no gradient clipping (its global norm would be read
   * back) and no debug info (which reads every param).
   */
  protected deviceUpdateOps(): DeviceSolverOps | undefined {
    const ops = this.net.backend.solverOps;
    if (!ops || Object.getPrototypeOf(this) !== SGDSolver.prototype) return undefined;
    if (this.param.clip_gradients >= 0 || this.net.debugInfo) return undefined;
    return ops;
  }

  /** normalize → regularize → SGD update → data −= step for every param, on the device. */
  private applyDeviceUpdate(ops: DeviceSolverOps, rate: number): void {
    const regularization = this.param.regularization_type === 'L1' ? 'L1' : 'L2';
    this.net.learnableParams.forEach((p, id) => {
      ops.sgdStep(p, this.history[id]!, {
        localRate: this.localRate(id, rate),
        momentum: this.param.momentum,
        localDecay: this.param.weight_decay * (this.net.paramsWeightDecay[id] ?? 1),
        regularization,
        diffScale: 1 / this.param.iter_size,
      });
    });
  }

  /** Scale all diffs down when their global L2 norm exceeds clip_gradients (off when < 0). */
  protected clipGradients(): void {
    const clip = this.param.clip_gradients;
    if (clip < 0) return;
    const params = this.net.learnableParams;
    let sumsq = 0;
    for (const p of params) sumsq += p.sumsqDiff();
    const norm = Math.sqrt(sumsq);
    if (norm > clip) {
      const scale = clip / norm;
      this.sgdLog.info(
        `Gradient clipping: scaling down gradients (L2 norm ${formatG(norm)} > ${formatG(clip)}) by scale factor ${formatG(scale)}`,
      );
      for (const p of params) p.scaleDiff(scale);
    }
  }

  /** Undo the accumulation of iter_size backward passes: diff /= iter_size. */
  protected normalize(paramId: number): void {
    const iterSize = this.param.iter_size;
    if (iterSize === 1) return;
    this.net.learnableParams[paramId]!.scaleDiff(1 / iterSize);
  }

  /** Add the weight-decay gradient: L2 `decay·w`, L1 `decay·sign(w)`, decay = weight_decay·decay_mult. */
  protected regularize(paramId: number): void {
    const localDecay = this.param.weight_decay * (this.net.paramsWeightDecay[paramId] ?? 1);
    if (!localDecay) return;
    const blob = this.net.learnableParams[paramId]!;
    const w = blob.cpuData();
    const g = blob.mutableCpuDiff();
    if (this.param.regularization_type === 'L2') {
      for (let i = 0; i < g.length; i++) g[i] = g[i]! + localDecay * w[i]!;
    } else if (this.param.regularization_type === 'L1') {
      for (let i = 0; i < g.length; i++) g[i] = g[i]! + localDecay * Math.sign(w[i]!);
    } else {
      throw new SolverConfigError(`Unknown regularization type: ${this.param.regularization_type} (known types: L1, L2)`);
    }
  }

  /** The local rate of a param: rate · lr_mult. */
  protected localRate(paramId: number, rate: number): number {
    return rate * (this.net.paramsLr[paramId] ?? 1);
  }

  /** Turn the (normalized, regularized) gradient into the step, left in the param's diff. */
  protected computeUpdateValue(paramId: number, rate: number): void {
    const blob = this.net.learnableParams[paramId]!;
    sgdUpdate(blob.mutableCpuDiff(), this.history[paramId]!.mutableCpuData(), this.localRate(paramId, rate), this.param.momentum);
  }

  protected snapshotSolverState(learnedNet: string): SolverState {
    return createMessage<SolverState>('SolverState', {
      iter: this.iter,
      learned_net: learnedNet,
      current_step: this.currentStep,
      history: this.history.map((h) => h.toProto()),
    });
  }

  protected restoreSolverState(state: SolverState): void {
    if (state.history.length !== this.history.length) {
      throw new SolverStateError(
        `Incorrect length of history blobs. (the state has ${state.history.length}; the ${this.type} solver keeps ` +
          `${this.history.length} for ${this.net.learnableParams.length} learnable params)`,
      );
    }
    state.history.forEach((proto, i) => restoreHistoryBlob(this.history[i]!, proto, i));
    this.iter = state.iter;
    this.currentStep = state.current_step;
    this.sgdLog.info("SGDSolver: restoring history");
  }
}

/**
 * Load history blob `i` from the state. Older Caffe wrote 4-D legacy shapes (1 1 1 20 for a
 * bias of 20), which Caffe itself accepts because the update is element-wise; so only the
 * count must match.
 */
function restoreHistoryBlob(target: Blob, proto: BlobProto, i: number): void {
  const shape = blobProtoShape(proto);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== target.count()) {
    throw new SolverStateError(
      `history blob ${i}: the state has shape ${shape.join(' ')} (${count}); the learnable param needs ${target.shapeString()}`,
    );
  }
  const tmp = new Blob(shape, { dtype: target.dtype });
  tmp.fromProto(proto, { what: `history blob ${i}` });
  target.mutableCpuData().set(tmp.cpuData());
}
