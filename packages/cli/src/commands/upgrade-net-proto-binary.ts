import { readBinaryProto, writeBinaryProto } from '@caffe-ts/proto/node';
import type { NetParameter } from '@caffe-ts/proto';
import type { Command } from './index.js';
import { inOut, upgradeLog, upgradeNetFile } from './upgrade-common.js';

const log = upgradeLog('upgrade_net_proto_binary');

export const upgradeNetProtoBinaryCommand: Command = {
  summary: 'upgrade a V0/V1 binary net (.caffemodel) to the current format, weights kept',
  usage: 'NET_BINARY_IN NET_BINARY_OUT',
  async run(ctx) {
    const [input, output] = inOut(ctx, 'a binary net (.caffemodel)');
    const param = await readBinaryProto<NetParameter>('NetParameter', input);
    const { net, success } = upgradeNetFile(param, input, log);
    await writeBinaryProto('NetParameter', output, net);
    log.info(`Wrote upgraded NetParameter binary proto to ${output}`);
    return success ? 0 : 1;
  },
};
