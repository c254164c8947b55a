/**
 * Fine-tuning, as Caffe's "fine-tuning for style recognition" example: start from trained LeNet
 * weights, replace the classifier with a new layer for a new task (is the digit even or odd?),
 * freeze the convolutions (lr_mult 0) and train briefly. Layers keep their weights by name
 * (copyTrainedLayersFrom); the renamed classifier starts from its filler.
 *
 *   pnpm --filter @caffe-ts/example-train start   # writes out/lenet.caffemodel
 *   pnpm --filter @caffe-ts/example-fine-tune start
 */
import { DigitBatches, TEST_SPLIT, TRAIN_SPLIT, accuracy, bundledDigits, lenetTrain, sgd } from '@caffe-ts/example-train';
import { registerBuiltinLayers, LayerRegistry } from '@caffe-ts/layers';
import { setInputs } from '@caffe-ts/net';
import { copyTrainedLayersFromFile } from '@caffe-ts/net/node';
import { createSolver } from '@caffe-ts/solver';

export interface FineTuneResult {
  accuracyBefore: number;
  accuracyAfter: number;
  /** Whether conv1's weights are unchanged by training (they are frozen). */
  convFrozen: boolean;
  losses: number[];
}

export async function main({ weights, iterations = 60, batch = 32, print = false }: { weights: string; iterations?: number; batch?: number; print?: boolean }): Promise<FineTuneResult> {
  const parity = (d: number) => d % 2;
  const registry = registerBuiltinLayers(new LayerRegistry());
  const solver = createSolver(sgd(lenetTrain(batch, 2, true), 0.01), { registry, log: false });
  copyTrainedLayersFromFile(solver.net, weights);
  const conv1Before = Float32Array.from(solver.net.params.get('conv1')![0]!.cpuData());
  const digits = await bundledDigits();
  const testSet = () => accuracy(solver.net, new DigitBatches(digits, TEST_SPLIT, parity), 5, batch, 'ip2_2way');
  const accuracyBefore = testSet();
  const train = new DigitBatches(digits, TRAIN_SPLIT, parity);
  const losses: number[] = [];
  for (let it = 0; it < iterations; it++) {
    setInputs(solver.net, train.batch(batch));
    await solver.step(1);
    losses.push(solver.net.blob('loss').cpuData()[0]!);
  }
  const accuracyAfter = testSet();
  const conv1After = solver.net.params.get('conv1')![0]!.cpuData();
  const convFrozen = conv1Before.every((v, i) => v === conv1After[i]);
  if (print) {
    console.log(`even/odd accuracy before fine-tuning: ${(accuracyBefore * 100).toFixed(1)}%, after ${iterations} iterations: ${(accuracyAfter * 100).toFixed(1)}%`);
    console.log(`conv1 ${convFrozen ? 'kept its trained weights (lr_mult 0)' : 'changed'}`);
  }
  await solver.close();
  return { accuracyBefore, accuracyAfter, convFrozen, losses };
}
