import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createMessage, type BlobShape, type LayerParameter, type NetParameter } from '@caffe-ts/proto';
import { repoRoot } from './helpers.js';

/** tests/fixtures/oracle: written by scripts/oracle/make-fixtures.py (OpenCV's dnn module). */
export const oracleDir = join(repoRoot, 'tests/fixtures/oracle');

export interface OracleBlob {
  layer: string;
  top_index: number;
  top: string;
  file: string;
  shape: number[];
  net_output: boolean;
}

export interface OracleModel {
  name: string;
  /** Relative to the corpus. */
  prototxt: string;
  caffemodel: string;
  /** Layers cut from the prototxt before building (their tops come from `inputs` instead). */
  drop_layers: string[];
  inputs: { blob: string; file: string; shape: number[] }[];
  input_note: string;
  outputs: OracleBlob[];
}

export interface OracleManifest {
  oracle: string;
  command: string;
  models: OracleModel[];
}

export interface DeployShapes {
  oracle: string;
  nets: {
    file: string;
    skip?: string;
    inputs?: Record<string, number[]>;
    outputs?: Record<string, number[]>;
    /** [layer name, type, shapes of its tops]. */
    layers?: [string, string, number[][]][];
  }[];
}

export function readOracleJson<T>(name: string): T {
  return JSON.parse(readFileSync(join(oracleDir, name), 'utf8')) as T;
}

/**
 * Cut the named layers and give the named input blobs these shapes: an Input layer that makes
 * the blob gets the shape (legacy `input_dim` fields are an Input layer after the upgrade);
 * a blob no layer makes gets a new Input layer in front.
 */
export function setInputs(param: NetParameter, inputs: { blob: string; shape: number[] }[], drop: string[] = []): void {
  param.layer = param.layer.filter((l) => !drop.includes(l.name));
  const shape = (dims: number[]) => createMessage<BlobShape>('BlobShape', { dim: dims.slice() });
  const added: LayerParameter[] = [];
  for (const { blob, shape: dims } of inputs) {
    const layer = param.layer.find((l) => l.type === 'Input' && l.top.includes(blob));
    if (layer) {
      const ip = layer.input_param!;
      const k = layer.top.indexOf(blob);
      // One shape for several tops applies to each; give each its own before changing one.
      if (ip.shape.length === 1 && layer.top.length > 1) ip.shape = layer.top.map(() => shape(ip.shape[0]!.dim));
      ip.shape[k] = shape(dims);
    } else {
      added.push(
        createMessage<LayerParameter>('LayerParameter', {
          name: `input_${blob}`,
          type: 'Input',
          top: [blob],
          input_param: { shape: [{ dim: dims.slice() }] },
        }),
      );
    }
  }
  param.layer = [...added, ...param.layer];
}
