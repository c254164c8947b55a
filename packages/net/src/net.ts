import { Blob, BlobSizeError, BYTES_PER_ELEMENT, cpuBackend, globalRng, logger, zeroFill, type Backend, type DType, type Rng } from '@caffe-ts/blob';
import { defaultLayerRegistry, type Layer, type LayerContext, type LayerRegistry } from '@caffe-ts/layers';
import {
  CaffeError,
  createMessage,
  hasField,
  Phase,
  printText,
  type BlobProto,
  type LayerParameter,
  type NetParameter,
  type NetState,
  type ParamSpec,
} from '@caffe-ts/proto';
import { NetError, NetUpgradeError, UnknownBottomError } from './errors.js';
import { describeNetState, excludedProducers, filterNet, type NetStateLike } from './filter-net.js';
import { formatG } from './format.js';
import { planFusedChains, type FusedChain } from './inference-fusion.js';
import { insertSplits } from './insert-splits.js';
import { layerDefinedAt, shallowClone } from './message-util.js';
import { summarizeNet, type NetSummary } from './summary.js';
import { upgradeNetAsNeeded } from './upgrade.js';

export interface NetOptions {
  /** Defaults to `param.state.phase` (TEST when unset). */
  phase?: Phase;
  /** Defaults to `param.state.level` (0). */
  level?: number;
  /** Added to `param.state.stage`, as Caffe's `Net(file, phase, level, stages)` does. */
  stages?: string[];
  /** Where layer types are looked up; the process-wide default registry if omitted. */
  registry?: LayerRegistry;
  backend?: Backend;
  dtype?: DType;
  rng?: Rng;
  /** Caffe's construction log lines through `logger('net.cpp')` (default true). */
  log?: boolean;
  /** The file the definition came from, named in errors and log lines. */
  name?: string;
  /** Data-parallel replica `index` of `count`: passed to every layer's context (data layers shard their records). */
  shard?: { index: number; count: number };
}

/** ParamSpec.DimCheckMode.PERMISSIVE: shared params need equal counts only. */
const PERMISSIVE = 1;

/**
 * Point an error about a layer at the prototxt line that defined it (when the definition was
 * parsed from a file): the message gains ` (layer defined at file:line:column)`.
 */
function withLayerLocation(e: unknown, lp: LayerParameter): unknown {
  const at = layerDefinedAt(lp);
  if (at === '' || !CaffeError.isInstance(e) || e.message.includes(' (layer defined at ')) return e;
  const err = e as Error;
  err.message = `${err.message}${at}`;
  return err;
}

/** Definitions already upgraded, filtered and split by `compileNet` (so the constructor skips that). */
const compiled = new WeakSet<NetParameter>();

const netLog = logger('net.cpp');
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * Upgrade, filter by NetState and insert splits, as Net::Init does before it builds anything.
 * The result's layers are private copies with their phase set, ready for `registry.create`.
 */
function compileNet(param: NetParameter, options: NetOptions): { param: NetParameter; phase: Phase } {
  const log = options.log === false ? quiet : netLog;
  const file = options.name;
  // The file named at the end of the message, the error's class (and its facts) kept.
  const withFile = (e: unknown): unknown => {
    if (!file || !(e instanceof NetError)) return e;
    const message = `${e.message} [${file}]`;
    if (e instanceof UnknownBottomError) return new UnknownBottomError(message, e.blob, e.layer, { cause: e });
    if (e instanceof NetUpgradeError) return new NetUpgradeError(message, { cause: e });
    return new NetError(message, { cause: e });
  };
  try {
    const upgraded = upgradeNetAsNeeded(param, { file, log: options.log });
    const state = upgraded.state;
    const phase = options.phase ?? (state ? state.phase : Phase.TEST);
    const level = options.level ?? (state ? state.level : 0);
    const stage = [...(state ? state.stage : []), ...(options.stages ?? [])];
    const netState: NetStateLike = { phase, level, stage };
    const filtered = filterNet(upgraded, netState, { log: options.log });
    filtered.state = createMessage<NetState>('NetState', { phase, level, stage });
    if (options.log !== false) {
      // Caffe dumps the filtered definition; blobs (weights) are left out of the dump.
      const view = shallowClone(filtered);
      view.layer = filtered.layer.map((l) => {
        if (l.blobs.length === 0) return l;
        const c = shallowClone(l);
        c.blobs = [];
        return c;
      });
      log.info(`Initializing net from parameters: \n${printText('NetParameter', view)}`);
    }
    let split: NetParameter;
    try {
      split = insertSplits(filtered);
    } catch (e) {
      throw e instanceof UnknownBottomError ? withExcludedProducers(e, upgraded, netState) : e;
    }
    split.layer = split.layer.map((l) => {
      const c = shallowClone(l);
      // A layer without its own phase inherits the net's.
      if (!hasField(l, 'phase')) c.phase = phase;
      return c;
    });
    compiled.add(split);
    return { param: split, phase };
  } catch (e) {
    throw withFile(e);
  }
}

/**
 * An unknown bottom that a layer left out by the net state would have produced (a TRAIN-only data
 * layer in a TEST net, a stage the state lacks): the message names those layers and their rules.
 */
function withExcludedProducers(e: UnknownBottomError, param: NetParameter, state: NetStateLike): UnknownBottomError {
  const producers = excludedProducers(param, state, e.blob);
  if (producers.length === 0) return e;
  const which = producers.length === 1 ? `layer ${producers[0]}, which produces it, is` : `layers ${producers.join(', ')}, which produce it, are`;
  return new UnknownBottomError(`${e.message}; ${which} left out of this net by its rules (the net state: ${describeNetState(state)})`, e.blob, e.layer, { cause: e });
}

/**
 * A network of layers compiled from a NetParameter, with Caffe's Net semantics: legacy upgrade,
 * NetState filtering, Split layers for fan-out, in-place layers, automatic tops, loss weights,
 * need-backward inference, param sharing by `param { name }`, and forward/backward over the
 * layers in definition order.
 */
export class Net {
  readonly name: string;
  readonly phase: Phase;
  /** The definition as built: filtered, with Split layers inserted and phases set. */
  readonly param: NetParameter;
  readonly dtype: DType;
  readonly backend: Backend;
  readonly layers: Layer[] = [];
  readonly layerNames: string[] = [];
  /** Blobs by name, in creation order (pycaffe's `net.blobs`). */
  readonly blobs = new Map<string, Blob>();
  /** Every blob by index, and its name (anonymous automatic tops are all "(automatic)"). */
  readonly blobList: Blob[] = [];
  readonly blobNames: string[] = [];
  /** Layer name → its param blobs, for layers that have any (pycaffe's `net.params`). */
  readonly params = new Map<string, Blob[]>();
  /** Every layer's param blobs, shared ones included, in Caffe's `params()` order. */
  readonly allParams: Blob[] = [];
  /** Per entry of allParams: the index of the owning entry, or -1 for owners. */
  readonly paramOwners: number[] = [];
  /** Per entry of allParams: [layer index, param index in that layer]. */
  readonly paramLayerIndices: [number, number][] = [];
  /** Per entry of allParams: the ParamSpec name, or the param index as a string. */
  readonly paramDisplayNames: string[] = [];
  /** Per entry of allParams: its index into learnableParams. */
  readonly learnableParamIds: number[] = [];
  /** The params the solver updates: owners only, in Caffe's `learnable_params()` order. */
  readonly learnableParams: Blob[] = [];
  /** Per learnable param: lr_mult and decay_mult (default 1), and whether they were given. */
  readonly paramsLr: number[] = [];
  readonly paramsWeightDecay: number[] = [];
  readonly hasParamsLr: boolean[] = [];
  readonly hasParamsDecay: boolean[] = [];
  /** Tops of Input layers (pycaffe's `net.inputs`). */
  readonly inputBlobs: Blob[] = [];
  readonly inputBlobNames: string[] = [];
  readonly inputBlobIndices: number[] = [];
  /** Blobs no layer consumes, sorted by name as Caffe's std::set orders them. */
  readonly outputBlobs: Blob[] = [];
  readonly outputBlobNames: string[] = [];
  readonly outputBlobIndices: number[] = [];
  /** Loss weight per blob index (0 for non-loss blobs). */
  readonly blobLossWeights: number[] = [];
  /** Whether each blob (by index) needs its diff computed. */
  readonly blobNeedBackward: boolean[] = [];
  bottomVecs: Blob[][] = [];
  topVecs: Blob[][] = [];
  bottomIdVecs: number[][] = [];
  topIdVecs: number[][] = [];
  paramIdVecs: number[][] = [];
  bottomNeedBackward: boolean[][] = [];
  layerNeedBackward: boolean[] = [];
  /** Elements in all top blobs (each in-place blob once), as Caffe's memory_used_. */
  readonly memoryUsed: number = 0;
  /** Log per-layer data/diff magnitudes on every pass (NetParameter.debug_info). */
  debugInfo: boolean;

  private readonly log: typeof netLog;
  private readonly file: string | undefined;
  /** The data-parallel replica this net is (options.shard), passed to every layer's context. */
  private readonly shard: { index: number; count: number } | undefined;
  private readonly blobIndex = new Map<string, number>();
  private readonly layerIndex = new Map<string, number>();

  /**
   * Build the net in `param`'s order. `options.phase` wins over `param.state.phase`
   * (TEST by default). Layers come from `options.registry` (the default registry otherwise).
   */
  constructor(param: NetParameter, options: NetOptions = {}) {
    const { param: built, phase } = compiled.has(param)
      ? { param, phase: options.phase ?? param.state?.phase ?? Phase.TEST }
      : compileNet(param, options);
    this.param = built;
    this.phase = phase;
    this.name = built.name;
    this.log = options.log === false ? quiet : netLog;
    this.file = options.name;
    this.shard = options.shard;
    this.dtype = options.dtype ?? 'float32';
    this.backend = options.backend ?? cpuBackend();
    this.debugInfo = built.debug_info;
    const registry = options.registry ?? defaultLayerRegistry();
    const rng = options.rng ?? globalRng();
    this.init(built, registry, rng);
  }

  /**
   * Build a net after awaiting every layer definition's async `prime` hook (data layers that
   * must open their source to learn their top shapes).
   */
  static async create(param: NetParameter, options: NetOptions = {}): Promise<Net> {
    const { param: built } = compileNet(param, options);
    const registry = options.registry ?? defaultLayerRegistry();
    for (const lp of built.layer) {
      const def = registry.get(lp.type);
      if (def?.prime) await def.prime(lp, layerContext(options, lp));
    }
    return new Net(built, options);
  }

  get numLayers(): number {
    return this.layers.length;
  }

  /** Bytes taken by the data of all top blobs (Caffe's "Memory required for data"). */
  get memoryBytes(): number {
    return this.memoryUsed * BYTES_PER_ELEMENT[this.dtype];
  }

  private fail(message: string): never {
    throw new NetError(this.file ? `${message} [${this.file}]` : message);
  }

  private init(param: NetParameter, registry: LayerRegistry, rng: Rng): void {
    const log = this.log;
    const nameToIdx = new Map<string, number>();
    const available = new Set<string>();
    let memoryUsed = 0;
    // Owners of named params so far: name → index into allParams.
    const paramNameIndex = new Map<string, number>();

    param.layer.forEach((lp, layerId) => {
      try {
        if (lp.propagate_down.length > 0 && lp.propagate_down.length !== lp.bottom.length) {
          this.fail(
            `Layer '${lp.name}': propagate_down param must be specified either 0 or bottom_size times ` +
              `(${lp.propagate_down.length} given, ${lp.bottom.length} bottoms)`,
          );
        }
        const layer = registry.create(lp, {
          backend: this.backend,
          dtype: this.dtype,
          phase: lp.phase,
          rng,
          ...(this.shard ? { shard: this.shard } : {}),
        });
        this.layers.push(layer);
        this.layerNames.push(lp.name);
        log.info(`Creating Layer ${lp.name}`);
        this.bottomVecs.push([]);
        this.topVecs.push([]);
        this.bottomIdVecs.push([]);
        this.topIdVecs.push([]);
        this.paramIdVecs.push([]);
        this.bottomNeedBackward.push([]);
        let needBackward = false;

        lp.bottom.forEach((blobName, bottomId) => {
          if (!available.has(blobName)) {
            this.fail(`Unknown bottom blob '${blobName}' (layer '${lp.name}', bottom index ${bottomId})`);
          }
          const blobId = nameToIdx.get(blobName)!;
          log.info(`${lp.name} <- ${blobName}`);
          this.bottomVecs[layerId]!.push(this.blobList[blobId]!);
          this.bottomIdVecs[layerId]!.push(blobId);
          available.delete(blobName);
          // propagate_down, when given, decides for this bottom.
          const bottomNeeds = lp.propagate_down.length > 0 ? lp.propagate_down[bottomId]! : this.blobNeedBackward[blobId]!;
          this.bottomNeedBackward[layerId]!.push(bottomNeeds);
          needBackward ||= this.blobNeedBackward[blobId]!;
        });

        let numTop = lp.top.length;
        for (let topId = 0; topId < numTop; topId++) {
          this.appendTop(lp, layerId, topId, available, nameToIdx);
          if (lp.type === 'Input') {
            const blobId = this.topIdVecs[layerId]![topId]!;
            this.inputBlobIndices.push(blobId);
            this.inputBlobs.push(this.blobList[blobId]!);
            this.inputBlobNames.push(this.blobNames[blobId]!);
          }
        }
        // Anonymous tops up to the count the layer needs; no other layer can read them.
        const counts = layer.blobCounts;
        if (counts.autoTopBlobs) {
          const needed = Math.max(counts.minTopBlobs ?? 0, counts.exactNumTopBlobs ?? 0);
          for (; numTop < needed; numTop++) this.appendTop(lp, layerId, numTop, null, null);
        }

        // Weights carried in the definition (Caffe's Layer constructor loads them): the layer's
        // set-up then checks their shapes instead of filling new ones.
        if (lp.blobs.length > 0 && layer.blobs.length === 0) {
          layer.blobs = lp.blobs.map((proto, j) => {
            const b = new Blob([], { dtype: this.dtype, device: this.backend.device });
            b.fromProto(proto, { what: `layer '${lp.name}' param ${j}` });
            return b;
          });
        }
        const bottom = this.bottomVecs[layerId]!;
        const top = this.topVecs[layerId]!;
        try {
          layer.setUp(bottom, top);
        } catch (e) {
          // A too-large shape is the file's fault: say which layer asked for it.
          if (BlobSizeError.isInstance(e)) throw new BlobSizeError(`Layer '${lp.name}' (${lp.type}): ${e.message}${this.file ? ` [${this.file}]` : ''}`, { cause: e });
          throw e;
        }
        log.info(`Setting up ${lp.name}`);
        top.forEach((blob, topId) => {
          const blobId = this.topIdVecs[layerId]![topId]!;
          while (this.blobLossWeights.length <= blobId) this.blobLossWeights.push(0);
          const w = layer.lossWeight(topId);
          this.blobLossWeights[blobId] = w;
          log.info(`Top shape: ${blob.shapeString()}`);
          if (w !== 0) log.info(`    with loss weight ${formatG(w)}`);
          memoryUsed += blob.count();
        });
        log.info(`Memory required for data: ${memoryUsed * BYTES_PER_ELEMENT[this.dtype]}`);

        const numParamBlobs = layer.blobs.length;
        if (lp.param.length > numParamBlobs) {
          this.fail(
            `Too many params specified for layer ${lp.name}: ${lp.param.length} param specs, ` +
              `but the ${lp.type} layer has ${numParamBlobs} param blob(s)`,
          );
        }
        for (let paramId = 0; paramId < numParamBlobs; paramId++) {
          const spec = lp.param[paramId];
          const lrMult = spec ? spec.lr_mult : 1;
          const paramNeedsBackward = lrMult !== 0;
          needBackward ||= paramNeedsBackward;
          layer.setParamPropagateDown(paramId, paramNeedsBackward);
        }
        // As Caffe, multipliers come from the layer's own copy of its parameter: BatchNorm adds lr_mult 0 specs there.
        for (let paramId = 0; paramId < numParamBlobs; paramId++) this.appendParam(layer.param, layerId, paramId, paramNameIndex);
        if (numParamBlobs > 0) this.params.set(lp.name, layer.blobs);

        this.layerNeedBackward.push(needBackward);
        if (needBackward) for (const blobId of this.topIdVecs[layerId]!) this.blobNeedBackward[blobId] = true;
      } catch (e) {
        throw withLayerLocation(e, lp);
      }
    });

    this.pruneBackward();
    if (param.force_backward) this.forceBackward();
    // Layers that keep data only for their own backward (a `backwardNeeded` flag, e.g. Scale's
    // copy of an in-place bottom) skip that work where this net never runs their backward.
    this.layers.forEach((layer, i) => {
      if (!this.layerNeedBackward[i] && 'backwardNeeded' in layer) (layer as { backwardNeeded: boolean }).backwardNeeded = false;
    });

    for (const name of [...available].sort(compareBytes)) {
      log.info(`This network produces output ${name}`);
      const blobId = nameToIdx.get(name)!;
      this.outputBlobs.push(this.blobList[blobId]!);
      this.outputBlobNames.push(name);
      this.outputBlobIndices.push(blobId);
    }
    this.blobNames.forEach((name, i) => {
      this.blobIndex.set(name, i);
      this.blobs.set(name, this.blobList[i]!);
    });
    this.layerNames.forEach((name, i) => this.layerIndex.set(name, i));
    this.shareWeights();
    (this as { memoryUsed: number }).memoryUsed = memoryUsed;
    log.info('Network initialization done.');
  }

  /** Add top `topId` of layer `layerId`: in place, new, or anonymous (maps null). */
  private appendTop(
    lp: LayerParameter,
    layerId: number,
    topId: number,
    available: Set<string> | null,
    nameToIdx: Map<string, number> | null,
  ): void {
    const blobName = topId < lp.top.length ? lp.top[topId]! : '(automatic)';
    if (nameToIdx && topId < lp.bottom.length && blobName === lp.bottom[topId]) {
      this.log.info(`${lp.name} -> ${blobName} (in-place)`);
      const blobId = nameToIdx.get(blobName)!;
      this.topVecs[layerId]!.push(this.blobList[blobId]!);
      this.topIdVecs[layerId]!.push(blobId);
    } else if (nameToIdx && nameToIdx.has(blobName)) {
      this.fail(`Top blob '${blobName}' produced by multiple sources. (layer '${lp.name}', top index ${topId})`);
    } else {
      this.log.info(`${lp.name} -> ${blobName}`);
      const blob = new Blob([], { dtype: this.dtype, device: this.backend.device });
      const blobId = this.blobList.length;
      this.blobList.push(blob);
      this.blobNames.push(blobName);
      this.blobNeedBackward.push(false);
      nameToIdx?.set(blobName, blobId);
      this.topIdVecs[layerId]!.push(blobId);
      this.topVecs[layerId]!.push(blob);
    }
    available?.add(blobName);
  }

  /** Register param `paramId` of layer `layerId`: as a new learnable param, or shared with its owner. */
  private appendParam(lp: LayerParameter, layerId: number, paramId: number, nameIndex: Map<string, number>): void {
    const layer = this.layers[layerId]!;
    const spec: ParamSpec | undefined = lp.param[paramId];
    const paramName = spec?.name ?? '';
    this.paramDisplayNames.push(paramName || String(paramId));
    const netParamId = this.allParams.length;
    const blob = layer.blobs[paramId]!;
    this.allParams.push(blob);
    this.paramIdVecs[layerId]!.push(netParamId);
    this.paramLayerIndices.push([layerId, paramId]);
    const lrMult = spec ? spec.lr_mult : 1;
    const decayMult = spec ? spec.decay_mult : 1;
    const hasLr = spec ? hasField(spec, 'lr_mult') : false;
    const hasDecay = spec ? hasField(spec, 'decay_mult') : false;

    const ownerId = paramName ? nameIndex.get(paramName) : undefined;
    if (ownerId === undefined) {
      // Anonymous, or the first use of a name: this layer owns the blob.
      this.paramOwners.push(-1);
      if (paramName) nameIndex.set(paramName, netParamId);
      this.learnableParamIds.push(this.learnableParams.length);
      this.learnableParams.push(blob);
      this.hasParamsLr.push(hasLr);
      this.hasParamsDecay.push(hasDecay);
      this.paramsLr.push(lrMult);
      this.paramsWeightDecay.push(decayMult);
      return;
    }
    this.paramOwners.push(ownerId);
    const [ownerLayerId, ownerParamId] = this.paramLayerIndices[ownerId]!;
    const ownerLayerName = this.layerNames[ownerLayerId]!;
    this.log.info(`Sharing parameters '${paramName}' owned by layer '${ownerLayerName}', param index ${ownerParamId}`);
    const owner = this.layers[ownerLayerId]!.blobs[ownerParamId]!;
    if (spec && spec.share_mode === PERMISSIVE) {
      if (blob.count() !== owner.count()) {
        this.fail(
          `Cannot share param '${paramName}' owned by layer '${ownerLayerName}' with layer '${lp.name}'; count mismatch. ` +
            `Owner layer param shape is ${owner.shapeString()}; sharing layer shape is ${blob.shapeString()}`,
        );
      }
    } else if (!blob.shapeEquals(owner)) {
      this.fail(
        `Cannot share param '${paramName}' owned by layer '${ownerLayerName}' with layer '${lp.name}'; shape mismatch. ` +
          `Owner layer param shape is ${owner.shapeString()}; sharing layer expects shape ${blob.shapeString()}`,
      );
    }
    const learnableId = this.learnableParamIds[ownerId]!;
    this.learnableParamIds.push(learnableId);
    if (hasLr) {
      if (this.hasParamsLr[learnableId]) {
        if (lrMult !== this.paramsLr[learnableId]) {
          this.fail(
            `Shared param '${paramName}' has mismatched lr_mult (layer '${lp.name}' gives ${formatG(lrMult)}, ` +
              `earlier ${formatG(this.paramsLr[learnableId]!)}).`,
          );
        }
      } else {
        this.hasParamsLr[learnableId] = true;
        this.paramsLr[learnableId] = lrMult;
      }
    }
    if (hasDecay) {
      if (this.hasParamsDecay[learnableId]) {
        if (decayMult !== this.paramsWeightDecay[learnableId]) {
          this.fail(
            `Shared param '${paramName}' has mismatched decay_mult (layer '${lp.name}' gives ${formatG(decayMult)}, ` +
              `earlier ${formatG(this.paramsWeightDecay[learnableId]!)}).`,
          );
        }
      } else {
        this.hasParamsDecay[learnableId] = true;
        this.paramsWeightDecay[learnableId] = decayMult;
      }
    }
  }

  /**
   * Walk the net backwards and switch off backward for layers that do not lead to a loss, and
   * for layers none of whose tops need a diff (all their readers skip propagate_down).
   */
  private pruneBackward(): void {
    const underLoss = new Set<string>();
    const skipBackprop = new Set<string>();
    for (let layerId = this.layers.length - 1; layerId >= 0; layerId--) {
      const layer = this.layers[layerId]!;
      let contributesLoss = false;
      let skipPropagateDown = true;
      const tops = this.topIdVecs[layerId]!;
      for (let topId = 0; topId < tops.length; topId++) {
        const name = this.blobNames[tops[topId]!]!;
        if (layer.lossWeight(topId) !== 0 || underLoss.has(name)) contributesLoss = true;
        if (!skipBackprop.has(name)) skipPropagateDown = false;
        if (contributesLoss && !skipPropagateDown) break;
      }
      const bottomNeeds = this.bottomNeedBackward[layerId]!;
      if (this.layerNeedBackward[layerId] && skipPropagateDown) {
        this.layerNeedBackward[layerId] = false;
        bottomNeeds.fill(false);
      }
      if (!contributesLoss) this.layerNeedBackward[layerId] = false;
      this.log.info(
        `${this.layerNames[layerId]} ${this.layerNeedBackward[layerId] ? 'needs' : 'does not need'} backward computation.`,
      );
      this.bottomIdVecs[layerId]!.forEach((blobId, bottomId) => {
        const name = this.blobNames[blobId]!;
        if (contributesLoss) underLoss.add(name);
        else bottomNeeds[bottomId] = false;
        if (!bottomNeeds[bottomId]) skipBackprop.add(name);
      });
    }
  }

  /** NetParameter.force_backward: every layer runs backward, into every bottom it allows. */
  private forceBackward(): void {
    this.layers.forEach((layer, layerId) => {
      this.layerNeedBackward[layerId] = true;
      const needs = this.bottomNeedBackward[layerId]!;
      needs.forEach((need, bottomId) => {
        needs[bottomId] = need || layer.allowForceBackward(bottomId);
        const blobId = this.bottomIdVecs[layerId]![bottomId]!;
        this.blobNeedBackward[blobId] = this.blobNeedBackward[blobId]! || needs[bottomId]!;
      });
      for (let p = 0; p < layer.blobs.length; p++) layer.setParamPropagateDown(p, true);
    });
  }

  /** Point every shared param at its owner's data and diff, so diffs accumulate in one place. */
  private shareWeights(): void {
    this.allParams.forEach((blob, i) => {
      const owner = this.paramOwners[i]!;
      if (owner < 0) return;
      blob.shareData(this.allParams[owner]!);
      blob.shareDiff(this.allParams[owner]!);
    });
  }

  // ---- lookup -------------------------------------------------------------------------------

  hasBlob(name: string): boolean {
    return this.blobIndex.has(name);
  }

  blob(name: string): Blob {
    const i = this.blobIndex.get(name);
    if (i === undefined) {
      throw new NetError(`Unknown blob '${name}' in net '${this.name}' (known blobs: ${[...this.blobs.keys()].join(', ')})`);
    }
    return this.blobList[i]!;
  }

  hasLayer(name: string): boolean {
    return this.layerIndex.has(name);
  }

  layer(name: string): Layer {
    const i = this.layerIndex.get(name);
    if (i === undefined) {
      throw new NetError(`Unknown layer '${name}' in net '${this.name}' (known layers: ${this.layerNames.join(', ')})`);
    }
    return this.layers[i]!;
  }

  /** Index of the layer called `name`, or -1. */
  layerIndexOf(name: string): number {
    return this.layerIndex.get(name) ?? -1;
  }

  // ---- running ------------------------------------------------------------------------------

  /** Await every layer's `prepare` (data layers' prefetched batches) before a forward pass. */
  async prepare(): Promise<void> {
    for (const layer of this.layers) if (layer.prepare) await layer.prepare();
  }

  /** Release what layers hold (data layers' readers and workers): each layer's `close`, if it has one. */
  async close(): Promise<void> {
    for (const layer of this.layers) {
      const close = (layer as { close?: () => unknown }).close;
      if (typeof close === 'function') await close.call(layer);
    }
  }

  /**
   * Lets go of the memory of every blob the net holds: activations, inputs, and its layers'
   * params and buffers (Layer.dispose), data and diffs. A param shared with another net (as a test
   * net shares the train net's) stays while that net holds it. The garbage collector frees blob
   * memory only late under the 'wasm' host allocator, whose kernel heap never shrinks, and never
   * on a device backend, so a program that builds one net after another (a server switching
   * models) calls this to reuse the memory at once. The net cannot run afterwards; close() its
   * data layers first. Calling it again does nothing.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.blobList) b.dispose();
    for (const layer of this.layers) layer.dispose();
  }

  /** Whether dispose() was called. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  private disposed = false;

  private assertLive(what: string): void {
    if (this.disposed) throw new NetError(`${what}: net '${this.name}' was disposed (its blobs hold no memory any more)`);
  }

  /** Run layers start..end (inclusive); returns the sum of their weighted losses. */
  forwardFromTo(start: number, end: number): number {
    this.assertLive(`forwardFromTo(${start}, ${end})`);
    if (!(start >= 0) || !(end < this.layers.length) || !Number.isInteger(start) || !Number.isInteger(end)) {
      throw new NetError(`forwardFromTo(${start}, ${end}): layers are 0..${this.layers.length - 1} in net '${this.name}'`);
    }
    let loss = 0;
    const hooks = this.hooks;
    // Hooks see every layer, so a net with forward hooks runs its layers one by one.
    const fused = this.debugInfo || !this.fuseInference || hooks.beforeForward.length || hooks.afterForward.length ? null : this.fusedChains();
    for (let i = start; i <= end; i++) {
      // A fused chain runs when the whole of it is asked for (its layers have no loss).
      const chain = fused?.get(i);
      if (chain && chain.end <= end && chain.run()) {
        i = chain.end;
        continue;
      }
      for (const hook of hooks.beforeForward) hook(i);
      loss += this.layers[i]!.forward(this.bottomVecs[i]!, this.topVecs[i]!);
      if (this.debugInfo) this.forwardDebugInfo(i);
      for (const hook of hooks.afterForward) hook(i);
    }
    return loss;
  }

  private readonly hooks: Record<'beforeForward' | 'afterForward' | 'beforeBackward' | 'afterBackward', ((layer: number) => void)[]> = {
    beforeForward: [],
    afterForward: [],
    beforeBackward: [],
    afterBackward: [],
  };

  private addHook(kind: keyof Net['hooks'], hook: (layer: number) => void): () => void {
    const list = this.hooks[kind];
    list.push(hook);
    return () => {
      const at = list.indexOf(hook);
      if (at >= 0) list.splice(at, 1);
    };
  }

  /**
   * Calls `hook(i)` before layer i's forward, for every layer a forward pass runs (Caffe's
   * Net::add_before_forward, pycaffe's `net.before_forward`). While a forward hook is set,
   * forward runs layer by layer, fused inference chains included. Returns a function that
   * removes the hook.
   */
  beforeForward(hook: (layer: number) => void): () => void {
    return this.addHook('beforeForward', hook);
  }

  /** Calls `hook(i)` after layer i's forward (Caffe's add_after_forward); see beforeForward. */
  afterForward(hook: (layer: number) => void): () => void {
    return this.addHook('afterForward', hook);
  }

  /**
   * Calls `hook(i)` before layer i's turn in a backward pass, whether or not that layer needs
   * backward, as Caffe's add_before_backward does. Returns a function that removes the hook.
   */
  beforeBackward(hook: (layer: number) => void): () => void {
    return this.addHook('beforeBackward', hook);
  }

  /** Calls `hook(i)` after layer i's turn in a backward pass (Caffe's add_after_backward). */
  afterBackward(hook: (layer: number) => void): () => void {
    return this.addHook('afterBackward', hook);
  }

  forwardFrom(start: number): number {
    return this.forwardFromTo(start, this.layers.length - 1);
  }

  forwardTo(end: number): number {
    return this.forwardFromTo(0, end);
  }

  /**
   * Whether forward passes run chains of in-place layers outside backward (BatchNorm → Scale →
   * ReLU, Eltwise SUM → ReLU) as one pass each (inference-fusion.ts; same results). Default
   * true; CAFFE_TS_FUSION=off in the environment makes it false.
   */
  fuseInference = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.CAFFE_TS_FUSION?.trim().toLowerCase() !== 'off';
  private fusedChainMap: Map<number, FusedChain> | null = null;

  /** The chains forward runs fused, by first layer (planned on first use). */
  fusedChains(): ReadonlyMap<number, FusedChain> {
    if (!this.fusedChainMap) this.fusedChainMap = new Map(planFusedChains(this).map((c) => [c.start, c]));
    return this.fusedChainMap;
  }

  /** Layer name → the names of its top blobs, in layer order (pycaffe's `net.top_names`). */
  get topNames(): Map<string, string[]> {
    return new Map(this.layerNames.map((name, i) => [name, this.topIdVecs[i]!.map((b) => this.blobNames[b]!)]));
  }

  /** Layer name → the names of its bottom blobs, in layer order (pycaffe's `net.bottom_names`). */
  get bottomNames(): Map<string, string[]> {
    return new Map(this.layerNames.map((name, i) => [name, this.bottomIdVecs[i]!.map((b) => this.blobNames[b]!)]));
  }

  /** Layer name → layer (pycaffe's `net.layer_dict`; where names repeat, the last, as `layer(name)`). */
  get layerDict(): Map<string, Layer> {
    return new Map(this.layerNames.map((name, i) => [name, this.layers[i]!]));
  }

  /** Run the whole net; returns the total weighted loss. Outputs are in `outputBlobs`. */
  forward(): number {
    return this.forwardFromTo(0, this.layers.length - 1);
  }

  /** Backward through layers start down to end (inclusive), where they need it. */
  backwardFromTo(start: number, end: number): void {
    this.assertLive(`backwardFromTo(${start}, ${end})`);
    if (!(end >= 0) || !(start < this.layers.length) || !Number.isInteger(start) || !Number.isInteger(end)) {
      throw new NetError(`backwardFromTo(${start}, ${end}): layers are 0..${this.layers.length - 1} in net '${this.name}'`);
    }
    const hooks = this.hooks;
    for (let i = start; i >= end; i--) {
      for (const hook of hooks.beforeBackward) hook(i);
      if (this.layerNeedBackward[i]) {
        this.layers[i]!.backward(this.topVecs[i]!, this.bottomNeedBackward[i]!, this.bottomVecs[i]!);
        if (this.debugInfo) this.backwardDebugInfo(i);
      }
      for (const hook of hooks.afterBackward) hook(i);
    }
  }

  backwardFrom(start: number): void {
    this.backwardFromTo(start, 0);
  }

  backwardTo(end: number): void {
    this.backwardFromTo(this.layers.length - 1, end);
  }

  backward(): void {
    if (this.layers.length === 0) return;
    this.backwardFromTo(this.layers.length - 1, 0);
    if (this.debugInfo) {
      let asumData = 0;
      let asumDiff = 0;
      let sumsqData = 0;
      let sumsqDiff = 0;
      for (const p of this.learnableParams) {
        asumData += p.asumData();
        asumDiff += p.asumDiff();
        sumsqData += p.sumsqData();
        sumsqDiff += p.sumsqDiff();
      }
      netLog.error(
        `    [Backward] All net params (data, diff): L1 norm = (${formatG(asumData)}, ${formatG(asumDiff)}); ` +
          `L2 norm = (${formatG(Math.sqrt(sumsqData))}, ${formatG(Math.sqrt(sumsqDiff))})`,
      );
    }
  }

  /** Forward then backward; returns the loss. Param diffs accumulate onto what they held. */
  forwardBackward(): number {
    const loss = this.forward();
    this.backward();
    return loss;
  }

  /** Re-shape every layer's tops from its bottoms (after an input changed shape). */
  reshape(): void {
    this.assertLive('reshape()');
    this.layers.forEach((layer, i) => layer.reshape(this.bottomVecs[i]!, this.topVecs[i]!));
  }

  /** data -= diff for every learnable param (the solver has already scaled the diffs). */
  update(): void {
    for (const p of this.learnableParams) p.update();
    if (this.debugInfo) this.allParams.forEach((_, i) => this.updateDebugInfo(i));
  }

  clearParamDiffs(): void {
    // On a device backend the diffs are zeroed where they live (no readback).
    const ops = this.backend.solverOps;
    for (const p of this.learnableParams) {
      if (ops) ops.clearDiff(p);
      else zeroFill(p.mutableCpuDiff());
    }
  }

  // ---- weights ------------------------------------------------------------------------------

  /**
   * Copy param blobs from a NetParameter (a .caffemodel) into the layers of the same name.
   * Layers the net does not have are skipped; a shape mismatch throws NetError. Weights stored
   * as V1 `layers` (BVLC's zoo models) are read when `layer` is empty.
   */
  copyTrainedLayersFrom(param: NetParameter): void {
    this.assertLive('copyTrainedLayersFrom()');
    const sources: { name: string; blobs: BlobProto[] }[] =
      param.layer.length > 0 || param.layers.length === 0 ? param.layer : param.layers;
    for (const source of sources) {
      // The first layer of that name, as Caffe's linear search finds it.
      const targetId = this.layerNames.indexOf(source.name);
      if (targetId < 0) {
        this.log.info(`Ignoring source layer ${source.name}`);
        continue;
      }
      const targets = this.layers[targetId]!.blobs;
      if (targets.length !== source.blobs.length) {
        this.fail(
          `Incompatible number of blobs for layer ${source.name}: the net's layer has ${targets.length}, ` +
            `the weights have ${source.blobs.length}`,
        );
      }
      targets.forEach((target, j) => {
        const proto = source.blobs[j]!;
        const src = new Blob([], { dtype: target.dtype });
        src.fromProto(proto, { reshape: true, what: `layer '${source.name}' param ${j}` });
        if (!protoShapeMatches(target, proto)) {
          this.fail(
            `Cannot copy param ${j} weights from layer '${source.name}'; shape mismatch. Source param shape is ` +
              `${src.shapeString()}; target param shape is ${target.shapeString()}. To learn this layer's parameters ` +
              `from scratch rather than copying from a saved net, rename the layer.`,
          );
        }
        if (src.count() > 0) target.mutableCpuData().set(src.cpuData());
        if (proto.diff.length > 0 || proto.double_diff.length > 0) target.mutableCpuDiff().set(src.cpuDiff());
      });
    }
  }

  /** Make this net's params views of `other`'s (same layer names and shapes), e.g. test nets of a solver. */
  shareTrainedLayersWith(other: Net): void {
    other.layers.forEach((source, i) => {
      const sourceName = other.layerNames[i]!;
      const targetId = this.layerNames.indexOf(sourceName);
      if (targetId < 0) {
        this.log.info(`Ignoring source layer ${sourceName}`);
        return;
      }
      const targets = this.layers[targetId]!.blobs;
      if (targets.length !== source.blobs.length) {
        this.fail(
          `Incompatible number of blobs for layer ${sourceName}: this net's layer has ${targets.length}, ` +
            `the source net's has ${source.blobs.length}`,
        );
      }
      targets.forEach((target, j) => {
        const src = source.blobs[j]!;
        if (!target.shapeEquals(src)) {
          this.fail(
            `Cannot share param ${j} weights from layer '${sourceName}'; shape mismatch. Source param shape is ` +
              `${src.shapeString()}; target param shape is ${target.shapeString()}`,
          );
        }
        target.shareData(src);
      });
    });
  }

  /**
   * The net as Caffe's Net::ToProto writes it: its name and every layer as built (inserted
   * Split layers included, phases set), each with its param blobs (and diffs if asked).
   */
  toProto(writeDiff = false): NetParameter {
    this.assertLive('toProto()');
    const layer = this.layers.map((l) => {
      const lp = shallowClone(l.param);
      lp.blobs = l.blobs.map((b) => b.toProto(writeDiff));
      return lp;
    });
    return createMessage<NetParameter>('NetParameter', { name: this.name, layer });
  }

  /** Per-layer shapes, parameter counts, memory and a FLOP estimate. */
  summary(): NetSummary {
    return summarizeNet(this);
  }

  /**
   * The first NaN or ±Inf in the state of the last forward pass, in layer order: a layer's params
   * (its input weights) before its tops. Says which layer produced a non-finite loss.
   */
  findNonFinite(): { layer: string; type: string; blob: string; value: number } | null {
    const bad = (b: Blob): number | undefined => {
      const d = b.cpuData();
      for (let k = 0; k < d.length; k++) if (!Number.isFinite(d[k]!)) return d[k]!;
      return undefined;
    };
    for (let i = 0; i < this.layers.length; i++) {
      const layer = this.layers[i]!;
      const type = this.param.layer[i]?.type ?? '';
      for (let j = 0; j < layer.blobs.length; j++) {
        const v = bad(layer.blobs[j]!);
        if (v !== undefined) return { layer: this.layerNames[i]!, type, blob: `param ${j}`, value: v };
      }
      for (let j = 0; j < this.topVecs[i]!.length; j++) {
        const v = bad(this.topVecs[i]![j]!);
        if (v !== undefined) return { layer: this.layerNames[i]!, type, blob: `top '${this.blobNames[this.topIdVecs[i]![j]!]}'`, value: v };
      }
    }
    return null;
  }

  // ---- debug info (NetParameter.debug_info) -------------------------------------------------

  private forwardDebugInfo(layerId: number): void {
    const name = this.layerNames[layerId];
    this.topVecs[layerId]!.forEach((blob, topId) => {
      const blobName = this.blobNames[this.topIdVecs[layerId]![topId]!];
      netLog.info(`    [Forward] Layer ${name}, top blob ${blobName} data: ${formatG(blob.asumData() / blob.count())}`);
    });
    this.layers[layerId]!.blobs.forEach((blob, paramId) => {
      const display = this.paramDisplayNames[this.paramIdVecs[layerId]![paramId]!];
      netLog.info(`    [Forward] Layer ${name}, param blob ${display} data: ${formatG(blob.asumData() / blob.count())}`);
    });
  }

  private backwardDebugInfo(layerId: number): void {
    const name = this.layerNames[layerId];
    this.bottomVecs[layerId]!.forEach((blob, bottomId) => {
      if (!this.bottomNeedBackward[layerId]![bottomId]) return;
      const blobName = this.blobNames[this.bottomIdVecs[layerId]![bottomId]!];
      netLog.info(`    [Backward] Layer ${name}, bottom blob ${blobName} diff: ${formatG(blob.asumDiff() / blob.count())}`);
    });
    const layer = this.layers[layerId]!;
    layer.blobs.forEach((blob, paramId) => {
      if (layer.paramPropagateDown[paramId] === false) return;
      netLog.info(`    [Backward] Layer ${name}, param blob ${paramId} diff: ${formatG(blob.asumDiff() / blob.count())}`);
    });
  }

  private updateDebugInfo(paramId: number): void {
    const blob = this.allParams[paramId]!;
    const owner = this.paramOwners[paramId]!;
    const layerName = this.layerNames[this.paramLayerIndices[paramId]![0]];
    const display = this.paramDisplayNames[paramId];
    const diff = formatG(blob.asumDiff() / blob.count());
    if (owner < 0) {
      netLog.info(`    [Update] Layer ${layerName}, param ${display} data: ${formatG(blob.asumData() / blob.count())}; diff: ${diff}`);
    } else {
      const ownerLayer = this.layerNames[this.paramLayerIndices[owner]![0]];
      netLog.info(
        `    [Update] Layer ${layerName}, param blob ${display} (owned by layer ${ownerLayer}, param ${this.paramDisplayNames[owner]}) diff: ${diff}`,
      );
    }
  }
}

function layerContext(options: NetOptions, lp: LayerParameter): LayerContext {
  return {
    backend: options.backend ?? cpuBackend(),
    dtype: options.dtype ?? 'float32',
    phase: lp.phase,
    rng: options.rng ?? globalRng(),
    ...(options.name ? { netFile: options.name } : {}),
    ...(options.shard ? { shard: options.shard } : {}),
  };
}

/** std::string ordering (bytewise), which std::set<string> uses for the output list. */
function compareBytes(a: string, b: string): number {
  // UTF-8 byte order is code point order.
  const ca = Array.from(a, (c) => c.codePointAt(0)!);
  const cb = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) if (ca[i] !== cb[i]) return ca[i]! - cb[i]!;
  return ca.length - cb.length;
}

/**
 * Blob::ShapeEquals(BlobProto): a proto with the legacy num/channels/height/width fields
 * matches a blob of at most 4 axes padded with leading 1s (old IP weights are 1 1 N K);
 * otherwise the dims must be equal.
 */
export function protoShapeMatches(blob: Blob, proto: BlobProto): boolean {
  const has = (f: string) => hasField(proto, f);
  if (has('num') || has('channels') || has('height') || has('width')) {
    const s = blob.shape;
    if (s.length > 4) return false;
    const legacy = [proto.num, proto.channels, proto.height, proto.width];
    const padded = [...new Array<number>(4 - s.length).fill(1), ...s];
    return padded.every((d, i) => d === legacy[i]);
  }
  const dims = proto.shape ? proto.shape.dim.map(Number) : [];
  return blob.shapeEquals(dims);
}
