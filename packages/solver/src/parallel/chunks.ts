/*
 * Chunked split mode: dynamic load balancing of each batch among the replicas.
 *
 * With a static split each replica computes its fixed half of the batch and the step lasts as
 * long as the slowest one: a worker that starts late or that the OS deschedules for a few ms
 * (2 cores shared with other processes) leaves rank 0 waiting (LeNet ×2: 4-5 ms of a ~25 ms
 * step). Here rank 0 reads the whole batch with the train net's own data layers (exactly the
 * records a single-threaded run reads, in its order) into a shared staging buffer, and every
 * replica, built with Input layers of one chunk's shape in place of the data layers, takes the
 * batch's chunks from a shared counter until none is left: a slow rank computes fewer chunks.
 * Each chunk's loss is the mean over its rows, so with K equal chunks the batch's gradient is the
 * sum of the chunks' gradients (accumulated in each rank's diffs, as Caffe's backward does) / K:
 * the reduction scales by 1/K instead of 1/N; K a power of two keeps that scaling exact.
 */
import type { Blob, DType, FloatArray } from '@caffe-ts/blob';
import { layerIncluded, type Net, type NetStateLike } from '@caffe-ts/net';
import { createMessage, decodeBinary, encodeBinary, type LayerParameter, type NetParameter } from '@caffe-ts/proto';
import type { ChunkInit } from './protocol.js';

/**
 * Data-layer types whose top rows are the batch (their batch_size field). Not MemoryData: its
 * caller feeds the train net's layer, which chunked split moves into a net of its own.
 */
export const CHUNK_SOURCE_FIELDS: Record<string, string> = {
  Data: 'data_param',
  ImageData: 'image_data_param',
  WindowData: 'window_data_param',
  HDF5Data: 'hdf5_data_param',
};

/** The fewest rows per chunk the automatic choice makes more chunks than replicas for. */
export const MIN_AUTO_ROWS = 32;

/** What chunked split needs from the train net's definition (chunkPlan). */
export interface ChunkPlan {
  /** The data layers alone, whole batch (rank 0 reads the batches with it). */
  dataParam: NetParameter;
  /** Chunks per batch. */
  chunks: number;
  /** The train net's indices (in the filtered net) of the data layers: they lead the net. */
  sources: number;
}

/**
 * Whether the train net can be split into chunks, and how many per batch: every layer the net in
 * `state` keeps that takes no bottom is a data layer (CHUNK_SOURCE_FIELDS) at the start of the
 * net, and every data layer's batch divides by the chunk count. `requested` chunks per batch
 * (0: 2 × workers where that divides every batch into chunks of MIN_AUTO_ROWS rows or more, else
 * workers). Returns a reason string
 * when the net does not fit.
 */
export function chunkPlan(param: NetParameter, workers: number, state: NetStateLike, requested: number): ChunkPlan | string {
  if (param.layers.length > 0) return `net '${param.name}' uses the V1 'layers' format`;
  const kept = param.layer.filter((lp) => layerIncluded(lp, state, { log: false }));
  let sources = 0;
  while (sources < kept.length && kept[sources]!.bottom.length === 0) sources++;
  if (sources === 0) return 'the train net has no data layer';
  for (let i = sources; i < kept.length; i++) {
    if (kept[i]!.bottom.length === 0) return `layer '${kept[i]!.name}' (${kept[i]!.type}) takes no bottom but does not lead the net`;
  }
  const batches: number[] = [];
  for (const lp of kept.slice(0, sources)) {
    const sub = batchParam(lp);
    if (!sub) return `${lp.type} layer '${lp.name}' is not a data layer with a batch_size`;
    batches.push(sub.batch_size);
  }
  const fits = (k: number) => k >= workers && batches.every((b) => b % k === 0);
  // Automatic: 2 chunks per replica (a late or descheduled rank then gives away half its share)
  // where a chunk keeps at least MIN_AUTO_ROWS rows, else one per replica, taken first come first
  // served. Smaller batches run the layers less efficiently (LeNet b16 ~1.1x and b8 ~1.25x the
  // CPU per image of b64): on LeNet ×2, 4 chunks of 16 measured slower than 2 of 32 in
  // interleaved runs (and 2 of 32 faster than the static split).
  const auto = [2 * workers, workers].find((k) => fits(k) && (k === workers || Math.min(...batches) / k >= MIN_AUTO_ROWS));
  const chunks = requested > 0 ? requested : auto;
  if (chunks === undefined || !fits(chunks)) {
    return `the batch sizes (${batches.join(', ')}) do not divide into ${requested > 0 ? requested : workers} chunks`;
  }
  const dataParam = createMessage<NetParameter>('NetParameter', { name: `${param.name}_data` });
  dataParam.layer = kept.slice(0, sources);
  return { dataParam, chunks, sources };
}

function batchParam(lp: LayerParameter): { batch_size: number } | null {
  const field = CHUNK_SOURCE_FIELDS[lp.type];
  return field ? ((lp as unknown as Record<string, { batch_size: number } | null>)[field] ?? null) : null;
}

/**
 * The replicas' train net: `param` with each kept data layer replaced by an Input layer of the
 * same name and tops whose shapes are the data net's tops with rows / chunks on axis 0.
 */
export function chunkNetParameter(param: NetParameter, state: NetStateLike, dataNet: Net, plan: ChunkPlan): NetParameter {
  const out = decodeBinary<NetParameter>('NetParameter', encodeBinary('NetParameter', param));
  let source = 0;
  out.layer = out.layer.map((lp) => {
    if (source >= plan.sources || !layerIncluded(lp, state, { log: false }) || lp.bottom.length > 0) return lp;
    const tops = dataNet.topVecs[source++]!;
    return createMessage<LayerParameter>('LayerParameter', {
      name: lp.name,
      type: 'Input',
      top: [...lp.top],
      include: lp.include,
      exclude: lp.exclude,
      input_param: { shape: tops.map((b) => ({ dim: [b.shape[0]! / plan.chunks, ...b.shape.slice(1)] })) },
    });
  });
  return out;
}

/** The staging layout of the data net's tops (ChunkInit without the buffers). */
export function stagingLayout(dataNet: Net, plan: ChunkPlan, iterSize: number): Omit<ChunkInit, 'staging'> {
  const tops: ChunkInit['tops'] = [];
  let offset = 0;
  for (let i = 0; i < plan.sources; i++) {
    for (const b of dataNet.topVecs[i]!) {
      const rows = b.shape[0]!;
      if (!(rows > 0) || rows % plan.chunks !== 0) {
        throw new Error(`top of data layer '${dataNet.layerNames[i]}' has ${rows} rows, which do not divide into ${plan.chunks} chunks`);
      }
      tops.push({ offset, rows, rowSize: b.count() / rows });
      offset += b.count();
    }
  }
  return { tops, batchElements: offset, chunks: plan.chunks, total: plan.chunks * iterSize };
}

/** Views of a staging buffer: [batch][top]. */
export function stagingViews(buffer: SharedArrayBuffer, layout: Omit<ChunkInit, 'staging'>, dtype: DType): FloatArray[][] {
  const batches = layout.total / layout.chunks;
  const make = (at: number, n: number) => (dtype === 'float64' ? new Float64Array(buffer, at * 8, n) : new Float32Array(buffer, at * 4, n));
  return Array.from({ length: batches }, (_, i) => layout.tops.map((t) => make(i * layout.batchElements + t.offset, t.rows * t.rowSize)));
}

/** The Input tops of a chunk net that take the staged rows (in the layout's order). */
export function chunkInputs(net: Net, sources: number): Blob[] {
  const out: Blob[] = [];
  for (let i = 0; i < sources; i++) out.push(...net.topVecs[i]!);
  return out;
}

/** Copy rows [start, start + rows) of staged batch `views` into the inputs (reshaped to `rows` where they differ). */
export function loadRows(views: FloatArray[], layout: Omit<ChunkInit, 'staging'>, inputs: Blob[], start: number, rows: number): void {
  layout.tops.forEach((t, i) => {
    const blob = inputs[i]!;
    if (blob.shape[0] !== rows) blob.reshape([rows, ...blob.shape.slice(1)]);
    blob.mutableCpuData().set(views[i]!.subarray(start * t.rowSize, (start + rows) * t.rowSize));
  });
}

/** Copy chunk `k` (of the step's chunks) from the staged batches into the chunk net's inputs. */
export function loadChunk(views: FloatArray[][], layout: Omit<ChunkInit, 'staging'>, inputs: Blob[], k: number): void {
  const j = k % layout.chunks;
  const batch = views[Math.floor(k / layout.chunks)]!;
  layout.tops.forEach((t, i) => {
    const n = (t.rows / layout.chunks) * t.rowSize;
    inputs[i]!.mutableCpuData().set(batch[i]!.subarray(j * n, (j + 1) * n));
  });
}

/**
 * The loss tops of a net (their loss weight sits in their diff, as in Caffe), for scaling a share's
 * gradient by its rows: null when one is not a scalar (its count could follow the batch).
 */
export function lossTops(net: Net): { blob: Blob; weight: number }[] | null {
  const out: { blob: Blob; weight: number }[] = [];
  for (let l = 0; l < net.layers.length; l++) {
    const layer = net.layers[l]!;
    const tops = net.topVecs[l]!;
    for (let t = 0; t < tops.length; t++) {
      const weight = layer.lossWeight(t);
      if (weight === 0) continue;
      if (tops[t]!.count() !== 1) return null;
      out.push({ blob: tops[t]!, weight });
    }
  }
  return out;
}

/** Every loss top's weight × `factor` (a share of rows × ranks / batch of the batch's mean). */
export function scaleLossWeights(tops: readonly { blob: Blob; weight: number }[], factor: number): void {
  for (const t of tops) t.blob.mutableCpuDiff().fill(t.weight * factor);
}

/**
 * Balanced shares (ChunkInit.cuts): where rank 0 puts the cut between the two ranks' rows for the
 * next step. `late` = ms the worker (rows [cut, batch)) finished after rank 0 (negative: before),
 * `msPerRowBoth` = the two ranks' compute per row added: moving one row from one rank to the other
 * changes the gap by about that. Half of the correction is applied, at most batch/16 rows a step
 * (the OS deschedules threads for ms at a time: one step's gap is noisy), and the cut stays within
 * [batch/4, 3·batch/4].
 */
export function nextCut(cut: number, batch: number, late: number, msPerRowBoth: number): number {
  if (!Number.isFinite(late) || !(msPerRowBoth > 0)) return cut;
  const most = Math.max(1, batch / 16);
  const shift = Math.max(-most, Math.min(most, (0.5 * late) / msPerRowBoth));
  return Math.min(Math.ceil((3 * batch) / 4), Math.max(Math.floor(batch / 4), cut + shift));
}
