/**
 * pycaffe-style conveniences over Net: feed named inputs, run, read named outputs.
 *
 * pycaffe's `net.forward(data=arr)` reshapes the input blobs, copies the arrays in and returns
 * a dict of the output blobs; `forwardWith` is that for TypeScript (Net.forward keeps returning
 * the loss, as Caffe's C++ does).
 */
import type { Blob } from '@caffe-ts/blob';
import { MemoryDataLayer } from '@caffe-ts/layers';
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

/** The index of the layer named `name` (pycaffe's start=/end=), `fallback` when none is named. */
function layerAt(net: Net, what: string, name: string | undefined, fallback: number): number {
  if (name === undefined) return fallback;
  const i = net.layerIndexOf(name);
  if (i < 0) throw new NetError(`${what}: no layer '${name}' in net '${net.name}'`);
  return i;
}

/** Copies of blobs by name: `names`, then any of `extra` not among them. */
function copies(net: Net, names: string[], extra: readonly string[] | undefined, copy: (blob: Blob) => Float32Array): Record<string, Float32Array> {
  for (const n of extra ?? []) if (!names.includes(n)) names.push(n);
  const out: Record<string, Float32Array> = {};
  for (const n of names) out[n] = copy(net.blob(n));
  return out;
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
  const start = layerAt(net, 'forwardWith', options.start, 0);
  const end = layerAt(net, 'forwardWith', options.end, net.layers.length - 1);
  if (net.layers.length > 0) net.forwardFromTo(start, end);
  const names = options.end === undefined ? [...net.outputBlobNames] : [...net.layers[end]!.param.top];
  return copies(net, names, options.blobs, copyOut);
}

/** Rows of an array and their shape (shape[0] rows). */
export interface BatchArray {
  shape: number[];
  data: Float32Array | Float64Array | number[];
}

/** Arrays stacked by rows: shape [rows, …per row]. */
export type StackedArrays = Record<string, { shape: number[]; data: Float32Array }>;

/**
 * The rows of `arrays` (their first axis, the same number in each) cut into batches of `batch`
 * rows, the last one filled up with zeros, as pycaffe's `Net._batch`. Each batch is yielded with
 * how many of its rows are real.
 */
function* batchesOf(
  what: string,
  arrays: Readonly<Record<string, BatchArray>>,
  batch: number,
  role: (name: string) => string = () => 'input',
): Generator<{ take: number; fed: Record<string, InputArray> }> {
  const names = Object.keys(arrays);
  const rows = arrays[names[0]!]!.shape[0]!;
  if (!(Number.isInteger(rows) && rows > 0)) throw new NetError(`${what}: ${role(names[0]!)} '${names[0]}' has no rows (shape ${arrays[names[0]!]!.shape.join('×')})`);
  const perRow: Record<string, number> = {};
  for (const name of names) {
    const { shape, data } = arrays[name]!;
    if (shape[0] !== rows) throw new NetError(`${what}: ${role(name)} '${name}' has ${shape[0]} rows where '${names[0]}' has ${rows}`);
    const size = shape.slice(1).reduce((a, b) => a * b, 1);
    if (data.length !== rows * size) throw new NetError(`${what}: ${role(name)} '${name}' has ${data.length} values for shape ${shape.join('×')}`);
    perRow[name] = size;
  }
  for (let start = 0; start < rows; start += batch) {
    const take = Math.min(batch, rows - start);
    const fed: Record<string, InputArray> = {};
    for (const name of names) {
      const { shape, data } = arrays[name]!;
      const size = perRow[name]!;
      const padded = new Float32Array(batch * size);
      for (let i = 0; i < take * size; i++) padded[i] = data[start * size + i]!;
      fed[name] = { shape: [batch, ...shape.slice(1)], data: padded };
    }
    yield { take, fed };
  }
}

/** Collects the first `take` rows of each batch's copies of blobs, and stacks them at the end. */
class RowStack {
  private readonly parts = new Map<string, { shape: number[]; parts: Float32Array[] }>();

  add(net: Net, values: Record<string, Float32Array>, take: number): void {
    for (const [name, v] of Object.entries(values)) {
      const shape = net.blob(name).shape;
      const size = v.length / (shape[0] || 1);
      let entry = this.parts.get(name);
      if (!entry) this.parts.set(name, (entry = { shape: [0, ...shape.slice(1)], parts: [] }));
      entry.parts.push(v.subarray(0, take * size));
      entry.shape[0]! += take;
    }
  }

  stacked(): StackedArrays {
    const result: StackedArrays = {};
    for (const [name, { shape, parts }] of this.parts) {
      const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        data.set(p, at);
        at += p.length;
      }
      result[name] = { shape, data };
    }
    return result;
  }
}

/** The batch size pycaffe's batching uses: the first axis of the net's first input (else of `fallback`). */
function batchSize(net: Net, fallback: string): number {
  return net.blob(net.inputBlobNames[0] ?? fallback).shape[0] ?? 1;
}

/**
 * pycaffe's `net.forward_all(blobs, **inputs)`: the inputs' rows (their first axis; the same
 * number for every input) go through the net in batches of its first input's size. The last
 * batch is filled up with zeros, and the rows that padding produced are dropped from the results.
 * Returns the outputs (and `blobs`) with every batch's rows stacked: shape [rows, …per row].
 */
export function forwardAll(net: Net, inputs: Readonly<Record<string, BatchArray>>, options: { blobs?: string[] } = {}): StackedArrays {
  const names = Object.keys(inputs);
  if (names.length === 0) throw new NetError(`forwardAll: no inputs given (net '${net.name}' takes ${net.inputBlobNames.join(', ') || 'none'})`);
  const outs = new RowStack();
  for (const { take, fed } of batchesOf('forwardAll', inputs, batchSize(net, names[0]!))) outs.add(net, forwardWith(net, fed, { blobs: options.blobs }), take);
  return outs.stacked();
}

/**
 * pycaffe's `net.forward_backward_all(blobs, diffs, **arrays)`: `arrays` holds rows of the net's
 * inputs (fed forward) and of its outputs' diffs (fed backward: all of the outputs or none, as
 * backwardWith), the same number of rows in each. They run in batches of the first input's size,
 * a forward then a backward per batch, the last batch filled up with zeros. Returns the outputs
 * (and `blobs`) and the inputs' diffs (and `diffs`), each with the batches' rows stacked and the
 * padding's rows dropped. An output fed a diff must have one row per item (shape [batch, …]).
 */
export function forwardBackwardAll(
  net: Net,
  arrays: Readonly<Record<string, BatchArray>>,
  options: { blobs?: string[]; diffs?: string[] } = {},
): { outputs: StackedArrays; diffs: StackedArrays } {
  const names = Object.keys(arrays);
  if (names.length === 0) throw new NetError(`forwardBackwardAll: no arrays given (net '${net.name}' takes ${net.inputBlobNames.join(', ') || 'none'}; outputs ${net.outputBlobNames.join(', ') || 'none'})`);
  const batch = batchSize(net, names[0]!);
  for (const name of names) {
    if (net.inputBlobNames.includes(name)) continue;
    if (!net.outputBlobNames.includes(name)) {
      throw new NetError(`forwardBackwardAll: '${name}' is neither an input (${net.inputBlobNames.join(', ') || 'none'}) nor an output (${net.outputBlobNames.join(', ') || 'none'}) of net '${net.name}'`);
    }
    const shape = net.blob(name).shape;
    if (shape[0] !== batch) throw new NetError(`forwardBackwardAll: output '${name}' is ${net.blob(name).shapeString()}, not one row per item of the batch (${batch}), so its diffs cannot be fed in rows`);
  }
  const outputsGiven = names.filter((n) => net.outputBlobNames.includes(n));
  if (outputsGiven.length > 0 && outputsGiven.length !== net.outputBlobNames.length) {
    throw new NetError(`forwardBackwardAll: diffs given for ${outputsGiven.join(', ')}, but the net's outputs are ${net.outputBlobNames.join(', ')}: give all of them or none`);
  }
  const outs = new RowStack();
  const diffs = new RowStack();
  const role = (name: string) => (net.inputBlobNames.includes(name) ? 'input' : 'diff of output');
  for (const { take, fed } of batchesOf('forwardBackwardAll', arrays, batch, role)) {
    const forward: Record<string, InputArray> = {};
    const backward: Record<string, ArrayLike<number>> = {};
    for (const [name, value] of Object.entries(fed)) {
      if (net.inputBlobNames.includes(name)) forward[name] = value;
      else backward[name] = (value as { data: Float32Array }).data;
    }
    outs.add(net, forwardWith(net, forward, { blobs: options.blobs }), take);
    diffs.add(net, backwardWith(net, backward, { diffs: options.diffs }), take);
  }
  return { outputs: outs.stacked(), diffs: diffs.stacked() };
}

/**
 * pycaffe's `net.set_input_arrays(data, labels)`: hands N items (N×C×H×W data and N labels, N a
 * multiple of the batch) to the MemoryData layer that must be the net's first layer; its forward
 * passes then serve them batch by batch. Arrays of the net's float type are kept, not copied, as
 * MemoryDataLayer.reset keeps them (later writes reach the batches served after); others are converted.
 */
export function setInputArrays(net: Net, data: BatchArray, labels: BatchArray | Float32Array | Float64Array | number[]): void {
  const layer = net.layers[0];
  if (!(layer instanceof MemoryDataLayer)) {
    throw new NetError(`setInputArrays may only be called if the first layer is a MemoryData layer (net '${net.name}' starts with ${layer ? `${layer.type} layer '${layer.param.name}'` : 'no layer'})`);
  }
  const item = net.topVecs[0]![0]!.shape.slice(1);
  const n = data.shape[0]!;
  if (data.shape.length !== 4 || data.shape.slice(1).some((d, i) => d !== item[i])) {
    throw new NetError(`setInputArrays: data array must be N×${item.join('×')} for layer '${layer.param.name}', got ${data.shape.join('×')}`);
  }
  const labelValues = Array.isArray(labels) || ArrayBuffer.isView(labels) ? (labels as ArrayLike<number>) : (labels as BatchArray).data;
  if (labelValues.length !== n) throw new NetError(`setInputArrays: data and labels must have the same first dimension (${n} items, ${labelValues.length} labels)`);
  const floats = (a: ArrayLike<number>) =>
    net.dtype === 'float64' ? (a instanceof Float64Array ? a : Float64Array.from(a)) : a instanceof Float32Array ? a : Float32Array.from(a);
  layer.reset(floats(data.data), floats(labelValues), n);
}

export interface BackwardWithOptions {
  /** Diffs to return besides the inputs' (pycaffe's `diffs=[...]`). */
  diffs?: string[];
  /** Run layers start down to end by name (pycaffe's `start=`/`end=`); default the whole net. */
  start?: string;
  end?: string;
}

function copyDiff(blob: Blob): Float32Array {
  const d = blob.cpuDiff();
  return d instanceof Float32Array ? d.slice() : Float32Array.from(d);
}

/**
 * pycaffe's `net.backward(diffs, **top_diffs)`: sets the output blobs' diffs (all of the net's
 * outputs, or none to keep what is there), runs backward and returns copies of the inputs' diffs
 * (with `end`, the bottoms of that layer) and of any `diffs` asked for.
 */
export function backwardWith(net: Net, topDiffs: Readonly<Record<string, ArrayLike<number>>> = {}, options: BackwardWithOptions = {}): Record<string, Float32Array> {
  const start = layerAt(net, 'backwardWith', options.start, net.layers.length - 1);
  const end = layerAt(net, 'backwardWith', options.end, 0);
  const given = Object.keys(topDiffs);
  if (given.length > 0) {
    const outputs = [...net.outputBlobNames];
    if (given.length !== outputs.length || !given.every((k) => outputs.includes(k))) {
      throw new NetError(`backwardWith: top diff arguments do not match net outputs (given ${given.join(', ')}; outputs ${outputs.join(', ')})`);
    }
    for (const [name, diff] of Object.entries(topDiffs)) {
      const blob = net.blob(name);
      if (diff.length !== blob.count()) throw new NetError(`backwardWith: diff for '${name}' has ${diff.length} values but blob '${name}' is ${blob.shapeString()}`);
      blob.mutableCpuDiff().set(diff);
    }
  }
  if (net.layers.length > 0) net.backwardFromTo(start, end);
  const names = options.end === undefined ? [...net.inputBlobNames] : [...net.layers[end]!.param.bottom];
  return copies(net, names, options.diffs, copyDiff);
}
