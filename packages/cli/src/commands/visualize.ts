/**
 * caffe visualize: a layer's learned filters (or, with --input, the activations of one image) as
 * a grid of tiles in a PNG, as the "vis_square" figures of Caffe's classification notebook.
 *
 * Filters of shape N×C×kh×kw give N colour tiles when C is 3 (channels read as BGR, Caffe's
 * order) and N·C grey tiles otherwise; activations N×C×H×W give C grey tiles of the first item.
 * Values are scaled to 0..255 over the whole grid. The grid has ceil(√tiles) columns, each tile is
 * enlarged `scale` times (default: to about 32 pixels) and tiles are 1 pixel apart, on white.
 */
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { forwardWith, Net } from '@caffe-ts/net';
import { readImage } from '@caffe-ts/io-leveldb';
import { Phase } from '@caffe-ts/proto';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { cliRegistry } from './common.js';
import type { Command } from './index.js';

export interface TileGrid {
  width: number;
  height: number;
  /** 3 channels, RGB, row-major. */
  rgb: Uint8Array;
  tiles: number;
  columns: number;
  rows: number;
}

/**
 * Tile `count` planes of `th`×`tw` (each `channels` deep, 1 or 3, channel-major like a blob) into
 * one RGB image. `data` holds count·channels·th·tw values; `bgr` says 3-channel planes are BGR.
 */
export function tileGrid(data: ArrayLike<number>, count: number, channels: 1 | 3, th: number, tw: number, scale: number, bgr = true): TileGrid {
  const columns = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / columns);
  const pad = 1;
  const tileH = th * scale;
  const tileW = tw * scale;
  const width = columns * tileW + (columns - 1) * pad;
  const height = rows * tileH + (rows - 1) * pad;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < count * channels * th * tw; i++) {
    const v = data[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const range = hi > lo ? hi - lo : 1;
  const plane = th * tw;
  for (let t = 0; t < count; t++) {
    const ox = (t % columns) * (tileW + pad);
    const oy = Math.floor(t / columns) * (tileH + pad);
    for (let y = 0; y < tileH; y++) {
      const sy = Math.floor(y / scale);
      for (let x = 0; x < tileW; x++) {
        const sx = Math.floor(x / scale);
        const o = ((oy + y) * width + ox + x) * 3;
        for (let c = 0; c < 3; c++) {
          const srcC = channels === 1 ? 0 : bgr ? 2 - c : c;
          const v = data[(t * channels + srcC) * plane + sy * tw + sx]!;
          rgb[o + c] = Math.round(((v - lo) / range) * 255);
        }
      }
    }
  }
  return { width, height, rgb, tiles: count, columns, rows };
}

export const visualizeCommand: Command = {
  summary: 'tile a layer\'s filters (or its activations for --input IMAGE) into a PNG grid',
  usage: '--model M.prototxt [--weights W.caffemodel] --layer conv1 [--input IMAGE [--input_scale 1]] [--scale K] OUT.png',
  async run({ flags, positional }) {
    const model = flags.string('model');
    const weights = flags.string('weights');
    const layerName = flags.string('layer');
    const input = flags.string('input');
    const inputScale = Number(flags.string('input_scale', '1'));
    const scaleFlag = flags.int('scale', 0);
    flags.checkAllUsed();
    if (!model) throw new UsageError('visualize needs --model');
    if (!layerName) throw new UsageError('visualize needs --layer (the layer whose filters or activations to draw)');
    if (positional.length !== 1 || !positional[0]!.toLowerCase().endsWith('.png')) throw new UsageError('visualize writes one .png file');
    if (!Number.isFinite(inputScale)) throw new UsageError(`--input_scale must be a number`);
    const path = userPath(model);
    const net = await Net.create(readNetParameter(path, { log: false }), { phase: Phase.TEST, registry: cliRegistry(), name: path, log: false });
    try {
      if (weights) copyTrainedLayersFromFile(net, userPath(weights));
      if (!net.hasLayer(layerName)) throw new UsageError(`no layer '${layerName}' in ${model} (layers: ${net.layerNames.join(', ')})`);
      let data: ArrayLike<number>;
      let count: number;
      let channels: 1 | 3;
      let th: number;
      let tw: number;
      if (input === undefined) {
        const params = net.params.get(layerName) ?? [];
        const w = params[0];
        if (!w || w.shape.length < 2) throw new UsageError(`layer '${layerName}' has no filters to draw (use --input to draw its activations)`);
        const [n, c = 1, h = 1, ww = 1] = w.shape as number[];
        const rgb = c === 3;
        count = rgb ? n! : n! * c;
        channels = rgb ? 3 : 1;
        th = h;
        tw = w.shape.length === 2 ? 1 : ww;
        data = w.cpuData();
      } else {
        const inName = net.inputBlobNames[0];
        if (!inName) throw new UsageError(`${model} has no input blob to feed --input to`);
        const blob = net.blob(inName);
        const [, c = 1, h = 1, ww = 1] = blob.shape;
        const img = await readImage(userPath(input), { height: h, width: ww, isColor: c === 3 });
        const values = new Float32Array(blob.count());
        // HWC bytes → CHW floats, first item only; the rest of a batch stays zero.
        for (let ch = 0; ch < c; ch++) {
          for (let i = 0; i < h * ww; i++) values[ch * h * ww + i] = img.data[i * img.channels + Math.min(ch, img.channels - 1)]! * inputScale;
        }
        const out = forwardWith(net, { [inName]: values }, { end: layerName });
        const top = net.layer(layerName).param.top[0]!;
        const shape = net.blob(top).shape;
        const [, tc = 1, tH = 1, tW = 1] = shape;
        count = tc;
        channels = 1;
        th = tH;
        tw = tW;
        data = out[top]!;
      }
      const scale = scaleFlag > 0 ? scaleFlag : Math.max(1, Math.floor(32 / Math.max(th, tw)));
      const grid = tileGrid(data, count, channels, th, tw, scale);
      const { default: sharp } = await import('sharp');
      await sharp(Buffer.from(grid.rgb), { raw: { width: grid.width, height: grid.height, channels: 3 } }).png().toFile(userPath(positional[0]!));
    } finally {
      await net.close();
    }
    return 0;
  },
};
