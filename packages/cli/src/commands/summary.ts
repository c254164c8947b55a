import { formatNetSummary, Net, summarizeNet } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { cliRegistry, netStateFromFlags } from './common.js';
import type { Command } from './index.js';

export const summaryCommand: Command = {
  summary: 'print a table of a net\'s layers: top shapes, params, FLOPs and memory',
  usage: 'NET.prototxt [--weights W.caffemodel] [--phase TRAIN|TEST] [--level N] [--stage a,b]',
  async run({ flags, positional, io }) {
    const weights = flags.string('weights');
    const state = netStateFromFlags(flags, Phase.TEST);
    flags.checkAllUsed();
    const model = positional[0] ?? flags.string('model');
    if (!model || positional.length > 1) throw new UsageError('summary takes one net definition (NET.prototxt)');
    const path = userPath(model);
    // Data layers are primed (Net.create) so their tops have the real shapes.
    const net = await Net.create(readNetParameter(path, { log: false }), { ...state, registry: cliRegistry(), name: path, log: false });
    try {
      if (weights) copyTrainedLayersFromFile(net, userPath(weights));
      io.stdout(formatNetSummary(summarizeNet(net)) + '\n');
    } finally {
      await net.close();
    }
    return 0;
  },
};
