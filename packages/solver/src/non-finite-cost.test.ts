import { Rng } from '@caffe-ts/blob';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { expect, it } from 'vitest';
import { paramsFinite } from './non-finite.js';
const B = 64;
const LENET = `
layer { name: "mnist" type: "Input" top: "data" input_param { shape { dim: ${B} dim: 1 dim: 28 dim: 28 } } }
layer { name: "labels" type: "Input" top: "label" input_param { shape { dim: ${B} } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1" inner_product_param { num_output: 500 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }`;
/**
 * What the per-iteration param check (paramsFinite) costs against a LeNet training step (batch
 * 64, forward + backward): run with CAFFE_TS_MEASURE=1
 *   CAFFE_TS_MEASURE=1 node_modules/.bin/vitest run packages/solver/src/non-finite-cost.test.ts
 * Skipped in the default run (timings on a shared machine are no test).
 */
it.runIf(process.env.CAFFE_TS_MEASURE)('the param check costs under 2% of a LeNet step', () => {
  const net = new Net(parseNetParameter(LENET), { phase: Phase.TRAIN, log: false, rng: new Rng(1) });
  const rng = new Rng(2);
  const d = net.blob('data').mutableCpuData(); for (let i = 0; i < d.length; i++) d[i] = rng.uniform();
  const l = net.blob('label').mutableCpuData(); for (let i = 0; i < l.length; i++) l[i] = rng.int(10);
  const steps: number[] = []; const checks: number[] = [];
  for (let r = 0; r < 21; r++) {
    let t = performance.now(); net.forwardBackward(); net.clearParamDiffs(); steps.push(performance.now() - t);
    t = performance.now(); for (let k = 0; k < 10; k++) if (!paramsFinite(net)) throw new Error('nan'); checks.push((performance.now() - t) / 10);
  }
  const med = (a: number[]) => a.slice().sort((x, y) => x - y)[a.length >> 1]!;
  const n = net.learnableParams.reduce((s, p) => s + p.count(), 0);
  console.log(`LeNet batch ${B}: ${n} params; step median ${med(steps).toFixed(2)} ms (min ${Math.min(...steps).toFixed(2)}); paramsFinite median ${med(checks).toFixed(3)} ms (min ${Math.min(...checks).toFixed(3)}); ${(100 * med(checks) / med(steps)).toFixed(2)}%`);
  expect(med(checks) / med(steps)).toBeLessThan(0.02);
});
