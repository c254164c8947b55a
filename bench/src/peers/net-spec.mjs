// A framework-neutral description of a caffe-ts Net ("spec"): its layers in order, each with the
// Caffe parameters that matter for inference/training resolved to plain numbers (Caffe defaults
// applied), its weights, and the shape of every blob. The converters (to-onnx.mjs, to-tfjs.mjs)
// read only this, so the peers can run in their own processes from a bundle on disk.
//
// Bundles on disk: see bundle.mjs.
import { createMessage, hasField } from '@caffe-ts/proto';

const ELTWISE_OPS = ['PROD', 'SUM', 'MAX'];

/** Two-element (h, w) value of a Caffe conv/pool field: *_h/*_w if set, else the repeated/scalar field, else `dflt`. */
function hw(p, field, dflt) {
  if (hasField(p, `${field}_h`) || hasField(p, `${field}_w`)) return [p[`${field}_h`], p[`${field}_w`]];
  const name = field === 'kernel' ? 'kernel_size' : field;
  const v = p[name];
  if (Array.isArray(v)) {
    if (v.length === 0) return [dflt, dflt];
    return [v[0], v.length > 1 ? v[1] : v[0]];
  }
  return hasField(p, name) ? [v, v] : [dflt, dflt];
}

/** A layer's sub-message, or one holding Caffe's defaults when the prototxt leaves it out. */
const sub = (lp, field, typeName) => lp[field] ?? createMessage(typeName, {});

/** The resolved attributes of one layer, by Caffe type; throws for a type no converter handles. */
function layerAttrs(lp) {
  switch (lp.type) {
    case 'Convolution': {
      const cp = sub(lp, 'convolution_param', 'ConvolutionParameter');
      return {
        numOutput: cp.num_output,
        kernel: hw(cp, 'kernel', 0),
        stride: hw(cp, 'stride', 1),
        pad: hw(cp, 'pad', 0),
        dilation: hw(cp, 'dilation', 1),
        group: cp.group,
        biasTerm: cp.bias_term,
      };
    }
    case 'Pooling': {
      const pp = sub(lp, 'pooling_param', 'PoolingParameter');
      return {
        pool: ['MAX', 'AVE', 'STOCHASTIC'][pp.pool],
        kernel: pp.global_pooling ? null : hw(pp, 'kernel', 0),
        stride: hw(pp, 'stride', 1),
        pad: hw(pp, 'pad', 0),
        global: pp.global_pooling,
        roundMode: pp.round_mode === 1 ? 'FLOOR' : 'CEIL',
      };
    }
    case 'LRN': {
      const p = sub(lp, 'lrn_param', 'LRNParameter');
      return { localSize: p.local_size, alpha: p.alpha, beta: p.beta, k: p.k, region: p.norm_region === 1 ? 'WITHIN_CHANNEL' : 'ACROSS_CHANNELS' };
    }
    case 'InnerProduct': {
      const p = sub(lp, 'inner_product_param', 'InnerProductParameter');
      return { numOutput: p.num_output, biasTerm: p.bias_term, transpose: p.transpose, axis: p.axis };
    }
    case 'BatchNorm': {
      const p = sub(lp, 'batch_norm_param', 'BatchNormParameter');
      return { eps: p.eps, useGlobalStats: hasField(p, 'use_global_stats') ? p.use_global_stats : null };
    }
    case 'Scale': {
      const p = sub(lp, 'scale_param', 'ScaleParameter');
      return { axis: p.axis, numAxes: p.num_axes, biasTerm: p.bias_term };
    }
    case 'Eltwise': {
      const p = sub(lp, 'eltwise_param', 'EltwiseParameter');
      return { op: ELTWISE_OPS[p.operation], coeff: [...p.coeff] };
    }
    case 'Concat': {
      const p = sub(lp, 'concat_param', 'ConcatParameter');
      return { axis: hasField(p, 'concat_dim') && !hasField(p, 'axis') ? p.concat_dim : p.axis };
    }
    case 'ReLU':
      return { negativeSlope: sub(lp, 'relu_param', 'ReLUParameter').negative_slope };
    case 'Softmax':
      return { axis: sub(lp, 'softmax_param', 'SoftmaxParameter').axis };
    case 'SoftmaxWithLoss':
      return { axis: sub(lp, 'softmax_param', 'SoftmaxParameter').axis, normalization: sub(lp, 'loss_param', 'LossParameter').normalization, hasIgnore: hasField(sub(lp, 'loss_param', 'LossParameter'), 'ignore_label') };
    case 'Input':
    case 'Dropout':
    case 'Split':
      return {};
    default:
      throw new Error(`layer ${lp.name}: type ${lp.type} has no peer conversion (known: Convolution, Pooling, LRN, InnerProduct, BatchNorm, Scale, Eltwise, Concat, ReLU, Softmax, SoftmaxWithLoss, Dropout, Split, Input)`);
  }
}

/**
 * Fills every parameter blob of `net` with reproducible random values that keep activations in a
 * sane range through deep nets (He-style uniform weights, small biases, BatchNorm statistics
 * near (0, 1) with scale factor 1, Scale near 1), since the deploy prototxts carry no fillers.
 */
export function fillRandomParams(net, rng) {
  const uni = (a, b) => a + (b - a) * rng.uniform();
  for (const layer of net.layers) {
    const type = layer.param.type;
    layer.blobs.forEach((blob, i) => {
      const d = blob.mutableCpuData();
      if (type === 'BatchNorm') {
        if (i === 0) for (let j = 0; j < d.length; j++) d[j] = uni(-0.1, 0.1);
        else if (i === 1) for (let j = 0; j < d.length; j++) d[j] = uni(0.5, 1.5);
        else d.fill(1);
      } else if (type === 'Scale') {
        if (i === 0) for (let j = 0; j < d.length; j++) d[j] = uni(0.5, 1);
        else for (let j = 0; j < d.length; j++) d[j] = uni(-0.1, 0.1);
      } else if (i === 0 && (type === 'Convolution' || type === 'InnerProduct')) {
        const fanIn = blob.count() / blob.shape[0];
        const a = Math.sqrt(6 / fanIn);
        for (let j = 0; j < d.length; j++) d[j] = uni(-a, a);
      } else {
        for (let j = 0; j < d.length; j++) d[j] = uni(-0.1, 0.1);
      }
    });
  }
}

/**
 * The spec of a set-up caffe-ts Net: weights copied as Float32Arrays, or, with `views`, the
 * blobs' own arrays (for writing at once: no second copy of the weights in memory).
 */
export function describeNet(net, { views = false } = {}) {
  const layers = net.layers.map((layer, i) => {
    const lp = layer.param;
    return {
      name: net.layerNames[i],
      type: lp.type,
      bottom: [...lp.bottom],
      top: [...lp.top],
      attrs: layerAttrs(lp),
      blobs: layer.blobs.map((b) => ({ shape: [...b.shape], data: views ? b.cpuData() : Float32Array.from(b.cpuData()) })),
    };
  });
  const shapes = {};
  for (const name of net.blobNames) shapes[name] = [...net.blobs.get(name).shape];
  return {
    name: net.name,
    layers,
    shapes,
    inputs: [...net.inputBlobNames],
    outputs: [...net.outputBlobNames],
  };
}

export { saveBundle, loadBundle, maxRelError } from './bundle.mjs';
