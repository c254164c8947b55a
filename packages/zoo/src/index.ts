import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Labels, inputs and files of a model in the zoo. */
export interface ZooModel {
  name: string;
  description: string;
  /** Absolute paths of the model's prototxt files, by role. */
  files: { trainTest?: string; solver?: string; deploy?: string; readme: string };
  /**
   * What the deploy net expects: `shape` of the deploy input (N×C×H×W), pixels scaled by `scale`
   * after subtracting `mean` (per channel, in the net's channel order), and the channel order.
   * `rawScale` is the range the pixels are in before mean subtraction (255: 0..255 bytes).
   */
  input: { shape: number[]; scale: number; mean?: number[]; meanFile?: string; channelOrder: 'gray' | 'BGR' | 'RGB'; rawScale?: number };
  /** Class names in output order; ImageNet models ship none (see `loadLabels`). */
  labels: string[];
  labelSet: 'mnist' | 'cifar10' | 'imagenet' | 'ilsvrc13-det' | 'flickr-style';
  /** Published accuracy, for the README and reports. */
  accuracy?: string;
}

const modelsDir = (model: string, file: string) => fileURLToPath(new URL(`../models/${model}/${file}`, import.meta.url));

export const MNIST_LABELS: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
/** CIFAR-10 classes in label order (batches.meta.txt). */
export const CIFAR10_LABELS: readonly string[] = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
];
/** The Flickr Style labels in label order (Caffe's examples/finetune_flickr_style/style_names.txt). */
export const FLICKR_STYLE_LABELS: readonly string[] = [
  'Detailed', 'Pastel', 'Melancholy', 'Noir', 'HDR', 'Vintage', 'Long Exposure', 'Horror', 'Sunny', 'Bright',
  'Hazy', 'Bokeh', 'Serene', 'Texture', 'Ethereal', 'Macro', 'Depth of Field', 'Geometric Composition', 'Minimal', 'Romantic',
];
/** The BGR ImageNet mean Caffe's reference models subtract (ilsvrc_2012_mean averaged per channel). */
export const IMAGENET_MEAN_BGR: readonly number[] = [104, 117, 123];

function imagenet(name: string, description: string, opts: { size: number; batch?: number; trainVal?: boolean; mean?: number[]; scale?: number; accuracy: string }): ZooModel {
  return {
    name,
    description,
    files: {
      deploy: modelsDir(name, 'deploy.prototxt'),
      ...(opts.trainVal ? { trainTest: modelsDir(name, 'train_val.prototxt'), solver: modelsDir(name, 'solver.prototxt') } : {}),
      readme: modelsDir(name, 'README.md'),
    },
    input: { shape: [opts.batch ?? 1, 3, opts.size, opts.size], scale: opts.scale ?? 1, mean: opts.mean ?? [...IMAGENET_MEAN_BGR], channelOrder: 'BGR', rawScale: 255 },
    labels: [],
    labelSet: 'imagenet',
    accuracy: opts.accuracy,
  };
}

const cifar = (kind: 'quick' | 'full', accuracy: string): ZooModel => ({
  name: `cifar10_${kind}`,
  description: `CIFAR-10 ${kind} (Caffe examples/cifar10)`,
  files: {
    deploy: modelsDir(`cifar10_${kind}`, 'deploy.prototxt'),
    trainTest: modelsDir(`cifar10_${kind}`, 'train_test.prototxt'),
    solver: modelsDir(`cifar10_${kind}`, 'solver.prototxt'),
    readme: modelsDir(`cifar10_${kind}`, 'README.md'),
  },
  // The training transform subtracts the training set's mean image (mean.binaryproto), no scaling.
  input: { shape: [1, 3, 32, 32], scale: 1, channelOrder: 'BGR', rawScale: 255 },
  labels: [...CIFAR10_LABELS],
  labelSet: 'cifar10',
  accuracy,
});

const MODELS: Record<string, ZooModel> = {
  lenet: {
    name: 'lenet',
    description: 'LeNet for 28×28 grey digits (Caffe examples/mnist)',
    files: {
      trainTest: modelsDir('lenet', 'lenet_train_test.prototxt'),
      solver: modelsDir('lenet', 'lenet_solver.prototxt'),
      deploy: modelsDir('lenet', 'lenet_deploy.prototxt'),
      readme: modelsDir('lenet', 'README.md'),
    },
    input: { shape: [1, 1, 28, 28], scale: 0.00390625, channelOrder: 'gray', rawScale: 255 },
    labels: [...MNIST_LABELS],
    labelSet: 'mnist',
    accuracy: '~99.1% MNIST test accuracy after 10000 iterations',
  },
  cifar10_quick: cifar('quick', '~75% CIFAR-10 test accuracy (5000 iterations)'),
  cifar10_full: cifar('full', '~81% CIFAR-10 test accuracy (70000 iterations)'),
  caffenet: imagenet('caffenet', 'BVLC reference CaffeNet (AlexNet variant)', { size: 227, batch: 10, trainVal: true, accuracy: 'top-1 57.4%, top-5 80.4% (ILSVRC-2012 val, center crop, BVLC)' }),
  caffenet_full_conv: {
    ...imagenet('caffenet_full_conv', 'CaffeNet as a fully convolutional net (net surgery: fc6/fc7/fc8 as convolutions)', { size: 451, accuracy: 'as CaffeNet, per 227×227 window (weights transplanted with transplantParams)' }),
  },
  rcnn_ilsvrc13: {
    ...imagenet('rcnn_ilsvrc13', 'BVLC R-CNN ILSVRC13 detector (CaffeNet features, 200 class SVM scores)', { size: 227, batch: 10, accuracy: 'mAP 31.4% ILSVRC-2013 detection test (paper, with box regression)' }),
    labelSet: 'ilsvrc13-det',
  },
  finetune_flickr_style: {
    ...imagenet('finetune_flickr_style', 'CaffeNet fine-tuned on the 20 Flickr Style labels', { size: 227, batch: 10, trainVal: true, accuracy: '~39% test accuracy on 20 styles (BVLC)' }),
    labels: [...FLICKR_STYLE_LABELS],
    labelSet: 'flickr-style',
  },
  alexnet: imagenet('alexnet', 'BVLC AlexNet', { size: 227, batch: 10, trainVal: true, accuracy: 'top-1 57.1%, top-5 80.2% (ILSVRC-2012 val, BVLC)' }),
  googlenet: imagenet('googlenet', 'BVLC GoogLeNet (Inception v1)', { size: 224, batch: 10, trainVal: true, accuracy: 'top-1 68.7%, top-5 88.9% (ILSVRC-2012 val, single crop, BVLC)' }),
  vgg16: imagenet('vgg16', 'VGG-16 (configuration D)', { size: 224, batch: 10, mean: [103.939, 116.779, 123.68], accuracy: 'top-5 error 7.5% val (multi-scale), paper Table 3' }),
  resnet50: imagenet('resnet50', 'ResNet-50', { size: 224, accuracy: 'top-1 75.3%, top-5 92.2% (10-crop, authors\' release)' }),
  'squeezenet_v1.1': imagenet('squeezenet_v1.1', 'SqueezeNet v1.1', { size: 227, batch: 10, trainVal: true, accuracy: 'top-1 ~58.2%, top-5 ~81.0% (AlexNet-level, authors)' }),
  mobilenet_v1: imagenet('mobilenet_v1', 'MobileNet v1 1.0-224', { size: 224, mean: [103.94, 116.78, 123.68], scale: 0.017, accuracy: 'top-1 70.6% (paper); Caffe conversion reports 70.8%/89.9%' }),
  mobilenet_v2: imagenet('mobilenet_v2', 'MobileNet v2 1.0-224', { size: 224, mean: [103.94, 116.78, 123.68], scale: 0.017, accuracy: 'top-1 72.0% (paper); Caffe conversion reports 71.9%/90.5%' }),
};

/** Names of the models in the zoo. */
export function zooModels(): string[] {
  return Object.keys(MODELS);
}

/** A model's descriptor; throws for an unknown name, listing the known ones. */
export function zooModel(name: string): ZooModel {
  const m = MODELS[name];
  if (!m) throw new Error(`Unknown zoo model '${name}' (known models: ${zooModels().join(', ')})`);
  return m;
}

/**
 * Class names from a labels file, one per line. Caffe's `synset_words.txt` lines look like
 * `n01440764 tench, Tinca tinca`; `stripIds` drops the leading WordNet ID.
 */
export function loadLabels(path: string, { stripIds = false }: { stripIds?: boolean } = {}): string[] {
  const lines = readFileSync(path, 'utf8').split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  return stripIds ? lines.map((l) => l.replace(/^n\d{8}\s+/, '')) : lines;
}

export { NpyError, parseNpy, readNpy, encodeNpy, writeNpy, type NpyArray } from './npy.js';
export { arrayToBlobProto, blobProtoToArray, arraysToBlobProtoVector, blobProtoVectorToArrays, arrayToDatum, datumToArray, type ProtoArray } from './proto-arrays.js';
export {
  Transformer,
  TransformError,
  loadImage,
  loadMean,
  channelMean,
  resizeFloatImage,
  cropFloatImage,
  oversample,
  oversampleOrigins,
  type FloatImage,
  type ImagePreprocessing,
  type Mean,
} from './transformer.js';
export { Classifier, topK, type ClassifierOptions } from './classifier.js';
export { Detector, type DetectionWindow, type DetectorOptions, type ImageWindows, type WindowDetection } from './detector.js';
export { forwardArrays, blobFileName, InferenceError } from './inference.js';
export {
  loadWeights,
  fetchWeights,
  weightsCacheDir,
  encodeWeights,
  saveWeights,
  WeightsError,
  type WeightsSource,
  type FetchWeightsOptions,
} from './weights.js';
export { transplantParams, SurgeryError, type TransplantOptions, type TransplantReport } from './surgery.js';
export { reuseActivations, type ActivationPlan, type ReuseOptions } from './memory.js';
export {
  detectFaces,
  loadMtcnn,
  drawFaces,
  nms,
  pyramidScales,
  rerec,
  bbreg,
  generateBoundingBoxes,
  MtcnnError,
  type MtcnnImage,
  type MtcnnNets,
  type MtcnnOptions,
  type LoadMtcnnOptions,
  type FaceDetection,
  type ScoredBox,
  type NmsMethod,
} from './mtcnn.js';
