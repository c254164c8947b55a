import { writeFileSync } from 'node:fs';
import { logger } from '@caffe-ts/blob';
import { encodeImage, readImage } from '@caffe-ts/io-leveldb';
import { detectFaces, drawFaces, loadMtcnn } from '@caffe-ts/zoo';
import { UsageError, type Flags } from '../args.js';
import { userPath } from '../paths.js';
import { backendFromFlags, cliRegistry } from './common.js';
import type { Command } from './index.js';

const log = logger('detect_faces.cpp');

function float(flags: Flags, name: string, fallback: number): number {
  const s = flags.string(name);
  if (s === undefined) return fallback;
  const v = Number(s);
  if (!Number.isFinite(v)) throw new UsageError(`flag --${name} expects a number, got '${s}'`);
  return v;
}

const f1 = (v: number) => v.toFixed(1);

/** `caffe detect_faces`: the MTCNN cascade (the authors' det1–det4 Caffe models) on images. */
export const detectFacesCommand: Command = {
  summary: 'detect faces and 5 landmarks with the MTCNN cascade (det1–det4) and draw them',
  usage:
    '--mtcnn DIR --image in.jpg [--image more.jpg] [--output out.png] [--min_size 20] [--thresholds 0.6,0.7,0.7] ' +
    '[--factor 0.709] [--no_lnet] [--backend cpu|gpu]   (DIR holds det1..det3 [det4] .prototxt + .caffemodel)',
  async run({ flags, positional, io }) {
    const dir = flags.string('mtcnn');
    const images = [...flags.strings('image'), ...positional];
    const output = flags.string('output');
    const minSize = float(flags, 'min_size', 20);
    const factor = float(flags, 'factor', 0.709);
    const t = flags.string('thresholds', '0.6,0.7,0.7')!;
    const thresholds = t.split(',').map((s) => Number(s.trim()));
    if (thresholds.length !== 3 || thresholds.some((v) => !Number.isFinite(v))) {
      throw new UsageError(`flag --thresholds expects three numbers (P-Net, R-Net, O-Net), got '${t}'`);
    }
    const noLnet = flags.bool('no_lnet');
    const backend = await backendFromFlags(flags);
    flags.checkAllUsed();
    if (!dir) throw new UsageError('Need the MTCNN model folder (--mtcnn DIR with det1..det3 .prototxt/.caffemodel).');
    if (images.length === 0) throw new UsageError('Need an image (--image) to detect faces in.');
    if (output && images.length > 1) throw new UsageError('--output takes one image; give one --image with it.');

    const nets = loadMtcnn(userPath(dir), { lnet: !noLnet, registry: cliRegistry(), backend });
    log.info(`MTCNN nets from ${dir}: P-Net, R-Net, O-Net${nets.lnet ? ', L-Net (landmark refinement)' : ''}`);
    for (const file of images) {
      const img = await readImage(userPath(file));
      const t0 = performance.now();
      const stages: string[] = [];
      const faces = detectFaces(img, {
        ...nets,
        minSize,
        factor,
        thresholds: thresholds as [number, number, number],
        onStage: (stage, n) => stages.push(`${stage} ${n}`),
      });
      log.info(`${file} (${img.width}x${img.height}): ${faces.length} face(s) in ${(performance.now() - t0).toFixed(0)} ms; boxes after each stage: ${stages.join(', ')}`);
      if (images.length > 1) io.stdout(`---------- Faces in ${file} ----------\n`);
      faces.forEach((f, i) => {
        const b = f.box;
        io.stdout(
          `face ${i + 1} score ${f.score.toFixed(4)} box [${f1(b.x1)}, ${f1(b.y1)}, ${f1(b.x2)}, ${f1(b.y2)}] ` +
            `landmarks ${f.landmarks.map((p) => `(${f1(p.x)}, ${f1(p.y)})`).join(' ')}\n`,
        );
      });
      if (output) {
        writeFileSync(userPath(output), await encodeImage(drawFaces(img, faces), 'png'));
        log.info(`Wrote ${output}`);
      }
    }
    return 0;
  },
};
