import type { Net } from '@caffe-ts/net';
import { CaffeError } from '@caffe-ts/proto';
import type { NpyArray } from './npy.js';

/** A request the net cannot serve: an unknown input or blob name, an array that does not fit. */
export class InferenceError extends CaffeError {
  override readonly name = 'InferenceError';
}

/** A blob name as a file name: every character outside [A-Za-z0-9._-] becomes '_'. */
export function blobFileName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_');
}

/**
 * Feed arrays to a net's inputs (each input reshaped to its array's shape), reshape the net and
 * run it forward; returns the requested blobs (default: the net's outputs) as arrays.
 */
export function forwardArrays(net: Net, inputs: Readonly<Record<string, NpyArray>>, blobs?: readonly string[]): Map<string, NpyArray> {
  for (const [name, array] of Object.entries(inputs)) {
    if (!net.inputBlobNames.includes(name)) {
      throw new InferenceError(`'${name}' is not an input of net '${net.name}' (inputs: ${net.inputBlobNames.join(', ') || 'none'})`);
    }
    const blob = net.blob(name);
    blob.reshape(array.shape);
    blob.mutableCpuData().set(array.data);
  }
  const wanted = blobs && blobs.length > 0 ? [...blobs] : [...net.outputBlobNames];
  for (const name of wanted) {
    if (!net.hasBlob(name)) throw new InferenceError(`net '${net.name}' has no blob '${name}' (blobs: ${[...net.blobs.keys()].join(', ')})`);
  }
  net.reshape();
  net.forward();
  const out = new Map<string, NpyArray>();
  for (const name of wanted) {
    const b = net.blob(name);
    const data = b.cpuData();
    out.set(name, { shape: [...b.shape], data: data instanceof Float64Array ? Float64Array.from(data) : Float32Array.from(data) });
  }
  return out;
}
