import { CaffeError } from '@caffe-ts/proto';

/**
 * An error building or running a Net: the message names the layer and blob involved, what was
 * expected and what was found (Caffe aborts with the same facts in its CHECK messages).
 */
export class NetError extends CaffeError {
  override readonly name: string = 'NetError';
}

/** A net definition in a legacy format this version cannot upgrade (yet). */
export class NetUpgradeError extends NetError {
  override readonly name: string = 'NetUpgradeError';
}
