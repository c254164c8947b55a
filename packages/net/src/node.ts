/**
 * File helpers for Node (`@caffe-ts/net/node`): read a prototxt net definition, build a net from
 * a file, load a .caffemodel into a net, save a net's weights.
 *
 * These are synchronous (net construction and the CLI's set-up code are), built on the pure
 * parse/decode functions of @caffe-ts/proto with its CaffeFileError for file problems; writes are
 * atomic like @caffe-ts/proto/node's (temp file in the same folder, fsync, rename).
 */
import { readFileSync } from 'node:fs';
import { decodeBinary, encodeBinary, parseText, type NetParameter } from '@caffe-ts/proto';
import { fileError, writeFileAtomicSync } from '@caffe-ts/proto/node';
import { NetError } from './errors.js';
import { Net, type NetOptions } from './net.js';
import { upgradeNetAsNeeded } from './upgrade.js';

function readBytes(path: string): Uint8Array {
  try {
    const buf = readFileSync(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw fileError('read', path, err);
  }
}

/** Read a text NetParameter (.prototxt) and upgrade legacy fields (Caffe's ReadNetParamsFromTextFileOrDie). */
export function readNetParameter(path: string, options: { log?: boolean } = {}): NetParameter {
  const text = new TextDecoder('utf-8').decode(readBytes(path));
  const param = parseText<NetParameter>('NetParameter', text, { file: path });
  return upgradeNetAsNeeded(param, { file: path, log: options.log });
}

/** Build a net from a .prototxt file; errors name the file. */
export function loadNetFromFile(path: string, options: NetOptions = {}): Net {
  return new Net(readNetParameter(path, { log: options.log }), { ...options, name: options.name ?? path });
}

/** As loadNetFromFile, awaiting layers' async `prime` hooks (data layers). */
export async function createNetFromFile(path: string, options: NetOptions = {}): Promise<Net> {
  return Net.create(readNetParameter(path, { log: options.log }), { ...options, name: options.name ?? path });
}

/** HDF5's file signature; Caffe can also store weights as .caffemodel.h5. */
const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Read a binary NetParameter (.caffemodel) for its weights, upgraded as Caffe's
 * ReadNetParamsFromBinaryFileOrDie does: V0 and V1 models (BVLC's zoo models are V1) come back
 * as `layer`s that still hold their blobs.
 */
export function readNetWeights(path: string, options: { log?: boolean } = {}): NetParameter {
  const bytes = readBytes(path);
  if (bytes.length >= 8 && HDF5_SIGNATURE.every((b, i) => bytes[i] === b)) {
    throw new NetError(
      `${path}: HDF5 weights are read from files named *.h5 (as Caffe chooses), once HDF5 support is loaded ` +
        '(`await enableHdf5()` from @caffe-ts/solver/node; the caffe CLI does this)',
    );
  }
  return upgradeNetAsNeeded(decodeBinary<NetParameter>('NetParameter', bytes, { file: path }), { file: path, log: options.log });
}

/** Copies HDF5 weights (`.caffemodel.h5`) into a net; installed by @caffe-ts/solver/node's `enableHdf5()`. */
export type Hdf5WeightsLoader = (net: Net, path: string) => void;
let hdf5WeightsLoader: Hdf5WeightsLoader | undefined;

/** Install (or remove, with undefined) the reader copyTrainedLayersFromFile uses for HDF5 weights. */
export function setHdf5WeightsLoader(loader: Hdf5WeightsLoader | undefined): void {
  hdf5WeightsLoader = loader;
}

/**
 * Copy weights from a .caffemodel into the layers of `net` with the same names (Caffe's
 * CopyTrainedLayersFrom). A `.h5` file goes to the HDF5 loader, as Caffe chooses by suffix.
 */
export function copyTrainedLayersFromFile(net: Net, path: string): void {
  if (path.endsWith('.h5') && hdf5WeightsLoader) {
    hdf5WeightsLoader(net, path);
    return;
  }
  const weights = readNetWeights(path);
  try {
    net.copyTrainedLayersFrom(weights);
  } catch (e) {
    if (e instanceof NetError) throw new NetError(`${e.message} (weights file ${path})`, { cause: e });
    throw e;
  }
}

// Atomic synchronous writes live beside the async ones in @caffe-ts/proto/node.
export { writeFileAtomicSync };

/** Write the net's weights as a binary .caffemodel, atomically. */
export function saveNet(net: Net, path: string, { writeDiff = false }: { writeDiff?: boolean } = {}): void {
  writeFileAtomicSync(path, encodeBinary('NetParameter', net.toProto(writeDiff)));
}
export { netFromFiles, type NetFromFilesOptions } from './pycaffe-node.js';
