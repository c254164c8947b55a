import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { registerBuiltinLayers, LayerRegistry } from '@caffe-ts/layers';
import {
  createMessage,
  decodeNetParameter,
  encodeNetParameter,
  parseNetParameter,
  printText,
  V1LayerParameter_LayerType,
  type LayerParameter,
  type NetParameter,
} from '@caffe-ts/proto';
import { NetUpgradeError } from './errors.js';
import { Net } from './net.js';
import { captureLog, testRegistry } from './test-helpers.js';
import { upgradeNet } from './upgrade.js';
import { upgradeV0Net } from './upgrade-v0.js';
import { upgradeV1LayerType, upgradeV1Net, V1_LAYER_TYPE_NAMES } from './upgrade-v1.js';

const show = (p: NetParameter) => printText('NetParameter', p, { fieldOrder: 'number' });
const same = (actual: NetParameter, expectedText: string) => expect(show(actual)).toBe(show(parseNetParameter(expectedText)));

describe('upgradeV1Net', () => {
  it('turns V1 layers into layer { type: "..." } with ParamSpecs from blobs_lr and weight_decay', () => {
    const p = parseNetParameter(`
      name: 'V1Net'
      layers { name: 'data' type: DATA data_param { source: 'db' batch_size: 16 }
               transform_param { crop_size: 24 mirror: true mean_file: 'mean.binaryproto' } top: 'data' top: 'label' }
      layers { name: 'conv' type: CONVOLUTION
               convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: 'msra' } }
               blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 bottom: 'data' top: 'conv' }
      layers { name: 'ip' type: INNER_PRODUCT inner_product_param { num_output: 10 } blobs_lr: 0.5 bottom: 'conv' top: 'ip' }
      layers { name: 'loss' type: SOFTMAX_LOSS bottom: 'ip' bottom: 'label' loss_weight: 2 }
    `);
    const r = upgradeV1Net(p);
    expect(r.success).toBe(true);
    same(
      r.result,
      `name: 'V1Net'
       layer { name: 'data' type: 'Data' data_param { source: 'db' batch_size: 16 }
               transform_param { crop_size: 24 mirror: true mean_file: 'mean.binaryproto' } top: 'data' top: 'label' }
       layer { name: 'conv' type: 'Convolution'
               convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: 'msra' } }
               param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 } bottom: 'data' top: 'conv' }
       layer { name: 'ip' type: 'InnerProduct' inner_product_param { num_output: 10 } param { lr_mult: 0.5 }
               bottom: 'conv' top: 'ip' }
       layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' loss_weight: 2 }`,
    );
    // The original keeps its V1 layers, and the copy shares no editable sub-message with it.
    expect(p.layers).toHaveLength(4);
    r.result.layer[1]!.convolution_param!.num_output = 99;
    expect(p.layers[1]!.convolution_param!.num_output).toBe(4);
  });

  it('upgrades a V0 net through V1 to the current format (as Caffe chains them)', () => {
    const v0 = parseNetParameter(`
      name: 'Chain'
      layers { layer { name: 'data' type: 'data' source: 'db' batchsize: 2 cropsize: 5 } top: 'data' top: 'label' }
      layers { layer { name: 'pad' type: 'padding' pad: 1 } bottom: 'data' top: 'pad' }
      layers { layer { name: 'pool' type: 'pool' pool: MAX kernelsize: 3 stride: 2 } bottom: 'pad' top: 'pool' }
      layers { layer { name: 'fc' type: 'innerproduct' num_output: 3 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
               bottom: 'pool' top: 'fc' }
      layers { layer { name: 'loss' type: 'softmax_loss' } bottom: 'fc' bottom: 'label' }`);
    const v2 = upgradeV1Net(upgradeV0Net(v0).result).result;
    same(
      v2,
      `name: 'Chain'
       layer { name: 'data' type: 'Data' data_param { source: 'db' batch_size: 2 } transform_param { crop_size: 5 }
               top: 'data' top: 'label' }
       layer { name: 'pool' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } bottom: 'data' top: 'pool' }
       layer { name: 'fc' type: 'InnerProduct' inner_product_param { num_output: 3 }
               param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 } bottom: 'pool' top: 'fc' }
       layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'fc' bottom: 'label' }`,
    );
  });

  it('keeps include/exclude rules, param names, share modes, every *_param and the net fields', () => {
    const p = parseNetParameter(`
      name: 'Shared' force_backward: true input: 'a' input_dim: 1 input_dim: 1 input_dim: 2 input_dim: 2
      state { phase: TEST level: 2 }
      layers { name: 'ip1' type: INNER_PRODUCT param: 'w' param: 'b' blob_share_mode: STRICT blob_share_mode: PERMISSIVE
               inner_product_param { num_output: 2 } bottom: 'a' top: 'x' include { phase: TRAIN } exclude { stage: 'deploy' } }
      layers { name: 'ip2' type: INNER_PRODUCT param: 'w' param: '' blobs_lr: 3 inner_product_param { num_output: 2 }
               bottom: 'a' top: 'y' }
      layers { name: 'prelu' type: RELU relu_param { negative_slope: 0.1 } bottom: 'x' top: 'x' }
      layers { name: 'el' type: ELTWISE eltwise_param { operation: MAX } bottom: 'x' bottom: 'y' top: 'z' }
      layers { name: 'th' type: THRESHOLD threshold_param { threshold: 0.2 } bottom: 'z' top: 't' }
      layers { name: 'sl' type: SLICE slice_param { slice_dim: 1 } bottom: 't' top: 's1' top: 's2' }
      layers { name: 'pw' type: POWER power_param { power: 2 scale: 3 shift: 1 } bottom: 's1' top: 'p' }
      layers { name: 'ex' type: EXP exp_param { base: 2 } bottom: 's2' top: 'e' }
      layers { name: 'acc' type: ACCURACY accuracy_param { top_k: 3 } }
      layers { name: 'am' type: ARGMAX argmax_param { top_k: 2 } }
      layers { name: 'mvn' type: MVN mvn_param { across_channels: true } }
      layers { name: 'cl' type: CONTRASTIVE_LOSS contrastive_loss_param { margin: 2 } loss_param { normalize: false } }
      layers { name: 'hl' type: HINGE_LOSS hinge_loss_param { norm: L2 } }
      layers { name: 'dd' type: DUMMY_DATA dummy_data_param { num: 1 channels: 2 height: 3 width: 4 } }
      layers { name: 'md' type: MEMORY_DATA memory_data_param { batch_size: 2 channels: 1 height: 1 width: 1 } }
      layers { name: 'sg' type: SIGMOID sigmoid_param { engine: CAFFE } }
      layers { name: 'sm' type: SOFTMAX softmax_param { axis: 2 } }
      layers { name: 'th2' type: TANH tanh_param { engine: CAFFE } }
      layers { name: 'dc' type: DECONVOLUTION convolution_param { num_output: 1 kernel_size: 2 } }
      layers { name: 'hd' type: HDF5_DATA hdf5_data_param { source: 'list' batch_size: 1 } }
      layers { name: 'ho' type: HDF5_OUTPUT hdf5_output_param { file_name: 'o.h5' } }
      layers { name: 'ig' type: INFOGAIN_LOSS infogain_loss_param { source: 'H' } }
      layers { name: 'lrn' type: LRN lrn_param { local_size: 3 } }
      layers { name: 'im' type: IMAGE_DATA image_data_param { source: 'l.txt' new_height: 4 } }
      layers { name: 'wd' type: WINDOW_DATA window_data_param { source: 'w.txt' fg_fraction: 0.5 } }
      layers { name: 'do' type: DROPOUT dropout_param { dropout_ratio: 0.1 } }
      layers { name: 'cc' type: CONCAT concat_param { axis: 2 } }
      layers { name: 'pl' type: POOLING pooling_param { pool: AVE global_pooling: true } }
      layers { name: 'none' }
    `);
    const r = upgradeV1Net(p);
    expect(r.problems).toEqual([]);
    same(
      r.result,
      `name: 'Shared' force_backward: true input: 'a' input_dim: 1 input_dim: 1 input_dim: 2 input_dim: 2
       state { phase: TEST level: 2 }
       layer { name: 'ip1' type: 'InnerProduct' param { name: 'w' share_mode: STRICT } param { name: 'b' share_mode: PERMISSIVE }
               inner_product_param { num_output: 2 } bottom: 'a' top: 'x' include { phase: TRAIN } exclude { stage: 'deploy' } }
       layer { name: 'ip2' type: 'InnerProduct' param { name: 'w' lr_mult: 3 } param { name: '' }
               inner_product_param { num_output: 2 } bottom: 'a' top: 'y' }
       layer { name: 'prelu' type: 'ReLU' relu_param { negative_slope: 0.1 } bottom: 'x' top: 'x' }
       layer { name: 'el' type: 'Eltwise' eltwise_param { operation: MAX } bottom: 'x' bottom: 'y' top: 'z' }
       layer { name: 'th' type: 'Threshold' threshold_param { threshold: 0.2 } bottom: 'z' top: 't' }
       layer { name: 'sl' type: 'Slice' slice_param { slice_dim: 1 } bottom: 't' top: 's1' top: 's2' }
       layer { name: 'pw' type: 'Power' power_param { power: 2 scale: 3 shift: 1 } bottom: 's1' top: 'p' }
       layer { name: 'ex' type: 'Exp' exp_param { base: 2 } bottom: 's2' top: 'e' }
       layer { name: 'acc' type: 'Accuracy' accuracy_param { top_k: 3 } }
       layer { name: 'am' type: 'ArgMax' argmax_param { top_k: 2 } }
       layer { name: 'mvn' type: 'MVN' mvn_param { across_channels: true } }
       layer { name: 'cl' type: 'ContrastiveLoss' contrastive_loss_param { margin: 2 } loss_param { normalize: false } }
       layer { name: 'hl' type: 'HingeLoss' hinge_loss_param { norm: L2 } }
       layer { name: 'dd' type: 'DummyData' dummy_data_param { num: 1 channels: 2 height: 3 width: 4 } }
       layer { name: 'md' type: 'MemoryData' memory_data_param { batch_size: 2 channels: 1 height: 1 width: 1 } }
       layer { name: 'sg' type: 'Sigmoid' sigmoid_param { engine: CAFFE } }
       layer { name: 'sm' type: 'Softmax' softmax_param { axis: 2 } }
       layer { name: 'th2' type: 'TanH' tanh_param { engine: CAFFE } }
       layer { name: 'dc' type: 'Deconvolution' convolution_param { num_output: 1 kernel_size: 2 } }
       layer { name: 'hd' type: 'HDF5Data' hdf5_data_param { source: 'list' batch_size: 1 } }
       layer { name: 'ho' type: 'HDF5Output' hdf5_output_param { file_name: 'o.h5' } }
       layer { name: 'ig' type: 'InfogainLoss' infogain_loss_param { source: 'H' } }
       layer { name: 'lrn' type: 'LRN' lrn_param { local_size: 3 } }
       layer { name: 'im' type: 'ImageData' image_data_param { source: 'l.txt' new_height: 4 } }
       layer { name: 'wd' type: 'WindowData' window_data_param { source: 'w.txt' fg_fraction: 0.5 } }
       layer { name: 'do' type: 'Dropout' dropout_param { dropout_ratio: 0.1 } }
       layer { name: 'cc' type: 'Concat' concat_param { axis: 2 } }
       layer { name: 'pl' type: 'Pooling' pooling_param { pool: AVE global_pooling: true } }
       layer { name: 'none' }`,
    );
  });

  it('keeps V1 blobs, so V1 caffemodels keep their weights through a binary round trip', () => {
    const p = parseNetParameter(`
      layers { name: 'ip' type: INNER_PRODUCT blobs { shape { dim: 1 dim: 2 } data: 0.25 data: -2 } blobs { shape { dim: 1 } data: 3 } }`);
    const decoded = decodeNetParameter(encodeNetParameter(p));
    const r = upgradeV1Net(decoded);
    expect(r.result.layer[0]!.blobs.map((b) => Array.from(b.data))).toEqual([[0.25, -2], [3]]);
    expect(r.result.layer[0]!.blobs[0]!.shape!.dim).toEqual([1, 2]);
  });

  it('reports a nested V0 layer it cannot carry over, and refuses nets with both layer and layers', () => {
    const p = parseNetParameter(`layers { name: 'r' type: RELU layer { name: 'old' } }`);
    const r = upgradeV1Net(p);
    expect(r.success).toBe(false);
    expect(r.problems).toEqual(['Input NetParameter has V0 layer -- ignoring.', 'Upgrade of input layer 0 failed.']);
    expect(r.result.layer[0]!.type).toBe('ReLU');

    const mixed = parseNetParameter(`layer { name: 'a' type: 'ReLU' } layers { name: 'b' type: RELU }`);
    expect(() => upgradeV1Net(mixed, 'mixed.prototxt')).toThrow(NetUpgradeError);
    expect(() => upgradeV1Net(mixed, 'mixed.prototxt')).toThrow(
      /^mixed\.prototxt: Refusing to upgrade inconsistent NetParameter input; the definition includes both 'layer' \(1\) and 'layers' \(1\) fields/,
    );
  });
});

describe('upgradeV1LayerType', () => {
  const values = Object.values(V1LayerParameter_LayerType).filter((v): v is number => typeof v === 'number');

  it('maps all 39 V1 types plus NONE, each to a distinct string', () => {
    expect(values).toHaveLength(40);
    const names = values.map(upgradeV1LayerType);
    expect(new Set(names).size).toBe(40);
    expect(names.filter((n) => n === '')).toHaveLength(1);
    expect(upgradeV1LayerType(V1LayerParameter_LayerType.NONE)).toBe('');
    // The spellings that do not follow from the enum names.
    expect(upgradeV1LayerType(V1LayerParameter_LayerType.SOFTMAX_LOSS)).toBe('SoftmaxWithLoss');
    expect(upgradeV1LayerType(V1LayerParameter_LayerType.IM2COL)).toBe('Im2col');
    expect(upgradeV1LayerType(V1LayerParameter_LayerType.TANH)).toBe('TanH');
    expect(upgradeV1LayerType(V1LayerParameter_LayerType.ABSVAL)).toBe('AbsVal');
    expect(upgradeV1LayerType(V1LayerParameter_LayerType.HDF5_OUTPUT)).toBe('HDF5Output');
    expect(upgradeV1LayerType(V1LayerParameter_LayerType.MVN)).toBe('MVN');
    expect(Object.keys(V1_LAYER_TYPE_NAMES)).toHaveLength(40);
  });

  it('gives the registered type string of every built-in layer it names (Caffe: TestUpgradeV1LayerType)', () => {
    const registry = registerBuiltinLayers(new LayerRegistry());
    const registered = values.map(upgradeV1LayerType).filter((n) => registry.has(n));
    // Most V1 types are built in; data layers live in @caffe-ts/io-leveldb.
    expect(registered.length).toBeGreaterThanOrEqual(25);
    for (const name of registered) {
      const layer = registry.create(createMessage<LayerParameter>('LayerParameter', { name: 'l', type: name }));
      expect(layer.type).toBe(name);
    }
  });

  it('rejects an unknown enum value', () => {
    expect(() => upgradeV1LayerType(99 as V1LayerParameter_LayerType)).toThrow(/^Unknown V1LayerParameter layer type: 99/);
  });
});

const corpus = fileURLToPath(new URL('../../../../shared/corpus', import.meta.url));

describe.skipIf(!existsSync(corpus))('V1 files from the corpus', () => {
  it.each([
    ['age_net', 8],
    ['gender_net', 2],
  ])('%s deploy.prototxt and train_val prototxt upgrade and build', (name, classes) => {
    const deploy = join(corpus, 'nets', name, 'deploy.prototxt');
    const v1 = parseNetParameter(readFileSync(deploy, 'utf8'));
    expect(v1.layers.length).toBeGreaterThan(10);
    const lines = captureLog(() => upgradeNet(v1, { file: deploy }));
    expect(lines.map((l) => l.message)).toContain(`Attempting to upgrade input file specified using deprecated V1LayerParameter: ${deploy}`);
    const r = upgradeNet(v1, { file: deploy, log: false });
    expect(r.success).toBe(true);
    expect(r.net.layer).toHaveLength(v1.layers.length + 1); // plus the Input layer from input_dim
    const net = new Net(r.net, { registry: testRegistry(), log: false });
    expect(net.blob('prob').shape[1]).toBe(classes);

    const trainVal = parseNetParameter(readFileSync(join(corpus, 'nets', name, 'train_val_test_fold_is_0.prototxt'), 'utf8'));
    const tv = upgradeNet(trainVal, { log: false }).net;
    expect(tv.layers).toEqual([]);
    // Two Data layers split by phase: the include rules survive.
    const data = tv.layer.filter((l) => l.type === 'Data');
    expect(data.map((l) => l.include.map((rule) => rule.phase))).toEqual([[0], [1]]);
    expect(tv.layer.find((l) => l.type === 'Convolution')!.param.map((p) => [p.lr_mult, p.decay_mult])).toEqual([
      [1, 1],
      [2, 0],
    ]);
  });

  it('cifar10_quick_iter_5000.caffemodel (V1 binary) keeps every blob through the upgrade', () => {
    const bytes = readFileSync(join(corpus, 'weights/cifar10_quick_ikkichung/cifar10_quick_iter_5000.caffemodel'));
    const v1 = decodeNetParameter(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    const r = upgradeNet(v1, { log: false });
    expect(r.success).toBe(true);
    expect(r.net.layer.map((l) => l.type)).toEqual(v1.layers.map((l) => upgradeV1LayerType(l.type)));
    r.net.layer.forEach((l, i) => expect(l.blobs).toEqual(v1.layers[i]!.blobs));
    expect(r.net.layer.filter((l) => l.blobs.length === 2).map((l) => l.name)).toEqual(['conv1', 'conv2', 'conv3', 'ip1', 'ip2']);
  });
});
