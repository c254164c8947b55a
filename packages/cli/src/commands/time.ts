import { logger } from '@caffe-ts/blob';
import { Net } from '@caffe-ts/net';
import { readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { backendFromFlags, cliRegistry, ms, netStateFromFlags } from './common.js';
import type { Command } from './index.js';

const log = logger('caffe.cpp');

export const timeCommand: Command = {
  summary: 'benchmark model execution time',
  usage: '--model M [--iterations 50] [--phase TRAIN|TEST] [--level N] [--stage a,b] [--backend cpu|gpu] [-gpu 0]',
  async run({ flags }) {
    const model = flags.string('model');
    const iterations = flags.int('iterations', 50);
    const state = netStateFromFlags(flags, Phase.TRAIN);
    const backend = await backendFromFlags(flags);
    flags.checkAllUsed();
    if (!model) throw new UsageError('Need a model definition to time.');
    if (iterations < 1) throw new UsageError(`--iterations must be positive, got ${iterations}`);

    log.info(backend.name === 'cpu' ? 'Use CPU.' : `Use backend ${backend.name}.`);
    // A device backend queues work: wait for it before reading a timer (Caffe syncs CUDA events).
    const sync = (backend as { synchronize?: () => void }).synchronize?.bind(backend) ?? (() => {});
    const net = await Net.create(readNetParameter(userPath(model)), {
      ...state,
      registry: cliRegistry(),
      backend,
      name: userPath(model),
    });
    try {
      // A first pass to warm up and report the loss, as Caffe does.
      log.info('Performing Forward');
      await net.prepare();
      const initialLoss = net.forward();
      log.info(`Initial loss: ${initialLoss}`);
      log.info('Performing Backward');
      net.backward();

      const layers = net.layers;
      const fwd = new Float64Array(layers.length);
      const bwd = new Float64Array(layers.length);
      let forwardTotal = 0;
      let backwardTotal = 0;
      const started = performance.now();
      log.info('*** Benchmark begins ***');
      log.info(`Testing for ${iterations} iterations.`);
      for (let it = 0; it < iterations; it++) {
        await net.prepare();
        const iterStart = performance.now();
        for (let i = 0; i < layers.length; i++) {
          const t0 = performance.now();
          net.forwardFromTo(i, i);
          sync();
          fwd[i]! += performance.now() - t0;
        }
        const mid = performance.now();
        forwardTotal += mid - iterStart;
        for (let i = layers.length - 1; i >= 0; i--) {
          const t0 = performance.now();
          net.backwardFromTo(i, i);
          sync();
          bwd[i]! += performance.now() - t0;
        }
        const end = performance.now();
        backwardTotal += end - mid;
        log.info(`Iteration: ${it + 1} forward-backward time: ${ms(end - iterStart)} ms.`);
      }
      log.info('Average time per layer: ');
      for (let i = 0; i < layers.length; i++) {
        log.info(`${net.layerNames[i]!.padStart(10)}\tforward: ${ms(fwd[i]! / iterations)} ms.`);
        log.info(`${net.layerNames[i]!.padStart(10)}\tbackward: ${ms(bwd[i]! / iterations)} ms.`);
      }
      log.info(`Average Forward pass: ${ms(forwardTotal / iterations)} ms.`);
      log.info(`Average Backward pass: ${ms(backwardTotal / iterations)} ms.`);
      log.info(`Average Forward-Backward: ${ms((forwardTotal + backwardTotal) / iterations)} ms.`);
      log.info(`Total Time: ${ms(performance.now() - started)} ms.`);
      log.info('*** Benchmark ends ***');
    } finally {
      await net.close();
    }
    return 0;
  },
};
