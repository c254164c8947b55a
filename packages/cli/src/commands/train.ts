import { logger } from '@caffe-ts/blob';
import { copyTrainedLayersFromFile } from '@caffe-ts/net/node';
import { enableHdf5, isHdf5Path, loadSolverFromFile } from '@caffe-ts/solver/node';
import { UsageError } from '../args.js';
import { userCwd, userPath } from '../paths.js';
import { backendFromFlags, cliRegistry } from './common.js';
import type { Command } from './index.js';
import { startProgress, wantProgress, type Progress } from '../progress.js';

const log = logger('caffe.cpp');

export const trainCommand: Command = {
  summary: 'train or finetune a model',
  usage: '--solver S [--weights a.caffemodel[,b.caffemodel]] [--snapshot S.solverstate] [--level N] [--stage a,b] [--backend cpu] [--sigint_effect stop|snapshot|none] [--sighup_effect stop|snapshot|none] [--stop_on_nan]',
  async run({ flags }) {
    const solverFile = flags.string('solver');
    const weights = flags.string('weights');
    const snapshot = flags.string('snapshot');
    const level = flags.int('level', 0);
    const stage = flags.string('stage');
    const sigint = signalEffect(flags.string('sigint_effect', 'stop')!, 'sigint_effect');
    const sighup = signalEffect(flags.string('sighup_effect', 'snapshot')!, 'sighup_effect');
    const stopOnNan = flags.bool('stop_on_nan');
    const backend = await backendFromFlags(flags);
    const showProgress = wantProgress(flags);
    flags.checkAllUsed();
    if (!solverFile) throw new UsageError('Need a solver definition to train.');
    if (weights && snapshot) {
      throw new UsageError(`Give a snapshot to resume training or weights to finetune but not both (got --snapshot ${snapshot} and --weights ${weights}).`);
    }

    log.info(backend.name === 'cpu' ? 'Use CPU.' : `Use backend ${backend.name}.`);
    const solver = await loadSolverFromFile(userPath(solverFile), {
      rootDir: userCwd(),
      registry: cliRegistry(),
      backend,
      trainState: { level, stages: stage ? stage.split(',').filter(Boolean) : [] },
      stopOnNonFinite: stopOnNan,
    });

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
