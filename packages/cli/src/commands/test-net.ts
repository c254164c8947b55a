import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { logger } from '@caffe-ts/blob';
import { readVocRoidb, VOC_CLASSES } from '@caffe-ts/io-leveldb';
import { formatFixed, parseVocResults, readRoidbImage, testNetImage, vocEvalClass, vocResultLine, type VocGroundTruth } from '@caffe-ts/layers-contrib';
import { readLabels } from '@caffe-ts/layers-contrib/detect';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { backendFromFlags, cliRegistry } from './common.js';
import type { Command } from './index.js';
import { loadFasterRcnnConfig, parseRoidbSpec } from './py-faster-rcnn.js';

const log = logger('test_net.py');

/**
 * `caffe test_net`: py-faster-rcnn's tools/test_net.py on a VOC devkit image set. Every image
 * through the Faster R-CNN test net (test_net: im_detect, score threshold, NMS per class, at most
 * max_per_image), the detections written as VOC results files (comp4_det_<set>_<class>.txt), then
 * read back and evaluated as voc_eval does: each class's AP and their mean.
 */
export const testNetCommand: Command = {
  summary: "evaluate a Faster R-CNN test net on a VOC image set (py-faster-rcnn's test_net.py: per-class AP and mAP)",
  usage:
    '--model test.prototxt --weights W.caffemodel --imdb voc:VOCdevkit/VOC2007:test [--cfg faster_rcnn_end2end.yml] [--set KEY VALUE …] ' +
    '[--labels classes.txt] [--max_per_image 100] [--thresh 0.05] [--output_dir .] [--use_07_metric=true|false] [--backend cpu|gpu]',
  async run({ flags, io }) {
    const model = flags.string('model');
    const weights = flags.string('weights');
    const imdb = flags.string('imdb');
    const cfgFile = flags.string('cfg');
    const setPairs = flags.strings('set');
    const labelsFile = flags.string('labels');
    const maxPerImage = flags.int('max_per_image', 100);
    const threshText = flags.string('thresh', '0.05')!;
    const thresh = Number(threshText);
    const outputDir = userPath(flags.string('output_dir', '.')!);
    const imdbSources = imdb === undefined ? undefined : parseRoidbSpec(imdb);
    // pascal_voc.py: the VOC2007 11-point metric for years before 2010.
    const first = imdbSources?.[0];
    const year = first?.kind === 'voc' ? /VOC(\d{4})\/*$/.exec(first.devkit)?.[1] : undefined;
    const use07 = flags.bool('use_07_metric', year === undefined || Number(year) < 2010);
    const backend = await backendFromFlags(flags);
    flags.checkAllUsed();
    if (!model) throw new UsageError('Need a model definition (--model, the test prototxt) to evaluate.');
    if (!weights) throw new UsageError('Need model weights (--weights) to evaluate.');
    if (!imdb) throw new UsageError('Need an image set (--imdb voc:DEVKIT_YEAR_DIR:IMAGE_SET) to evaluate on.');
    if (!Number.isFinite(thresh)) throw new UsageError(`flag --thresh expects a number, got '${threshText}'`);
    if (!(maxPerImage > 0)) throw new UsageError(`flag --max_per_image expects a positive integer, got ${maxPerImage}`);
    if (imdbSources!.length !== 1) throw new UsageError('--imdb names one image set here (evaluate each set on its own)');
    const source = imdbSources![0]!;
    // COCO's evaluation (COCOeval: AP over IoU 0.5:0.95, areas, crowds) is another algorithm.
    if (source.kind !== 'voc') throw new UsageError('--imdb: test_net evaluates VOC devkit image sets (voc:DEVKIT_YEAR_DIR:IMAGE_SET); COCO\'s evaluation is not supported');
    const { devkit, imageSet } = source;

    const config = loadFasterRcnnConfig(cfgFile, setPairs);
    const classes = labelsFile ? readLabels(userPath(labelsFile)) : VOC_CLASSES;
    const roidb = await readVocRoidb(userPath(devkit), imageSet, { classes, useDifficult: true });
    log.info(`Loaded ${roidb.length} images of ${devkit} ${imageSet}; ${classes.length} classes with the background`);
    const net = await Net.create(readNetParameter(userPath(model)), { phase: Phase.TEST, registry: cliRegistry(), backend, name: userPath(model) });
    const byClass: string[][] = classes.map(() => []);
    try {
      copyTrainedLayersFromFile(net, userPath(weights));
      const outputs = net.hasBlob('cls_prob') ? net.blob('cls_prob').count(1) : 0;
      if (outputs !== classes.length) {
        throw new UsageError(
          `the net scores ${outputs} classes (cls_prob) but ${labelsFile ? `--labels ${labelsFile} lists` : 'VOC has'} ${classes.length} with the background` +
            (labelsFile ? '' : ' (give --labels with one class name per line, the background first)'),
        );
      }
      for (const [i, entry] of roidb.entries()) {
        const t0 = performance.now();
        const image = await readRoidbImage(entry.image);
        const dets = testNetImage(net, image, config, { thresh, maxPerImage });
        for (const d of dets) byClass[d.label]!.push(vocResultLine(entry.index, d.score, [d.box.xmin, d.box.ymin, d.box.xmax, d.box.ymax]));
        log.info(`im_detect: ${i + 1}/${roidb.length} ${((performance.now() - t0) / 1000).toFixed(3)}s, ${dets.length} detections`);
      }
    } finally {
      await net.close();
    }

    // pascal_voc.py writes one results file per class, then voc_eval reads them back.
    mkdirSync(outputDir, { recursive: true });
    const groundTruth = (cls: number): Map<string, VocGroundTruth> =>
      new Map(roidb.map((e) => {
        const mine = e.gt_classes.map((c, k) => (c === cls ? k : -1)).filter((k) => k >= 0);
        // The annotation's own 1-based corners, as voc_eval's parse_rec reads them.
        return [e.index, { boxes: mine.map((k) => e.boxes[k]!.map((v) => v + 1)), difficult: mine.map((k) => e.difficult[k]!) }];
      }));
    log.info(`VOC07 metric? ${use07 ? 'Yes' : 'No'}`);
    const aps: number[] = [];
    for (let cls = 1; cls < classes.length; cls++) {
      const file = join(outputDir, `comp4_det_${imageSet}_${classes[cls]}.txt`);
      writeFileSync(file, byClass[cls]!.map((l) => `${l}\n`).join(''));
      const result = vocEvalClass(parseVocResults(readFileSync(file, 'utf8'), basename(file)), groundTruth(cls), { ovthresh: 0.5, use07 });
      aps.push(result.ap);
      io.stdout(`AP for ${classes[cls]} = ${formatFixed(result.ap, 4)}\n`);
    }
    const mean = aps.reduce((a, b) => a + b, 0) / aps.length;
    io.stdout(`Mean AP = ${formatFixed(mean, 4)}\n`);
    log.info(`Results files in ${outputDir} (comp4_det_${imageSet}_<class>.txt); Mean AP = ${formatFixed(mean, 4)}`);
    return 0;
  },
};

