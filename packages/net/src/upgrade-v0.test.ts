import { describe, expect, it } from 'vitest';
import { parseNetParameter, printText, type NetParameter } from '@caffe-ts/proto';
import { NetUpgradeError } from './errors.js';
import { netNeedsV0ToV1Upgrade, upgradeV0LayerType, upgradeV0Net, upgradeV0PaddingLayers } from './upgrade-v0.js';

// Compared as Caffe's test compares DebugString: printed in field-number order.
const show = (p: NetParameter) => printText('NetParameter', p, { fieldOrder: 'number' });
const same = (actual: NetParameter, expectedText: string) => expect(show(actual)).toBe(show(parseNetParameter(expectedText)));

// A small V0 net in the style of 2013's imagenet.prototxt: a data layer with flat settings, a
// padding layer in front of a conv layer, an inner product and a loss.
const V0_SMALL = `
name: 'TinyNet'
layers { layer { name: 'data' type: 'data' source: 'train-db' meanfile: 'mean.binaryproto'
                 batchsize: 32 cropsize: 27 mirror: true } top: 'data' top: 'label' }
layers { layer { name: 'pad1' type: 'padding' pad: 3 } bottom: 'data' top: 'pad1' }
layers { layer { name: 'conv1' type: 'conv' num_output: 8 kernelsize: 5 stride: 2
                 weight_filler { type: 'gaussian' std: 0.02 } bias_filler { type: 'constant' value: 0.5 }
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 } bottom: 'pad1' top: 'conv1' }
layers { layer { name: 'fc' type: 'innerproduct' num_output: 10
                 weight_filler { type: 'xavier' } blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: 'conv1' top: 'fc' }
layers { layer { name: 'loss' type: 'softmax_loss' } bottom: 'fc' bottom: 'label' }
`;

describe('upgradeV0PaddingLayers', () => {
  it('folds a padding layer into the conv layer that reads it, and is idempotent', () => {
    const p = parseNetParameter(V0_SMALL);
    const out = upgradeV0PaddingLayers(p);
    same(
      out,
      `name: 'TinyNet'
       layers { layer { name: 'data' type: 'data' source: 'train-db' meanfile: 'mean.binaryproto'
                        batchsize: 32 cropsize: 27 mirror: true } top: 'data' top: 'label' }
       layers { layer { name: 'conv1' type: 'conv' num_output: 8 kernelsize: 5 stride: 2 pad: 3
                        weight_filler { type: 'gaussian' std: 0.02 } bias_filler { type: 'constant' value: 0.5 }
                        blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 } bottom: 'data' top: 'conv1' }
       layers { layer { name: 'fc' type: 'innerproduct' num_output: 10
                        weight_filler { type: 'xavier' } blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
                bottom: 'conv1' top: 'fc' }
       layers { layer { name: 'loss' type: 'softmax_loss' } bottom: 'fc' bottom: 'label' }`,
    );
    expect(show(upgradeV0PaddingLayers(out))).toBe(show(out));
    // The input is untouched.
    expect(p.layers).toHaveLength(5);
    expect(p.layers[2]!.bottom).toEqual(['pad1']);
  });

  it('handles several padded layers, a pool after padding, a layer with two tops and net inputs', () => {
    const p = parseNetParameter(`
      input: 'img' input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
      layers { layer { name: 'split2' type: 'split' } bottom: 'img' top: 'a' top: 'b' }
      layers { layer { name: 'padA' type: 'padding' pad: 1 } bottom: 'a' top: 'padA' }
      layers { layer { name: 'convA' type: 'conv' num_output: 2 kernelsize: 3 } bottom: 'padA' top: 'convA' }
      layers { layer { name: 'padB' type: 'padding' pad: 2 } bottom: 'b' top: 'padB' }
      layers { layer { name: 'poolB' type: 'pool' kernelsize: 3 stride: 2 } bottom: 'padB' top: 'poolB' }
      layers { layer { name: 'join' type: 'concat' } bottom: 'convA' bottom: 'poolB' top: 'out' }
    `);
    const out = upgradeV0PaddingLayers(p);
    expect(out.layers.map((l) => l.layer!.name)).toEqual(['split2', 'convA', 'poolB', 'join']);
    expect(out.layers[1]!.bottom).toEqual(['a']);
    expect(out.layers[1]!.layer!.pad).toBe(1);
    expect(out.layers[2]!.bottom).toEqual(['b']);
    expect(out.layers[2]!.layer!.pad).toBe(2);
    expect(out.layers[3]!.bottom).toEqual(['convA', 'poolB']);
    expect(out.input).toEqual(['img']);
    expect(out.input_dim).toEqual([1, 3, 8, 8]);
  });

  it('refuses padding in front of anything but a single-input conv or pool layer, and unknown bottoms', () => {
    const relu = parseNetParameter(`
      input: 'x'
      layers { layer { name: 'pad' type: 'padding' pad: 1 } bottom: 'x' top: 'p' }
      layers { layer { name: 'r' type: 'relu' } bottom: 'p' top: 'y' }`);
    expect(() => upgradeV0PaddingLayers(relu, 'old.prototxt')).toThrow(NetUpgradeError);
    expect(() => upgradeV0PaddingLayers(relu, 'old.prototxt')).toThrow(
      "old.prototxt: padding layer 'pad' feeding layer 'r': Padding layer input to non-convolutional / non-pooling layer type relu",
    );
    const unknown = parseNetParameter(`layers { layer { name: 'r' type: 'relu' } bottom: 'nowhere' top: 'y' }`);
    expect(() => upgradeV0PaddingLayers(unknown, 'old.prototxt')).toThrow(
      "old.prototxt: Unknown blob input nowhere to layer 0 ('r', bottom 0) while upgrading V0 padding layers",
    );
  });
});

describe('upgradeV0Net', () => {
  it('upgrades the small net to V1, padding folded and settings in their parameter messages', () => {
    const p = parseNetParameter(V0_SMALL);
    expect(netNeedsV0ToV1Upgrade(p)).toBe(true);
    const r = upgradeV0Net(p);
    expect(r.success).toBe(true);
    expect(r.problems).toEqual([]);
    expect(netNeedsV0ToV1Upgrade(r.result)).toBe(false);
    same(
      r.result,
      `name: 'TinyNet'
       layers { name: 'data' type: DATA data_param { source: 'train-db' batch_size: 32 }
                transform_param { crop_size: 27 mirror: true mean_file: 'mean.binaryproto' } top: 'data' top: 'label' }
       layers { name: 'conv1' type: CONVOLUTION
                convolution_param { num_output: 8 kernel_size: 5 stride: 2 pad: 3
                                    weight_filler { type: 'gaussian' std: 0.02 } bias_filler { type: 'constant' value: 0.5 } }
                blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 bottom: 'data' top: 'conv1' }
       layers { name: 'fc' type: INNER_PRODUCT inner_product_param { num_output: 10 weight_filler { type: 'xavier' } }
                blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 bottom: 'conv1' top: 'fc' }
       layers { name: 'loss' type: SOFTMAX_LOSS bottom: 'fc' bottom: 'label' }`,
    );
  });

  it('carries every V0 parameter to its V1 home (all layer types)', () => {
    const p = parseNetParameter(`
      name: 'AllParams' input: 'in' input_dim: 2 input_dim: 3 input_dim: 16 input_dim: 16 force_backward: true
      layers { layer { name: 'd' type: 'data' source: 'db' meanfile: 'm' batchsize: 8 cropsize: 12 mirror: true
                       scale: 0.5 rand_skip: 7 } top: 'd' top: 'dl' }
      layers { layer { name: 'im' type: 'images' source: 'list.txt' meanfile: 'm2' batchsize: 4 cropsize: 10
                       mirror: false scale: 0.125 rand_skip: 3 shuffle_images: true new_height: 20 new_width: 24 }
               top: 'im' top: 'iml' }
      layers { layer { name: 'w' type: 'window_data' source: 'windows.txt' batchsize: 16 cropsize: 11
                       det_fg_threshold: 0.75 det_bg_threshold: 0.25 det_fg_fraction: 0.5 det_context_pad: 8
                       det_crop_mode: 'square' } top: 'w' top: 'wl' }
      layers { layer { name: 'h' type: 'hdf5_data' source: 'h5list.txt' batchsize: 5 } top: 'h' }
      layers { layer { name: 'c' type: 'conv' num_output: 6 biasterm: false pad: 1 kernelsize: 3 group: 3 stride: 2
                       weight_filler { type: 'gaussian' std: 0.1 } bias_filler { type: 'constant' value: 2 } }
               bottom: 'in' top: 'c' }
      layers { layer { name: 'pa' type: 'pool' pool: AVE kernelsize: 2 stride: 2 pad: 1 } bottom: 'c' top: 'pa' }
      layers { layer { name: 'ps' type: 'pool' pool: STOCHASTIC kernelsize: 3 stride: 1 } bottom: 'c' top: 'ps' }
      layers { layer { name: 'cat' type: 'concat' concat_dim: 1 } bottom: 'pa' bottom: 'ps' top: 'cat' }
      layers { layer { name: 'n' type: 'lrn' local_size: 3 alpha: 0.001 beta: 0.5 k: 2 } bottom: 'cat' top: 'n' }
      layers { layer { name: 'ip' type: 'innerproduct' num_output: 7 biasterm: false } bottom: 'n' top: 'ip' }
      layers { layer { name: 'dr' type: 'dropout' dropout_ratio: 0.3 } bottom: 'ip' top: 'ip' }
      layers { layer { name: 'ig' type: 'infogain_loss' source: 'H.binaryproto' } bottom: 'ip' bottom: 'dl' }
      layers { layer { name: 'out' type: 'hdf5_output' hdf5_output_param { file_name: 'out.h5' } } bottom: 'ip' }
      layers { layer { name: 'acc' type: 'accuracy' } }
      layers { layer { name: 'b' type: 'bnll' } }
      layers { layer { name: 'e' type: 'euclidean_loss' } }
      layers { layer { name: 'f' type: 'flatten' } }
      layers { layer { name: 'i2c' type: 'im2col' } }
      layers { layer { name: 'mll' type: 'multinomial_logistic_loss' } }
      layers { layer { name: 'r' type: 'relu' } }
      layers { layer { name: 's' type: 'sigmoid' } }
      layers { layer { name: 'sm' type: 'softmax' } }
      layers { layer { name: 'sp' type: 'split' } }
      layers { layer { name: 't' type: 'tanh' } }
    `);
    const r = upgradeV0Net(p);
    expect(r.problems).toEqual([]);
    same(
      r.result,
      `name: 'AllParams' input: 'in' input_dim: 2 input_dim: 3 input_dim: 16 input_dim: 16 force_backward: true
       layers { name: 'd' type: DATA data_param { source: 'db' batch_size: 8 rand_skip: 7 }
                transform_param { scale: 0.5 mean_file: 'm' crop_size: 12 mirror: true } top: 'd' top: 'dl' }
       layers { name: 'im' type: IMAGE_DATA
                image_data_param { source: 'list.txt' batch_size: 4 rand_skip: 3 shuffle: true new_height: 20 new_width: 24 }
                transform_param { scale: 0.125 mean_file: 'm2' crop_size: 10 mirror: false } top: 'im' top: 'iml' }
       layers { name: 'w' type: WINDOW_DATA
                window_data_param { source: 'windows.txt' batch_size: 16 fg_threshold: 0.75 bg_threshold: 0.25
                                    fg_fraction: 0.5 context_pad: 8 crop_mode: 'square' }
                transform_param { crop_size: 11 } top: 'w' top: 'wl' }
       layers { name: 'h' type: HDF5_DATA hdf5_data_param { source: 'h5list.txt' batch_size: 5 } top: 'h' }
       layers { name: 'c' type: CONVOLUTION
                convolution_param { num_output: 6 bias_term: false pad: 1 kernel_size: 3 group: 3 stride: 2
                                    weight_filler { type: 'gaussian' std: 0.1 } bias_filler { type: 'constant' value: 2 } }
                bottom: 'in' top: 'c' }
       layers { name: 'pa' type: POOLING pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 } bottom: 'c' top: 'pa' }
       layers { name: 'ps' type: POOLING pooling_param { pool: STOCHASTIC kernel_size: 3 stride: 1 } bottom: 'c' top: 'ps' }
       layers { name: 'cat' type: CONCAT concat_param { concat_dim: 1 } bottom: 'pa' bottom: 'ps' top: 'cat' }
       layers { name: 'n' type: LRN lrn_param { local_size: 3 alpha: 0.001 beta: 0.5 k: 2 } bottom: 'cat' top: 'n' }
       layers { name: 'ip' type: INNER_PRODUCT inner_product_param { num_output: 7 bias_term: false } bottom: 'n' top: 'ip' }
       layers { name: 'dr' type: DROPOUT dropout_param { dropout_ratio: 0.3 } bottom: 'ip' top: 'ip' }
       layers { name: 'ig' type: INFOGAIN_LOSS infogain_loss_param { source: 'H.binaryproto' } bottom: 'ip' bottom: 'dl' }
       layers { name: 'out' type: HDF5_OUTPUT hdf5_output_param { file_name: 'out.h5' } bottom: 'ip' }
       layers { name: 'acc' type: ACCURACY }
       layers { name: 'b' type: BNLL }
       layers { name: 'e' type: EUCLIDEAN_LOSS }
       layers { name: 'f' type: FLATTEN }
       layers { name: 'i2c' type: IM2COL }
       layers { name: 'mll' type: MULTINOMIAL_LOGISTIC_LOSS }
       layers { name: 'r' type: RELU }
       layers { name: 's' type: SIGMOID }
       layers { name: 'sm' type: SOFTMAX }
       layers { name: 'sp' type: SPLIT }
       layers { name: 't' type: TANH }`,
    );
  });

  it('reports settings that have no home for the layer type, and keeps going', () => {
    const p = parseNetParameter(`
      input: 'x'
      layers { layer { name: 'r' type: 'relu' num_output: 4 kernelsize: 3 } bottom: 'x' top: 'y' }
      layers { layer { name: 'ip' type: 'innerproduct' num_output: 2 group: 2 } bottom: 'y' top: 'z' }
    `);
    const r = upgradeV0Net(p);
    expect(r.success).toBe(false);
    expect(r.problems).toEqual([
      "Unknown parameter num_output for layer type relu (layer 'r')",
      "Unknown parameter kernelsize for layer type relu (layer 'r')",
      "Unknown parameter group for layer type innerproduct (layer 'ip')",
    ]);
    same(
      r.result,
      `input: 'x'
       layers { name: 'r' type: RELU bottom: 'x' top: 'y' }
       layers { name: 'ip' type: INNER_PRODUCT inner_product_param { num_output: 2 } bottom: 'y' top: 'z' }`,
    );
  });

  it('carries V0 blobs over (old caffemodels keep their weights) and rejects unknown V0 types', () => {
    const p = parseNetParameter(`
      layers { layer { name: 'ip' type: 'innerproduct' num_output: 1 blobs { num: 1 channels: 1 height: 1 width: 2 data: 0.5 data: -1 } } }
    `);
    const r = upgradeV0Net(p);
    expect(r.result.layers[0]!.blobs).toHaveLength(1);
    expect(r.result.layers[0]!.blobs[0]!.data).toEqual([0.5, -1]);
    expect(upgradeV0LayerType('images')).toBe(12);
    expect(() => upgradeV0LayerType('convolution')).toThrow(/^Unknown layer name: convolution \(V0 layer types: accuracy, bnll/);
    const bad = parseNetParameter(`layers { layer { name: 'x' type: 'deconv' } }`);
    expect(() => upgradeV0Net(bad)).toThrow(NetUpgradeError);
  });
});
