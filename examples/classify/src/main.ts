/**
 * Classification, as pycaffe's `net = caffe.Net(deploy, weights, caffe.TEST)` followed by
 * `net.forward(data=batch)['prob']`: load a deploy net with trained weights and label digits.
 *
 *   pnpm --filter @caffe-ts/example-train start   # writes out/lenet.caffemodel, out/lenet_deploy.prototxt
 *   pnpm --filter @caffe-ts/example-classify start
 */
import { loadBundledMnistDigits } from '@caffe-ts/io-leveldb';
import { registerBuiltinLayers, LayerRegistry } from '@caffe-ts/layers';
import { forwardWith, netInputs, netOutputs } from '@caffe-ts/net';
import { netFromFiles } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';

export interface Prediction {
  label: number;
  predicted: number;
  probability: number;
}

export interface ClassifyResult {
  inputs: string[];
  outputs: string[];
  predictions: Prediction[];
  accuracy: number;
}

export async function main({ model, weights, perClass = 5, print = false }: { model: string; weights: string; perClass?: number; print?: boolean }): Promise<ClassifyResult> {
  const net = await netFromFiles(model, { weights, phase: Phase.TEST, registry: registerBuiltinLayers(new LayerRegistry()), log: false });
  const [input] = netInputs(net);
  const [output] = netOutputs(net);
  const digits = await loadBundledMnistDigits();
  const predictions: Prediction[] = [];
  // Held-out digits, a batch of them at once: the last perClass of each class (the train example
  // trains on the first 90 % of each class, and the classes differ in size).
  const batch = perClass * 10;
  const data = new Float32Array(batch * 784);
  const labels: number[] = [];
  for (let i = 0; i < batch; i++) {
    const digit = i % 10;
    const count = digits[digit]!.length / 784;
    if (perClass > Math.floor(count / 10)) throw new RangeError(`perClass ${perClass}: class ${digit} holds out only ${Math.floor(count / 10)} digits`);
    const index = count - perClass + Math.floor(i / 10);
    const img = digits[digit]!.subarray(index * 784, (index + 1) * 784);
    for (let p = 0; p < 784; p++) data[i * 784 + p] = img[p]! / 256;
    labels.push(digit);
  }
  const prob = forwardWith(net, { [input!]: { shape: [batch, 1, 28, 28], data } })[output!]!;
  for (let i = 0; i < batch; i++) {
    const row = prob.subarray(i * 10, i * 10 + 10);
    let best = 0;
    for (let c = 1; c < 10; c++) if (row[c]! > row[best]!) best = c;
    predictions.push({ label: labels[i]!, predicted: best, probability: row[best]! });
  }
  const accuracy = predictions.filter((p) => p.label === p.predicted).length / batch;
  if (print) {
    for (const p of predictions.slice(0, 10)) console.log(`digit ${p.label}: predicted ${p.predicted} (p = ${p.probability.toFixed(3)})`);
    console.log(`accuracy on ${batch} held-out digits: ${(accuracy * 100).toFixed(1)}%`);
  }
  return { inputs: netInputs(net), outputs: netOutputs(net), predictions, accuracy };
}
