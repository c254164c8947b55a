/*
 * What py-faster-rcnn's tools add around Caffe, for `caffe train --roidb` (train_net.py) and
 * `caffe test_net` (test_net.py). Training: the config file (cfg_from_file), the image sets'
 * roidb with mirrored copies (combined_roidb, get_training_roidb, filter_roidb), the seed
 * (RNG_SEED unless the solver sets random_seed), train.py's snapshot interval and infix, and its
 * snapshots' unnormalized bbox_pred (SolverWrapper.snapshot), undone when a run resumes from one.
 */
import { readFileSync } from 'node:fs';
import { logger } from '@caffe-ts/blob';
import { readVocRoidb } from '@caffe-ts/io-leveldb';
import { defaultPythonLayerRegistry } from '@caffe-ts/layers';
import {
  bboxPredSnapshotWeights,
  FASTER_RCNN_CONFIG,
  getTrainingRoidb,
  parseFasterRcnnCfg,
  registerContribLayers,
  registerFasterRcnnPythonLayers,
  type FasterRcnnConfig,
  type RoidbEntry,
  type RoidbReplicaData,
} from '@caffe-ts/layers-contrib';
import type { SolverParameter } from '@caffe-ts/proto';
import type { Solver } from '@caffe-ts/solver';
import { checkSnapshotPrefixWritable } from '@caffe-ts/solver/node';
import type { ReplicaSetup } from '@caffe-ts/solver/parallel';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { ownModuleUrl } from '../plugins.js';
import { cliRegistry } from './common.js';

const log = logger('py-faster-rcnn');

/** One `voc:DEVKIT_YEAR_DIR:IMAGE_SET` of --roidb. */
export interface RoidbSource {
  devkit: string;
  imageSet: string;
}

/**
 * `--roidb voc:DEVKIT_YEAR_DIR:IMAGE_SET`, or several joined by '+' (train_net.py's
 * `--imdb voc_2007_trainval+voc_2012_trainval`): the kind of roidb the command reads (readVocRoidb).
 */
export function parseRoidbSpec(spec: string): RoidbSource[] {
  const parts = spec.split(/\+(?=voc:)/);
  return parts.map((part) => {
    const m = /^voc:(.+):([^:]+)$/.exec(part);
    if (!m) throw new UsageError(`--roidb expects voc:DEVKIT_YEAR_DIR:IMAGE_SET (e.g. voc:VOCdevkit/VOC2007:trainval), several joined by '+', got '${spec}'`);
    return { devkit: m[1]!, imageSet: m[2]! };
  });
}

/** What the run needs: the config, the training roidb, and the replica setup that shares it out. */
export interface FasterRcnnRun {
  config: FasterRcnnConfig;
  roidb: RoidbEntry[];
  replicaSetup: ReplicaSetup;
}

/**
 * The config (`cfgFile` over config.py's defaults, else the end2end settings), logged; the fork
 * layers and the py-faster-rcnn ports registered with it (the CLI's registry, the process-wide
 * Python layer registry).
 */
export function loadFasterRcnnConfig(cfgFile: string | undefined): FasterRcnnConfig {
  let config: FasterRcnnConfig = FASTER_RCNN_CONFIG;
  if (cfgFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(userPath(cfgFile), 'utf8');
    } catch (e) {
      throw new UsageError(`--cfg: cannot read '${cfgFile}' (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    const read = parseFasterRcnnCfg(text, cfgFile);
    config = read.config;
    log.info(`Loaded config from ${cfgFile}: ${read.set.length > 0 ? read.set.join(', ') : 'no keys'} set over config.py's defaults`);
    if (read.unused.length > 0) log.info(`Not read by caffe-ts (they concern py-faster-rcnn's own paths, devices and proposal files): ${read.unused.join(', ')}`);
  }
  registerContribLayers(cliRegistry());
  registerFasterRcnnPythonLayers(defaultPythonLayerRegistry(), config);
  return config;
}

/**
 * Read the config and register the layers (loadFasterRcnnConfig), and read every image set's
 * roidb with its mirrored copies.
 */
export async function prepareFasterRcnnRun(sources: RoidbSource[], cfgFile: string | undefined): Promise<FasterRcnnRun> {
  const config = loadFasterRcnnConfig(cfgFile);
  const roidb: RoidbEntry[] = [];
  for (const { devkit, imageSet } of sources) {
    const entries = getTrainingRoidb(await readVocRoidb(userPath(devkit), imageSet), { useFlipped: config.TRAIN.USE_FLIPPED });
    log.info(`Loaded ${entries.length} roidb entries${config.TRAIN.USE_FLIPPED ? ' (with mirrored copies)' : ''} from ${devkit} ${imageSet}`);
    roidb.push(...entries);
  }
  const data: RoidbReplicaData = { roidb, config };
  return { config, roidb, replicaSetup: { module: ownModuleUrl('@caffe-ts/layers-contrib/roidb-replica'), data } };
}

/**
 * train_net.py's settings in the solver's terms, before it is built: the seed (cfg.RNG_SEED
 * unless the solver file sets random_seed), and the snapshot interval (cfg.TRAIN.SNAPSHOT_ITERS
 * where the solver file's `snapshot` is 0, as py-faster-rcnn's are: its wrapper snapshots
 * instead) with cfg.TRAIN.SNAPSHOT_INFIX after the prefix.
 */
export function applyFasterRcnnSolverSettings(param: SolverParameter, config: FasterRcnnConfig, rootDir: string): void {
  if (param.random_seed < 0) param.random_seed = config.RNG_SEED;
  if (!(param.snapshot > 0)) {
    param.snapshot = config.TRAIN.SNAPSHOT_ITERS;
    checkSnapshotPrefixWritable(param.snapshot_prefix, rootDir);
  }
  if (config.TRAIN.SNAPSHOT_INFIX !== '') param.snapshot_prefix = `${param.snapshot_prefix}_${config.TRAIN.SNAPSHOT_INFIX}`;
}

/** Snapshots save bbox_pred unnormalized (test-ready), as train.py's do; restoring undoes it. */
export function useFasterRcnnSnapshots(solver: Solver, config: FasterRcnnConfig): void {
  const adapter = bboxPredSnapshotWeights(config);
  if (!adapter) return;
  solver.snapshotWeights = adapter;
  if (solver.net.layerNames.includes('bbox_pred')) {
    log.info('Snapshots hold bbox_pred unnormalized (× BBOX_NORMALIZE_STDS, + MEANS), ready for testing, as train.py writes them');
  }
}

