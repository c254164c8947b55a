/**
 * Typed errors shared by every caffe-ts package.
 *
 * `instanceof` breaks when an app ends up with two copies of a package, so each error carries
 * `Symbol.for` markers (global across copies) and classes offer `static isInstance(e)` that
 * checks them. The base marker is `Symbol.for('caffe-ts.error')`; every class in the chain adds
 * `Symbol.for('caffe-ts.error.<Name>')`, where Name is the class's static `errorName` if it
 * declares one, else its class name. Subclasses elsewhere get markers without doing anything.
 */

const BASE_MARKER = Symbol.for('caffe-ts.error');

/** The `Symbol.for` marker that instances of the error class called `name` carry. */
export function errorMarker(name: string): symbol {
  return Symbol.for(`caffe-ts.error.${name}`);
}

function markerNameOf(ctor: object): string | undefined {
  if (Object.prototype.hasOwnProperty.call(ctor, 'errorName')) {
    const n = (ctor as { errorName?: unknown }).errorName;
    if (typeof n === 'string') return n;
  }
  const n = (ctor as { name?: unknown }).name;
  return typeof n === 'string' && n !== '' ? n : undefined;
}

export class CaffeError extends Error {
  override readonly name: string = 'CaffeError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    const self = this as unknown as Record<symbol, boolean>;
    self[BASE_MARKER] = true;
    // Mark every class from the concrete one up to CaffeError.
    for (let c: object | null = new.target; c && c !== Error && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
      const n = markerNameOf(c);
      if (n) self[errorMarker(n)] = true;
      if (c === CaffeError) break;
    }
  }

  /**
   * True when `e` is an instance of the class this is called on, from any copy of the package:
   * `CaffeError.isInstance(e)`, `ProtoTextError.isInstance(e)`, `MyError.isInstance(e)`.
   */
  static isInstance<C extends abstract new (...args: never[]) => CaffeError>(this: C, e: unknown): e is InstanceType<C> {
    if (typeof e !== 'object' || e === null) return false;
    const rec = e as Record<symbol, unknown>;
    if (rec[BASE_MARKER] !== true) return false;
    if ((this as unknown) === CaffeError) return true;
    if (e instanceof this) return true;
    const n = markerNameOf(this);
    return n !== undefined && rec[errorMarker(n)] === true;
  }
}

/** Where a text-format problem is: 1-based line and column, plus the field path. */
export interface TextLocation {
  file?: string;
  line: number;
  column: number;
  /** e.g. `layer[3].convolution_param.kernel_size`; '' at the top level. */
  fieldPath: string;
}

/** A prototxt (protobuf text format) that does not fit the schema or is malformed. */
export class ProtoTextError extends CaffeError {
  override readonly name: string = 'ProtoTextError';
  readonly file: string | undefined;
  readonly line: number;
  readonly column: number;
  readonly fieldPath: string;
  /** The message without the `file:line:column:` prefix. */
  readonly reason: string;

  constructor(reason: string, loc: TextLocation) {
    super(`${loc.file ?? '<text>'}:${loc.line}:${loc.column}: ${reason}`);
    this.file = loc.file;
    this.line = loc.line;
    this.column = loc.column;
    this.fieldPath = loc.fieldPath;
    this.reason = reason;
  }
}

/** Bytes that do not decode as the expected message (truncated, corrupt or not protobuf). */
export class ProtoBinaryError extends CaffeError {
  override readonly name: string = 'ProtoBinaryError';
  readonly file: string | undefined;
  /** Byte offset where decoding stopped. */
  readonly offset: number;
  /** Fully qualified type being decoded, e.g. `caffe.NetParameter`. */
  readonly typeName: string;
  /** Field path of the sub-message being decoded, e.g. `layer[3].blobs[0]`; '' at the top level. */
  readonly fieldPath: string;

  constructor(reason: string, info: { file?: string; offset: number; typeName: string; fieldPath?: string; cause?: unknown }) {
    super(
      `${info.file ?? '<bytes>'}: cannot decode ${info.typeName} at byte ${info.offset}: ${reason}`,
      info.cause === undefined ? undefined : { cause: info.cause },
    );
    this.file = info.file;
    this.offset = info.offset;
    this.typeName = info.typeName;
    this.fieldPath = info.fieldPath ?? '';
  }
}

/** A value or schema change that does not fit the schema (unknown type, field clash, bad value). */
export class ProtoSchemaError extends CaffeError {
  override readonly name: string = 'ProtoSchemaError';
}

/** A file that cannot be read or written. */
export class CaffeFileError extends CaffeError {
  override readonly name: string = 'CaffeFileError';
  readonly path: string;
  /** Node's error code when there is one (ENOENT, EACCES, ...). */
  readonly code: string | undefined;

  constructor(message: string, info: { path: string; code?: string; cause?: unknown }) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.path = info.path;
    this.code = info.code;
  }
}
