import { CaffeError } from '@caffe-ts/proto';

/** Bad arguments to a math routine (sizes that do not fit the arrays, unsupported shapes). */
export class MathError extends CaffeError {
  override readonly name: string = 'MathError';
}
