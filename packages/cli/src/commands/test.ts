import { logger } from '@caffe-ts/blob';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { enableHdf5, isHdf5Path } from '@caffe-ts/solver/node';
import { parallelTest, type BatchResult } from '@caffe-ts/solver/parallel';
import { cliWorkerPlugins } from './train.js';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { backendFromFlags, cliRegistry, netStateFromFlags } from './common.js';
import type { Command } from './index.js';
import { startProgress, wantProgress, type Progress } from '../progress.js';

const log = logger('caffe.cpp');

export const testCommand: Command = {
  summary: 'score a model',
  usage: '--model M --weights W [--iterations 50] [--level N] [--stage a,b] [--backend cpu|gpu] [--workers N]',
  async run({ flags }) {
    const model = flags.string('model');
    const weights = flags.string('weights');
    const iterations = flags.int('iterations', 50);
    const state = netStateFromFlags(flags, Phase.TEST);
    const backend = await backendFromFlags(flags);
    const showProgress = wantProgress(flags);
    const workers = flags.int('workers', 1);
    flags.checkAllUsed();
    if (!(workers >= 1)) throw new UsageError(`--workers expects a positive integer, got ${workers}`);
    if (!model) throw new UsageError('Need a model definition to score.');
    if (!weights) throw new UsageError('Need model weights to score.');

    log.info(backend.name === 'cpu' ? 'Use CPU.' : `Use backend ${backend.name}.`);
    const param = readNetParameter(userPath(model));
    let progress: Progress | undefined;
    const net = await Net.create(param, { ...state, phase: Phase.TEST, registry: cliRegistry(), backend, name: userPath(model) });
    try {
      if (isHdf5Path(weights)) await enableHdf5(); // .caffemodel.h5 weights
      copyTrainedLayersFromFile(net, userPath(weights));
      log.info(`Running for ${iterations} iterations.`);
      const scores: number[] = [];
      const scoreIndex: { blob: number; name: string }[] = [];
      let loss = 0;
      // --workers N: batch b runs on replica b % N (worker threads); lines print in batch order.
      const parallel: BatchResult[] | undefined =
        workers > 1
          ? await parallelTest({ net, param, ...state, phase: Phase.TEST, netFile: userPath(model), iterations, workers, register: cliWorkerPlugins() })
          : undefined;
      // On a terminal: a bar instead of the per-batch lines; the summary below prints after it.
      progress = showProgress ? startProgress('test', iterations, { unit: 'batches' }) : undefined;
      for (let i = 0; i < iterations; i++) {
        const done = parallel?.[i];
        if (!done) await net.prepare();
        loss += done ? done.loss : net.forward();
        progress?.update(i + 1, { loss: loss / (i + 1) });
        let idx = 0;
        net.outputBlobs.forEach((blob, j) => {
          const count = blob.count();
          const data = done ? done.outputs.slice(idx, idx + count) : blob.cpuData();
          const name = net.outputBlobNames[j]!;
          for (let k = 0; k < data.length; k++, idx++) {
            const v = data[k]!;
            if (i === 0) {
              scores.push(v);
              scoreIndex.push({ blob: j, name });
            } else scores[idx]! += v;
            log.info(`Batch ${i}, ${name} = ${fmt(v)}`);
          }
        });
      }
      progress?.stop();
      loss /= iterations;
      log.info(`Loss: ${fmt(loss)}`);
      scores.forEach((total, idx) => {
        const { blob, name } = scoreIndex[idx]!;
        const mean = total / iterations;
        const w = net.blobLossWeights[net.outputBlobIndices[blob]!] ?? 0;
        const lossMsg = w ? ` (* ${fmt(w)} = ${fmt(w * mean)} loss)` : '';
        log.info(`${name} = ${fmt(mean)}${lossMsg}`);
      });
    } finally {
      progress?.stop();
      await net.close();
    }
    return 0;
  },
};

/** Numbers as glog prints floats (6 significant digits). */
export function fmt(x: number): string {
  return Number(x.toPrecision(6)).toString();
}
