import { CaffeError } from '@caffe-ts/proto';

/**
 * An error building or running a Net: the message names the layer and blob involved, what was
 * expected and what was found (Caffe aborts with the same facts in its CHECK messages).
 */
export class NetError extends CaffeError {
  override readonly name: string = 'NetError';
}

/** A legacy net definition that cannot be upgraded (where Caffe aborts: mixed `layer`/`layers`, unknown V0/V1 types, bad padding layers). */
export class NetUpgradeError extends NetError {
  override readonly name: string = 'NetUpgradeError';
}
