/**
 * caffe draw_net NET.prototxt OUT.svg: Caffe's python/draw_net.py — the net as a graph, laid out
 * by Graphviz (@viz-js/viz, Graphviz compiled to WebAssembly: no native install) with draw.py's
 * styling: layers as filled records coloured by type, blobs as grey octagons, in-place layers
 * (one bottom equal to its one top) in light green, edges labelled with num_output / batch size.
 */
import { writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { instance } from '@viz-js/viz';
import { readNetParameter } from '@caffe-ts/net/node';
import { PoolingParameter_PoolMethod, Phase, type LayerParameter, type NetParameter } from '@caffe-ts/proto';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import type { Command } from './index.js';

export type Rankdir = 'LR' | 'TB' | 'BT' | 'RL';

export interface DrawNetOptions {
  rankdir?: Rankdir;
  /** Keep only layers included in this phase (draw.py's --phase); all layers when omitted. */
  phase?: Phase;
  /** Label edges into tops with num_output / batch size (draw.py's default). */
  labelEdges?: boolean;
}

const BLOB_STYLE = 'shape=octagon, fillcolor="#E0E0E0", style=filled';
const NEURON_STYLE = 'shape=record, fillcolor="#90EE90", style=filled';

function layerColor(type: string): string {
  switch (type) {
    case 'Convolution':
    case 'Deconvolution':
      return '#FF5050';
    case 'Pooling':
      return '#FF9900';
    case 'InnerProduct':
      return '#CC33FF';
    default:
      return '#6495ED';
  }
}

/** A DOT string literal. */
function q(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Escape text for a record label (|, {, }, <, > are record syntax). */
function recordText(s: string): string {
  return s.replace(/[\\|{}<>"]/g, (c) => `\\${c}`);
}

const first = (xs: readonly number[], fallback: number): number => (xs.length > 0 ? xs[0]! : fallback);

function layerLabel(layer: LayerParameter, rankdir: Rankdir): string {
  // draw.py stacks the lines for left-right layouts and keeps them on one line for top-bottom.
  const sep = rankdir === 'TB' || rankdir === 'BT' ? ' ' : '\\n';
  const name = recordText(layer.name);
  if ((layer.type === 'Convolution' || layer.type === 'Deconvolution') && layer.convolution_param) {
    const c = layer.convolution_param;
    const k = c.kernel_h || first(c.kernel_size, 1);
    const s = c.stride_h || first(c.stride, 1);
    const p = c.pad_h || first(c.pad, 0);
    return `${name}${sep}(${layer.type})${sep}kernel size: ${k}${sep}stride: ${s}${sep}pad: ${p}`;
  }
  if (layer.type === 'Pooling' && layer.pooling_param) {
    const pp = layer.pooling_param;
    const k = pp.kernel_h || pp.kernel_size;
    const s = pp.stride_h || pp.stride;
    const p = pp.pad_h || pp.pad;
    return `${name}${sep}(${PoolingParameter_PoolMethod[pp.pool]} ${layer.type})${sep}kernel size: ${k}${sep}stride: ${s}${sep}pad: ${p}`;
  }
  return `${name}${sep}(${layer.type})`;
}

function edgeLabel(layer: LayerParameter): string {
  if (layer.type === 'Data' && layer.data_param) return `Batch ${layer.data_param.batch_size}`;
  if ((layer.type === 'Convolution' || layer.type === 'Deconvolution') && layer.convolution_param) return String(layer.convolution_param.num_output);
  if (layer.type === 'InnerProduct' && layer.inner_product_param) return String(layer.inner_product_param.num_output);
  return '';
}

/** Whether draw.py keeps the layer for `phase` (include/exclude rules by phase only). */
function inPhase(layer: LayerParameter, phase: Phase | undefined): boolean {
  if (phase === undefined) return true;
  if (layer.include.length > 0 && layer.exclude.length > 0) {
    throw new UsageError(`layer '${layer.name}' has both include and exclude rules; draw_net cannot pick a phase for it`);
  }
  let included = layer.include.length === 0;
  for (const r of layer.include) included ||= r.phase === phase;
  for (const r of layer.exclude) included &&= r.phase !== phase;
  return included;
}

/** The net as a Graphviz DOT digraph in draw.py's style. */
export function netToDot(net: NetParameter, options: DrawNetOptions = {}): string {
  const rankdir = options.rankdir ?? 'LR';
  const labelEdges = options.labelEdges ?? true;
  const lines = [`digraph ${q(net.name || 'Network')} {`, `  graph [rankdir=${rankdir}, compound=true, label=${q(net.name || 'Network')}];`];
  const blobs = new Set<string>();
  const blob = (name: string): string => {
    const id = q(`blob:${name}`);
    if (!blobs.has(name)) {
      blobs.add(name);
      lines.push(`  ${id} [label=${q(name)}, ${BLOB_STYLE}];`);
    }
    return id;
  };
  net.layer.forEach((layer, i) => {
    if (!inPhase(layer, options.phase)) return;
    const id = q(`layer:${i}:${layer.name}`);
    const inPlace = layer.bottom.length === 1 && layer.top.length === 1 && layer.bottom[0] === layer.top[0];
    const style = inPlace ? NEURON_STYLE : `shape=record, fillcolor="${layerColor(layer.type)}", style=filled`;
    lines.push(`  ${id} [label=${q(layerLabel(layer, rankdir))}, ${style}];`);
    for (const b of layer.bottom) lines.push(`  ${blob(b)} -> ${id};`);
    const label = labelEdges ? edgeLabel(layer) : '';
    for (const t of layer.top) lines.push(`  ${id} -> ${blob(t)}${label ? ` [label=${q(label)}]` : ''};`);
  });
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Lay the net out with Graphviz's dot and return the SVG text. */
export async function drawNetSvg(net: NetParameter, options: DrawNetOptions = {}): Promise<string> {
  const viz = await instance();
  return viz.renderString(netToDot(net, options), { format: 'svg', engine: 'dot' });
}

export const drawNetCommand: Command = {
  summary: 'draw a net definition as a graph (SVG, or DOT for a .dot/.gv output), as python/draw_net.py',
  usage: 'NET.prototxt OUT.svg [--rankdir LR|TB|BT|RL] [--phase TRAIN|TEST|ALL]',
  async run({ flags, positional }) {
    const rankdir = (flags.string('rankdir', 'LR') ?? 'LR').toUpperCase();
    const phaseName = (flags.string('phase', 'ALL') ?? 'ALL').toUpperCase();
    flags.checkAllUsed();
    if (positional.length !== 2) throw new UsageError('draw_net takes a net definition and an output file');
    if (!['LR', 'TB', 'BT', 'RL'].includes(rankdir)) throw new UsageError(`--rankdir must be LR, TB, BT or RL, got '${rankdir}'`);
    if (!['TRAIN', 'TEST', 'ALL'].includes(phaseName)) throw new UsageError(`--phase must be TRAIN, TEST or ALL, got '${phaseName}'`);
    const options: DrawNetOptions = {
      rankdir: rankdir as Rankdir,
      ...(phaseName === 'ALL' ? {} : { phase: phaseName === 'TRAIN' ? Phase.TRAIN : Phase.TEST }),
    };
    const net = readNetParameter(userPath(positional[0]!), { log: false });
    const out = userPath(positional[1]!);
    const ext = extname(out).toLowerCase();
    if (ext === '.dot' || ext === '.gv') writeFileSync(out, netToDot(net, options));
    else if (ext === '.svg') writeFileSync(out, await drawNetSvg(net, options));
    else throw new UsageError(`draw_net writes .svg (or .dot/.gv), got '${out}'`);
    return 0;
  },
};
