/**
 * Training with a pycaffe-style loop: build LeNet with NetSpec, make an SGD solver from an inline
 * net, then feed each batch into the net's input blobs and call `solver.step(1)`, as pycaffe's
 * `solver.net.blobs['data'].data[...] = batch; solver.step(1)`. Saves the weights and a deploy
 * prototxt for the classify and fine-tune examples.
 *
 *   pnpm --filter @caffe-ts/example-train start
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBundledMnistDigits } from '@caffe-ts/io-leveldb';
import { registerBuiltinLayers, LayerRegistry } from '@caffe-ts/layers';
import { forwardWith, L, NetSpec, setInputs, type Net } from '@caffe-ts/net';
import { saveNet } from '@caffe-ts/net/node';
import { createMessage, printText, type NetParameter, type SolverParameter } from '@caffe-ts/proto';
import { createSolver } from '@caffe-ts/solver';

/** LeNet's layers from `n.data` to `n.ip2` (logits); `classes` outputs. */
export function lenetBody(n: NetSpec, classes = 10, frozenConv = false): void {
  // lr_mult 0 freezes a layer (the fine-tune example keeps the convolutions as trained).
  const lr = frozenConv ? [{ lr_mult: 0 }, { lr_mult: 0 }] : [{ lr_mult: 1 }, { lr_mult: 2 }];
  const learn = [{ lr_mult: 1 }, { lr_mult: 2 }];
  const fill = { weight_filler: { type: 'xavier' }, bias_filler: { type: 'constant' } };
  n.conv1 = L.Convolution(n.data, { kernel_size: 5, num_output: 20, param: lr, ...fill });
  n.pool1 = L.Pooling(n.conv1, { kernel_size: 2, stride: 2, pool: 'MAX' });
  n.conv2 = L.Convolution(n.pool1, { kernel_size: 5, num_output: 50, param: lr, ...fill });
  n.pool2 = L.Pooling(n.conv2, { kernel_size: 2, stride: 2, pool: 'MAX' });
  n.ip1 = L.InnerProduct(n.pool2, { num_output: 500, param: learn, ...fill });
  n.relu1 = L.ReLU(n.ip1, { in_place: true });
  // A new task gets a new layer name, so copyTrainedLayersFrom leaves it freshly initialised.
  n[classes === 10 ? 'ip2' : `ip2_${classes}way`] = L.InnerProduct(n.ip1, { num_output: classes, param: learn, ...fill });
}

/** The training net: inputs for images and labels, LeNet, softmax loss. */
export function lenetTrain(batch: number, classes = 10, frozenConv = false): NetParameter {
  const n = new NetSpec();
  n.data = L.Input({ shape: { dim: [batch, 1, 28, 28] } });
  n.label = L.Input({ shape: { dim: [batch] } });
  lenetBody(n, classes, frozenConv);
  n.loss = L.SoftmaxWithLoss(n[classes === 10 ? 'ip2' : `ip2_${classes}way`]!, n.label);
  return n.toProto('LeNet');
}

/** The deploy net: one input, class probabilities out. */
export function lenetDeploy(batch = 1): NetParameter {
  const n = new NetSpec();
  n.data = L.Input({ shape: { dim: [batch, 1, 28, 28] } });
  lenetBody(n);
  n.prob = L.Softmax(n.ip2!);
  return n.toProto('LeNet');
}

let digits: Promise<Uint8Array[]> | undefined;

/** The 10 000 bundled MNIST digits (863 to 1 127 a class), parsed once per process. */
export function bundledDigits(): Promise<Uint8Array[]> {
  digits ??= loadBundledMnistDigits();
  return digits;
}

/** Which share of each class's images trains and which tests (the classes differ in size). */
export const TRAIN_SPLIT: [number, number] = [0, 0.9];
export const TEST_SPLIT: [number, number] = [0.9, 1];

/** Images lo … hi − 1 of a class of `count` images for a split given as shares of the class. */
export function splitRange(split: [number, number], count: number): [number, number] {
  return [Math.floor(split[0] * count), Math.floor(split[1] * count)];
}

/** Batches of bundled digits: images scaled to [0, 1) as Caffe's LeNet (scale 1/256), labels. */
export class DigitBatches {
  private next = 0;
  constructor(
    private readonly classes: Uint8Array[],
    /** Which share of each class's images to draw from (TRAIN_SPLIT and TEST_SPLIT don't overlap). */
    private readonly split: [number, number],
    private readonly label: (digit: number) => number = (d) => d,
  ) {}

  static async load(split: [number, number], label?: (digit: number) => number): Promise<DigitBatches> {
    return new DigitBatches(await bundledDigits(), split, label);
  }

  batch(size: number): { data: Float32Array; label: Float32Array } {
    const data = new Float32Array(size * 784);
    const label = new Float32Array(size);
    for (let i = 0; i < size; i++, this.next++) {
      const digit = this.next % 10;
      const [lo, hi] = splitRange(this.split, this.classes[digit]!.length / 784);
      const index = lo + (Math.floor(this.next / 10) % (hi - lo));
      const img = this.classes[digit]!.subarray(index * 784, (index + 1) * 784);
      for (let p = 0; p < 784; p++) data[i * 784 + p] = img[p]! / 256;
      label[i] = this.label(digit);
    }
    return { data, label };
  }
}

/** Fraction of `batches` batches whose argmax over `logits` matches the label. */
export function accuracy(net: Net, source: DigitBatches, batches: number, batch: number, logits: string): number {
  let right = 0;
  for (let b = 0; b < batches; b++) {
    const { data, label } = source.batch(batch);
    const out = forwardWith(net, { data, label }, { blobs: [logits] })[logits]!;
    const k = out.length / batch;
    for (let i = 0; i < batch; i++) {
      let best = 0;
      for (let c = 1; c < k; c++) if (out[i * k + c]! > out[i * k + best]!) best = c;
      if (best === label[i]) right++;
    }
  }
  return right / (batches * batch);
}

export function sgd(net: NetParameter, baseLr: number): SolverParameter {
  return createMessage<SolverParameter>('SolverParameter', {
    net_param: net,
    base_lr: baseLr,
    momentum: 0.9,
    weight_decay: 0.0005,
    lr_policy: 'inv',
    gamma: 0.0001,
    power: 0.75,
    max_iter: 1_000_000,
    random_seed: 1,
    display: 0,
  });
}

export interface TrainOptions {
  iterations?: number;
  batch?: number;
  /** Where to write lenet.caffemodel and lenet_deploy.prototxt (nothing written without it). */
  outDir?: string;
  /** Print progress. */
  print?: boolean;
}

export interface TrainResult {
  losses: number[];
  testAccuracy: number;
  weights?: string;
  deploy?: string;
}

export async function main({ iterations = 200, batch = 32, outDir, print = false }: TrainOptions = {}): Promise<TrainResult> {
  const registry = registerBuiltinLayers(new LayerRegistry());
  const solver = createSolver(sgd(lenetTrain(batch), 0.01), { registry, log: false });
  const train = await DigitBatches.load(TRAIN_SPLIT);
  const losses: number[] = [];
  for (let it = 0; it < iterations; it++) {
    setInputs(solver.net, train.batch(batch));
    await solver.step(1);
    const loss = solver.net.blob('loss').cpuData()[0]!;
    losses.push(loss);
    if (print && (it % 20 === 0 || it === iterations - 1)) console.log(`iteration ${it}: loss ${loss.toFixed(4)}`);
  }
  const testAccuracy = accuracy(solver.net, await DigitBatches.load(TEST_SPLIT), 5, batch, 'ip2');
  if (print) console.log(`test accuracy on ${5 * batch} held-out digits: ${(testAccuracy * 100).toFixed(1)}%`);
  const result: TrainResult = { losses, testAccuracy };
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    result.weights = join(outDir, 'lenet.caffemodel');
    result.deploy = join(outDir, 'lenet_deploy.prototxt');
    saveNet(solver.net, result.weights);
    writeFileSync(result.deploy, printText('NetParameter', lenetDeploy()));
    if (print) console.log(`wrote ${result.weights} and ${result.deploy}`);
  }
  await solver.close();
  return result;
}
