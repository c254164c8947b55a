// Converts a net spec (net-spec.mjs) into an ONNX model (opset 17) for onnxruntime-node:
// inference only, NCHW like Caffe. Caffe's ceil-rounded pooling becomes explicit asymmetric pads.
import { encodeModel, DataType, AttributeType } from './onnx-schema.mjs';

const OPSET = 17;
const IR_VERSION = 8;

const attrInts = (name, ints) => ({ name, type: AttributeType.INTS, ints });
const attrInt = (name, i) => ({ name, type: AttributeType.INT, i });
const attrFloat = (name, f) => ({ name, type: AttributeType.FLOAT, f });

function valueInfo(name, shape) {
  return {
    name,
    type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: shape.map((d) => ({ dim_value: d })) } } },
  };
}

function floatTensor(name, dims, data) {
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  return { name, dims, data_type: DataType.FLOAT, raw_data: new Uint8Array(f.buffer, f.byteOffset, f.byteLength) };
}

/**
 * Pads [top, left, bottom, right] that make a floor-rounded pool produce Caffe's output size
 * (`out`, read from the caffe-ts net) from input size `size`.
 */
export function poolPads(layerName, size, kernel, stride, pad, out) {
  const pads = [pad[0], pad[1], 0, 0];
  for (let a = 0; a < 2; a++) {
    // The smallest end pad whose last window ends inside the padded input; when the last
    // window already stops short of the input's end (floor rounding), none.
    const end = Math.max(0, (out[a] - 1) * stride[a] + kernel[a] - size[a] - pad[a]);
    if (Math.floor((size[a] + pad[a] + end - kernel[a]) / stride[a]) + 1 !== out[a]) {
      throw new Error(`layer ${layerName}: Caffe's pooled size ${out[a]} (input ${size[a]}, kernel ${kernel[a]}, stride ${stride[a]}, pad ${pad[a]}) needs cropping the input; not expressible as pads`);
    }
    pads[a + 2] = end;
  }
  return pads;
}

/**
 * The ONNX ModelProto bytes of `spec`, with graph outputs `outputs` (Caffe blob names: the last
 * value each blob takes in the net, as caffe-ts leaves it after a forward pass).
 */
export function specToOnnx(spec, outputs = spec.outputs) {
  const nodes = [];
  const initializer = [];
  const cur = new Map(); // Caffe blob name → current ONNX value name
  const versions = new Map();
  const fresh = (blob) => {
    const n = (versions.get(blob) ?? 0) + 1;
    versions.set(blob, n);
    return n === 1 ? blob : `${blob}__${n}`;
  };
  const get = (layer, blob) => {
    const v = cur.get(blob);
    if (!v) throw new Error(`layer ${layer.name}: bottom ${blob} is not produced before it`);
    return v;
  };
  const constant = (name, dims, data) => {
    initializer.push(floatTensor(name, dims, data));
    return name;
  };
  const node = (layer, op, inputs, attribute = [], suffix = '') => {
    const out = fresh(layer.top[0]);
    nodes.push({ name: `${layer.name}${suffix}`, op_type: op, input: inputs, output: [out], attribute });
    return out;
  };

  const graphInputs = spec.inputs.map((name) => {
    cur.set(name, fresh(name));
    return valueInfo(name, spec.shapes[name]);
  });

  for (const layer of spec.layers) {
    const a = layer.attrs;
    const x = () => get(layer, layer.bottom[0]);
    let y;
    switch (layer.type) {
      case 'Input':
        continue;
      case 'Dropout':
        y = x();
        break;
      case 'Split': {
        const v = x();
        for (const t of layer.top) cur.set(t, v);
        continue;
      }
      case 'Convolution': {
        const [w, b] = layer.blobs;
        const inputs = [x(), constant(`${layer.name}/W`, w.shape, w.data)];
        if (a.biasTerm) inputs.push(constant(`${layer.name}/B`, b.shape, b.data));
        y = node(layer, 'Conv', inputs, [
          attrInts('kernel_shape', a.kernel),
          attrInts('strides', a.stride),
          attrInts('pads', [a.pad[0], a.pad[1], a.pad[0], a.pad[1]]),
          attrInts('dilations', a.dilation),
          attrInt('group', a.group),
        ]);
        break;
      }
      case 'Pooling': {
        if (a.pool === 'STOCHASTIC') throw new Error(`layer ${layer.name}: STOCHASTIC pooling has no ONNX equivalent`);
        const inShape = spec.shapes[layer.bottom[0]];
        const outShape = spec.shapes[layer.top[0]];
        const kernel = a.global ? [inShape[2], inShape[3]] : a.kernel;
        const covers = outShape[2] === 1 && outShape[3] === 1 && kernel[0] === inShape[2] && kernel[1] === inShape[3] && a.pad[0] === 0 && a.pad[1] === 0;
        if (a.global || covers) {
          y = node(layer, a.pool === 'MAX' ? 'GlobalMaxPool' : 'GlobalAveragePool', [x()]);
          break;
        }
        const pads = poolPads(layer.name, [inShape[2], inShape[3]], kernel, a.stride, a.pad, [outShape[2], outShape[3]]);
        const attrs = [attrInts('kernel_shape', kernel), attrInts('strides', a.stride), attrInts('pads', pads)];
        if (a.pool === 'AVE') {
          // Caffe divides by the window clipped to [-pad, size + pad): pad cells count, the cells
          // ceil rounding adds past that do not. ONNX counts all pads or none.
          const hasPad = a.pad[0] > 0 || a.pad[1] > 0;
          const extra = pads[2] > a.pad[0] || pads[3] > a.pad[1];
          if (hasPad && extra) throw new Error(`layer ${layer.name}: AVE pooling with pad and ceil overhang has no exact ONNX form`);
          attrs.push(attrInt('count_include_pad', hasPad ? 1 : 0));
        }
        y = node(layer, a.pool === 'MAX' ? 'MaxPool' : 'AveragePool', [x()], attrs);
        break;
      }
      case 'LRN':
        if (a.region !== 'ACROSS_CHANNELS') throw new Error(`layer ${layer.name}: LRN ${a.region} has no ONNX equivalent`);
        y = node(layer, 'LRN', [x()], [attrInt('size', a.localSize), attrFloat('alpha', a.alpha), attrFloat('beta', a.beta), attrFloat('bias', a.k)]);
        break;
      case 'InnerProduct': {
        if (a.axis !== 1) throw new Error(`layer ${layer.name}: InnerProduct axis ${a.axis} (only 1 is converted)`);
        let input = x();
        if (spec.shapes[layer.bottom[0]].length > 2) {
          const flat = `${layer.name}__flat`;
          nodes.push({ name: flat, op_type: 'Flatten', input: [input], output: [flat], attribute: [attrInt('axis', 1)] });
          input = flat;
        }
        const [w, b] = layer.blobs;
        const inputs = [input, constant(`${layer.name}/W`, w.shape, w.data)];
        if (a.biasTerm) inputs.push(constant(`${layer.name}/B`, [b.data.length], b.data));
        y = node(layer, 'Gemm', inputs, [attrInt('transB', a.transpose ? 0 : 1)]);
        break;
      }
      case 'BatchNorm': {
        if (a.useGlobalStats === false) throw new Error(`layer ${layer.name}: BatchNorm with use_global_stats: false computes batch statistics (not converted)`);
        const [mean, variance, factor] = layer.blobs;
        const s = factor.data[0] === 0 ? 0 : 1 / factor.data[0];
        const c = mean.data.length;
        const m = mean.data.map((v) => v * s);
        const v = variance.data.map((v) => v * s);
        y = node(layer, 'BatchNormalization', [
          x(),
          constant(`${layer.name}/scale`, [c], new Float32Array(c).fill(1)),
          constant(`${layer.name}/bias`, [c], new Float32Array(c)),
          constant(`${layer.name}/mean`, [c], m),
          constant(`${layer.name}/var`, [c], v),
        ], [attrFloat('epsilon', a.eps)]);
        break;
      }
      case 'Scale': {
        if (layer.bottom.length !== 1 || a.axis !== 1 || a.numAxes !== 1) throw new Error(`layer ${layer.name}: only one-bottom per-channel Scale is converted`);
        const [g, b] = layer.blobs;
        const c = g.data.length;
        const rank = spec.shapes[layer.bottom[0]].length;
        const dims = [c, ...Array(rank - 2).fill(1)];
        y = node(layer, 'Mul', [x(), constant(`${layer.name}/gamma`, dims, g.data)], [], '/mul');
        if (a.biasTerm) y = node(layer, 'Add', [y, constant(`${layer.name}/beta`, dims, b.data)], [], '/add');
        break;
      }
      case 'Eltwise': {
        let inputs = layer.bottom.map((bn) => get(layer, bn));
        if (a.op === 'SUM' && a.coeff.some((c) => c !== 1)) {
          inputs = inputs.map((v, i) => {
            const out = `${layer.name}__coeff${i}`;
            nodes.push({ name: out, op_type: 'Mul', input: [v, constant(`${out}/c`, [], [a.coeff[i]])], output: [out] });
            return out;
          });
        }
        if (a.op === 'PROD' && inputs.length > 2) throw new Error(`layer ${layer.name}: PROD of more than two bottoms not converted`);
        y = node(layer, a.op === 'SUM' ? 'Sum' : a.op === 'PROD' ? 'Mul' : 'Max', inputs);
        break;
      }
      case 'Concat':
        y = node(layer, 'Concat', layer.bottom.map((bn) => get(layer, bn)), [attrInt('axis', a.axis)]);
        break;
      case 'ReLU':
        y = a.negativeSlope === 0 ? node(layer, 'Relu', [x()]) : node(layer, 'LeakyRelu', [x()], [attrFloat('alpha', a.negativeSlope)]);
        break;
      case 'Softmax':
        y = node(layer, 'Softmax', [x()], [attrInt('axis', a.axis)]);
        break;
      default:
        throw new Error(`layer ${layer.name}: ${layer.type} is not converted to ONNX (inference layers only)`);
    }
    cur.set(layer.top[0], y);
  }

  // Graph outputs must be distinct named values: add an Identity per requested blob.
  const graphOutputs = outputs.map((blob) => {
    const name = `out:${blob}`;
    nodes.push({ name, op_type: 'Identity', input: [get({ name: 'output' }, blob)], output: [name] });
    return valueInfo(name, spec.shapes[blob]);
  });

  return encodeModel({
    ir_version: IR_VERSION,
    producer_name: 'caffe-ts bench',
    opset_import: [{ domain: '', version: OPSET }],
    graph: { name: spec.name || 'net', node: nodes, initializer, input: graphInputs, output: graphOutputs },
  });
}

/** The ONNX model of C = A·B for n×n float matrices (inputs A, B; output C). */
export function matMulOnnx(n) {
  return encodeModel({
    ir_version: IR_VERSION,
    producer_name: 'caffe-ts bench',
    opset_import: [{ domain: '', version: OPSET }],
    graph: {
      name: `matmul${n}`,
      node: [{ name: 'matmul', op_type: 'MatMul', input: ['A', 'B'], output: ['C'] }],
      input: [valueInfo('A', [n, n]), valueInfo('B', [n, n])],
      output: [valueInfo('C', [n, n])],
    },
  });
}
