/*
 * Data-parallel inference over many inputs (`caffe forward --workers N`): the inputs' rows (axis 0,
 * the batch) are divided into N contiguous blocks, replica r runs block r through its own copy of
 * the net (weights in one shared arena), and the wanted blobs' rows are put back together in
 * order. Each row goes through the same layers as in one net holding the whole batch, so the
 * result is the same as one worker's for nets whose rows do not interact (no BatchNorm in training
 * mode, no loss over the batch); a wanted blob whose first axis is not the batch is refused.
 */
import type { DType } from '@caffe-ts/blob';
import type { Net } from '@caffe-ts/net';
import { encodeBinary, Phase, type NetParameter } from '@caffe-ts/proto';
import { ParallelConfigError, WorkerPool, availableCores } from './pool.js';
import { CMD, alignElements, type ForwardBlob, type ForwardJob, type ParamSlot } from './protocol.js';
import { applyKernelThreads, arenaView } from './replica.js';

export interface ForwardArray {
  shape: number[];
  data: Float32Array | Float64Array;
}

export interface ParallelForwardOptions {
  /** Rank 0's net (TEST phase, weights loaded); its params move into shared memory. */
  net: Net;
  /** The definition `net` was built from, for the workers' replicas. */
  param: NetParameter;
  /** The file the definition came from (paths inside resolve against it). */
  netFile?: string;
  /** Arrays for the net's input blobs, all with the same number of rows (axis 0). */
  inputs: Readonly<Record<string, ForwardArray>>;
  /** Blobs to return (default: the net's outputs). */
  blobs?: readonly string[];
  /** Replicas, this thread included (fewer when there are fewer rows). */
  workers: number;
  register?: readonly string[];
  /** Kernel threads per replica (default: cores / replicas, at least 1). */
  kernelThreads?: number;
}

/** Rows [from, to) of `job`'s inputs through `net`; the wanted blobs (their rows only), checked to hold the batch on axis 0. */
export function runForwardRows(net: Net, job: ForwardJob): ForwardBlob[] {
  const rows = job.to - job.from;
  for (const input of job.inputs) {
    const blob = net.blob(input.name);
    const per = input.shape.slice(1).reduce((a, b) => a * b, 1);
    blob.reshape([rows, ...input.shape.slice(1)]);
    const all = blob.dtype === 'float64' ? new Float64Array(input.data) : new Float32Array(input.data);
    blob.mutableCpuData().set(all.subarray(job.from * per, job.to * per));
  }
  net.reshape();
  net.forward();
  return job.blobs.map((name) => {
    const b = net.blob(name);
    if (b.shape.length === 0 || b.shape[0] !== rows) {
      throw new ParallelConfigError(
        `data-parallel forward: blob '${name}' has shape ${b.shapeString()}, whose first axis is not the ${rows} input rows ` +
          `given to this replica, so the replicas' results cannot be put back together (run it with one worker)`,
      );
    }
    const data = b.cpuData();
    return { name, shape: [...b.shape], data: data instanceof Float64Array ? Float64Array.from(data) : Float32Array.from(data) };
  });
}

/** Data-parallel `forward` over the inputs' rows; returns the wanted blobs with all the rows, in order. */
export async function parallelForward(options: ParallelForwardOptions): Promise<Map<string, ForwardArray>> {
  const { net } = options;
  const entries = Object.entries(options.inputs);
  if (entries.length === 0) throw new ParallelConfigError('data-parallel forward: no inputs');
  for (const [name] of entries) {
    if (!net.inputBlobNames.includes(name)) {
      throw new ParallelConfigError(`'${name}' is not an input of net '${net.name}' (inputs: ${net.inputBlobNames.join(', ') || 'none'})`);
    }
  }
  const rows = entries[0]![1].shape[0] ?? 0;
  for (const [name, a] of entries) {
    if (a.shape.length === 0 || a.shape[0] !== rows) {
      throw new ParallelConfigError(
        `data-parallel forward: every input needs the same number of rows (axis 0); '${entries[0]![0]}' has ${rows}, '${name}' has shape ${a.shape.join(' ')}`,
      );
    }
  }
  const wanted = options.blobs && options.blobs.length > 0 ? [...options.blobs] : [...net.outputBlobNames];
  for (const name of wanted) {
    if (!net.hasBlob(name)) throw new ParallelConfigError(`net '${net.name}' has no blob '${name}' (blobs: ${[...net.blobs.keys()].join(', ')})`);
  }
  if (!Number.isInteger(options.workers) || options.workers < 1) throw new ParallelConfigError(`workers must be an integer >= 1 (got ${options.workers})`);
  const n = Math.max(1, Math.min(options.workers, rows));
  const dtype: DType = net.dtype;
  const elem = dtype === 'float64' ? 8 : 4;
  const inputs = entries.map(([name, a]) => {
    const sab = new SharedArrayBuffer(Math.max(1, a.data.length) * elem);
    (dtype === 'float64' ? new Float64Array(sab) : new Float32Array(sab)).set(a.data);
    return { name, shape: [...a.shape], data: sab };
  });
  const range = (r: number): [number, number] => [Math.floor((rows * r) / n), Math.floor((rows * (r + 1)) / n)];
  const job = (r: number): ForwardJob => ({ inputs, blobs: wanted, from: range(r)[0], to: range(r)[1] });
  if (n === 1) return assemble([runForwardRows(net, job(0))], wanted);

  const kernelThreads = options.kernelThreads ?? Math.max(1, Math.floor(availableCores() / n));
  const kernelsBefore = await applyKernelThreads(kernelThreads);
  const slots: ParamSlot[] = [];
  let total = 0;
  for (const blob of net.learnableParams) {
    slots.push({ offset: total, count: blob.count(), frozen: false });
    total += alignElements(blob.count(), dtype);
  }
  const data = new SharedArrayBuffer(Math.max(1, total) * elem);
  net.learnableParams.forEach((blob, i) => {
    const view = arenaView(data, dtype, slots[i]!.offset, slots[i]!.count);
    view.set(blob.cpuData());
    blob.data.setCpuData(view);
  });
  const pool = new WorkerPool(n);
  try {
    const netBinary = encodeBinary('NetParameter', options.param);
    await pool.start((rank) => ({
      kind: 'forward',
      rank,
      count: n,
      netBinary,
      phase: net.phase ?? Phase.TEST,
      level: 0,
      stages: [],
      ...(options.netFile !== undefined ? { netFile: options.netFile } : {}),
      dtype,
      backend: net.backend.name,
      register: [...(options.register ?? [])],
      kernelThreads,
      seed: -1,
      iterSize: 1,
      shard: false,
      profile: false,
      data,
      diff: null,
      frozen: null,
      slots,
      share: null,
      forward: job(rank),
      cwd: process.cwd(),
    }));
    pool.command(CMD.FORWARD);
    let mine: ForwardBlob[] | undefined;
    let failure: unknown;
    try {
      await net.prepare();
      mine = runForwardRows(net, job(0));
    } catch (e) {
      failure = e;
    }
    await pool.waitDone();
    if (failure !== undefined) throw failure;
    const theirs = await pool.takeResults<ForwardBlob[]>('forward-result');
    return assemble([mine!, ...Array.from({ length: n - 1 }, (_, i) => theirs.get(i + 1)!)], wanted);
  } finally {
    await pool.close();
    await applyKernelThreads(kernelsBefore);
  }
}

/** The ranks' rows of each wanted blob, concatenated along axis 0 in rank order. */
function assemble(parts: readonly ForwardBlob[][], wanted: readonly string[]): Map<string, ForwardArray> {
  const out = new Map<string, ForwardArray>();
  wanted.forEach((name, k) => {
    const pieces = parts.map((p) => p[k]!);
    const first = pieces[0]!;
    const rest = first.shape.slice(1);
    for (const p of pieces) {
      if (p.shape.slice(1).join(' ') !== rest.join(' ')) {
        throw new ParallelConfigError(`data-parallel forward: blob '${name}' came back as ${first.shape.join(' ')} from one replica and ${p.shape.join(' ')} from another`);
      }
    }
    const length = pieces.reduce((a, p) => a + p.data.length, 0);
    const data = first.data instanceof Float64Array ? new Float64Array(length) : new Float32Array(length);
    let at = 0;
    for (const p of pieces) {
      data.set(p.data, at);
      at += p.data.length;
    }
    out.set(name, { shape: [pieces.reduce((a, p) => a + p.shape[0]!, 0), ...rest], data });
  });
  return out;
}
