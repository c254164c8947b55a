import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caffe, corpus, hasCorpus, tempDir } from './helpers.js';

/**
 * The twenty mistakes users make most, each pinned to its exact first line of stderr: the file and
 * position (line:column for text, byte offset and field path for binary), the layer or blob, what
 * was expected and what was found. A change to any of these messages must be deliberate.
 */
const dir = tempDir('caffe-ts-errors20-');
const D = dir.path;
const file = (name: string, text: string | Uint8Array) => {
  writeFileSync(join(D, name), text);
  return name;
};
const input = (dims = '2 dim: 3 dim: 8 dim: 8') => `layer { name: "data" type: "Input" top: "data" input_param { shape { dim: ${dims} } } }\n`;
const firstLine = (s: string) => s.trimEnd().split('\n')[0]!.split(D).join('<D>');

async function err(args: string[]): Promise<string> {
  const r = await caffe(args, D);
  expect(r.code, r.stderr + r.stdout).not.toBe(0);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  return firstLine(r.stderr);
}

const lenet = hasCorpus ? corpus('weights/lenet_nn_ex1/lenet_iter_10000.caffemodel') : '';

beforeAll(() => {
  const tiny =
    'name: "tiny"\n' +
    'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { shape { dim: 2 dim: 4 } shape { dim: 2 } data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }\n' +
    'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }\n' +
    'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n';
  file('tiny.prototxt', tiny);
  file('solver-base.txt', 'net: "tiny.prototxt"\nbase_lr: 0.1\nmax_iter: 1\ndisplay: 0\nlr_policy: "fixed"\nsnapshot_after_train: false\n');
  file('1.prototxt', input() + 'layer { name: "relu" type: "ReLU" bottom: "dat" top: "relu" }\n');
  if (hasCorpus) {
    file('2.prototxt', readFileSync(corpus('weights/lenet_nn_ex1/lenet.prototxt'), 'utf8').replace('num_output: 500', 'num_output: 400'));
  }
  file('3.prototxt', input() + 'layer { name: "fc" type: "InnerProdukt" bottom: "data" top: "fc" }\n');
  file('4.prototxt', input() + 'layer {\n  name: "conv"\n  type: "Convolution"\n  bottom: "data"\n  top: "conv"\n  convolution_param { num_output: 4 kernal_size: 3 }\n}\n');
  file('5.prototxt', input() + 'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"\n  pooling_param { pool: MAXIMUM kernel_size: 2 } }\n');
  file('6.prototxt', input() + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" top: "loss" }\n');
  if (hasCorpus) {
    const data = (src: string, extra = '') =>
      `layer { name: "d" type: "Data" top: "data" top: "label" data_param { source: "${src}" backend: LMDB batch_size: 2 } ${extra} }\n` +
      'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }\n';
    file('7.prototxt', data(corpus('data/caffe-made/fashion100_lmdb'), `transform_param { mean_file: "${corpus('nets/age_net/mean.binaryproto')}" }`));
    file('8.prototxt', data('no_such_lmdb'));
  }
  file('11.prototxt', 'train_net: "tiny.prototxt"\ntest_net: "tiny.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\ntest_iter: 1\ntest_iter: 2\ntest_interval: 1\n');
  if (hasCorpus) {
    file('12.caffemodel', readFileSync(lenet).subarray(0, 100000));
    file('12.prototxt', readFileSync(corpus('weights/lenet_nn_ex1/lenet.prototxt'), 'utf8'));
  }
  file('13.prototxt', readFileSync(join(D, 'solver-base.txt'), 'utf8'));
  file('14.prototxt', readFileSync(join(D, 'solver-base.txt'), 'utf8').replace('lr_policy: "fixed"', 'lr_policy: "stepp"'));
  file('15.prototxt', readFileSync(join(D, 'solver-base.txt'), 'utf8') + 'type: "Adamm"\n');
  file('16.prototxt', input() + 'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 } }\n');
  file('17.prototxt', input() + 'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: MAX kernel_size: 2 pad: 2 } }\n');
  file(
    '18.prototxt',
    'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { shape { dim: 2 dim: 4 } shape { dim: 2 } data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 7 } } }\n' +
      'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }\n' +
      'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n',
  );
  file('19.prototxt', 'layers { name: "data" type: DATAA top: "data" }\n');

});
afterAll(() => dir.remove());

describe('the 20 most likely mistakes', () => {
  it('1. wrong bottom name', async () => {
    const line = await err(['time', '--model', '1.prototxt', '--iterations', '1']);
    expect(line).toBe("caffe time: Unknown bottom blob 'dat' (layer 'relu', bottom index 0) (layer defined at <D>/1.prototxt:2:1) [<D>/1.prototxt]");
  });

  it.skipIf(!hasCorpus)('2. caffemodel shape does not match the net', async () => {
    const line = await err(['test', '--model', '2.prototxt', '--weights', lenet, '--iterations', '1']);
    expect(line).toBe(`caffe test: Cannot copy param 0 weights from layer 'ip1'; shape mismatch. Source param shape is 500 800 (400000); target param shape is 400 800 (320000). To learn this layer's parameters from scratch rather than copying from a saved net, rename the layer. [<D>/2.prototxt] (weights file ${corpus()}/weights/lenet_nn_ex1/lenet_iter_10000.caffemodel)`);
  });

  it('3. unknown layer type', async () => {
    const line = await err(['time', '--model', '3.prototxt', '--iterations', '1']);
    expect(line).toMatch(/^caffe time: Unknown layer type: InnerProdukt \(known types: AbsVal, .*\bInnerProduct\b.*\) in layer 'fc' \(layer defined at <D>\/3\.prototxt:2:1\)$/);
  });

  it('4. unknown field', async () => {
    const line = await err(['time', '--model', '4.prototxt', '--iterations', '1']);
    expect(line).toBe("caffe time: <D>/4.prototxt:7:37: unknown field 'kernal_size' in caffe.ConvolutionParameter (at layer[1].convolution_param); did you mean 'kernel_size'?");
  });

  it('5. bad enum value', async () => {
    const line = await err(['time', '--model', '5.prototxt', '--iterations', '1']);
    expect(line).toBe("caffe time: <D>/5.prototxt:3:25: bad value 'MAXIMUM' for enum caffe.PoolingParameter.PoolMethod (expected one of MAX, AVE, STOCHASTIC) (at layer[1].pooling_param.pool)");
  });

  it('6. wrong number of bottoms', async () => {
    const line = await err(['time', '--model', '6.prototxt', '--iterations', '1']);
    expect(line).toBe("caffe time: SoftmaxWithLoss layer 'loss': SoftmaxWithLoss Layer takes 2 bottom blob(s) as input (got 1). (layer defined at <D>/6.prototxt:2:1)");
  });

  it.skipIf(!hasCorpus)('7. mean file of the wrong shape', async () => {
    const line = await err(['time', '--model', '7.prototxt', '--iterations', '1']);
    expect(line).toBe(`caffe time: Data layer 'd', source '${corpus()}/data/caffe-made/fashion100_lmdb': record '00000000': mean_file '${corpus()}/nets/age_net/mean.binaryproto' has shape 1 3 256 256, which does not match the Datum's 1 28 28`);
  });

  it.skipIf(!hasCorpus)('8. missing database', async () => {
    const line = await err(['time', '--model', '8.prototxt', '--iterations', '1']);
    expect(line).toBe("caffe time: Data layer 'd': cannot open LMDB database 'no_such_lmdb': does not exist (looked for <D>/no_such_lmdb)");
  });

  it('9. missing solver file', async () => {
    const line = await err(['train', '--solver', 'missing_solver.prototxt']);
    expect(line).toBe("caffe train: cannot read '<D>/missing_solver.prototxt': no such file");
  });

  it('10. missing weights file', async () => {
    const line = await err(['test', '--model', 'tiny.prototxt', '--weights', 'missing.caffemodel', '--iterations', '1']);
    expect(line).toBe("caffe test: cannot read '<D>/missing.caffemodel': no such file");
  });

  it('11. test_iter count does not match the test nets', async () => {
    const line = await err(['train', '--solver', '11.prototxt']);
    expect(line).toBe("caffe train: <D>/11.prototxt:6:12: test_iter must be specified for each test network. (2 test_iter for 1 test_net/test_net_param)");
  });

  it.skipIf(!hasCorpus)('12. truncated caffemodel', async () => {
    const line = await err(['test', '--model', '12.prototxt', '--weights', '12.caffemodel', '--iterations', '1']);
    expect(line).toBe("caffe test: <D>/12.caffemodel: cannot decode caffe.NetParameter at byte 2326: unexpected end of data: field 'layer' needs 100308 byte(s), 97674 left (in caffe.LayerParameter at layer[3])");
  });

  it('13. --weights with --snapshot', async () => {
    const line = await err(['train', '--solver', '13.prototxt', '--weights', 'a.caffemodel', '--snapshot', 'b.solverstate']);
    expect(line).toBe("caffe train: Give a snapshot to resume training or weights to finetune but not both (got --snapshot b.solverstate and --weights a.caffemodel).");
  });

  it('14. unknown lr_policy', async () => {
    const line = await err(['train', '--solver', '14.prototxt']);
    expect(line).toBe("caffe train: <D>/14.prototxt:5:12: Unknown learning rate policy: stepp (known policies: fixed, step, exp, inv, multistep, poly, sigmoid)");
  });

  it('15. unknown solver type', async () => {
    const line = await err(['train', '--solver', '15.prototxt']);
    expect(line).toBe("caffe train: <D>/15.prototxt:7:7: Unknown solver type: Adamm (known types: AdaDelta, AdaGrad, Adam, Nesterov, RMSProp, SGD)");
  });

  it('16. kernel_size missing', async () => {
    const line = await err(['time', '--model', '16.prototxt', '--iterations', '1']);
    expect(line).toBe("caffe time: Convolution layer 'conv': kernel_size must be specified once, or once per spatial dimension (kernel_size specified 0 times; 2 spatial dims). (layer defined at <D>/16.prototxt:2:1)");
  });

  it('17. pad >= kernel in pooling', async () => {
    const line = await err(['time', '--model', '17.prototxt', '--iterations', '1']);
    expect(line).toBe("caffe time: Pooling layer 'pool': pad_h (2) must be less than kernel_h (2) (layer defined at <D>/17.prototxt:2:1)");
  });

  it('18. label out of range in SoftmaxWithLoss', async () => {
    const line = await err(['time', '--model', '18.prototxt', '--iterations', '1']);
    expect(line).toBe("caffe time: SoftmaxWithLoss layer 'loss': label 7 in bottom 'label' (batch item 0) is outside the valid range [0, 2] (3 classes) (layer defined at <D>/18.prototxt:3:1)");
  });

  it('19. V1 layer with an unknown type enum', async () => {
    const line = await err(['time', '--model', '19.prototxt', '--iterations', '1']);
    expect(line).toMatch(/^caffe time: <D>\/19\.prototxt:1:29: bad value 'DATAA' for enum caffe\.V1LayerParameter\.LayerType \(expected one of NONE, ABSVAL, .*\bDATA\b.*\) \(at layers\[0\]\.type\)$/);
  });

  it('20. non-integer flag value', async () => {
    const line = await err(['test', '--model', 'tiny.prototxt', '--iterations', '1.5']);
    expect(line).toBe("caffe test: flag --iterations expects an integer, got '1.5'");
  });
});
