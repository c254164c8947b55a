import { logger } from '@caffe-ts/blob';
import { upgradeNet, netNeedsUpgrade } from '@caffe-ts/net';
import type { NetParameter } from '@caffe-ts/proto';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import type { CommandContext } from './index.js';

/** The tools log as their C++ namesakes do (tools/upgrade_*.cpp). */
export const upgradeLog = (tool: string) => logger(`${tool}.cpp`);

/** IN OUT, resolved against the user's directory; no flags. */
export function inOut({ flags, positional }: CommandContext, what: string): [string, string] {
  flags.checkAllUsed();
  if (positional.length !== 2) {
    throw new UsageError(`expected ${what} and an output file, got ${positional.length} argument(s)`);
  }
  return [userPath(positional[0]!), userPath(positional[1]!)];
}

/**
 * Upgrade a net read from `file` as upgrade_net_proto_text/_binary do: everything
 * UpgradeNetAsNeeded does when something needs it, else an error line saying it is current
 * (the file is still written). `success` is false when some V0/V1 field had no home.
 */
export function upgradeNetFile(param: NetParameter, file: string, log: ReturnType<typeof logger>): { net: NetParameter; success: boolean } {
  if (!netNeedsUpgrade(param)) {
    log.error(`File already in latest proto format: ${file}`);
    return { net: param, success: true };
  }
  const r = upgradeNet(param, { file });
  if (!r.success) log.error('Encountered error(s) while upgrading prototxt; see details above.');
  return { net: r.net, success: r.success };
}
