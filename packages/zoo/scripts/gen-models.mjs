#!/usr/bin/env node
// Writes the zoo's generated prototxts (run: node packages/zoo/scripts/gen-models.mjs).
// Architectures are taken from their papers and Caffe's published layer layouts (layer names kept
// so released .caffemodel weights load by name); the text is built here, not copied.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'models');

/** A tiny NetSpec: layers appended in order, rendered as prototxt text. */
class Spec {
  constructor(name, header) {
    this.name = name;
    this.header = header;
    this.layers = [];
  }
  add(name, type, bottom, top, body = '', extra = '') {
    this.layers.push({ name, type, bottom: [].concat(bottom ?? []), top: [].concat(top ?? []), body, extra });
    return top;
  }
  input(shape, top = 'data') {
    return this.add('data', 'Input', [], top, `input_param { shape { ${shape.map((d) => `dim: ${d}`).join(' ')} } }`);
  }
  conv(name, bottom, n, k, { stride = 1, pad = 0, group = 1, bias = true, lr = true, wf = null, top = name } = {}) {
    const p = [`num_output: ${n}`];
    if (!bias) p.push('bias_term: false');
    if (pad) p.push(`pad: ${pad}`);
    p.push(`kernel_size: ${k}`);
    if (group !== 1) p.push(`group: ${group}`);
    if (stride !== 1) p.push(`stride: ${stride}`);
    if (wf) p.push(`weight_filler { ${wf} }`);
    if (wf && bias) p.push('bias_filler { type: "constant" value: 0 }');
    const params = lr ? (bias ? lrMults(1, 1, 2, 0) : 'param { lr_mult: 1 decay_mult: 1 }') : '';
    return this.add(name, 'Convolution', bottom, top, `convolution_param { ${p.join(' ')} }`, params);
  }
  relu(name, blob) {
    return this.add(name, 'ReLU', blob, blob);
  }
  pool(name, bottom, method, k, s, { pad = 0, global = false, top = name } = {}) {
    const p = [`pool: ${method}`];
    if (global) p.push('global_pooling: true');
    else {
      p.push(`kernel_size: ${k}`);
      if (s !== 1) p.push(`stride: ${s}`);
      if (pad) p.push(`pad: ${pad}`);
    }
    return this.add(name, 'Pooling', bottom, top, `pooling_param { ${p.join(' ')} }`);
  }
  lrn(name, bottom, size = 5, alpha = 0.0001, beta = 0.75, extra = '', top = name) {
    return this.add(name, 'LRN', bottom, top, `lrn_param { local_size: ${size} alpha: ${alpha} beta: ${beta}${extra} }`);
  }
  ip(name, bottom, n, { lr = true, wf = null, bf = null, top = name } = {}) {
    const p = [`num_output: ${n}`];
    if (wf) p.push(`weight_filler { ${wf} }`);
    if (bf) p.push(`bias_filler { ${bf} }`);
    return this.add(name, 'InnerProduct', bottom, top, `inner_product_param { ${p.join(' ')} }`, lr ? lrMults(1, 1, 2, 0) : '');
  }
  dropout(name, blob, ratio) {
    return this.add(name, 'Dropout', blob, blob, `dropout_param { dropout_ratio: ${ratio} }`);
  }
  concat(name, bottoms, top = name) {
    return this.add(name, 'Concat', bottoms, top);
  }
  softmax(name, bottom, top = name) {
    return this.add(name, 'Softmax', bottom, top);
  }
  /** Convolution + BatchNorm (global stats) + Scale (+ ReLU), the BN-era building block. */
  convBn(conv, bn, scale, relu, bottom, n, k, opts = {}) {
    this.conv(conv, bottom, n, k, { bias: false, lr: false, ...opts });
    this.add(bn, 'BatchNorm', conv, conv, 'batch_norm_param { use_global_stats: true }');
    this.add(scale, 'Scale', conv, conv, 'scale_param { bias_term: true }');
    if (relu) this.relu(relu, conv);
    return conv;
  }
  render() {
    const out = [...this.header.map((h) => `# ${h}`), `name: "${this.name}"`];
    for (const l of this.layers) {
      out.push('layer {', `  name: "${l.name}"`, `  type: "${l.type}"`);
      for (const b of l.bottom) out.push(`  bottom: "${b}"`);
      for (const t of l.top) out.push(`  top: "${t}"`);
      for (const e of [l.extra, l.body].filter(Boolean)) out.push(...e.split('\n').map((s) => `  ${s}`));
      out.push('}');
    }
    return out.join('\n') + '\n';
  }
}

function lrMults(wl, wd, bl, bd) {
  return `param { lr_mult: ${wl} decay_mult: ${wd} }\nparam { lr_mult: ${bl} decay_mult: ${bd} }`;
}

function write(model, file, text) {
  const path = join(root, model, file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  console.log(`wrote ${path}`);
}

// ---- ImageNet data layers for train_val nets -------------------------------------------------

function imagenetData(s, crop, { meanFile = true } = {}) {
  const mean = meanFile
    ? 'mean_file: "data/ilsvrc12/imagenet_mean.binaryproto"'
    : 'mean_value: 104 mean_value: 117 mean_value: 123';
  s.add('data', 'Data', [], ['data', 'label'], `transform_param { mirror: true crop_size: ${crop} ${mean} }\ndata_param { source: "examples/imagenet/ilsvrc12_train_lmdb" batch_size: BATCH_TRAIN backend: LMDB }`, 'include { phase: TRAIN }');
  s.add('data', 'Data', [], ['data', 'label'], `transform_param { mirror: false crop_size: ${crop} ${mean} }\ndata_param { source: "examples/imagenet/ilsvrc12_val_lmdb" batch_size: 50 backend: LMDB }`, 'include { phase: TEST }');
}

function lossHead(s, bottom, { top5 = false, prefix = '', weight = null } = {}) {
  s.add(`${prefix}accuracy${top5 ? '' : ''}`, 'Accuracy', [bottom, 'label'], `${prefix}accuracy`, '', 'include { phase: TEST }');
  if (top5) s.add(`${prefix}accuracy_top5`, 'Accuracy', [bottom, 'label'], `${prefix}accuracy_top5`, 'accuracy_param { top_k: 5 }', 'include { phase: TEST }');
  s.add(`${prefix}loss`, 'SoftmaxWithLoss', [bottom, 'label'], `${prefix}loss`, weight === null ? '' : `loss_weight: ${weight}`);
}

// ---- CaffeNet / AlexNet ------------------------------------------------------------------------

function caffenetLike(kind, mode) {
  const alex = kind === 'alexnet';
  const fullConv = kind === 'caffenet_full_conv';
  const rcnn = kind === 'rcnn_ilsvrc13';
  const flickr = kind === 'finetune_flickr_style';
  const netName = alex ? 'AlexNet' : fullConv ? 'CaffeNetConv' : rcnn ? 'R-CNN-ilsvrc13' : flickr ? 'FlickrStyleCaffeNet' : 'CaffeNet';
  const s = new Spec(netName, [
    fullConv
      ? 'CaffeNet made fully convolutional (Caffe\'s net_surgery example): fc6/fc7/fc8 as 6x6, 1x1, 1x1 convolutions.'
      : alex
      ? 'AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012) as BVLC trained it: LRN before pooling.'
      : rcnn
      ? 'R-CNN ILSVRC13 detector (bvlc_reference_rcnn_ilsvrc13): CaffeNet features, the 200 detection classes\' SVMs as the fc-rcnn layer.'
      : flickr
      ? 'CaffeNet fine-tuned for the 20 Flickr Style labels (finetune_flickr_style): a new fc8_flickr layer learning 10x faster.'
      : 'CaffeNet: BVLC\'s AlexNet variant with pooling before LRN (bvlc_reference_caffenet).',
    fullConv
      ? 'A 451x451 input gives an 8x8 map of class probabilities, one per 227x227 window at a stride of 32 pixels.'
      : rcnn
      ? 'Inference: 10 warped windows of 3x227x227 BGR minus the ImageNet mean in, 200 SVM scores out (no softmax; caffe detect_windows).'
      : flickr && mode === 'deploy'
      ? 'Inference: 10 crops of 3x227x227 BGR minus the ImageNet mean in, 20 style probabilities out.'
      : flickr
      ? 'Fine-tuning from CaffeNet\'s weights on image lists (data/flickr_style/train.txt, test.txt: "path label" lines), paths relative to the Caffe root.'
      : mode === 'deploy' ? 'Inference: 10 crops of 3x227x227 BGR minus the ImageNet mean in, 1000 class probabilities out.' : 'Training/validation on ILSVRC-2012 LMDBs (paths relative to the Caffe root, as in Caffe).',
  ]);
  const train = mode !== 'deploy';
  const g = (std) => (train ? `type: "gaussian" std: ${std}` : null);
  const c = (v) => (train ? `type: "constant" value: ${v}` : null);
  const conv = (name, bottom, n, k, o, bias) => {
    s.conv(name, bottom, n, k, { ...o, lr: train, wf: g(0.01) });
    if (train) s.layers.at(-1).body = s.layers.at(-1).body.replace('bias_filler { type: "constant" value: 0 }', `bias_filler { ${c(bias)} }`);
  };
  if (train && flickr) {
    const images = (phase, list, mirror) => s.add('data', 'ImageData', [], ['data', 'label'],
      `transform_param { mirror: ${mirror} crop_size: 227 mean_file: "data/ilsvrc12/imagenet_mean.binaryproto" }\nimage_data_param { source: "data/flickr_style/${list}" batch_size: 50 new_height: 256 new_width: 256 }`,
      `include { phase: ${phase} }`);
    images('TRAIN', 'train.txt', true);
    images('TEST', 'test.txt', false);
  } else if (train) imagenetData(s, 227, { meanFile: true });
  else s.input(fullConv ? [1, 3, 451, 451] : [10, 3, 227, 227]);
  conv('conv1', 'data', 96, 11, { stride: 4 }, 0);
  s.relu('relu1', 'conv1');
  if (alex) {
    s.lrn('norm1', 'conv1');
    s.pool('pool1', 'norm1', 'MAX', 3, 2);
  } else {
    s.pool('pool1', 'conv1', 'MAX', 3, 2);
    s.lrn('norm1', 'pool1');
  }
  conv('conv2', alex ? 'pool1' : 'norm1', 256, 5, { pad: 2, group: 2 }, alex ? 0.1 : 1);
  s.relu('relu2', 'conv2');
  if (alex) {
    s.lrn('norm2', 'conv2');
    s.pool('pool2', 'norm2', 'MAX', 3, 2);
  } else {
    s.pool('pool2', 'conv2', 'MAX', 3, 2);
    s.lrn('norm2', 'pool2');
  }
  conv('conv3', alex ? 'pool2' : 'norm2', 384, 3, { pad: 1 }, 0);
  s.relu('relu3', 'conv3');
  conv('conv4', 'conv3', 384, 3, { pad: 1, group: 2 }, alex ? 0.1 : 1);
  s.relu('relu4', 'conv4');
  conv('conv5', 'conv4', 256, 3, { pad: 1, group: 2 }, alex ? 0.1 : 1);
  s.relu('relu5', 'conv5');
  s.pool('pool5', 'conv5', 'MAX', 3, 2);
  if (fullConv) {
    s.conv('fc6-conv', 'pool5', 4096, 6, { lr: false });
    s.relu('relu6', 'fc6-conv');
    s.dropout('drop6', 'fc6-conv', 0.5);
    s.conv('fc7-conv', 'fc6-conv', 4096, 1, { lr: false });
    s.relu('relu7', 'fc7-conv');
    s.dropout('drop7', 'fc7-conv', 0.5);
    s.conv('fc8-conv', 'fc7-conv', 1000, 1, { lr: false });
    s.softmax('prob', 'fc8-conv');
    return s.render();
  }
  s.ip('fc6', 'pool5', 4096, { lr: train, wf: g(0.005), bf: c(alex ? 0.1 : 1) });
  s.relu('relu6', 'fc6');
  s.dropout('drop6', 'fc6', 0.5);
  s.ip('fc7', 'fc6', 4096, { lr: train, wf: g(0.005), bf: c(alex ? 0.1 : 1) });
  s.relu('relu7', 'fc7');
  s.dropout('drop7', 'fc7', 0.5);
  if (rcnn) {
    s.ip('fc-rcnn', 'fc7', 200, { lr: false });
    return s.render();
  }
  if (flickr) {
    s.ip('fc8_flickr', 'fc7', 20, { lr: false, wf: 'type: "gaussian" std: 0.01', bf: 'type: "constant" value: 0' });
    // A new layer learning from random weights while the others are already trained: 10x the rate.
    s.layers.at(-1).extra = lrMults(10, 1, 20, 0);
    if (train) lossHead(s, 'fc8_flickr');
    else s.softmax('prob', 'fc8_flickr');
    return s.render();
  }
  s.ip('fc8', 'fc7', 1000, { lr: train, wf: g(0.01), bf: c(0) });
  if (train) lossHead(s, 'fc8');
  else s.softmax('prob', 'fc8');
  return s.render().replaceAll('BATCH_TRAIN', alex ? '256' : '256');
}

function imagenetSolver(netFile, snapshotPrefix, o) {
  return [
    `# ${o.comment}`,
    `net: "${netFile}"`,
    `test_iter: ${o.testIter}`,
    `test_interval: ${o.testInterval}`,
    `base_lr: ${o.baseLr}`,
    `lr_policy: "${o.policy}"`,
    ...(o.extra ?? []),
    `display: ${o.display ?? 20}`,
    `max_iter: ${o.maxIter}`,
    `momentum: ${o.momentum ?? 0.9}`,
    `weight_decay: ${o.weightDecay}`,
    `snapshot: ${o.snapshot}`,
    `snapshot_prefix: "${snapshotPrefix}"`,
    'solver_mode: CPU',
    '',
  ].join('\n');
}

// ---- GoogLeNet ---------------------------------------------------------------------------------

const INCEPTION = {
  '3a': [64, 96, 128, 16, 32, 32],
  '3b': [128, 128, 192, 32, 96, 64],
  '4a': [192, 96, 208, 16, 48, 64],
  '4b': [160, 112, 224, 24, 64, 64],
  '4c': [128, 128, 256, 24, 64, 64],
  '4d': [112, 144, 288, 32, 64, 64],
  '4e': [256, 160, 320, 32, 128, 128],
  '5a': [256, 160, 320, 32, 128, 128],
  '5b': [384, 192, 384, 48, 128, 128],
};

function googlenet(mode) {
  const train = mode !== 'deploy';
  const s = new Spec('GoogleNet', [
    'GoogLeNet (Szegedy et al., "Going deeper with convolutions", CVPR 2015), BVLC\'s Caffe replication.',
    train ? 'Training/validation with the two auxiliary classifiers (loss weight 0.3).' : 'Inference: 10 crops of 3x224x224 BGR minus the mean (104, 117, 123) in, 1000 class probabilities out.',
  ]);
  const xavier = train ? 'type: "xavier"' : null;
  const conv = (name, bottom, n, k, o = {}) => {
    s.conv(name, bottom, n, k, { ...o, lr: train, wf: xavier });
    if (train) s.layers.at(-1).body = s.layers.at(-1).body.replace('value: 0 }', 'value: 0.2 }');
    return name;
  };
  if (train) imagenetData(s, 224, { meanFile: false });
  else s.input([10, 3, 224, 224]);
  conv('conv1/7x7_s2', 'data', 64, 7, { pad: 3, stride: 2 });
  s.relu('conv1/relu_7x7', 'conv1/7x7_s2');
  s.pool('pool1/3x3_s2', 'conv1/7x7_s2', 'MAX', 3, 2);
  s.lrn('pool1/norm1', 'pool1/3x3_s2');
  conv('conv2/3x3_reduce', 'pool1/norm1', 64, 1);
  s.relu('conv2/relu_3x3_reduce', 'conv2/3x3_reduce');
  conv('conv2/3x3', 'conv2/3x3_reduce', 192, 3, { pad: 1 });
  s.relu('conv2/relu_3x3', 'conv2/3x3');
  s.lrn('conv2/norm2', 'conv2/3x3');
  s.pool('pool2/3x3_s2', 'conv2/norm2', 'MAX', 3, 2);
  let x = 'pool2/3x3_s2';
  const inception = (id, bottom) => {
    const [n1, n3r, n3, n5r, n5, np] = INCEPTION[id];
    const p = `inception_${id}`;
    conv(`${p}/1x1`, bottom, n1, 1);
    s.relu(`${p}/relu_1x1`, `${p}/1x1`);
    conv(`${p}/3x3_reduce`, bottom, n3r, 1);
    s.relu(`${p}/relu_3x3_reduce`, `${p}/3x3_reduce`);
    conv(`${p}/3x3`, `${p}/3x3_reduce`, n3, 3, { pad: 1 });
    s.relu(`${p}/relu_3x3`, `${p}/3x3`);
    conv(`${p}/5x5_reduce`, bottom, n5r, 1);
    s.relu(`${p}/relu_5x5_reduce`, `${p}/5x5_reduce`);
    conv(`${p}/5x5`, `${p}/5x5_reduce`, n5, 5, { pad: 2 });
    s.relu(`${p}/relu_5x5`, `${p}/5x5`);
    s.pool(`${p}/pool`, bottom, 'MAX', 3, 1, { pad: 1 });
    conv(`${p}/pool_proj`, `${p}/pool`, np, 1);
    s.relu(`${p}/relu_pool_proj`, `${p}/pool_proj`);
    return s.concat(`${p}/output`, [`${p}/1x1`, `${p}/3x3`, `${p}/5x5`, `${p}/pool_proj`]);
  };
  const aux = (k, bottom) => {
    const p = `loss${k}`;
    s.pool(`${p}/ave_pool`, bottom, 'AVE', 5, 3);
    conv(`${p}/conv`, `${p}/ave_pool`, 128, 1);
    s.relu(`${p}/relu_conv`, `${p}/conv`);
    s.ip(`${p}/fc`, `${p}/conv`, 1024, { wf: 'type: "xavier"', bf: 'type: "constant" value: 0.2' });
    s.relu(`${p}/relu_fc`, `${p}/fc`);
    s.dropout(`${p}/drop_fc`, `${p}/fc`, 0.7);
    s.ip(`${p}/classifier`, `${p}/fc`, 1000, { wf: 'type: "xavier"', bf: 'type: "constant" value: 0' });
    s.add(`${p}/loss`, 'SoftmaxWithLoss', [`${p}/classifier`, 'label'], `${p}/loss${k}`, '', 'loss_weight: 0.3');
    s.add(`${p}/top-1`, 'Accuracy', [`${p}/classifier`, 'label'], `${p}/top-1`, '', 'include { phase: TEST }');
    s.add(`${p}/top-5`, 'Accuracy', [`${p}/classifier`, 'label'], `${p}/top-5`, 'accuracy_param { top_k: 5 }', 'include { phase: TEST }');
  };
  x = inception('3a', x);
  x = inception('3b', x);
  x = s.pool('pool3/3x3_s2', x, 'MAX', 3, 2);
  x = inception('4a', x);
  if (train) aux(1, x);
  x = inception('4b', x);
  x = inception('4c', x);
  x = inception('4d', x);
  if (train) aux(2, x);
  x = inception('4e', x);
  x = s.pool('pool4/3x3_s2', x, 'MAX', 3, 2);
  x = inception('5a', x);
  x = inception('5b', x);
  s.pool('pool5/7x7_s1', x, 'AVE', 7, 1);
  s.dropout('pool5/drop_7x7_s1', 'pool5/7x7_s1', 0.4);
  s.ip('loss3/classifier', 'pool5/7x7_s1', 1000, { lr: train, wf: xavier, bf: train ? 'type: "constant" value: 0' : null });
  if (train) {
    s.add('loss3/loss3', 'SoftmaxWithLoss', ['loss3/classifier', 'label'], 'loss3/loss3', '', 'loss_weight: 1');
    s.add('loss3/top-1', 'Accuracy', ['loss3/classifier', 'label'], 'loss3/top-1', '', 'include { phase: TEST }');
    s.add('loss3/top-5', 'Accuracy', ['loss3/classifier', 'label'], 'loss3/top-5', 'accuracy_param { top_k: 5 }', 'include { phase: TEST }');
  } else s.softmax('prob', 'loss3/classifier');
  return s.render().replaceAll('BATCH_TRAIN', '32');
}

// ---- VGG-16 ------------------------------------------------------------------------------------

function vgg16() {
  const s = new Spec('VGG_ILSVRC_16_layers', [
    'VGG-16, configuration D of Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition" (ICLR 2015).',
    'Inference: 3x224x224 BGR minus the mean (103.939, 116.779, 123.68) in, 1000 class probabilities out.',
  ]);
  s.input([10, 3, 224, 224]);
  let x = 'data';
  const blocks = [[64, 2], [128, 2], [256, 3], [512, 3], [512, 3]];
  blocks.forEach(([n, reps], b) => {
    for (let i = 1; i <= reps; i++) {
      const name = `conv${b + 1}_${i}`;
      x = s.conv(name, x, n, 3, { pad: 1, lr: false });
      s.relu(`relu${b + 1}_${i}`, x);
    }
    x = s.pool(`pool${b + 1}`, x, 'MAX', 2, 2);
  });
  s.ip('fc6', x, 4096, { lr: false });
  s.relu('relu6', 'fc6');
  s.dropout('drop6', 'fc6', 0.5);
  s.ip('fc7', 'fc6', 4096, { lr: false });
  s.relu('relu7', 'fc7');
  s.dropout('drop7', 'fc7', 0.5);
  s.ip('fc8', 'fc7', 1000, { lr: false });
  s.softmax('prob', 'fc8');
  return s.render();
}

// ---- ResNet-50 ---------------------------------------------------------------------------------

function resnet50() {
  const s = new Spec('ResNet-50', [
    'ResNet-50 (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016), the authors\' Caffe layout.',
    'Inference: 3x224x224 BGR minus the authors\' mean image (or roughly 104, 117, 123) in, 1000 class probabilities out.',
  ]);
  s.input([1, 3, 224, 224]);
  s.conv('conv1', 'data', 64, 7, { pad: 3, stride: 2, lr: false });
  s.add('bn_conv1', 'BatchNorm', 'conv1', 'conv1', 'batch_norm_param { use_global_stats: true }');
  s.add('scale_conv1', 'Scale', 'conv1', 'conv1', 'scale_param { bias_term: true }');
  s.relu('conv1_relu', 'conv1');
  let x = s.pool('pool1', 'conv1', 'MAX', 3, 2);
  const stages = [[2, 3, 64], [3, 4, 128], [4, 6, 256], [5, 3, 512]];
  for (const [stage, blocks, width] of stages) {
    for (let i = 0; i < blocks; i++) {
      const id = `${stage}${String.fromCharCode(97 + i)}`;
      const stride = i === 0 && stage > 2 ? 2 : 1;
      const branch = (suffix, bottom, n, k, o, relu) =>
        s.convBn(`res${id}_branch${suffix}`, `bn${id}_branch${suffix}`, `scale${id}_branch${suffix}`, relu ? `res${id}_branch${suffix}_relu` : null, bottom, n, k, o);
      const shortcut = i === 0 ? branch('1', x, width * 4, 1, { stride }, false) : x;
      branch('2a', x, width, 1, { stride }, true);
      branch('2b', `res${id}_branch2a`, width, 3, { pad: 1 }, true);
      branch('2c', `res${id}_branch2b`, width * 4, 1, {}, false);
      s.add(`res${id}`, 'Eltwise', [shortcut, `res${id}_branch2c`], `res${id}`, 'eltwise_param { operation: SUM }');
      s.relu(`res${id}_relu`, `res${id}`);
      x = `res${id}`;
    }
  }
  s.pool('pool5', x, 'AVE', 7, 1);
  s.ip('fc1000', 'pool5', 1000, { lr: false });
  s.softmax('prob', 'fc1000');
  return s.render();
}

// ---- SqueezeNet 1.1 ----------------------------------------------------------------------------

function squeezenet(mode) {
  const train = mode !== 'deploy';
  const s = new Spec('SqueezeNet_v1.1', [
    'SqueezeNet v1.1 (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters", 2016; v1.1 from the authors\' repository).',
    train ? 'Training/validation on ILSVRC-2012 LMDBs.' : 'Inference: 3x227x227 BGR minus the mean (104, 117, 123) in, 1000 class probabilities out.',
  ]);
  const xavier = train ? 'type: "xavier"' : null;
  const conv = (name, bottom, n, k, o = {}) => s.conv(name, bottom, n, k, { ...o, lr: false, wf: xavier });
  if (train) imagenetData(s, 227, { meanFile: false });
  else s.input([10, 3, 227, 227]);
  conv('conv1', 'data', 64, 3, { stride: 2 });
  s.relu('relu_conv1', 'conv1');
  let x = s.pool('pool1', 'conv1', 'MAX', 3, 2);
  const fire = (i, bottom, sq, ex) => {
    const p = `fire${i}`;
    conv(`${p}/squeeze1x1`, bottom, sq, 1);
    s.relu(`${p}/relu_squeeze1x1`, `${p}/squeeze1x1`);
    conv(`${p}/expand1x1`, `${p}/squeeze1x1`, ex, 1);
    s.relu(`${p}/relu_expand1x1`, `${p}/expand1x1`);
    conv(`${p}/expand3x3`, `${p}/squeeze1x1`, ex, 3, { pad: 1 });
    s.relu(`${p}/relu_expand3x3`, `${p}/expand3x3`);
    return s.concat(`${p}/concat`, [`${p}/expand1x1`, `${p}/expand3x3`]);
  };
  x = fire(2, x, 16, 64);
  x = fire(3, x, 16, 64);
  x = s.pool('pool3', x, 'MAX', 3, 2);
  x = fire(4, x, 32, 128);
  x = fire(5, x, 32, 128);
  x = s.pool('pool5', x, 'MAX', 3, 2);
  x = fire(6, x, 48, 192);
  x = fire(7, x, 48, 192);
  x = fire(8, x, 64, 256);
  x = fire(9, x, 64, 256);
  s.dropout('drop9', x, 0.5);
  s.conv('conv10', x, 1000, 1, { lr: false, wf: train ? 'type: "gaussian" mean: 0.0 std: 0.01' : null });
  s.relu('relu_conv10', 'conv10');
  s.pool('pool10', 'conv10', 'AVE', 0, 1, { global: true });
  if (train) {
    s.add('loss', 'SoftmaxWithLoss', ['pool10', 'label'], 'loss', '', 'include { phase: TRAIN }');
    s.add('accuracy', 'Accuracy', ['pool10', 'label'], 'accuracy', '', 'include { phase: TEST }');
    s.add('accuracy_top5', 'Accuracy', ['pool10', 'label'], 'accuracy_top5', 'accuracy_param { top_k: 5 }', 'include { phase: TEST }');
  } else s.softmax('prob', 'pool10');
  return s.render().replaceAll('BATCH_TRAIN', '32');
}

// ---- MobileNet v1 / v2 -------------------------------------------------------------------------

function mobilenetV1() {
  const s = new Spec('MobileNet', [
    'MobileNet v1, width 1.0, 224 (Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications", 2017).',
    'Layer names follow the widely used Caffe conversion; inference: 3x224x224 BGR minus (103.94, 116.78, 123.68), times 0.017.',
  ]);
  s.input([1, 3, 224, 224]);
  s.convBn('conv1', 'conv1/bn', 'conv1/scale', 'relu1', 'data', 32, 3, { pad: 1, stride: 2 });
  let x = 'conv1';
  let c = 32;
  // [name, output channels, stride] of each depthwise-separable block.
  const blocks = [
    ['2_1', 64, 1], ['2_2', 128, 2], ['3_1', 128, 1], ['3_2', 256, 2], ['4_1', 256, 1], ['4_2', 512, 2],
    ['5_1', 512, 1], ['5_2', 512, 1], ['5_3', 512, 1], ['5_4', 512, 1], ['5_5', 512, 1], ['5_6', 1024, 2], ['6', 1024, 1],
  ];
  for (const [id, n, stride] of blocks) {
    s.convBn(`conv${id}/dw`, `conv${id}/dw/bn`, `conv${id}/dw/scale`, `relu${id}/dw`, x, c, 3, { pad: 1, stride, group: c });
    s.convBn(`conv${id}/sep`, `conv${id}/sep/bn`, `conv${id}/sep/scale`, `relu${id}/sep`, `conv${id}/dw`, n, 1);
    x = `conv${id}/sep`;
    c = n;
  }
  s.pool('pool6', x, 'AVE', 0, 1, { global: true });
  s.conv('fc7', 'pool6', 1000, 1, { lr: false });
  s.softmax('prob', 'fc7');
  return s.render();
}

function mobilenetV2() {
  const s = new Spec('MOBILENET_V2', [
    'MobileNet v2, width 1.0, 224 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018).',
    'Layer names follow the widely used Caffe conversion; inference: 3x224x224 BGR minus (103.94, 116.78, 123.68), times 0.017.',
  ]);
  s.input([1, 3, 224, 224]);
  s.convBn('conv1', 'conv1/bn', 'conv1/scale', 'relu1', 'data', 32, 3, { pad: 1, stride: 2 });
  let x = 'conv1';
  let c = 32;
  // Bottleneck stages: expansion t, output channels, repeats, first stride; blocks named conv<stage>_<i>.
  // The Caffe conversion moves the paper's stride 2 from the 64-channel stage to the 96-channel one (same
  // output size, and stride does not change weight shapes); its layout is kept so its outputs match.
  const stages = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 1], [6, 96, 3, 2], [6, 160, 3, 2], [6, 320, 1, 1]];
  let block = 0; // blocks counted across stages; names run conv2_1, conv2_2, conv3_1, conv3_2, conv4_1 …
  const names = ['2_1', '2_2', '3_1', '3_2', '4_1', '4_2', '4_3', '4_4', '4_5', '4_6', '4_7', '5_1', '5_2', '5_3', '6_1', '6_2', '6_3'];
  for (const [t, n, reps, firstStride] of stages) {
    for (let i = 0; i < reps; i++) {
      const id = names[block++];
      const stride = i === 0 ? firstStride : 1;
      const e = c * t;
      const input = x;
      s.convBn(`conv${id}/expand`, `conv${id}/expand/bn`, `conv${id}/expand/scale`, `relu${id}/expand`, x, e, 1);
      s.convBn(`conv${id}/dwise`, `conv${id}/dwise/bn`, `conv${id}/dwise/scale`, `relu${id}/dwise`, `conv${id}/expand`, e, 3, { pad: 1, stride, group: e });
      s.convBn(`conv${id}/linear`, `conv${id}/linear/bn`, `conv${id}/linear/scale`, null, `conv${id}/dwise`, n, 1);
      x = `conv${id}/linear`;
      if (stride === 1 && c === n) x = s.add(`block_${id}`, 'Eltwise', [input, `conv${id}/linear`], `block_${id}`);
      c = n;
    }
  }
  s.convBn('conv6_4', 'conv6_4/bn', 'conv6_4/scale', 'relu6_4', x, 1280, 1);
  s.pool('pool6', 'conv6_4', 'AVE', 0, 1, { global: true });
  s.conv('fc7', 'pool6', 1000, 1, { lr: false });
  s.softmax('prob', 'fc7');
  return s.render();
}

// ---- CIFAR-10 ----------------------------------------------------------------------------------

function cifar(kind, mode) {
  const full = kind === 'full';
  const train = mode !== 'deploy';
  const s = new Spec(full ? 'CIFAR10_full' : 'CIFAR10_quick', [
    full ? 'CIFAR-10 "full" (Caffe examples/cifar10, after cuda-convnet\'s layers-18pct): LRN within channel, ~81% test accuracy.' : 'CIFAR-10 "quick" (Caffe examples/cifar10): three conv/pool stages, ~75% test accuracy.',
    train ? 'Train/test on the LMDBs and mean that `caffe convert_cifar` and `caffe compute_image_mean` make.' : 'Inference: 3x32x32 BGR pixels (0..255) minus the training-set mean image in, 10 class probabilities out.',
  ]);
  const g = (std) => (train ? `type: "gaussian" std: ${std}` : null);
  if (train) {
    const t = 'transform_param { mean_file: "examples/cifar10/mean.binaryproto" }';
    s.add('cifar', 'Data', [], ['data', 'label'], `${t}\ndata_param { source: "examples/cifar10/cifar10_train_lmdb" batch_size: 100 backend: LMDB }`, 'include { phase: TRAIN }');
    s.add('cifar', 'Data', [], ['data', 'label'], `${t}\ndata_param { source: "examples/cifar10/cifar10_test_lmdb" batch_size: 100 backend: LMDB }`, 'include { phase: TEST }');
  } else s.input([1, 3, 32, 32]);
  const conv = (name, bottom, n, std) => s.conv(name, bottom, n, 5, { pad: 2, lr: train, wf: g(std) });
  const norm = (name, bottom) => s.lrn(name, bottom, 3, 5e-5, 0.75, ' norm_region: WITHIN_CHANNEL');
  conv('conv1', 'data', 32, 0.0001);
  s.pool('pool1', 'conv1', 'MAX', 3, 2);
  s.relu('relu1', 'pool1');
  if (full) norm('norm1', 'pool1');
  conv('conv2', full ? 'norm1' : 'pool1', 32, 0.01);
  s.relu('relu2', 'conv2');
  s.pool('pool2', 'conv2', 'AVE', 3, 2);
  if (full) norm('norm2', 'pool2');
  conv('conv3', full ? 'norm2' : 'pool2', 64, 0.01);
  s.relu('relu3', 'conv3');
  s.pool('pool3', 'conv3', 'AVE', 3, 2);
  let logits;
  if (full) {
    s.ip('ip1', 'pool3', 10, { lr: train, wf: g(0.01), bf: train ? 'type: "constant"' : null });
    if (train) s.layers.at(-1).extra = lrMults(1, 250, 2, 0);
    logits = 'ip1';
  } else {
    s.ip('ip1', 'pool3', 64, { lr: train, wf: g(0.1), bf: train ? 'type: "constant"' : null });
    s.ip('ip2', 'ip1', 10, { lr: train, wf: g(0.1), bf: train ? 'type: "constant"' : null });
    logits = 'ip2';
  }
  if (train) {
    s.add('accuracy', 'Accuracy', [logits, 'label'], 'accuracy', '', 'include { phase: TEST }');
    s.add('loss', 'SoftmaxWithLoss', [logits, 'label'], 'loss');
  } else s.softmax('prob', logits);
  return s.render();
}

function cifarSolver(kind) {
  const full = kind === 'full';
  return [
    `# CIFAR-10 ${kind}: ${full ? '60000 iterations at 0.001 (Caffe then lowers to 0.0001 and 0.00001 for 5000 each)' : '4000 iterations at 0.001 (then 1000 at 0.0001 for the usual ~75%)'}.`,
    // Beside the solver: caffe train resolves it against the solver's folder when not found in the cwd.
    'net: "train_test.prototxt"',
    'test_iter: 100',
    `test_interval: ${full ? 1000 : 500}`,
    'base_lr: 0.001',
    'momentum: 0.9',
    'weight_decay: 0.004',
    'lr_policy: "fixed"',
    `display: ${full ? 200 : 100}`,
    `max_iter: ${full ? 60000 : 4000}`,
    `snapshot: ${full ? 10000 : 4000}`,
    'snapshot_format: HDF5',
    `snapshot_prefix: "examples/cifar10/cifar10_${kind}"`,
    'solver_mode: CPU',
    '',
  ].join('\n').replace('snapshot_format: HDF5\n', '');
}

// ---- write everything --------------------------------------------------------------------------

for (const kind of ['quick', 'full']) {
  write(`cifar10_${kind}`, 'deploy.prototxt', cifar(kind, 'deploy'));
  write(`cifar10_${kind}`, 'train_test.prototxt', cifar(kind, 'train'));
  write(`cifar10_${kind}`, 'solver.prototxt', cifarSolver(kind));
}
for (const kind of ['caffenet', 'alexnet']) {
  write(kind, 'deploy.prototxt', caffenetLike(kind, 'deploy'));
  write(kind, 'train_val.prototxt', caffenetLike(kind, 'train'));
  write(kind, 'solver.prototxt', imagenetSolver('train_val.prototxt', `models/${kind}/${kind}_train`, {
    comment: 'ILSVRC-2012 schedule of the Caffe reference models: lr 0.01, divided by 10 every 100000 iterations.',
    testIter: 1000, testInterval: 1000, baseLr: 0.01, policy: 'step', extra: ['gamma: 0.1', 'stepsize: 100000'],
    maxIter: kind === 'alexnet' ? 450000 : 450000, weightDecay: 0.0005, snapshot: 10000,
  }));
}
write('caffenet_full_conv', 'deploy.prototxt', caffenetLike('caffenet_full_conv', 'deploy'));
write('rcnn_ilsvrc13', 'deploy.prototxt', caffenetLike('rcnn_ilsvrc13', 'deploy'));
write('finetune_flickr_style', 'deploy.prototxt', caffenetLike('finetune_flickr_style', 'deploy'));
write('finetune_flickr_style', 'train_val.prototxt', caffenetLike('finetune_flickr_style', 'train'));
write('finetune_flickr_style', 'solver.prototxt', imagenetSolver('train_val.prototxt', 'models/finetune_flickr_style/finetune_flickr_style', {
  comment: 'Fine-tuning schedule: a tenth of CaffeNet\'s rate (lr 0.001), divided by 10 every 20000 iterations of 50. Start from CaffeNet\'s weights (caffe train --weights).',
  testIter: 100, testInterval: 1000, baseLr: 0.001, policy: 'step', extra: ['gamma: 0.1', 'stepsize: 20000'],
  display: 20, maxIter: 100000, weightDecay: 0.0005, snapshot: 10000,
}));
write('googlenet', 'deploy.prototxt', googlenet('deploy'));
write('googlenet', 'train_val.prototxt', googlenet('train'));
write('googlenet', 'solver.prototxt', imagenetSolver('train_val.prototxt', 'models/googlenet/googlenet', {
  comment: 'GoogLeNet schedule: lr 0.01, times 0.96 every 320000 images (10000 iterations of 32), 60 epochs.',
  testIter: 1000, testInterval: 4000, baseLr: 0.01, policy: 'step', extra: ['gamma: 0.96', 'stepsize: 320000', 'average_loss: 40'],
  display: 40, maxIter: 10000000, weightDecay: 0.0002, snapshot: 40000,
}));
write('squeezenet_v1.1', 'deploy.prototxt', squeezenet('deploy'));
write('squeezenet_v1.1', 'train_val.prototxt', squeezenet('train'));
write('squeezenet_v1.1', 'solver.prototxt', imagenetSolver('train_val.prototxt', 'models/squeezenet_v1.1/train', {
  comment: 'SqueezeNet schedule: lr 0.04 decaying linearly (poly, power 1) to 0 over 170000 iterations of 32 (x4 accumulated).',
  testIter: 2000, testInterval: 1000, baseLr: 0.04, policy: 'poly', extra: ['power: 1.0', 'iter_size: 16', 'average_loss: 40'],
  display: 40, maxIter: 170000, weightDecay: 0.0002, snapshot: 1000,
}));
write('vgg16', 'deploy.prototxt', vgg16());
write('resnet50', 'deploy.prototxt', resnet50());
write('mobilenet_v1', 'deploy.prototxt', mobilenetV1());
write('mobilenet_v2', 'deploy.prototxt', mobilenetV2());

// ---- READMEs -----------------------------------------------------------------------------------

const IMAGENET_LABELS =
  'ILSVRC-2012, 1000 classes in WordNet-ID order (`synset_words.txt`: `n01440764 tench, Tinca tinca` …). ' +
  'The list is not shipped here; Caffe\'s `data/ilsvrc12/get_ilsvrc_aux.sh` fetches it. Pass it to `caffe classify --labels` ' +
  'or `loadLabels(path, { stripIds: true })`.';
const CAFFE_ORDER = 'BGR (OpenCV order; pycaffe-style callers swap RGB with `--channel_swap 2,1,0`, the default)';

const READMES = {
  cifar10_quick: {
    title: 'CIFAR-10 quick',
    paper: 'Caffe\'s examples/cifar10 (after Krizhevsky\'s cuda-convnet layers-80sec); dataset: Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.',
    accuracy: '~75% test accuracy after 4000 iterations at lr 0.001 plus 1000 at 0.0001 (Caffe\'s tutorial).',
    input: '3×32×32', mean: 'the training set\'s mean image (`caffe compute_image_mean` → mean.binaryproto); roughly (113.9, 123.0, 125.3) per channel', scale: '1 (pixels 0..255)',
    order: 'the order the LMDB holds (convert_cifar stores the CIFAR binaries\' R, G, B planes)', labels: 'CIFAR-10: airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck (`CIFAR10_LABELS`).',
    files: ['deploy.prototxt', 'train_test.prototxt', 'solver.prototxt'],
  },
  cifar10_full: {
    title: 'CIFAR-10 full',
    paper: 'Caffe\'s examples/cifar10 (after cuda-convnet\'s layers-18pct), with LRN within channels.',
    accuracy: '~81% test accuracy (60000 iterations at 0.001, then 5000 at 0.0001 and 5000 at 0.00001).',
    input: '3×32×32', mean: 'the training set\'s mean image (mean.binaryproto)', scale: '1 (pixels 0..255)',
    order: 'the order the LMDB holds', labels: 'CIFAR-10 (`CIFAR10_LABELS`).',
    files: ['deploy.prototxt', 'train_test.prototxt', 'solver.prototxt'],
  },
  caffenet: {
    title: 'CaffeNet (bvlc_reference_caffenet)',
    paper: 'Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NIPS 2012; BVLC\'s variant pools before normalizing.',
    accuracy: 'top-1 57.4%, top-5 80.4% on ILSVRC-2012 val (centre crop, BVLC model zoo).',
    input: '3×227×227 crops of images resized to 256×256', mean: 'ilsvrc_2012_mean (per pixel), or (104, 117, 123) per channel', scale: '1 (pixels 0..255)',
    order: CAFFE_ORDER, labels: IMAGENET_LABELS,
    weights: 'bvlc_reference_caffenet.caffemodel from the BVLC model zoo (sha1 4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46, 233 MB).',
    files: ['deploy.prototxt', 'train_val.prototxt', 'solver.prototxt'],
  },
  caffenet_full_conv: {
    title: 'CaffeNet, fully convolutional',
    paper: 'Caffe\'s net_surgery example (after Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015).',
    accuracy: 'as CaffeNet for each 227×227 window; build its weights from CaffeNet\'s with `transplantParams(caffenet, fullConv, { map: { fc6: \'fc6-conv\', fc7: \'fc7-conv\', fc8: \'fc8-conv\' } })`.',
    input: '3×451×451 (any size ≥ 227; 227 + 32k gives a (k+1)×(k+1) map)', mean: '(104, 117, 123) per channel', scale: '1',
    order: CAFFE_ORDER, labels: IMAGENET_LABELS, files: ['deploy.prototxt'],
  },
  rcnn_ilsvrc13: {
    title: 'R-CNN ILSVRC13 (bvlc_reference_rcnn_ilsvrc13)',
    paper: 'Girshick, Donahue, Darrell, Malik, "Rich feature hierarchies for accurate object detection and semantic segmentation", CVPR 2014; BVLC moved the R-CNN SVMs into the `fc-rcnn` layer.',
    accuracy: 'mAP 31.4% on the ILSVRC-2013 detection test set (paper, R-CNN with bounding-box regression, which this pure Caffe model does not have).',
    input: '3×227×227 windows warped from region proposals (`caffe detect_windows`, `Detector`; context padding 16)', mean: 'ilsvrc_2012_mean, or (104, 117, 123) per channel', scale: '1 (pixels 0..255)',
    order: CAFFE_ORDER,
    labels: 'the 200 ILSVRC-2013 detection classes (`det_synset_words.txt` from Caffe\'s `data/ilsvrc12/get_ilsvrc_aux.sh`), not shipped here. The outputs are SVM scores, not probabilities.',
    weights: 'bvlc_reference_rcnn_ilsvrc13.caffemodel from the BVLC model zoo (sha1 bdd8abb885819cba5e2fe1eb36235f2319477e64).',
    files: ['deploy.prototxt'],
  },
  finetune_flickr_style: {
    title: 'CaffeNet fine-tuned on Flickr Style (finetune_flickr_style)',
    paper: 'Karayev et al., "Recognizing Image Style", BMVC 2014 (the Flickr Style dataset); Caffe\'s fine-tuning example.',
    accuracy: 'about 39% test accuracy on the 20 styles after 100000 iterations (BVLC model zoo, all 80000 images).',
    input: '3×227×227 crops of images resized to 256×256', mean: 'ilsvrc_2012_mean, or (104, 117, 123) per channel', scale: '1 (pixels 0..255)',
    order: CAFFE_ORDER,
    labels: 'the 20 Flickr styles, Detailed … Romantic (`FLICKR_STYLE_LABELS`, in label order).',
    weights: 'finetune_flickr_style.caffemodel from the BVLC model zoo (sha1 b61b5cef7d771b53b0c488e78d35ccadc073e9cf); or fine-tune it yourself: `caffe train --solver solver.prototxt --weights bvlc_reference_caffenet.caffemodel` (fc8_flickr starts from random weights, the other layers load by name).',
    files: ['deploy.prototxt', 'train_val.prototxt', 'solver.prototxt'],
  },
  alexnet: {
    title: 'AlexNet (bvlc_alexnet)',
    paper: 'Krizhevsky, Sutskever, Hinton, NIPS 2012 (LRN before pooling, as published).',
    accuracy: 'top-1 57.1%, top-5 80.2% on ILSVRC-2012 val (BVLC model zoo).',
    input: '3×227×227 crops of 256×256 images', mean: 'ilsvrc_2012_mean, or (104, 117, 123)', scale: '1',
    order: CAFFE_ORDER, labels: IMAGENET_LABELS,
    weights: 'bvlc_alexnet.caffemodel from the BVLC model zoo (sha1 9116a64c0fbe4459d18f4bb6b56d647b63920377).',
    files: ['deploy.prototxt', 'train_val.prototxt', 'solver.prototxt'],
  },
  googlenet: {
    title: 'GoogLeNet (bvlc_googlenet)',
    paper: 'Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.',
    accuracy: 'top-1 68.7%, top-5 88.9% on ILSVRC-2012 val, single centre crop (BVLC replication; the paper reports top-5 89.9% single model, 10 crops).',
    input: '3×224×224', mean: '(104, 117, 123) per channel', scale: '1',
    order: CAFFE_ORDER, labels: IMAGENET_LABELS,
    weights: 'bvlc_googlenet.caffemodel from the BVLC model zoo (sha1 405fc5acd08a3bb12de8ee5e23a96bec22f08204).',
    files: ['deploy.prototxt', 'train_val.prototxt', 'solver.prototxt'],
  },
  vgg16: {
    title: 'VGG-16',
    paper: 'Simonyan, Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015 (configuration D).',
    accuracy: 'top-1 error 24.4%, top-5 error 7.2% (val, multi-scale dense evaluation, paper Table 4); about 71.5%/90% single crop.',
    input: '3×224×224', mean: '(103.939, 116.779, 123.68) per channel', scale: '1',
    order: CAFFE_ORDER, labels: IMAGENET_LABELS, files: ['deploy.prototxt'],
  },
  resnet50: {
    title: 'ResNet-50',
    paper: 'He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.',
    accuracy: 'top-1 error 24.7%, top-5 error 7.8% (10-crop, ILSVRC-2012 val, the authors\' Caffe release).',
    input: '3×224×224', mean: 'the authors\' ResNet_mean.binaryproto (about (104, 117, 123) per channel)', scale: '1',
    order: CAFFE_ORDER, labels: IMAGENET_LABELS, files: ['deploy.prototxt'],
  },
  'squeezenet_v1.1': {
    title: 'SqueezeNet v1.1',
    paper: 'Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size", 2016; v1.1 from the authors\' repository (2.4× less computation than v1.0).',
    accuracy: 'top-1 ~58.2%, top-5 ~81.0% (ILSVRC-2012 val, authors: "AlexNet-level").',
    input: '3×227×227', mean: '(104, 117, 123) per channel', scale: '1',
    order: CAFFE_ORDER, labels: IMAGENET_LABELS, files: ['deploy.prototxt', 'train_val.prototxt', 'solver.prototxt'],
  },
  mobilenet_v1: {
    title: 'MobileNet v1 (1.0, 224)',
    paper: 'Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications", 2017.',
    accuracy: 'top-1 70.6% (paper, Table 8); the common Caffe conversion reports 70.81% / 89.85%.',
    input: '3×224×224', mean: '(103.94, 116.78, 123.68) per channel', scale: '0.017 (after mean subtraction)',
    order: CAFFE_ORDER, labels: IMAGENET_LABELS, files: ['deploy.prototxt'],
  },
  mobilenet_v2: {
    title: 'MobileNet v2 (1.0, 224)',
    paper: 'Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.',
    accuracy: 'top-1 72.0% (paper, Table 4); the common Caffe conversion reports 71.90% / 90.49%.',
    input: '3×224×224', mean: '(103.94, 116.78, 123.68) per channel', scale: '0.017 (after mean subtraction)',
    order: CAFFE_ORDER, labels: IMAGENET_LABELS, files: ['deploy.prototxt'],
  },
};

for (const [model, r] of Object.entries(READMES)) {
  const lines = [
    `# ${r.title}`,
    '',
    'Written for caffe-ts by `packages/zoo/scripts/gen-models.mjs` from the architecture as published (layer',
    'names follow the released Caffe models, so their `.caffemodel` weights load by name). No weights ship here.',
    '',
    '| | |',
    '| --- | --- |',
    `| source | ${r.paper} |`,
    `| published accuracy | ${r.accuracy} |`,
    `| input | ${r.input} |`,
    `| mean | ${r.mean} |`,
    `| scale | ${r.scale} |`,
    `| channel order | ${r.order} |`,
    `| labels | ${r.labels} |`,
    ...(r.weights ? [`| weights | ${r.weights} |`] : []),
    `| files | ${r.files.map((f) => `\`${f}\``).join(', ')} |`,
    '',
    'Train/test prototxts and solvers keep Caffe\'s relative data paths (`examples/...`, `data/ilsvrc12/...`); run them from a',
    'folder laid out like Caffe\'s, or edit the paths.',
    '',
  ];
  write(model, 'README.md', lines.join('\n'));
}
