/**
 * pycaffe-style conveniences over Net: feed named inputs, run, read named outputs.
 *
 * pycaffe's `net.forward(data=arr)` reshapes the input blobs, copies the arrays in and returns
 * a dict of the output blobs; `forwardWith` is that for TypeScript (Net.forward keeps returning
 * the loss, as Caffe's C++ does).
 */
import type { Blob } from '@caffe-ts/blob';
import { NetError } from './errors.js';
import type { Net } from './net.js';

/** An input array: data alone (keeps the blob's shape) or data with a new shape. */
export type InputArray = Float32Array | Float64Array | number[] | { shape: number[]; data: Float32Array | Float64Array | number[] };

export interface ForwardWithOptions {
  /** Blobs to return besides the net outputs (pycaffe's `blobs=[...]`). */
  blobs?: string[];
  /** Run layers start..end by name (pycaffe's `start=`/`end=`); default the whole net. */
  start?: string;
  end?: string;
}

/** Names of the net's input blobs (pycaffe's `net.inputs`). */
export function netInputs(net: Net): string[] {
  return [...net.inputBlobNames];
}

/** Names of the net's output blobs (pycaffe's `net.outputs`). */
export function netOutputs(net: Net): string[] {
  return [...net.outputBlobNames];
}

/**
 * Copy arrays into blobs by name; a `{shape, data}` input reshapes the blob first. Then the net is
 * reshaped so every layer's tops follow the new input shapes.
 */
export function setInputs(net: Net, inputs: Readonly<Record<string, InputArray>>): void {
  let reshaped = false;
  for (const [name, value] of Object.entries(inputs)) {
    if (!net.hasBlob(name)) {
      throw new NetError(`forwardWith: net '${net.name}' has no blob '${name}' (inputs: ${net.inputBlobNames.join(', ') || 'none'})`);
    }
    const blob = net.blob(name);
    const isShaped = !Array.isArray(value) && !ArrayBuffer.isView(value);
    const data = isShaped ? (value as { data: ArrayLike<number> }).data : (value as ArrayLike<number>);
    if (isShaped) {
      const shape = (value as { shape: number[] }).shape;
      if (shape.length !== blob.shape.length || shape.some((d, i) => d !== blob.shape[i])) {
        blob.reshape(shape);
        reshaped = true;
      }
    }
    if (data.length !== blob.count()) {
      throw new NetError(`forwardWith: input '${name}' has ${data.length} values but blob '${name}' is ${blob.shapeString()}`);
    }
    blob.mutableCpuData().set(data);
  }
  if (reshaped) net.reshape();
}

function copyOut(blob: Blob): Float32Array {
  const d = blob.cpuData();
  return d instanceof Float32Array ? d.slice() : Float32Array.from(d);
}

/**
 * Set the inputs, run forward and return copies of the output blobs (and any `blobs` asked for)
 * by name, like pycaffe's `net.forward(**inputs)`.
 */
export function forwardWith(net: Net, inputs: Readonly<Record<string, InputArray>> = {}, options: ForwardWithOptions = {}): Record<string, Float32Array> {
  setInputs(net, inputs);
  const start = options.start === undefined ? 0 : net.layerIndexOf(options.start);
  const end = options.end === undefined ? net.layers.length - 1 : net.layerIndexOf(options.end);
  if (start < 0) throw new NetError(`forwardWith: no layer '${options.start}' in net '${net.name}'`);
  if (end < 0) throw new NetError(`forwardWith: no layer '${options.end}' in net '${net.name}'`);
  if (net.layers.length > 0) net.forwardFromTo(start, end);
  const names = options.end === undefined ? [...net.outputBlobNames] : [...net.layers[end]!.param.top];
  for (const b of options.blobs ?? []) if (!names.includes(b)) names.push(b);
  const out: Record<string, Float32Array> = {};
  for (const n of names) out[n] = copyOut(net.blob(n));
  return out;
}
