import { logger } from '@caffe-ts/blob';
import { setRoidb } from '@caffe-ts/layers-contrib';
import { copyTrainedLayersFromFile } from '@caffe-ts/net/node';
import { buildSolverFromFile, enableHdf5, isHdf5Path, readSolverFile } from '@caffe-ts/solver/node';
import {
  applyKernelThreads,
  buildParallelSolverFromFile,
  chooseParallelism,
  probeMode,
  probeParallelism,
  probeWanted,
  type DataParallelOptions,
} from '@caffe-ts/solver/parallel';
import { UsageError } from '../args.js';
import { userCwd, userPath } from '../paths.js';
import { backendFromFlags, cliRegistry } from './common.js';
import { loadedPluginUrls, ownModuleUrl } from '../plugins.js';
import type { Command } from './index.js';
import { startProgress, wantProgress, type Progress } from '../progress.js';
import { applyFasterRcnnSolverSettings, parseRoidbSpec, prepareFasterRcnnRun, useFasterRcnnSnapshots } from './py-faster-rcnn.js';

const log = logger('caffe.cpp');

export const trainCommand: Command = {
  summary: 'train or finetune a model',
  usage: '--solver S [--weights a.caffemodel[,b.caffemodel]] [--snapshot S.solverstate] [--level N] [--stage a,b] [--backend cpu|gpu] [-gpu 0] [--sigint_effect stop|snapshot|none] [--sighup_effect stop|snapshot|none] [--stop_on_nan] [--workers N|auto [--split_batch]] [--roidb voc:DEVKIT/VOC2007:trainval[+…]|coco:instances.json:IMAGE_DIR [--cfg faster_rcnn_end2end.yml] [--set KEY VALUE …]]',
  async run({ flags }) {
    const solverFile = flags.string('solver');
    const weights = flags.string('weights');
    const snapshot = flags.string('snapshot');
    const level = flags.int('level', 0);
    const stage = flags.string('stage');
    const sigint = signalEffect(flags.string('sigint_effect', 'stop')!, 'sigint_effect');
    const sighup = signalEffect(flags.string('sighup_effect', 'snapshot')!, 'sighup_effect');
    const stopOnNan = flags.bool('stop_on_nan');
    const parallelAsked = parallelFromFlags(flags.string('workers'), flags.bool('split_batch'), process.env.CAFFE_TS_WORKERS);
    const roidbSpec = flags.string('roidb');
    const roidbSources = roidbSpec === undefined ? undefined : parseRoidbSpec(roidbSpec);
    const cfgFile = flags.string('cfg');
    const setPairs = flags.strings('set');
    if ((cfgFile !== undefined || setPairs.length > 0) && !roidbSources) {
      throw new UsageError(`--${cfgFile !== undefined ? 'cfg' : 'set'} configures py-faster-rcnn training: give --roidb too`);
    }
    if (roidbSources && parallelAsked?.mode === 'split' && !parallelAsked.optional) {
      throw new UsageError('--roidb with --split_batch: a Faster R-CNN batch is one image, which does not split (leave out --split_batch: each worker then trains on its own images)');
    }
    const backend = await backendFromFlags(flags);
    // The default mix is for the CPU backend: a device backend keeps the one thread that drives it.
    // With --roidb, replicas only when asked for (--workers N): each then reads its share of the roidb.
    let parallel = parallelAsked?.optional && (backend.name !== 'cpu' || roidbSources) ? undefined : parallelAsked;
    const showProgress = wantProgress(flags);
    flags.checkAllUsed();
    if (!solverFile) throw new UsageError('Need a solver definition to train.');
    if (weights && snapshot) {
      throw new UsageError(`Give a snapshot to resume training or weights to finetune but not both (got --snapshot ${snapshot} and --weights ${weights}).`);
    }

    log.info(backend.name === 'cpu' ? 'Use CPU.' : `Use backend ${backend.name}.`);
    const solverOptions = {
      rootDir: userCwd(),
      registry: cliRegistry(),
      backend,
      trainState: { level, stages: stage ? stage.split(',').filter(Boolean) : [] },
      stopOnNonFinite: stopOnNan,
    };
    const read = await readSolverFile(userPath(solverFile), solverOptions);
    // py-faster-rcnn's training layers (RoIDataLayer and the target layers) are the contrib ports.
    const frcnn = roidbSources ? await prepareFasterRcnnRun(roidbSources, cfgFile, setPairs) : undefined;
    if (frcnn) {
      applyFasterRcnnSolverSettings(read.param, frcnn.config, read.rootDir);
      if (parallel) parallel = { ...parallel, replicaSetup: frcnn.replicaSetup };
    }
    if (parallel?.optional && probeWanted(read.param)) {
      // The default mix: time the candidates on short-lived copies of this solver, keep the fastest.
      // Asked for (CAFFE_TS_PARALLEL_PROBE=on), it times even a run too short for it to pay.
      const forced = probeMode() === 'on';
      const { plan } = await probeParallelism(read, {
        solverOptions, register: parallel.register, ...(forced ? { maxShare: Infinity } : {}),
      });
      if (plan.workers > 1) {
        parallel = { ...plan, register: parallel.register, optional: true };
      } else {
        parallel = undefined;
        await applyKernelThreads(plan.kernelThreads);
      }
    }
    const solver = parallel ? await buildParallelSolverFromFile(read, parallel, solverOptions) : await buildSolverFromFile(read, solverOptions);
    if (frcnn) {
      useFasterRcnnSnapshots(solver, frcnn.config);
      // py-faster-rcnn's train.py: the roidb handed to the data layer (replicas took their shares as they were built).
      if (!parallel) setRoidb(solver.net, frcnn.roidb);
    }

    if (snapshot) {
      log.info(`Resuming from ${snapshot}`);
      await solver.restore(userPath(snapshot));
    } else if (weights) {
      if (weights.split(',').some(isHdf5Path)) await enableHdf5(); // .caffemodel.h5 weights
      for (const w of weights.split(',').filter(Boolean)) {
        log.info(`Finetuning from ${w}`);
        copyTrainedLayersFromFile(solver.net, userPath(w));
        for (const t of solver.testNets) copyTrainedLayersFromFile(t, userPath(w));
      }
    }

    const onSignal = (effect: SignalEffect) => () => {
      if (effect !== 'none') solver.requestAction(effect);
    };
    const intHandler = onSignal(sigint);
    const hupHandler = onSignal(sighup);
    process.on('SIGINT', intHandler);
    process.on('SIGHUP', hupHandler);
    let progress: Progress | undefined;
    try {
      log.info('Starting Optimization');
      if (showProgress) {
        // On a terminal: a bar with ETA, throughput and smoothed loss instead of the log lines.
        const bar = startProgress('train', solver.param.max_iter, { start: solver.iter, unit: 'iters' });
        progress = bar;
        solver.addCallback({
          onIteration: (info) => bar.update(info.iter, { loss: info.smoothedLoss }),
          onTest: (r) => bar.log(`Iteration ${r.iter}, test net #${r.testNetId}: ${r.scores.map((sc) => `${sc.name} = ${sc.value}`).join(', ')}`),
        });
      }
      await solver.solve();
    } finally {
      progress?.stop();
      process.off('SIGINT', intHandler);
      process.off('SIGHUP', hupHandler);
      await solver.close?.();
    }
    log.info('Optimization Done.');
    return 0;
  },
};

type SignalEffect = 'stop' | 'snapshot' | 'none';

function signalEffect(value: string, flag: string): SignalEffect {
  if (value === 'stop' || value === 'snapshot' || value === 'none') return value;
  throw new UsageError(`Invalid signal effect "${value}" was specified for --${flag} (expected stop, snapshot or none)`);
}

/** The layer plugins this CLI registers (its data layers, then --plugin's), as URLs a worker thread can import. */
export function cliWorkerPlugins(): string[] {
  const own = ['@caffe-ts/io-leveldb/register'].map(ownModuleUrl);
  return [...own, ...loadedPluginUrls()];
}

/**
 * --workers N: N replicas, each reading batch_size records (Caffe's -gpu semantics: N × batch per
 * iteration); with --split_batch they share each batch instead (the single-worker trajectory).
 * --workers auto, the default: split replicas on every core (chooseParallelism), the same
 * trajectory as one thread up to float summation order; for a run long enough (probeWanted:
 * max_iter ≥ 1000, and a timing under 5 % of the run; CAFFE_TS_PARALLEL_PROBE=on/off) the
 * command first times that against one replica with every core for its kernels
 * (probeParallelism) and keeps the faster. Where the net
 * cannot be divided (a batch that does not split among the cores, a data layer that does not
 * shard, one core) it trains on one thread with every core for the kernels, and says why.
 * --workers 1: no workers. The CAFFE_TS_WORKERS environment variable (N, auto or 1) replaces the
 * default.
 */
export function parallelFromFlags(value: string | undefined, split: boolean, env?: string): DataParallelOptions | undefined {
  if (value === undefined) {
    if (split) throw new UsageError('--split_batch needs --workers N');
    const fromEnv = env?.trim();
    if (fromEnv) {
      try {
        return parallelFromFlags(fromEnv, false);
      } catch (e) {
        throw new UsageError(`CAFFE_TS_WORKERS='${env}': ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    value = 'auto';
  }
  const register = cliWorkerPlugins();
  if (value === 'auto') {
    const plan = chooseParallelism();
    return plan.workers > 1 ? { ...plan, register, optional: true } : undefined;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--workers expects a positive integer or 'auto', got '${value}'`);
  if (n === 1) return undefined;
  return { workers: n, mode: split ? 'split' : 'replicate', register };
}
