import { builtinLayerDefs } from '@caffe-ts/layers';
import { describe, expect, it } from 'vitest';
import { caffe, repoRoot } from './helpers.js';

/** BVLC Caffe master's 61 registered layer type strings (caffe-spec.md §1.1). */
const BVLC_TYPES = [
  'AbsVal', 'Accuracy', 'ArgMax', 'BNLL', 'BatchNorm', 'BatchReindex', 'Bias', 'Clip', 'Concat', 'ContrastiveLoss',
  'Convolution', 'Crop', 'Data', 'Deconvolution', 'Dropout', 'DummyData', 'ELU', 'Eltwise', 'Embed', 'EuclideanLoss',
  'Exp', 'Filter', 'Flatten', 'HDF5Data', 'HDF5Output', 'HingeLoss', 'Im2col', 'ImageData', 'InfogainLoss',
  'InnerProduct', 'Input', 'LRN', 'LSTM', 'LSTMUnit', 'Log', 'MVN', 'MemoryData', 'MultinomialLogisticLoss', 'PReLU',
  'Parameter', 'Pooling', 'Power', 'Python', 'RNN', 'ReLU', 'Reduction', 'Reshape', 'SPP', 'Scale', 'Sigmoid',
  'SigmoidCrossEntropyLoss', 'Silence', 'Slice', 'Softmax', 'SoftmaxWithLoss', 'Split', 'Swish', 'TanH', 'Threshold',
  'Tile', 'WindowData',
];

/** BVLC types the CLI does not register yet: none, the CLI lists all 61. */
const PENDING: string[] = [];

describe('caffe layer_types', () => {
  it('prints one registered type per line, sorted, covering every BVLC type but the pending ones', async () => {
    expect(BVLC_TYPES).toHaveLength(61);
    const r = await caffe(['layer_types'], repoRoot);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.endsWith('\n')).toBe(true);
    const lines = r.stdout.slice(0, -1).split('\n');
    expect(lines.every((l) => /^[A-Za-z][A-Za-z0-9]*$/.test(l))).toBe(true);
    expect(lines).toEqual([...lines].sort());
    expect(new Set(lines).size).toBe(lines.length);
    // The built-ins of @caffe-ts/layers and the Data layer of @caffe-ts/io-leveldb.
    expect(lines).toEqual(expect.arrayContaining([...builtinLayerDefs.map((d) => d.type), 'Data']));
    const missing = BVLC_TYPES.filter((t) => !lines.includes(t));
    expect(missing).toEqual(PENDING);
  });
});
