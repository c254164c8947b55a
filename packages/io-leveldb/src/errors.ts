import { CaffeError } from '@caffe-ts/proto';

/**
 * A data source problem: a database that is missing or cannot be opened, a record that does not
 * decode as a Datum, a Datum that does not fit the transformation, a malformed idx file.
 */
export class DataError extends CaffeError {
  override readonly name: string = 'DataError';
}
