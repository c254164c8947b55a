/*
 * What py-faster-rcnn's tools add around Caffe, for `caffe train --roidb` (train_net.py) and
 * `caffe test_net` (test_net.py). Training: the config file (cfg_from_file), the image sets'
 * roidb with mirrored copies (combined_roidb, get_training_roidb, filter_roidb), the seed
 * (RNG_SEED unless the solver sets random_seed), train.py's snapshot interval and infix, and its
 * snapshots' unnormalized bbox_pred (SolverWrapper.snapshot), undone when a run resumes from one.
 */
import { readFileSync } from 'node:fs';
import { logger } from '@caffe-ts/blob';
import { readCocoRoidb, readVocRoidb, VOC_CLASSES } from '@caffe-ts/io-leveldb';
import { defaultPythonLayerRegistry } from '@caffe-ts/layers';
import {
  applyFasterRcnnCfgList,
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

/** One image set of --roidb: a VOC devkit's (`voc:DEVKIT_YEAR_DIR:IMAGE_SET`) or a COCO file's (`coco:ANNOTATIONS_JSON:IMAGE_DIR`). */
export type RoidbSource = { kind: 'voc'; devkit: string; imageSet: string } | { kind: 'coco'; annotations: string; images: string };

const ROIDB_USAGE = 'voc:DEVKIT_YEAR_DIR:IMAGE_SET (e.g. voc:VOCdevkit/VOC2007:trainval) or coco:ANNOTATIONS_JSON:IMAGE_DIR, several joined by \'+\'';

/**
 * `--roidb voc:DEVKIT_YEAR_DIR:IMAGE_SET` or `coco:ANNOTATIONS_JSON:IMAGE_DIR`, several joined by '+'
 * (train_net.py's `--imdb voc_2007_trainval+voc_2012_trainval`, `coco_2014_train+coco_2014_valminusminival`).
 */
export function parseRoidbSpec(spec: string): RoidbSource[] {
  return spec.split(/\+(?=(?:voc|coco):)/).map((part): RoidbSource => {
    const voc = /^voc:(.+):([^:]+)$/.exec(part);
    if (voc) return { kind: 'voc', devkit: voc[1]!, imageSet: voc[2]! };
    const coco = /^coco:(.+\.json):(.+)$/.exec(part);
    if (coco) return { kind: 'coco', annotations: coco[1]!, images: coco[2]! };
    throw new UsageError(`--roidb expects ${ROIDB_USAGE}, got '${spec}'`);
  });
}

/** A source as the log names it. */
function describeSource(s: RoidbSource): string {
  return s.kind === 'voc' ? `${s.devkit} ${s.imageSet}` : `${s.annotations} (images in ${s.images})`;
}

/** A source's entries and classes (VOC's 20 and the background, or the COCO file's categories). */
async function readSource(s: RoidbSource): Promise<{ entries: RoidbEntry[]; classes: readonly string[] }> {
  if (s.kind === 'voc') return { entries: await readVocRoidb(userPath(s.devkit), s.imageSet), classes: VOC_CLASSES };
  const coco = await readCocoRoidb(userPath(s.annotations), userPath(s.images));
  return { entries: coco.entries, classes: coco.classes };
}

/** What the run needs: the config, the training roidb, and the replica setup that shares it out. */
export interface FasterRcnnRun {
  config: FasterRcnnConfig;
  roidb: RoidbEntry[];
  replicaSetup: ReplicaSetup;
}

/**
 * The config (`cfgFile` over config.py's defaults, else the end2end settings; then `setPairs`,
 * train_net.py's --set KEY VALUE words), logged; the fork
 * layers and the py-faster-rcnn ports registered with it (the CLI's registry, the process-wide
 * Python layer registry).
 */
export function loadFasterRcnnConfig(cfgFile: string | undefined, setPairs: readonly string[] = []): FasterRcnnConfig {
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
  if (setPairs.length > 0) {
    // train_net.py applies --set after --cfg (cfg_from_list).
    const read = applyFasterRcnnCfgList(config, setPairs);
    config = read.config;
    log.info(`Set from --set: ${read.set.join(', ')}`);
    if (read.unused.length > 0) log.info(`Not read by caffe-ts: ${read.unused.join(', ')}`);
  }
  registerContribLayers(cliRegistry());
  registerFasterRcnnPythonLayers(defaultPythonLayerRegistry(), config);
  return config;
}

/**
 * Read the config and register the layers (loadFasterRcnnConfig), and read every image set's
 * roidb with its mirrored copies.
 */
export async function prepareFasterRcnnRun(sources: RoidbSource[], cfgFile: string | undefined, setPairs: readonly string[] = []): Promise<FasterRcnnRun> {
  const config = loadFasterRcnnConfig(cfgFile, setPairs);
  const roidb: RoidbEntry[] = [];
  let classes: readonly string[] | undefined;
  for (const source of sources) {
    const read = await readSource(source);
    // combined_roidb concatenates image sets of one dataset: their classes must be the same.
    if (classes && (read.classes.length !== classes.length || read.classes.some((c, i) => c !== classes![i]))) {
      throw new UsageError(`--roidb: ${describeSource(source)} has other classes than the sets before it (${read.classes.length} against ${classes.length}, the background included)`);
    }
    classes = read.classes;
    const entries = getTrainingRoidb(read.entries, { useFlipped: config.TRAIN.USE_FLIPPED });
    log.info(`Loaded ${entries.length} roidb entries${config.TRAIN.USE_FLIPPED ? ' (with mirrored copies)' : ''} from ${describeSource(source)}`);
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

