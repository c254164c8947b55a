import { logger } from '@caffe-ts/blob';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { channelMean, Classifier, loadImage, loadLabels, loadMean, topK, type Mean } from '@caffe-ts/zoo';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { backendFromFlags, cliRegistry, numberList } from './common.js';
import type { Command } from './index.js';

const log = logger('caffe.cpp');

export const classifyCommand: Command = {
  summary: 'classify images with a deploy net and print the top predictions',
  usage:
    '--model M --weights W --image file.jpg [--image more.jpg] [--labels synset_words.txt] [--mean mean.binaryproto|.npy | --mean_values 104,117,123] ' +
    '[--scale 1] [--raw_scale 255] [--channel_swap 2,1,0] [--images_dim 256,256] [--center_only] [--gray] [--top 5]',
  async run({ flags, positional, io }) {
    const model = flags.string('model');
    const weights = flags.string('weights');
    const images = [...flags.strings('image'), ...positional];
    const labelsFile = flags.string('labels');
    const meanFile = flags.string('mean');
    const meanValues = numberList(flags, 'mean_values');
    const inputScale = Number(flags.string('scale', '1'));
    const rawScale = Number(flags.string('raw_scale', '255'));
    const channelSwap = numberList(flags, 'channel_swap', '2,1,0');
    const imagesDim = numberList(flags, 'images_dim', '256,256');
    const centerOnly = flags.bool('center_only');
    const gray = flags.bool('gray');
    const top = flags.int('top', 5);
    const backend = await backendFromFlags(flags);
    flags.checkAllUsed();
    if (!model) throw new UsageError('Need a deploy model definition (--model).');
    if (!weights) throw new UsageError('Need trained weights (--weights).');
    if (images.length === 0) throw new UsageError('Need an image to classify (--image file.jpg).');
    if (meanFile && meanValues) throw new UsageError('Give either --mean or --mean_values, not both.');
    if (!(Number.isFinite(inputScale) && Number.isFinite(rawScale))) throw new UsageError('--scale and --raw_scale expect numbers');
    if (!imagesDim || imagesDim.length !== 2) throw new UsageError('--images_dim expects H,W');

    const net = await Net.create(readNetParameter(userPath(model)), { phase: Phase.TEST, registry: cliRegistry(), backend, name: userPath(model) });
    try {
      copyTrainedLayersFromFile(net, userPath(weights));
      const inputShape = net.blob(net.inputBlobNames[0] ?? '').shape;
      let mean: Mean | undefined = meanValues;
      if (meanFile) {
        const m = loadMean(userPath(meanFile));
        // A mean image of another size than the crop (ilsvrc_2012_mean is 256×256, crops 227×227)
        // is averaged to one value per channel, the usual pycaffe fix.
        mean = m.shape[1] === inputShape[2] && m.shape[2] === inputShape[3] ? m : channelMean(m);
      }
      const classifier = new Classifier(net, {
        imageDims: [imagesDim[0]!, imagesDim[1]!],
        mean,
        inputScale,
        rawScale,
        channelSwap: gray ? undefined : channelSwap,
      });
      const labels = labelsFile ? loadLabels(userPath(labelsFile)) : undefined;
      for (const file of images) {
        const img = await loadImage(userPath(file), { color: !gray });
        const t0 = performance.now();
        const [scores] = classifier.predict([img], !centerOnly);
        log.info(`Classified ${file} in ${(performance.now() - t0).toFixed(1)} ms (${centerOnly ? 'centre crop' : '10 crops'})`);
        if (images.length > 1) io.stdout(`---------- Prediction for ${file} ----------\n`);
        for (const i of topK(scores!, Math.min(top, scores!.length))) {
          const label = labels ? (labels[i] ?? `class ${i}`) : String(i);
          io.stdout(`${scores![i]!.toFixed(4)} - "${label}"\n`);
        }
      }
    } finally {
      await net.close();
    }
    return 0;
  },
};
