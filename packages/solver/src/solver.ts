import { logger, setRandomSeed, type Backend, type Blob, type DType, type Logger, type Rng } from '@caffe-ts/blob';
import type { LayerRegistry } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import {
  hasField,
  Phase,
  printText,
  SolverParameter_SnapshotFormat,
  type NetParameter,
  type NetState,
  type SolverParameter,
  type SolverState,
} from '@caffe-ts/proto';
import { SolverConfigError, SolverError } from './errors.js';
import { findNonFiniteParam, paramsFinite } from './non-finite.js';
import { formatG } from './format.js';
import { AP_VERSIONS, DetectionTally, type ApVersion } from './detection-eval.js';

/** How the solver builds a net: `new Net(param, options)` unless a factory is given. */
export interface NetBuildOptions {
  phase: Phase;
  level: number;
  stages: string[];
  registry?: LayerRegistry;
  backend?: Backend;
  dtype?: DType;
  rng?: Rng;
  log?: boolean;
}
export type NetFactory = (param: NetParameter, options: NetBuildOptions) => Net;

/** File access the solver delegates to its environment (see @caffe-ts/solver/node). */
export interface SolverIO {
  /**
   * Read a net prototxt named by the solver (`net`, `train_net`, `test_net`), upgraded. Synchronous
   * because nets are built in the solver's constructor; prototxt files are small.
   */
  readNetParameter(path: string): NetParameter;
  /** The file a net path names (so paths inside the net, such as data sources, resolve beside it). */
  resolveNetPath?(path: string): string;
  /** Write one snapshot (both files, each atomically) in `snapshot.format`. */
  writeSnapshot(snapshot: SnapshotData): Promise<void> | void;
  /** Read a solver state file (`.h5`: HDF5; otherwise a binary SolverState). */
  readSolverState(path: string): Promise<SolverState> | SolverState;
  /** Load the state's learned_net into `net`, resolving its path against the state file. */
  loadLearnedNet(net: Net, learnedNet: string, stateFile: string): Promise<void> | void;
}

/** Caffe's snapshot_format as a name. */
export type SnapshotFormat = 'BINARYPROTO' | 'HDF5';

/**
 * A snapshot's contents: Caffe's `<prefix>_iter_N.caffemodel` and `.solverstate` (binary proto),
 * or `.caffemodel.h5` and `.solverstate.h5` (HDF5).
 */
export interface SnapshotData {
  iter: number;
  format: SnapshotFormat;
  modelFile: string;
  stateFile: string;
  /** The weights as Net::ToProto writes them (diffs too with snapshot_diff). */
  net: NetParameter;
  state: SolverState;
  /** Whether diffs are part of the snapshot (snapshot_diff). */
  writeDiff: boolean;
  /** The train net itself: HDF5 writers need its param ownership (shared params are stored once). */
  trainNet: Net;
}

/**
 * Replaces the solver's own gradient computation (clear diffs is done by the solver; then
 * `iter_size` × forward/backward on the train net) by another that leaves the same averaged-over-
 * batches diffs in the train net's learnable params: data-parallel replicas (@caffe-ts/solver/parallel).
 */
export interface GradientComputer {
  /** Fill the train net's param diffs for one iteration; returns the loss averaged over everything computed. */
  computeGradients(solver: Solver): Promise<number>;
  /**
   * The loss of one forward pass over the next batch, no gradients (solve()'s last display line,
   * Caffe's extra Forward after the loop), where the train net alone would not see that batch;
   * undefined: the train net's own forward gives it.
   */
  forwardLoss?(solver: Solver): Promise<number | undefined>;
  /** Release what it holds (worker threads); Solver.close calls it. */
  close?(): Promise<void>;
}

/** Caffe's SolverAction: what a signal (or any caller) asks the training loop to do. */
export type SolverAction = 'none' | 'stop' | 'snapshot';

export interface IterationInfo {
  /** Number of updates done so far (after this one). */
  iter: number;
  /** This iteration's loss (averaged over iter_size). */
  loss: number;
  /** Loss averaged over the last `average_loss` iterations. */
  smoothedLoss: number;
  /** The learning rate used by this update. */
  lr: number;
}

export interface TestScore {
  /** Output index as logged (`Test net output #i`). */
  index: number;
  name: string;
  value: number;
  lossWeight: number;
}

export interface TestResult {
  iter: number;
  testNetId: number;
  scores: TestScore[];
  /** Mean loss over test_iter batches when test_compute_loss is set. */
  loss?: number;
}

/**
 * How a snapshot's model file differs from the trained net (Solver.snapshotWeights): `toFile`
 * maps the net's weights (a fresh NetParameter, safe to change in place) to what the file holds;
 * `fromFile` maps weights loaded from such a file back, in place on the net.
 */
export interface SnapshotWeightsAdapter {
  toFile(net: NetParameter): NetParameter;
  fromFile(net: Net): void;
}

/** Listeners; Caffe's Solver::Callback (onStart, onGradientsReady) plus result hooks. */
export interface SolverCallback {
  onStart?(solver: Solver): void;
  onGradientsReady?(solver: Solver): void;
  onIteration?(info: IterationInfo, solver: Solver): void;
  onTest?(result: TestResult, solver: Solver): void;
  onSnapshot?(snapshot: SnapshotData, solver: Solver): void;
}

export interface SolverOptions {
  /** Layer registry for the nets (default: the process-wide one). */
  registry?: LayerRegistry;
  backend?: Backend;
  dtype?: DType;
  rng?: Rng;
  /** Directory relative paths resolve against (Node entry; default process.cwd()). */
  rootDir?: string;
  /** Whether to log Caffe's lines (default true). */
  log?: boolean;
  /** File access; without it, nets must be inline and snapshots stay in memory. */
  io?: SolverIO;
  /** Builds the nets (default `new Net(param, options)`). */
  netFactory?: NetFactory;
  /** Builds the nets asynchronously in buildSolverNets/createSolverAsync (default `Net.create`). */
  netFactoryAsync?: (param: NetParameter, options: NetBuildOptions) => Promise<Net>;
  /** Nets built already (by buildSolverNets, for data layers with async set-up). */
  prebuiltNets?: { train: Net; tests: Net[] };
  /**
   * Merged into `train_state` as caffe.cpp does with --level/--stage: a level overrides, stages
   * are appended.
   */
  trainState?: { level?: number; stages?: readonly string[] };
  /**
   * A NaN or infinite training loss is always logged with the layer that first produced a
   * non-finite value; with this set, training also stops with a SolverError (CLI: --stop_on_nan).
   */
  stopOnNonFinite?: boolean;
}

const defaultNetFactory: NetFactory = (param, options) => new Net(param, options);

/** The next macrotask, so that I/O callbacks (data prefetch) run between iterations. */
function nextMacrotask(): Promise<void> {
  const g = globalThis as { setImmediate?: (cb: () => void) => unknown };
  return new Promise((resolve) => (g.setImmediate ? g.setImmediate(resolve) : setTimeout(resolve, 0)));
}

function now(): number {
  return globalThis.performance?.now() ?? Date.now();
}

/** A NetState merged as protobuf's MergeFrom does: set scalars override, stages append. */
function mergeNetState(into: { phase: Phase; level: number; stages: string[] }, from: NetState | null | undefined): void {
  if (!from) return;
  if (hasField(from, 'phase')) into.phase = from.phase;
  if (hasField(from, 'level')) into.level = from.level;
  into.stages.push(...from.stage);
}

const QUIET: Logger = { info: () => {}, warn: () => {}, error: () => {} };

/** One net the solver will build: its definition, NetState and where it came from (for the log). */
export interface PlannedNet {
  param: NetParameter;
  options: NetBuildOptions;
  source: string;
}

function readNet(io: SolverIO | undefined, path: string, field: string): NetParameter {
  if (!io) {
    throw new SolverConfigError(
      `SolverParameter.${field} names a file ('${path}') but this solver has no file access; ` +
        `use ${field === 'net' ? 'net_param' : `${field}_param`}, or create the solver through @caffe-ts/solver/node`,
    );
  }
  return io.readNetParameter(path);
}

/**
 * Everything Caffe's Solver::Init does before it builds nets: log the parameters, check them,
 * seed the RNG, and decide which nets to build with which NetState (InitTrainNet/InitTestNets).
 */
export function planSolverNets(param: SolverParameter, options: SolverOptions = {}): { train: PlannedNet; tests: PlannedNet[] } {
  const log = options.log === false ? QUIET : logger('solver.cpp');
  const p = param;
  log.info(`Initializing solver from parameters: \n${printText('SolverParameter', p)}`);
  if (!(p.average_loss >= 1)) {
    throw new SolverConfigError(`average_loss should be non-negative. (average_loss must be >= 1, got ${p.average_loss})`, { field: 'average_loss' });
  }
  if (!(p.iter_size >= 1)) throw new SolverConfigError(`iter_size must be >= 1 (got ${p.iter_size})`, { field: 'iter_size' });
  if (p.snapshot > 0) {
    if (!hasField(p, 'snapshot_prefix')) {
      throw new SolverConfigError('In solver params, snapshot is specified but snapshot_prefix is not', { field: 'snapshot' });
    }
    checkSnapshotFormat(p);
  }
  if (p.random_seed >= 0) setRandomSeed(p.random_seed);
  const common = { registry: options.registry, backend: options.backend, dtype: options.dtype, rng: options.rng, log: options.log };

  // The train net: exactly one of four fields.
  const fields = 'net, net_param, train_net, train_net_param';
  const count = ['net', 'net_param', 'train_net', 'train_net_param'].filter((f) => hasField(p, f)).length;
  if (count < 1) throw new SolverConfigError(`SolverParameter must specify a train net using one of these fields: ${fields}`);
  if (count > 1) {
    throw new SolverConfigError(`SolverParameter must not contain more than one of these fields specifying a train_net: ${fields}`);
  }
  let trainParam: NetParameter;
  let trainSource: string;
  if (hasField(p, 'train_net_param')) {
    log.info('Creating training net specified in train_net_param.');
    trainParam = p.train_net_param!;
    trainSource = 'train_net_param';
  } else if (hasField(p, 'train_net')) {
    log.info(`Creating training net from train_net file: ${p.train_net}`);
    trainParam = readNet(options.io, p.train_net, 'train_net');
    trainSource = `train_net file: ${p.train_net}`;
  } else if (hasField(p, 'net_param')) {
    log.info('Creating training net specified in net_param.');
    trainParam = p.net_param!;
    trainSource = 'net_param';
  } else {
    log.info(`Creating training net from net file: ${p.net}`);
    trainParam = readNet(options.io, p.net, 'net');
    trainSource = `net file: ${p.net}`;
  }
  // Precedence, lowest first: TRAIN, the net's own state, the solver's train_state, the CLI's.
  const trainState = { phase: Phase.TRAIN, level: 0, stages: [] as string[] };
  mergeNetState(trainState, trainParam.state);
  mergeNetState(trainState, p.train_state);
  if (options.trainState?.level !== undefined) trainState.level = options.trainState.level;
  if (options.trainState?.stages) trainState.stages.push(...options.trainState.stages);
  const netFile = (path: string | undefined) => (path && options.io?.resolveNetPath ? { name: options.io.resolveNetPath(path) } : {});
  const trainFile = hasField(p, 'train_net') ? p.train_net : hasField(p, 'net') ? p.net : undefined;
  const train: PlannedNet = { param: trainParam, options: { ...common, ...trainState, ...netFile(trainFile) }, source: trainSource };

  // Test nets: explicit ones first, then as many instances of the general net as test_iter asks.
  const hasNetParam = hasField(p, 'net_param');
  const hasNetFile = hasField(p, 'net');
  if (hasNetParam && hasNetFile) throw new SolverConfigError('Both net_param and net_file may not be specified.');
  const numTestNets = p.test_net_param.length + p.test_net.length;
  const generic = hasNetParam || hasNetFile;
  if (generic ? p.test_iter.length < numTestNets : p.test_iter.length !== numTestNets) {
    throw new SolverConfigError(
      `test_iter must be specified for each test network. (${p.test_iter.length} test_iter for ${numTestNets} ` +
        `test_net/test_net_param${generic ? ' plus the general net' : ''})`,
      { field: 'test_iter' },
    );
  }
  const instances = generic ? p.test_iter.length : numTestNets;
  if (p.test_state.length > 0 && p.test_state.length !== instances) {
    throw new SolverConfigError(
      `test_state must be unspecified or specified once per test net. (${p.test_state.length} test_state for ${instances} test nets)`,
      { field: 'test_state' },
    );
  }
  if (instances > 0 && !(p.test_interval > 0)) {
    throw new SolverConfigError(
      `test_interval must be > 0 when there are test nets (${instances} test nets, test_interval ${p.test_interval})`,
      { field: 'test_interval' },
    );
  }
  const sources: string[] = [];
  const params: NetParameter[] = [];
  const files: (string | undefined)[] = [];
  for (const np of p.test_net_param) {
    sources.push('test_net_param');
    params.push(np);
    files.push(undefined);
  }
  for (const file of p.test_net) {
    sources.push(`test_net file: ${file}`);
    params.push(readNet(options.io, file, 'test_net'));
    files.push(file);
  }
  const remaining = instances - params.length;
  if (remaining > 0) {
    // A general net is also the train net's source (only one of the four may be set), so the
    // definition read above serves the test instances too.
    for (let i = 0; i < remaining; i++) {
      sources.push(hasNetParam ? 'net_param' : `net file: ${p.net}`);
      params.push(trainParam);
      files.push(hasNetParam ? undefined : p.net);
    }
  }
  const tests = params.map((np, i): PlannedNet => {
    const state = { phase: Phase.TEST, level: 0, stages: [] as string[] };
    mergeNetState(state, np.state);
    if (p.test_state.length > 0) mergeNetState(state, p.test_state[i]);
    return { param: np, options: { ...common, ...state, ...netFile(files[i]) }, source: sources[i]! };
  });
  return { train, tests };
}

/**
 * Build a solver's nets with `Net.create`, which awaits data layers' async set-up (opening a
 * database to learn the top shapes); pass the result as `options.prebuiltNets`.
 */
export async function buildSolverNets(
  param: SolverParameter,
  options: SolverOptions = {},
): Promise<{ train: Net; tests: Net[] }> {
  const log = options.log === false ? QUIET : logger('solver.cpp');
  const plan = planSolverNets(param, options);
  const build =
    options.netFactoryAsync ??
    (options.netFactory
      ? async (np: NetParameter, o: NetBuildOptions) => options.netFactory!(np, o)
      : async (np: NetParameter, o: NetBuildOptions) => Net.create(np, o));
  const train = await build(plan.train.param, plan.train.options);
  const tests: Net[] = [];
  for (const [i, t] of plan.tests.entries()) {
    log.info(`Creating test net (#${i}) specified by ${t.source}`);
    tests.push(await build(t.param, t.options));
  }
  return { train, tests };
}

/** The snapshot format `param` asks for; anything but BINARYPROTO and HDF5 is an error, as in Caffe. */
export function snapshotFormatOf(param: SolverParameter): SnapshotFormat {
  if (param.snapshot_format === SolverParameter_SnapshotFormat.BINARYPROTO) return 'BINARYPROTO';
  if (param.snapshot_format === SolverParameter_SnapshotFormat.HDF5) return 'HDF5';
  throw new SolverConfigError(`Unsupported snapshot format. (snapshot_format ${param.snapshot_format}; expected BINARYPROTO or HDF5)`);
}

function checkSnapshotFormat(param: SolverParameter): void {
  snapshotFormatOf(param);
}

/**
 * Caffe's Solver as a template method. The base builds the train net and the test nets, runs the
 * loop (`step`: clear diffs → iter_size × forwardBackward → applyUpdate → ++iter), tests,
 * displays and snapshots; subclasses (SGDSolver and its family) supply `applyUpdate` and the
 * state they keep between iterations.
 */
export abstract class Solver {
  readonly param: SolverParameter;
  readonly net: Net;
  readonly testNets: Net[] = [];
  /** Number of updates applied so far. */
  iter = 0;
  /** Caffe's current_step_: position in a step/multistep schedule. */
  currentStep = 0;
  readonly callbacks: SolverCallback[] = [];
  protected readonly log: Logger;
  protected readonly logEnabled: boolean;
  /** Stop (throw) on a NaN/Inf training loss instead of only logging it. */
  stopOnNonFinite: boolean;
  protected readonly io: SolverIO | undefined;
  protected readonly dtype: DType;
  /** The rate the last update used. */
  protected learningRateValue = 0;
  protected smoothedLoss = 0;
  private losses: number[] = [];
  private requestedEarlyExit = false;
  private readonly pendingActions: SolverAction[] = [];
  private actionFunction: (() => SolverAction) | undefined;
  private iterationsLast = 0;
  private timerStart = 0;
  /** Mean scores of the last test of each test net. */
  readonly meanScores: number[][] = [];
  /** Set to spread the gradient computation (data parallelism); unset, the train net computes it. */
  gradientComputer: GradientComputer | undefined;
  /**
   * Set when the weights a snapshot's model file holds differ from those the net trains
   * (py-faster-rcnn's bbox_pred, saved unnormalized so that the file is ready for testing):
   * applied to each snapshot's weights, and undone on the net after `restore` loads them.
   */
  snapshotWeights: SnapshotWeightsAdapter | undefined;

  /** The registered type string ('SGD', 'Adam', …). */
  abstract get type(): string;

  constructor(param: SolverParameter, options: SolverOptions = {}) {
    this.param = param;
    this.io = options.io;
    this.dtype = options.dtype ?? 'float32';
    this.logEnabled = options.log ?? true;
    this.stopOnNonFinite = options.stopOnNonFinite ?? false;
    this.log = this.logEnabled ? logger('solver.cpp') : QUIET;
    this.validateEvaluation();
    this.validateParam();
    let nets = options.prebuiltNets;
    if (!nets) {
      const plan = planSolverNets(param, options);
      const factory = options.netFactory ?? defaultNetFactory;
      const train = factory(plan.train.param, plan.train.options);
      const tests = plan.tests.map((t, i) => {
        this.log.info(`Creating test net (#${i}) specified by ${t.source}`);
        return factory(t.param, t.options);
      });
      nets = { train, tests };
    }
    this.net = nets.train;
    for (const t of nets.tests) {
      t.debugInfo = param.debug_info;
      this.testNets.push(t);
      this.meanScores.push([]);
    }
    this.log.info('Solver scaffolding done.');
  }


  /**
   * How test nets are scored: 'classification' (each output's mean, Caffe's way) or 'detection'
   * (mAP over DetectionEvaluate rows, the SSD fork's way). `eval_type`, `ap_version` and
   * `show_per_class_result` are the fork's solver fields, which the text parser knows once
   * @caffe-ts/layers-contrib's schema is registered; without them a solver classifies.
   */
  get evalType(): 'classification' | 'detection' {
    return (forkSolverFields(this.param).eval_type ?? 'classification') as 'classification' | 'detection';
  }

  /** The fork's ap_version for eval_type "detection" ('Integral' by default). */
  get apVersion(): ApVersion {
    return (forkSolverFields(this.param).ap_version ?? 'Integral') as ApVersion;
  }

  /** The fork's show_per_class_result: log each label's AP too. */
  get showPerClassResult(): boolean {
    return forkSolverFields(this.param).show_per_class_result ?? false;
  }

  private validateEvaluation(): void {
    const type = this.evalType;
    if (type !== 'classification' && type !== 'detection') {
      throw new SolverConfigError(`Unknown evaluation type: '${String(type)}' (eval_type must be "classification" or "detection")`);
    }
    if (type === 'detection' && !AP_VERSIONS.includes(this.apVersion)) {
      throw new SolverConfigError(`Unknown ap_version: '${String(this.apVersion)}' (expected ${AP_VERSIONS.map((v) => `"${v}"`).join(', ')})`);
    }
  }

  // ---- the subclass's part -------------------------------------------------------------------

  /** Reject parameter combinations before any net is built (Caffe's constructor CHECKs). */
  protected validateParam(): void {}

  /**
   * Turn the accumulated diffs into the step and apply it (net.update()), at the learning rate of
   * the current iteration; `iter` does not move (step() does that). Public as pycaffe's
   * `solver.apply_update()`, for training loops written by hand: forward and backward on the
   * net, applyUpdate, then clear the diffs.
   */
  abstract applyUpdate(): void;
  /** The SolverState to save alongside `learnedNet`. */
  protected abstract snapshotSolverState(learnedNet: string): SolverState;
  /** Restore iter, current_step and history from `state` (the weights are loaded already). */
  protected abstract restoreSolverState(state: SolverState): void;

  // ---- callbacks and actions -----------------------------------------------------------------

  addCallback(callback: SolverCallback): () => void {
    this.callbacks.push(callback);
    return () => {
      const i = this.callbacks.indexOf(callback);
      if (i >= 0) this.callbacks.splice(i, 1);
    };
  }

  /** Ask the loop to stop or snapshot at its next check (signal handlers call this). */
  requestAction(action: SolverAction): void {
    if (action !== 'none') this.pendingActions.push(action);
  }

  /** Caffe's SetActionFunction: polled once per iteration and per test batch. */
  setActionFunction(fn: (() => SolverAction) | undefined): void {
    this.actionFunction = fn;
  }

  private getRequestedAction(): SolverAction {
    const queued = this.pendingActions.shift();
    if (queued) return queued;
    return this.actionFunction?.() ?? 'none';
  }

  /** The learning rate of the last update. */
  get learningRate(): number {
    return this.learningRateValue;
  }

  /** Loss averaged over the last `average_loss` iterations of the current `step`. */
  get smoothedLossValue(): number {
    return this.smoothedLoss;
  }

  // ---- the loop ------------------------------------------------------------------------------

  private async prepare(net: Net): Promise<void> {
    await net.prepare();
  }

  /** Run `iters` iterations (fewer if a stop is requested). */
  async step(iters: number): Promise<void> {
    const outer = this.runningStopIter;
    this.runningStopIter = this.iter + iters;
    try {
      await this.runSteps(iters);
    } finally {
      this.runningStopIter = outer;
    }
  }

  /** The iteration the running step() call stops at (unless stopped early); -1 outside step(). */
  get stepStopIter(): number {
    return this.runningStopIter;
  }

  private runningStopIter = -1;

  private async runSteps(iters: number): Promise<void> {
    const p = this.param;
    const startIter = this.iter;
    const stopIter = this.iter + iters;
    this.losses = [];
    this.smoothedLoss = 0;
    this.iterationsLast = this.iter;
    this.timerStart = now();
    while (this.iter < stopIter) {
      this.net.clearParamDiffs();
      if (p.test_interval > 0 && this.iter % p.test_interval === 0 && (this.iter > 0 || p.test_initialization)) {
        await this.testAll();
        if (this.requestedEarlyExit) break;
      }
      for (const cb of this.callbacks) cb.onStart?.(this);
      const display = p.display > 0 && this.iter % p.display === 0;
      this.net.debugInfo = display && p.debug_info;
      let loss = 0;
      if (this.gradientComputer) {
        loss = await this.gradientComputer.computeGradients(this);
      } else {
        for (let i = 0; i < p.iter_size; i++) {
          await this.prepare(this.net);
          loss += this.net.forwardBackward();
        }
        loss /= p.iter_size;
      }
      if (!Number.isFinite(loss)) this.reportNonFiniteLoss(loss);
      this.updateSmoothedLoss(loss, startIter, p.average_loss);
      if (display) this.displayTrainOutputs();
      for (const cb of this.callbacks) cb.onGradientsReady?.(this);
      this.applyUpdate();
      this.checkParamsFinite();
      // iter counts the updates applied.
      this.iter++;
      const info: IterationInfo = { iter: this.iter, loss, smoothedLoss: this.smoothedLoss, lr: this.learningRateValue };
      for (const cb of this.callbacks) cb.onIteration?.(info, this);
      const request = this.getRequestedAction();
      if ((p.snapshot > 0 && this.iter % p.snapshot === 0) || request === 'snapshot') await this.snapshot();
      if (request === 'stop') {
        this.requestedEarlyExit = true;
        break;
      }
      await nextMacrotask();
    }
  }

  private reportNonFiniteLoss(loss: number): void {
    const at = this.net.findNonFinite();
    const where = at
      ? `first non-finite value (${at.value}) in ${at.blob} of layer '${at.layer}' (${at.type})`
      : 'no layer output or param is non-finite (the loss itself overflowed)';
    const message = `Iteration ${this.iter}, loss = ${loss}: ${where}`;
    this.log.error(message);
    if (this.stopOnNonFinite) throw new SolverError(`Training stopped: ${message} (--stop_on_nan)`);
  }

  /**
   * Whether this iteration's applyUpdate itself saw every learnable param finite after the
   * update (so the per-iteration check needs no scan of its own); false unless a solver knows.
   */
  protected updateLeftParamsFinite(): boolean {
    return false;
  }

  /** Set once a non-finite param has been reported: it stays so, and is not reported again. */
  private nonFiniteParamReported = false;

  /**
   * After each update: a NaN/Inf that appeared in a param (a huge learning rate, an exploding
   * gradient) is reported at the iteration that produced it, naming the layer and param index.
   * The check costs one multiply-add per param value on the host (well under 1% of a LeNet step);
   * params that live on a device are checked only with debug_info or stopOnNonFinite (a readback).
   */
  private checkParamsFinite(): void {
    if (this.nonFiniteParamReported || this.updateLeftParamsFinite()) return;
    if (paramsFinite(this.net, { includeDevice: this.param.debug_info || this.stopOnNonFinite })) return;
    const at = findNonFiniteParam(this.net);
    if (!at) return; // a device param read back finite after all
    this.nonFiniteParamReported = true;
    const message =
      `Iteration ${this.iter}: the update (lr = ${formatG(this.learningRateValue)}) made param ${at.param} of layer ` +
      `'${at.layer}' (${at.type}) non-finite (${at.value} at element ${at.index} of ${at.shape})`;
    this.log.error(message);
    if (this.stopOnNonFinite) throw new SolverError(`Training stopped: ${message} (--stop_on_nan)`);
  }

  private displayTrainOutputs(): void {
    const p = this.param;
    const lapse = (now() - this.timerStart) / 1000;
    const perS = (this.iter - this.iterationsLast) / (lapse || 1);
    this.log.info(
      `Iteration ${this.iter} (${formatG(perS)} iter/s, ${formatG(lapse)}s/${p.display} iters), loss = ${formatG(this.smoothedLoss)}`,
    );
    this.timerStart = now();
    this.iterationsLast = this.iter;
    let scoreIndex = 0;
    this.net.outputBlobs.forEach((blob, j) => {
      const name = this.net.outputBlobNames[j];
      const weight = outputLossWeight(this.net, j);
      const values = blob.cpuData();
      for (let k = 0; k < values.length; k++) {
        const v = values[k]!;
        const lossMsg = weight ? ` (* ${formatG(weight)} = ${formatG(weight * v)} loss)` : '';
        this.log.info(`    Train net output #${scoreIndex++}: ${name} = ${formatG(v)}${lossMsg}`);
      }
    });
  }

  private updateSmoothedLoss(loss: number, startIter: number, averageLoss: number): void {
    if (this.losses.length < averageLoss) {
      this.losses.push(loss);
      const n = this.losses.length;
      this.smoothedLoss = (this.smoothedLoss * (n - 1) + loss) / n;
    } else {
      const idx = (this.iter - startIter) % averageLoss;
      this.smoothedLoss += (loss - this.losses[idx]!) / averageLoss;
      this.losses[idx] = loss;
    }
  }

  /**
   * Train to max_iter (resuming from `resumeFile` if given), snapshot after training, then run
   * the final display and test, as Caffe's Solver::Solve.
   */
  async solve(resumeFile?: string): Promise<void> {
    const p = this.param;
    this.log.info(`Solving ${this.net.name}`);
    this.log.info(`Learning Rate Policy: ${p.lr_policy}`);
    this.requestedEarlyExit = false;
    if (resumeFile !== undefined) await this.restore(resumeFile);
    const startIter = this.iter;
    await this.step(p.max_iter - this.iter);
    if (p.snapshot_after_train && (!(p.snapshot > 0) || this.iter % p.snapshot !== 0)) await this.snapshot();
    if (this.requestedEarlyExit) {
      this.log.info('Optimization stopped early.');
      return;
    }
    // One more forward pass (no update) so the final loss is displayed.
    if (p.display > 0 && this.iter % p.display === 0) {
      let loss = await this.gradientComputer?.forwardLoss?.(this);
      if (loss === undefined) {
        await this.prepare(this.net);
        loss = this.net.forward();
      }
      this.updateSmoothedLoss(loss, startIter, p.average_loss);
      this.log.info(`Iteration ${this.iter}, loss = ${formatG(this.smoothedLoss)}`);
    }
    if (p.test_interval > 0 && this.iter % p.test_interval === 0) await this.testAll();
    this.log.info('Optimization Done.');
  }

  /** Whether the last `step`/`solve` ended because a stop was requested. */
  get stoppedEarly(): boolean {
    return this.requestedEarlyExit;
  }

  // ---- testing -------------------------------------------------------------------------------

  async testAll(): Promise<TestResult[]> {
    const results: TestResult[] = [];
    for (let id = 0; id < this.testNets.length && !this.requestedEarlyExit; id++) {
      const r = await this.test(id);
      if (r) results.push(r);
    }
    return results;
  }

  /** Run test net `testNetId` for its test_iter batches and log each output's mean. */
  async test(testNetId: number): Promise<TestResult | undefined> {
    const p = this.param;
    const testNet = this.testNets[testNetId];
    if (!testNet) throw new SolverError(`no test net #${testNetId} (this solver has ${this.testNets.length})`);
    this.log.info(`Iteration ${this.iter}, Testing net (#${testNetId})`);
    testNet.shareTrainedLayersWith(this.net);
    const testIter = p.test_iter[testNetId]!;
    const sums: number[] = [];
    const outputOf: number[] = [];
    const detection = this.evalType === 'detection' ? testNet.outputBlobs.map(() => new DetectionTally()) : null;
    let loss = 0;
    for (let i = 0; i < testIter; i++) {
      for (let request = this.getRequestedAction(); request !== 'none'; request = this.getRequestedAction()) {
        if (request === 'snapshot') await this.snapshot();
        else if (request === 'stop') this.requestedEarlyExit = true;
      }
      if (this.requestedEarlyExit) break;
      await this.prepare(testNet);
      const iterLoss = testNet.forward();
      if (p.test_compute_loss) loss += iterLoss;
      if (detection) {
        testNet.outputBlobs.forEach((blob, j) => {
          if (blob.shape[blob.numAxes - 1] !== 5) {
            throw new SolverError(
              `eval_type "detection": test net #${testNetId} output '${testNet.outputBlobNames[j]}' must hold DetectionEvaluate rows ` +
                `(… × 5: image, label, score, true positive, false positive), got shape ${blob.shapeString()}`,
            );
          }
          detection[j]!.add(blob.cpuData());
        });
        continue;
      }
      let idx = 0;
      testNet.outputBlobs.forEach((blob, j) => {
        const values = blob.cpuData();
        for (let k = 0; k < values.length; k++, idx++) {
          if (i === 0) {
            sums.push(values[k]!);
            outputOf.push(j);
          } else sums[idx]! += values[k]!;
        }
      });
    }
    if (this.requestedEarlyExit) {
      this.log.info('Test interrupted.');
      return undefined;
    }
    const result: TestResult = { iter: this.iter, testNetId, scores: [] };
    if (p.test_compute_loss) {
      loss /= testIter;
      result.loss = loss;
      this.log.info(`Test loss: ${formatG(loss)}`);
    }
    const mean = this.meanScores[testNetId]!;
    mean.length = 0;
    if (detection) {
      // The fork's TestDetection: one mAP per output, over the labels with ground-truth counts.
      const version = this.apVersion;
      detection.forEach((tally, j) => {
        const name = testNet.outputBlobNames[j]!;
        const { map, perLabel, missing } = tally.meanAveragePrecision(version);
        for (const label of missing) this.log.warn(`Missing true_pos for label: ${label}`);
        if (this.showPerClassResult) for (const [label, ap] of perLabel) this.log.info(`class${label}: ${formatG(ap)}`);
        mean.push(map);
        result.scores.push({ index: j, name, value: map, lossWeight: 0 });
        this.log.info(`    Test net output #${j}: ${name} = ${formatG(map)}`);
      });
    }
    sums.forEach((sum, i) => {
      const j = outputOf[i]!;
      const name = testNet.outputBlobNames[j]!;
      const weight = outputLossWeight(testNet, j);
      const value = sum / testIter;
      mean.push(value);
      result.scores.push({ index: i, name, value, lossWeight: weight });
      const lossMsg = weight ? ` (* ${formatG(weight)} = ${formatG(weight * value)} loss)` : '';
      this.log.info(`    Test net output #${i}: ${name} = ${formatG(value)}${lossMsg}`);
    });
    for (const cb of this.callbacks) cb.onTest?.(result, this);
    return result;
  }

  // ---- snapshots -----------------------------------------------------------------------------

  /** `<snapshot_prefix>_iter_<iter><extension>`, as Caffe names snapshot files. */
  snapshotFilename(extension: string): string {
    return `${this.param.snapshot_prefix}_iter_${this.iter}${extension}`;
  }

  /**
   * The snapshot of the current state, in memory (Caffe's Snapshot(net_param, state)); file
   * names follow snapshot_format (`.caffemodel`/`.solverstate`, or with `.h5` appended).
   */
  snapshotData(): SnapshotData {
    const format = snapshotFormatOf(this.param);
    const suffix = format === 'HDF5' ? '.h5' : '';
    const modelFile = this.snapshotFilename(`.caffemodel${suffix}`);
    return {
      iter: this.iter,
      format,
      modelFile,
      stateFile: this.snapshotFilename(`.solverstate${suffix}`),
      net: this.snapshotWeights ? this.snapshotWeights.toFile(this.net.toProto(this.param.snapshot_diff)) : this.net.toProto(this.param.snapshot_diff),
      state: this.snapshotSolverState(modelFile),
      writeDiff: this.param.snapshot_diff,
      trainNet: this.net,
    };
  }

  /**
   * Write `<prefix>_iter_N.caffemodel` and `.solverstate` through the solver's IO. Without IO
   * (a solver built in memory) the snapshot only goes to onSnapshot listeners.
   */
  async snapshot(): Promise<SnapshotData> {
    checkSnapshotFormat(this.param);
    const data = this.snapshotData();
    if (this.io) {
      await this.io.writeSnapshot(data);
    } else {
      this.log.warn(
        `No file access configured; snapshot of iteration ${this.iter} passed to onSnapshot listeners only ` +
          '(create the solver through @caffe-ts/solver/node to write files)',
      );
    }
    for (const cb of this.callbacks) cb.onSnapshot?.(data, this);
    return data;
  }

  /**
   * Resume from a solver state file: weights from its learned_net, then iter and history. As in
   * Caffe, a name ending in `.h5` is read as HDF5, anything else as a binary SolverState.
   */
  async restore(stateFile: string): Promise<void> {
    if (!this.io) throw new SolverError(`cannot restore '${stateFile}': this solver has no file access (use @caffe-ts/solver/node)`);
    this.log.info(`Restoring previous solver status from ${stateFile}`);
    const state = await this.io.readSolverState(stateFile);
    if (hasField(state, 'learned_net')) {
      await this.io.loadLearnedNet(this.net, state.learned_net, stateFile);
      this.snapshotWeights?.fromFile(this.net);
    }
    this.restoreSolverState(state);
  }

  /** Resume from in-memory messages (Caffe's Restore(net_param, state)). */
  restoreFrom(netParam: NetParameter, state: SolverState): void {
    this.net.copyTrainedLayersFrom(netParam);
    this.restoreSolverState(state);
  }

  /** Release what the nets hold (data-layer workers, open databases). */
  async close(): Promise<void> {
    const computer = this.gradientComputer;
    this.gradientComputer = undefined;
    await computer?.close?.();
    for (const n of [this.net, ...this.testNets]) await n.close();
  }

  /**
   * Frees the memory of the train and test nets (Net.dispose) and of the update history, at once
   * rather than when the collector gets to it (never, for device memory): for a program that
   * trains one model after another. close() first; the solver cannot step afterwards.
   */
  dispose(): void {
    for (const n of [this.net, ...this.testNets]) n.dispose();
    this.disposeState();
  }

  /** Frees what a solver type keeps besides the nets (SGDSolver: its history blobs). */
  protected disposeState(): void {}
}

/** The loss weight of output blob `index` of `net` (0 for outputs that are not losses). */
export function outputLossWeight(net: Net, index: number): number {
  return net.blobLossWeights[net.outputBlobIndices[index]!] ?? 0;
}

/** The SSD fork's solver fields, present when the schema that adds them is registered. */
function forkSolverFields(param: SolverParameter): { eval_type?: string; ap_version?: string; show_per_class_result?: boolean } {
  return param as unknown as { eval_type?: string; ap_version?: string; show_per_class_result?: boolean };
}
