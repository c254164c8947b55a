import { writeTextProto, readTextProto } from '@caffe-ts/proto/node';
import type { NetParameter } from '@caffe-ts/proto';
import type { Command } from './index.js';
import { inOut, upgradeLog, upgradeNetFile } from './upgrade-common.js';

const log = upgradeLog('upgrade_net_proto_text');

export const upgradeNetProtoTextCommand: Command = {
  summary: 'upgrade a V0/V1 (or otherwise deprecated) net prototxt to the current format',
  usage: 'NET_PROTO_IN NET_PROTO_OUT',
  async run(ctx) {
    const [input, output] = inOut(ctx, 'a net prototxt');
    const param = await readTextProto<NetParameter>('NetParameter', input);
    const { net, success } = upgradeNetFile(param, input, log);
    // Field-number order, as protobuf's TextFormat (and so the C++ tool) writes.
    await writeTextProto('NetParameter', output, net, { fieldOrder: 'number' });
    log.info(`Wrote upgraded NetParameter text proto to ${output}`);
    return success ? 0 : 1;
  },
};
