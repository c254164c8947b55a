/**
 * Typed shortcuts for the message types Caffe's files hold:
 * .prototxt (NetParameter / SolverParameter), .caffemodel (NetParameter),
 * .solverstate (SolverState), .binaryproto (BlobProto or BlobProtoVector), DB records (Datum).
 */
import { decodeBinary, encodeBinary } from './binary.js';
import type { BlobProto, BlobProtoVector, Datum, NetParameter, SolverParameter, SolverState } from './generated/caffe-types.js';
import { parseText } from './text-parser.js';
import { printText } from './text-printer.js';

const at = (file: string | undefined) => (file === undefined ? {} : { file });

export function parseNetParameter(text: string, file?: string): NetParameter {
  return parseText<NetParameter>('NetParameter', text, at(file));
}
export function parseSolverParameter(text: string, file?: string): SolverParameter {
  return parseText<SolverParameter>('SolverParameter', text, at(file));
}
export function printNetParameter(msg: NetParameter): string {
  return printText('NetParameter', msg);
}
export function printSolverParameter(msg: SolverParameter): string {
  return printText('SolverParameter', msg);
}

export function decodeNetParameter(bytes: Uint8Array | ArrayBuffer, file?: string): NetParameter {
  return decodeBinary<NetParameter>('NetParameter', bytes, at(file));
}
export function decodeSolverParameter(bytes: Uint8Array | ArrayBuffer, file?: string): SolverParameter {
  return decodeBinary<SolverParameter>('SolverParameter', bytes, at(file));
}
export function decodeSolverState(bytes: Uint8Array | ArrayBuffer, file?: string): SolverState {
  return decodeBinary<SolverState>('SolverState', bytes, at(file));
}
export function decodeBlobProto(bytes: Uint8Array | ArrayBuffer, file?: string): BlobProto {
  return decodeBinary<BlobProto>('BlobProto', bytes, at(file));
}
export function decodeBlobProtoVector(bytes: Uint8Array | ArrayBuffer, file?: string): BlobProtoVector {
  return decodeBinary<BlobProtoVector>('BlobProtoVector', bytes, at(file));
}
export function decodeDatum(bytes: Uint8Array | ArrayBuffer, file?: string): Datum {
  return decodeBinary<Datum>('Datum', bytes, at(file));
}

export function encodeNetParameter(msg: NetParameter): Uint8Array {
  return encodeBinary('NetParameter', msg);
}
export function encodeSolverParameter(msg: SolverParameter): Uint8Array {
  return encodeBinary('SolverParameter', msg);
}
export function encodeSolverState(msg: SolverState): Uint8Array {
  return encodeBinary('SolverState', msg);
}
export function encodeBlobProto(msg: BlobProto): Uint8Array {
  return encodeBinary('BlobProto', msg);
}
export function encodeBlobProtoVector(msg: BlobProtoVector): Uint8Array {
  return encodeBinary('BlobProtoVector', msg);
}
export function encodeDatum(msg: Datum): Uint8Array {
  return encodeBinary('Datum', msg);
}
