import { BYTES_PER_ELEMENT, type Blob } from '@caffe-ts/blob';
import type { Layer } from '@caffe-ts/layers';
import { Phase } from '@caffe-ts/proto';
import type { Net } from './net.js';

export interface LayerSummary {
  index: number;
  name: string;
  type: string;
  bottoms: string[];
  tops: string[];
  topShapes: number[][];
  /** Shapes of the layer's param blobs (weights first, in Caffe's order). */
  paramShapes: number[][];
  /** Elements in the param blobs this layer owns (shared params count at their owner). */
  paramCount: number;
  /** Floating-point operations of one forward pass (a multiply-add counts 2); null when not estimated. */
  flops: number | null;
  lossWeights: number[];
  needsBackward: boolean;
}

export interface NetSummary {
  name: string;
  phase: 'TRAIN' | 'TEST';
  layers: LayerSummary[];
  inputs: string[];
  outputs: string[];
  /** Elements in all learnable params (each shared blob once). */
  totalParams: number;
  /** Bytes of the learnable params' data. */
  paramBytes: number;
  /** Bytes of the data of all top blobs (Caffe's "Memory required for data"). */
  dataBytes: number;
  /** Sum of the layers' estimates (layers without one contribute nothing). */
  totalFlops: number;
}

/** Summarise a built net: what each layer produces, its params and an estimate of its cost. */
export function summarizeNet(net: Net): NetSummary {
  const layers = net.layers.map((layer, i): LayerSummary => {
    const paramIds = net.paramIdVecs[i]!;
    return {
      index: i,
      name: net.layerNames[i]!,
      type: layer.type,
      bottoms: net.bottomIdVecs[i]!.map((b) => net.blobNames[b]!),
      tops: net.topIdVecs[i]!.map((t) => net.blobNames[t]!),
      topShapes: net.topVecs[i]!.map((b) => b.shape.slice()),
      paramShapes: layer.blobs.map((b) => b.shape.slice()),
      paramCount: layer.blobs.reduce((n, b, j) => (net.paramOwners[paramIds[j]!]! < 0 ? n + b.count() : n), 0),
      flops: estimateFlops(layer, net.bottomVecs[i]!, net.topVecs[i]!),
      lossWeights: net.topVecs[i]!.map((_, t) => layer.lossWeight(t)),
      needsBackward: net.layerNeedBackward[i]!,
    };
  });
  const totalParams = net.learnableParams.reduce((n, b) => n + b.count(), 0);
  return {
    name: net.name,
    phase: net.phase === Phase.TRAIN ? 'TRAIN' : 'TEST',
    layers,
    inputs: net.inputBlobNames.slice(),
    outputs: net.outputBlobNames.slice(),
    totalParams,
    paramBytes: totalParams * BYTES_PER_ELEMENT[net.dtype],
    dataBytes: net.memoryBytes,
    totalFlops: layers.reduce((n, l) => n + (l.flops ?? 0), 0),
  };
}

/**
 * Forward FLOPs of the layers that dominate a net's cost, from their blobs: convolution and
 * inner product as 2·(multiply-adds) plus the bias adds; other layers are not estimated.
 */
export function estimateFlops(layer: Layer, bottom: Blob[], top: Blob[]): number | null {
  const weight = layer.blobs[0];
  const bias = layer.blobs[1];
  if (!weight || weight.numAxes === 0) return null;
  const topCount = top.reduce((n, b) => n + b.count(), 0);
  const biasAdds = bias ? topCount : 0;
  switch (layer.type) {
    case 'Convolution':
      // Each output element sums (C_in/group)·kernel products: the weight's per-filter count.
      return 2 * topCount * (weight.count() / weight.shape[0]!) + biasAdds;
    case 'Deconvolution': {
      const bottomCount = bottom.reduce((n, b) => n + b.count(), 0);
      return 2 * bottomCount * (weight.count() / weight.shape[0]!) + biasAdds;
    }
    case 'InnerProduct': {
      const transpose = layer.param.inner_product_param?.transpose ?? false;
      const k = transpose ? weight.shape[0]! : weight.count() / weight.shape[0]!;
      return 2 * topCount * k + biasAdds;
    }
    default:
      return null;
  }
}

/** A fixed-width table of a summary, one line per layer plus totals. */
export function formatNetSummary(s: NetSummary): string {
  const rows = s.layers.map((l) => [
    l.name,
    l.type,
    l.topShapes.map((sh) => sh.join('x')).join(', '),
    String(l.paramCount),
    l.flops === null ? '-' : humanCount(l.flops),
  ]);
  const header = ['layer', 'type', 'top shapes', 'params', 'FLOPs'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => r.map((v, c) => v.padEnd(widths[c]!)).join('  ').trimEnd();
  return [
    `Net '${s.name}' (${s.phase})`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    `Total params: ${s.totalParams} (${humanBytes(s.paramBytes)}); memory for data: ${humanBytes(s.dataBytes)}; ` +
      `forward FLOPs: ${humanCount(s.totalFlops)}`,
  ].join('\n');
}

function humanCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)}K`;
  return String(n);
}

function humanBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(2)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(2)} KiB`;
  return `${n} B`;
}
