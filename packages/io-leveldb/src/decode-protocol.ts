import type { ImreadMode } from './pixel-codec.js';
import type { TransformDraws, TransformSpec } from './transform-kernel.js';

/* Messages between the decode pool (decode-pool.ts) and its workers (decode-worker.ts). */

/** Where one image comes from: the bytes of an encoded Datum, or a file of an image list. */
export type DecodeSource =
  | { kind: 'bytes'; bytes: Uint8Array; mode: ImreadMode; what: string }
  | { kind: 'file'; path: string; height: number; width: number; isColor: boolean };

/** One image to decode and transform; `index` is its place in the batch. */
export interface DecodeItem {
  index: number;
  source: DecodeSource;
  draws: TransformDraws;
}

export type OutputDType = 'float32' | 'float64';

export type WorkerRequest =
  | { type: 'spec'; specId: number; spec: TransformSpec }
  | { type: 'drop'; specId: number }
  | {
      type: 'job';
      jobId: number;
      specId: number;
      dtype: OutputDType;
      /**
       * The batch buffer (shared with the main thread) and the item shape [C, h, w] it was laid out
       * for: an item whose transformed shape is that one is written at index · C·h·w; any other
       * comes back in a buffer of its own.
       */
      out: SharedArrayBuffer | null;
      expect: number[] | null;
      items: DecodeItem[];
    };

/** What became of one item. */
export interface ItemResult {
  index: number;
  /** [C, H, W] of the image as decoded (and resized), before the transformation. */
  image: [number, number, number] | null;
  /** [C, h, w] after the transformation. */
  shape: [number, number, number] | null;
  /** Written into the shared batch buffer. */
  placed: boolean;
  /** The transformed values when not placed (transferred, not copied). */
  data: Float32Array | Float64Array | null;
  /** Why the item failed; 'decode' for reading/decoding, 'transform' for the transformation. */
  error: { stage: 'decode' | 'transform'; message: string } | null;
}

export type WorkerReply = { type: 'done'; jobId: number; results: ItemResult[] } | { type: 'failed'; jobId: number; message: string };
