/**
 * @caffe-ts/proto: Caffe's schema (caffe.proto), prototxt text format, and binary protobuf I/O.
 *
 * Pure exports only; the reflection root is built lazily on first use. Node file helpers live
 * in the separate `@caffe-ts/proto/node` entry so this one runs in browsers.
 */
export { CaffeError, CaffeFileError, ProtoBinaryError, ProtoSchemaError, ProtoTextError, errorMarker } from './errors.js';
export type { TextLocation } from './errors.js';

export { caffeRoot, hasField, lookupType } from './schema.js';
export type { Message } from './schema.js';

export { createMessage } from './create-message.js';
export { copyTextLocation, parseText, textLocationOf } from './text-parser.js';
export type { ParseTextOptions } from './text-parser.js';
export { formatFloat32, printText } from './text-printer.js';
export type { PrintTextOptions } from './text-printer.js';
export { decodeBinary, encodeBinary } from './binary.js';
export type { DecodeOptions } from './binary.js';
export { registerField, registerLayerParamField, registerProtoTypes } from './extend-schema.js';
export type { FieldSpec, LayerParamFieldSpec } from './extend-schema.js';

export {
  decodeBlobProto,
  decodeBlobProtoVector,
  decodeDatum,
  decodeNetParameter,
  decodeSolverParameter,
  decodeSolverState,
  encodeBlobProto,
  encodeBlobProtoVector,
  encodeDatum,
  encodeNetParameter,
  encodeSolverParameter,
  encodeSolverState,
  parseNetParameter,
  parseSolverParameter,
  printNetParameter,
  printSolverParameter,
} from './caffe-files.js';

export * from './generated/caffe-types.js';
export { CAFFE_PROTO_TEXT } from './generated/caffe-proto.js';

export { registerSsdForkSchema, SSD_FORK_LAYER_FIELDS, SSD_FORK_PROTO_TEXT, SSD_FORK_TRANSFORM_FIELDS } from './ssd-fork.js';
