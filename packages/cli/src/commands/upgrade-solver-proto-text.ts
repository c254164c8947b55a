import { hasField, type SolverParameter } from '@caffe-ts/proto';
import { readTextProto, writeTextProto } from '@caffe-ts/proto/node';
import { upgradeSolverAsNeeded } from '@caffe-ts/solver';
import type { Command } from './index.js';
import { inOut, upgradeLog } from './upgrade-common.js';

const log = upgradeLog('upgrade_solver_proto_text');

export const upgradeSolverProtoTextCommand: Command = {
  summary: "upgrade a solver prototxt's deprecated solver_type enum to the type string",
  usage: 'SOLVER_PROTO_IN SOLVER_PROTO_OUT',
  async run(ctx) {
    const [input, output] = inOut(ctx, 'a solver prototxt');
    const param = await readTextProto<SolverParameter>('SolverParameter', input);
    if (hasField(param, 'solver_type')) {
      // Both solver_type and type set is refused (SolverConfigError), as Caffe's CHECK does.
      upgradeSolverAsNeeded(param, input);
    } else {
      log.error(`File already in latest proto format: ${input}`);
    }
    await writeTextProto('SolverParameter', output, param, { fieldOrder: 'number' });
    log.info(`Wrote upgraded SolverParameter text proto to ${output}`);
    return 0;
  },
};
