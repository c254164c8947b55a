// Converts a net spec (net-spec.mjs) into TensorFlow.js ops. tfjs convolutions and pools only
// take NHWC, so activations are NHWC and weights are permuted once at conversion; what a
// converted TF graph would get is done here too: inference folds BatchNorm+Scale into the
// preceding convolution and fuses bias and ReLU (tf.fused.conv2d / tf.fused.matMul).
// Training nets keep every parameter as a tf.variable in tfjs layout; `toCaffe` maps a gradient
// back to Caffe's layout for comparison with caffe-ts.
import { poolPads } from './to-onnx.mjs';

const NCHW_TO_NHWC = [0, 2, 3, 1];
const NHWC_TO_NCHW = [0, 3, 1, 2];

/** Transposes a row-major array of `shape` by `perm` (plain JS; used once per weight). */
function permute(data, shape, perm) {
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]);
  const inStrides = new Array(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) inStrides[i] = inStrides[i + 1] * shape[i + 1];
  const out = new Float32Array(data.length);
  const idx = new Array(rank).fill(0);
  const strideOfOut = perm.map((p) => inStrides[p]);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let a = 0; a < rank; a++) src += idx[a] * strideOfOut[a];
    out[o] = data[src];
    for (let a = rank - 1; a >= 0; a--) {
      if (++idx[a] < outShape[a]) break;
      idx[a] = 0;
    }
  }
  return { data: out, shape: outShape };
}

const inverse = (perm) => perm.map((_, i) => perm.indexOf(i));

/** Per-channel multiplier and offset of an inference BatchNorm (+ optional following Scale). */
function foldedAffine(bn, scale) {
  const [mean, variance, factor] = bn.blobs;
  const s = factor.data[0] === 0 ? 0 : 1 / factor.data[0];
  const c = mean.data.length;
  const mul = new Float32Array(c), add = new Float32Array(c);
  for (let i = 0; i < c; i++) {
    const inv = 1 / Math.sqrt(variance.data[i] * s + bn.attrs.eps);
    mul[i] = inv;
    add[i] = -mean.data[i] * s * inv;
  }
  if (scale) {
    const [g, b] = scale.blobs;
    for (let i = 0; i < c; i++) {
      mul[i] *= g.data[i];
      add[i] = add[i] * g.data[i] + (scale.attrs.biasTerm ? b.data[i] : 0);
    }
  }
  return { mul, add };
}

/**
 * A tfjs program for `spec`: `run(feeds)` maps NHWC (4-D) or plain input tensors by blob name to
 * a Map of the final tensor of every blob, 4-D ones NHWC. With `train`, parameters are variables
 * (listed in `params` with their Caffe layer/index and `toCaffe`) and nothing is folded.
 */
export function specToTfjs(tf, spec, { train = false } = {}) {
  const params = [];
  const layers = spec.layers;
  const param = (layer, index, data, shape, toCaffe) => {
    const t = train ? tf.variable(tf.tensor(data, shape), true, `${layer.name}/${index}`) : tf.tensor(data, shape);
    params.push({ layer: layer.name, index, tensor: t, toCaffe });
    return t;
  };
  const rank4 = (blob) => spec.shapes[blob].length === 4;
  const steps = []; // closures (env: Map blob → tensor) run in order

  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i];
    const a = layer.attrs;
    const bottom = layer.bottom[0], top = layer.top[0];
    switch (layer.type) {
      case 'Input':
        break;
      case 'Dropout':
        if (train) throw new Error(`layer ${layer.name}: Dropout in a training net (random masks cannot match caffe-ts)`);
        steps.push((env) => env.set(top, env.get(bottom)));
        break;
      case 'Split':
        steps.push((env) => { for (const t of layer.top) env.set(t, env.get(bottom)); });
        break;
      case 'Convolution': {
        const [w, b] = layer.blobs;
        const [o, ipg, kh, kw] = w.shape;
        const cin = ipg * a.group;
        // Inference: fold in-place BatchNorm (+Scale) and a following in-place ReLU.
        let mul = null, add = null, activation = 'linear', consumed = 0;
        if (!train) {
          const next = (k) => layers[i + 1 + k];
          const inPlace = (l) => l && l.bottom.length === 1 && l.bottom[0] === top && l.top[0] === top;
          if (inPlace(next(0)) && next(0).type === 'BatchNorm' && next(0).attrs.useGlobalStats !== false) {
            const sc = inPlace(next(1)) && next(1).type === 'Scale' && next(1).attrs.axis === 1 && next(1).attrs.numAxes === 1 ? next(1) : null;
            ({ mul, add } = foldedAffine(next(0), sc));
            consumed = sc ? 2 : 1;
          }
          if (inPlace(next(consumed)) && next(consumed).type === 'ReLU' && next(consumed).attrs.negativeSlope === 0) {
            activation = 'relu';
            consumed++;
          }
        }
        let wData = w.data;
        let bData = a.biasTerm ? b.data : null;
        if (mul) {
          wData = Float32Array.from(w.data);
          const per = w.data.length / o;
          for (let c = 0; c < o; c++) for (let j = 0; j < per; j++) wData[c * per + j] *= mul[c];
          bData = Float32Array.from({ length: o }, (_, c) => (bData ? bData[c] * mul[c] : 0) + add[c]);
        }
        const conv = { strides: a.stride, dilations: a.dilation };
        const pad = [[0, 0], [a.pad[0], a.pad[0]], [a.pad[1], a.pad[1]], [0, 0]];
        const bias = bData ? param(layer, 1, bData, [o], (g) => g) : null;
        const fused = !train && (bias || activation !== 'linear');
        let apply;
        if (a.group === 1) {
          // Caffe O×I×kh×kw → tfjs kh×kw×I×O
          const p = permute(wData, w.shape, [2, 3, 1, 0]);
          const filter = param(layer, 0, p.data, p.shape, (g) => tf.transpose(g, inverse([2, 3, 1, 0])));
          apply = (x) => fused
            ? tf.fused.conv2d({ x, filter, strides: conv.strides, pad, dilations: conv.dilations, bias: bias ?? undefined, activation })
            : tf.conv2d(x, filter, conv.strides, pad, 'NHWC', conv.dilations);
        } else if (a.group === cin && ipg === 1) {
          // Depthwise: output channel c·m + j reads input channel c, as in tfjs (kh×kw×C×m).
          const m = o / cin;
          const p = permute(wData, [cin, m, kh, kw], [2, 3, 0, 1]);
          const filter = param(layer, 0, p.data, p.shape, (g) => tf.reshape(tf.transpose(g, inverse([2, 3, 0, 1])), w.shape));
          apply = (x) => fused
            ? tf.fused.depthwiseConv2d({ x, filter, strides: conv.strides, pad, dilations: conv.dilations, bias: bias ?? undefined, activation })
            : tf.depthwiseConv2d(x, filter, conv.strides, pad, 'NHWC', conv.dilations);
        } else {
          // Grouped: split channels, one convolution per group, concatenate.
          const og = o / a.group;
          const filters = [];
          for (let g = 0; g < a.group; g++) {
            const slice = wData.subarray(g * og * ipg * kh * kw, (g + 1) * og * ipg * kh * kw);
            const p = permute(slice, [og, ipg, kh, kw], [2, 3, 1, 0]);
            filters.push(param(layer, `0.${g}`, p.data, p.shape, null));
          }
          const biases = bias ? Array.from({ length: a.group }, (_, g) => tf.slice(bias, [g * og], [og])) : [];
          apply = (x) => {
            const xs = tf.split(x, a.group, 3);
            return tf.concat(xs.map((xg, g) => fused
              ? tf.fused.conv2d({ x: xg, filter: filters[g], strides: conv.strides, pad, dilations: conv.dilations, bias: biases[g], activation })
              : tf.conv2d(xg, filters[g], conv.strides, pad, 'NHWC', conv.dilations)), 3);
          };
          if (train) throw new Error(`layer ${layer.name}: grouped convolution in a training net is not converted`);
        }
        steps.push((env) => {
          let y = apply(env.get(bottom));
          if (!fused && bias) y = tf.add(y, bias);
          env.set(top, y);
        });
        i += consumed;
        break;
      }
      case 'Pooling': {
        if (a.pool === 'STOCHASTIC') throw new Error(`layer ${layer.name}: STOCHASTIC pooling is not converted`);
        const inShape = spec.shapes[bottom], outShape = spec.shapes[top];
        const kernel = a.global ? [inShape[2], inShape[3]] : a.kernel;
        const covers = outShape[2] === 1 && outShape[3] === 1 && kernel[0] === inShape[2] && kernel[1] === inShape[3] && a.pad[0] === 0 && a.pad[1] === 0;
        if (a.global || covers) {
          steps.push((env) => env.set(top, a.pool === 'MAX' ? tf.max(env.get(bottom), [1, 2], true) : tf.mean(env.get(bottom), [1, 2], true)));
          break;
        }
        const [pt, pl, pb, pr] = poolPads(layer.name, [inShape[2], inShape[3]], kernel, a.stride, a.pad, [outShape[2], outShape[3]]);
        // tfjs leaves padded cells out of an average; Caffe counts the pad (not the ceil overhang).
        if (a.pool === 'AVE' && (a.pad[0] > 0 || a.pad[1] > 0)) throw new Error(`layer ${layer.name}: AVE pooling with pad counts padded cells in Caffe, not in tfjs`);
        const pad = [[0, 0], [pt, pb], [pl, pr], [0, 0]];
        steps.push((env) => env.set(top, a.pool === 'MAX'
          ? tf.maxPool(env.get(bottom), kernel, a.stride, pad)
          : tf.avgPool(env.get(bottom), kernel, a.stride, pad)));
        break;
      }
      case 'LRN':
        if (a.region !== 'ACROSS_CHANNELS') throw new Error(`layer ${layer.name}: LRN ${a.region} is not converted`);
        steps.push((env) => env.set(top, tf.localResponseNormalization(env.get(bottom), (a.localSize - 1) / 2, a.k, a.alpha / a.localSize, a.beta)));
        break;
      case 'InnerProduct': {
        if (a.axis !== 1) throw new Error(`layer ${layer.name}: InnerProduct axis ${a.axis} is not converted`);
        const [w, b] = layer.blobs;
        const inShape = spec.shapes[bottom];
        const n = a.numOutput;
        const k = inShape.slice(1).reduce((x, y) => x * y, 1);
        // Caffe W is N×K (K in C,H,W order) unless transpose; tfjs wants K×N with K in H,W,C order.
        const wNK = a.transpose ? permute(w.data, [k, n], [1, 0]).data : w.data;
        let kn, toCaffe;
        if (inShape.length === 4) {
          const [, c, h, ww] = inShape;
          kn = permute(wNK, [n, c, h, ww], [2, 3, 1, 0]); // → H,W,C,N
          toCaffe = (g) => {
            const nchw = tf.transpose(tf.reshape(g, [h, ww, c, n]), [3, 2, 0, 1]);
            return a.transpose ? tf.transpose(tf.reshape(nchw, [n, k])) : tf.reshape(nchw, [n, k]);
          };
        } else {
          kn = permute(wNK, [n, k], [1, 0]);
          toCaffe = (g) => (a.transpose ? g : tf.transpose(g));
        }
        const weight = param(layer, 0, kn.data, [k, n], toCaffe);
        const bias = a.biasTerm ? param(layer, 1, b.data, [n], (g) => g) : null;
        let activation = 'linear', consumed = 0;
        const next = layers[i + 1];
        if (!train && next && next.type === 'ReLU' && next.bottom[0] === top && next.top[0] === top && next.attrs.negativeSlope === 0) {
          activation = 'relu';
          consumed = 1;
        }
        steps.push((env) => {
          const x = tf.reshape(env.get(bottom), [inShape[0], k]);
          env.set(top, train
            ? (bias ? tf.add(tf.matMul(x, weight), bias) : tf.matMul(x, weight))
            : tf.fused.matMul({ a: x, b: weight, bias: bias ?? undefined, activation }));
        });
        i += consumed;
        break;
      }
      case 'BatchNorm': {
        if (train) throw new Error(`layer ${layer.name}: BatchNorm in a training net is not converted`);
        const next = layers[i + 1];
        const sc = next && next.type === 'Scale' && next.bottom[0] === top && next.top[0] === top && next.attrs.axis === 1 && next.attrs.numAxes === 1 ? next : null;
        const { mul, add } = foldedAffine(layer, sc);
        const m = tf.tensor(mul), ad = tf.tensor(add);
        steps.push((env) => env.set(top, tf.add(tf.mul(env.get(bottom), m), ad)));
        if (sc) i++;
        break;
      }
      case 'Scale': {
        if (layer.bottom.length !== 1 || a.axis !== 1 || a.numAxes !== 1) throw new Error(`layer ${layer.name}: only one-bottom per-channel Scale is converted`);
        const [g, b] = layer.blobs;
        const gamma = param(layer, 0, g.data, [g.data.length], (x) => x);
        const beta = a.biasTerm ? param(layer, 1, b.data, [b.data.length], (x) => x) : null;
        steps.push((env) => {
          const y = tf.mul(env.get(bottom), gamma);
          env.set(top, beta ? tf.add(y, beta) : y);
        });
        break;
      }
      case 'Eltwise':
        steps.push((env) => {
          const xs = layer.bottom.map((bn, j) => (a.op === 'SUM' && a.coeff.length && a.coeff[j] !== 1 ? tf.mul(env.get(bn), a.coeff[j]) : env.get(bn)));
          const op = a.op === 'SUM' ? tf.add : a.op === 'PROD' ? tf.mul : tf.maximum;
          env.set(top, xs.slice(1).reduce((acc, x) => op(acc, x), xs[0]));
        });
        break;
      case 'Concat': {
        const axis = rank4(top) ? NCHW_TO_NHWC.indexOf(a.axis) : a.axis;
        steps.push((env) => env.set(top, tf.concat(layer.bottom.map((bn) => env.get(bn)), axis)));
        break;
      }
      case 'ReLU':
        steps.push((env) => env.set(top, a.negativeSlope === 0 ? tf.relu(env.get(bottom)) : tf.leakyRelu(env.get(bottom), a.negativeSlope)));
        break;
      case 'Softmax': {
        const r = spec.shapes[bottom].length;
        if (a.axis !== 1 || (r !== 2 && r !== 4)) throw new Error(`layer ${layer.name}: Softmax over axis ${a.axis} of a ${r}-D blob is not converted`);
        // Axis 1 is the channel axis: the last one in NHWC and in 2-D.
        steps.push((env) => env.set(top, tf.softmax(env.get(bottom))));
        break;
      }
      case 'SoftmaxWithLoss': {
        if (a.hasIgnore || a.normalization === 0 || a.normalization === 3) throw new Error(`layer ${layer.name}: only VALID/BATCH_SIZE normalization without ignore_label is converted`);
        const [logitsName, labelName] = layer.bottom;
        const classes = spec.shapes[logitsName][1];
        steps.push((env) => {
          const logits = tf.reshape(env.get(logitsName), [-1, classes]);
          const labels = tf.oneHot(tf.cast(env.get(labelName), 'int32'), classes);
          const n = logits.shape[0];
          env.set(top, tf.div(tf.neg(tf.sum(tf.mul(labels, tf.logSoftmax(logits)))), n));
        });
        break;
      }
      default:
        throw new Error(`layer ${layer.name}: ${layer.type} is not converted to tfjs`);
    }
  }

  return {
    params,
    /** Runs the net on `feeds` (blob name → tensor, 4-D ones NHWC); returns blob → final tensor. */
    run(feeds) {
      const env = new Map(Object.entries(feeds));
      for (const step of steps) step(env);
      return env;
    },
    /** An NCHW input array as the NHWC tensor `run` expects (or a plain tensor below 4-D). */
    feed(data, shape) {
      const t = tf.tensor(data, shape);
      if (shape.length !== 4) return t;
      const y = tf.transpose(t, NCHW_TO_NHWC);
      t.dispose();
      return y;
    },
    /** A blob's tensor back in Caffe's layout (NCHW for 4-D). */
    toNchw(t) {
      return t.rank === 4 ? tf.transpose(t, NHWC_TO_NCHW) : t;
    },
  };
}
