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

/** A layer reads a blob that no earlier layer of the (filtered) net produces. */
export class UnknownBottomError extends NetError {
  override readonly name: string = 'UnknownBottomError';
  constructor(
    message: string,
    /** The blob name that nothing produced. */
    readonly blob: string,
    /** The layer that reads it. */
    readonly layer: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
