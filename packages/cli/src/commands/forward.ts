import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '@caffe-ts/blob';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { parallelForward } from '@caffe-ts/solver/parallel';
import { blobFileName, forwardArrays, readNpy, writeNpy, type NpyArray } from '@caffe-ts/zoo';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { backendFromFlags, cliRegistry } from './common.js';
import { cliWorkerPlugins } from './train.js';
import type { Command } from './index.js';

const log = logger('caffe.cpp');

export const forwardCommand: Command = {
  summary: 'run a net forward on .npy inputs and save blobs as .npy',
  usage: '--model M [--weights W] --input data=x.npy [--input name2=y.npy] [--blobs a,b] --output DIR [--backend cpu|gpu] [--workers N]',
  async run({ flags, io }) {
    const model = flags.string('model');
    const weights = flags.string('weights');
    const inputSpecs = flags.strings('input');
    const blobs = (flags.string('blobs') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const output = flags.string('output');
    const backend = await backendFromFlags(flags);
    // --workers N: the inputs' rows (axis 0) are divided among N replicas on worker threads.
    const workers = flags.int('workers', 1);
    flags.checkAllUsed();
    if (!(Number.isInteger(workers) && workers >= 1)) throw new UsageError(`--workers expects a positive integer, got ${workers}`);
    if (!model) throw new UsageError('Need a model definition to run forward (--model).');
    if (!output) throw new UsageError('Need an output folder for the blobs (--output DIR).');
    if (inputSpecs.length === 0) throw new UsageError('Need at least one --input name=file.npy.');

    const inputs: Record<string, NpyArray> = {};
    for (const spec of inputSpecs) {
      const eq = spec.indexOf('=');
      if (eq <= 0 || eq === spec.length - 1) throw new UsageError(`--input expects name=file.npy, got '${spec}'`);
      inputs[spec.slice(0, eq)] = readNpy(userPath(spec.slice(eq + 1)));
    }
    const param = readNetParameter(userPath(model));
    const net = await Net.create(param, { phase: Phase.TEST, registry: cliRegistry(), backend, name: userPath(model) });
    try {
      if (weights) copyTrainedLayersFromFile(net, userPath(weights));
      else log.warn('No --weights given: running with the definition\'s initial (filled) params.');
      await net.prepare();
      const results =
        workers > 1
          ? await parallelForward({ net, param, netFile: userPath(model), inputs, blobs, workers, register: cliWorkerPlugins() })
          : forwardArrays(net, inputs, blobs);
      const dir = userPath(output);
      mkdirSync(dir, { recursive: true });
      for (const [name, array] of results) {
        const file = join(dir, `${blobFileName(name)}.npy`);
        writeNpy(file, array);
        log.info(`Blob ${name} (${array.shape.join(' ')}) written to ${file}`);
        io.stdout(`${file}\n`);
      }
    } finally {
      await net.close();
    }
    return 0;
  },
};
