/**
 * NetSpec, as pycaffe's caffe.net_spec: LeNet written in code, printed as prototxt, built and run.
 *
 *   pnpm --filter @caffe-ts/example-netspec start
 */
import { registerBuiltinLayers, LayerRegistry } from '@caffe-ts/layers';
import { forwardWith, L, Net, NetSpec, P } from '@caffe-ts/net';
import { printText, type NetParameter } from '@caffe-ts/proto';

/** LeNet (Caffe's examples/mnist/lenet.prototxt) for `batch` 28×28 grey images. */
export function lenet(batch: number): NetParameter {
  const n = new NetSpec();
  n.data = L.Input({ shape: { dim: [batch, 1, 28, 28] } });
  const lr = [{ lr_mult: 1 }, { lr_mult: 2 }];
  n.conv1 = L.Convolution(n.data, { kernel_size: 5, num_output: 20, param: lr, weight_filler: { type: 'xavier' }, bias_filler: { type: 'constant' } });
  n.pool1 = L.Pooling(n.conv1, { kernel_size: 2, stride: 2, pool: P.Pooling!.MAX });
  n.conv2 = L.Convolution(n.pool1, { kernel_size: 5, num_output: 50, param: lr, weight_filler: { type: 'xavier' }, bias_filler: { type: 'constant' } });
  n.pool2 = L.Pooling(n.conv2, { kernel_size: 2, stride: 2, pool: 'MAX' });
  n.ip1 = L.InnerProduct(n.pool2, { num_output: 500, param: lr, weight_filler: { type: 'xavier' }, bias_filler: { type: 'constant' } });
  n.relu1 = L.ReLU(n.ip1, { in_place: true });
  n.ip2 = L.InnerProduct(n.ip1, { num_output: 10, param: lr, weight_filler: { type: 'xavier' }, bias_filler: { type: 'constant' } });
  n.prob = L.Softmax(n.ip2);
  return n.toProto('LeNet');
}

export interface NetSpecResult {
  prototxt: string;
  /** The output blobs of one forward pass on a random batch. */
  outputs: Record<string, Float32Array>;
  shapes: Record<string, number[]>;
}

export async function main({ batch = 2, print = false }: { batch?: number; print?: boolean } = {}): Promise<NetSpecResult> {
  const param = lenet(batch);
  const prototxt = printText('NetParameter', param);
  if (print) console.log(prototxt);
  const net = new Net(param, { registry: registerBuiltinLayers(new LayerRegistry()), log: false });
  const data = new Float32Array(batch * 28 * 28).map((_, i) => (i % 29) / 29);
  const outputs = forwardWith(net, { data });
  const shapes = Object.fromEntries(net.blobNames.map((b) => [b, [...net.blob(b).shape]]));
  if (print) for (const [name, v] of Object.entries(outputs)) console.log(`${name}: ${shapes[name]!.join('x')} = [${[...v.slice(0, 10)].map((x) => x.toFixed(3)).join(', ')}${v.length > 10 ? ', …' : ''}]`);
  return { prototxt, outputs, shapes };
}
