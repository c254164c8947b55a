import { CaffeError } from '@caffe-ts/proto';

/** Base of the solver's errors: the message names the solver field or file involved. */
export class SolverError extends CaffeError {
  override readonly name: string = 'SolverError';
}

/** A SolverParameter that Caffe would reject (its CHECKs, e.g. "Momentum cannot be used with AdaGrad."). */
export class SolverConfigError extends SolverError {
  override readonly name: string = 'SolverConfigError';
  /** The SolverParameter field at fault, when there is one (file loaders point at its line). */
  readonly field: string | undefined;

  constructor(message: string, options?: { cause?: unknown; field?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.field = options?.field;
  }
}

/** `type` (or the deprecated `solver_type`) names no registered solver. */
export class UnknownSolverTypeError extends SolverError {
  override readonly name: string = 'UnknownSolverTypeError';
}

/** `lr_policy` names no known learning-rate policy. */
export class UnknownLrPolicyError extends SolverConfigError {
  override readonly name: string = 'UnknownLrPolicyError';
}

/** A SolverState that does not fit this solver and net (history count or shapes). */
export class SolverStateError extends SolverError {
  override readonly name: string = 'SolverStateError';
}
