import { fileURLToPath } from 'node:url';

/** Labels, inputs and files of a model in the zoo. */
export interface ZooModel {
  name: string;
  description: string;
  /** Absolute paths of the model's prototxt files, by role. */
  files: { trainTest?: string; solver?: string; deploy?: string; readme: string };
  input: { shape: number[]; scale: number; mean?: number[]; channelOrder: 'gray' | 'BGR' | 'RGB' };
  labels: string[];
}

const modelsDir = (model: string, file: string) => fileURLToPath(new URL(`../models/${model}/${file}`, import.meta.url));

export const MNIST_LABELS: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

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
    input: { shape: [1, 1, 28, 28], scale: 0.00390625, channelOrder: 'gray' },
    labels: [...MNIST_LABELS],
  },
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
