import { readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '@caffe-ts/proto/node';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { channelMean, Detector, loadImage, loadMean, type DetectionWindow, type ImageWindows } from '@caffe-ts/zoo';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { backendFromFlags, cliRegistry, numberList } from './common.js';
import type { Command } from './index.js';

const COORDS = ['ymin', 'xmin', 'ymax', 'xmax'] as const;

/**
 * The windows of a detect.py input CSV: a header naming `filename` and the four coordinates (in
 * any order), then one window per line; images keep the order of their first window.
 */
export function readWindowsCsv(path: string, text: string): Map<string, DetectionWindow[]> {
  const lines = text.split(/\r?\n/).map((l, i) => ({ l: l.trim(), n: i + 1 })).filter(({ l }) => l !== '');
  if (lines.length === 0) throw new UsageError(`${path}: empty; expected a header 'filename,ymin,xmin,ymax,xmax' and one window per line`);
  const header = lines[0]!.l.split(',').map((s) => s.trim());
  const column = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new UsageError(`${path}:1: the header has no '${name}' column (found ${header.join(', ')}; expected filename, ymin, xmin, ymax, xmax)`);
    return i;
  };
  const fileAt = column('filename');
  const coordAt = COORDS.map(column);
  const images = new Map<string, DetectionWindow[]>();
  for (const { l, n } of lines.slice(1)) {
    const cells = l.split(',').map((s) => s.trim());
    if (cells.length !== header.length) throw new UsageError(`${path}:${n}: ${cells.length} fields where the header has ${header.length}`);
    const window = coordAt.map((i) => Number(cells[i])) as DetectionWindow;
    if (!window.every((v) => Number.isInteger(v) && v >= 0)) {
      throw new UsageError(`${path}:${n}: the window's ymin, xmin, ymax, xmax must be non-negative integers, got ${coordAt.map((i) => cells[i]).join(', ')}`);
    }
    const file = cells[fileAt]!;
    if (!images.has(file)) images.set(file, []);
    images.get(file)!.push(window);
  }
  return images;
}

/**
 * Caffe's python/detect.py in its `--crop_mode list` form: windows listed in a CSV are cropped
 * (with R-CNN's context padding), warped to the net input and classified; the output CSV has one
 * row per window: the image, the window and the net's first output (class0, class1, …).
 */
export const detectWindowsCommand: Command = {
  summary: 'classify listed windows of images, R-CNN style (Caffe detect.py --crop_mode list)',
  usage:
    'INPUT.csv OUTPUT.csv --model_def deploy.prototxt --pretrained_model W.caffemodel [--crop_mode list] ' +
    '[--mean_file mean.npy|.binaryproto] [--input_scale S] [--raw_scale 255] [--channel_swap 2,1,0] [--context_pad 16] [--gpu]',
  async run({ flags, positional, io }) {
    const model = flags.string('model_def');
    const weights = flags.string('pretrained_model');
    const cropMode = flags.string('crop_mode', 'list')!;
    const meanFile = flags.string('mean_file');
    const inputScaleText = flags.string('input_scale');
    const rawScale = Number(flags.string('raw_scale', '255'));
    const channelSwap = numberList(flags, 'channel_swap', '2,1,0');
    const contextPad = flags.int('context_pad', 16);
    const backend = await backendFromFlags(flags);
    flags.checkAllUsed();
    if (positional.length !== 2) throw new UsageError(`expected INPUT.csv OUTPUT.csv, got ${positional.length} argument(s)`);
    const [input, output] = positional as [string, string];
    if (cropMode === 'selective_search') {
      throw new UsageError('--crop_mode selective_search needs the selective_search_ijcv_with_python (MATLAB) proposals, which caffe-ts does not have: list the windows in a CSV and use --crop_mode list');
    }
    if (cropMode !== 'list') throw new UsageError(`--crop_mode must be list or selective_search, got '${cropMode}'`);
    if (!input.toLowerCase().endsWith('.csv')) throw new UsageError(`${input}: with --crop_mode list the input is a .csv of windows (filename,ymin,xmin,ymax,xmax)`);
    if (!output.toLowerCase().endsWith('.csv')) throw new UsageError(`${output}: the output is written as .csv (detect.py's HDF5 output is pandas' own format)`);
    if (!model) throw new UsageError('Need a deploy model definition (--model_def).');
    if (!weights) throw new UsageError('Need trained weights (--pretrained_model).');
    const inputScale = inputScaleText === undefined ? undefined : Number(inputScaleText);
    if (inputScale !== undefined && !Number.isFinite(inputScale)) throw new UsageError(`--input_scale expects a number, got '${inputScaleText}'`);
    if (!Number.isFinite(rawScale)) throw new UsageError('--raw_scale expects a number');

    io.stdout(`${backend.name === 'cpu' ? 'CPU' : 'GPU'} mode\n`);
    const windows = readWindowsCsv(input, readFileSync(userPath(input), 'utf8'));
    const net = await Net.create(readNetParameter(userPath(model)), { phase: Phase.TEST, registry: cliRegistry(), backend, name: userPath(model) });
    try {
      copyTrainedLayersFromFile(net, userPath(weights));
      // As detect.py: a mean image is averaged to one value per channel.
      const mean = meanFile ? channelMean(loadMean(userPath(meanFile))) : undefined;
      const detector = new Detector(net, { mean, inputScale, rawScale, channelSwap, contextPad });
      let t = performance.now();
      io.stdout('Loading input...\n');
      const images: ImageWindows[] = [];
      for (const [name, list] of windows) images.push({ name, image: await loadImage(userPath(name)), windows: list });
      const detections = detector.detectWindows(images);
      io.stdout(`Processed ${detections.length} windows in ${((performance.now() - t) / 1000).toFixed(3)} s.\n`);
      t = performance.now();
      const classes = detections[0]?.prediction.length ?? 0;
      const rows = [['filename', ...COORDS, ...Array.from({ length: classes }, (_, c) => `class${c}`)].join(',')];
      for (const d of detections) rows.push([d.name, ...d.window, ...Array.from(d.prediction, (v) => String(v))].join(','));
      writeFileAtomicSync(userPath(output), `${rows.join('\n')}\n`);
      io.stdout(`Saved to ${output} in ${((performance.now() - t) / 1000).toFixed(3)} s.\n`);
    } finally {
      await net.close();
    }
    return 0;
  },
};
