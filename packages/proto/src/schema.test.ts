import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generate, paths } from '../scripts/gen.mjs';
import {
  CAFFE_PROTO_TEXT,
  CaffeError,
  CaffeFileError,
  caffeRoot,
  createMessage,
  errorMarker,
  hasField,
  LossParameter_NormalizationMode,
  lookupType,
  parseText,
  Phase,
  PoolingParameter_PoolMethod,
  PoolingParameter_RoundMode,
  ProtoBinaryError,
  ProtoSchemaError,
  ProtoTextError,
  V1LayerParameter_LayerType,
  type ConvolutionParameter,
  type LayerParameter,
  type NetParameter,
  type PoolingParameter,
  type SolverParameter,
} from './index.js';

const defaults = <T>(type: string): T => createMessage<T>(type);

describe('generated files', () => {
  it('are in sync with caffe.proto (run `node scripts/gen.mjs` after editing it)', () => {
    const { protoTs, typesTs } = generate(readFileSync(paths.proto, 'utf8'));
    expect(readFileSync(paths.protoTs, 'utf8')).toBe(protoTs);
    expect(readFileSync(paths.typesTs, 'utf8')).toBe(typesTs);
  });

  it('embeds the schema so nothing is read at run time', () => {
    expect(CAFFE_PROTO_TEXT).toContain('message LayerParameter');
    expect(CAFFE_PROTO_TEXT).not.toContain('//');
  });

  it('exports real enums', () => {
    expect(Phase.TEST).toBe(1);
    expect(Phase[0]).toBe('TRAIN');
    expect(PoolingParameter_PoolMethod.STOCHASTIC).toBe(2);
    expect(V1LayerParameter_LayerType.CONVOLUTION).toBe(4);
    expect(LossParameter_NormalizationMode.VALID).toBe(1);
  });
});

describe('schema', () => {
  it('has Caffe field numbers, types and packing', () => {
    const f = (t: string, n: string) => lookupType(t).fields[n]!;
    expect(f('NetParameter', 'layer').id).toBe(100);
    expect(f('NetParameter', 'layers').id).toBe(2);
    expect(f('LayerParameter', 'clip_param').id).toBe(148);
    expect(f('LayerParameter', 'swish_param').id).toBe(147);
    expect(f('BlobProto', 'data').packed).toBe(true);
    expect(f('BlobProto', 'double_diff').packed).toBe(true);
    expect(f('BlobShape', 'dim').type).toBe('int64');
    expect(f('BlobShape', 'dim').packed).toBe(true);
    expect(f('Datum', 'float_data').packed).toBe(false);
    expect(f('V1LayerParameter', 'blob_share_mode').id).toBe(1002);
    expect(f('V0LayerParameter', 'hdf5_output_param').id).toBe(1001);
    expect(f('SolverParameter', 'weights').id).toBe(42);
    expect(f('ClipParameter', 'min').required).toBe(true);
  });

  it('lookupType accepts short and qualified names', () => {
    expect(lookupType('NetParameter')).toBe(lookupType('caffe.NetParameter'));
    expect(lookupType('.caffe.NetParameter')).toBe(lookupType('NetParameter'));
    expect(lookupType('V1LayerParameter').fullName).toBe('.caffe.V1LayerParameter');
    expect(caffeRoot().lookupType('caffe.Datum')).toBe(lookupType('Datum'));
    expect(() => lookupType('NoSuchMessage')).toThrow(ProtoSchemaError);
    expect(() => lookupType('NoSuchMessage')).toThrow("unknown message type 'NoSuchMessage'");
  });

  it("unset fields read Caffe's defaults", () => {
    const conv = defaults<ConvolutionParameter>('ConvolutionParameter');
    expect(conv.bias_term).toBe(true);
    expect(conv.group).toBe(1);
    expect(conv.axis).toBe(1);
    expect(conv.kernel_size).toEqual([]);
    expect(conv.weight_filler).toBeNull();
    const pool = defaults<PoolingParameter>('PoolingParameter');
    expect(pool.round_mode).toBe(PoolingParameter_RoundMode.CEIL);
    expect(pool.pool).toBe(PoolingParameter_PoolMethod.MAX);
    expect(pool.stride).toBe(1);
    const s = defaults<SolverParameter>('SolverParameter');
    expect(s.type).toBe('SGD');
    expect(s.random_seed).toBe(-1);
    expect(s.regularization_type).toBe('L2');
    expect(s.solver_mode).toBe(1); // GPU
    expect(s.snapshot_format).toBe(1); // BINARYPROTO
    expect(s.momentum2).toBe(Math.fround(0.999));
    expect(s.delta).toBe(Math.fround(1e-8));
    expect(s.test_initialization).toBe(true);
    expect(s.average_loss).toBe(1);
    expect(s.clip_gradients).toBe(-1);
    const f = createMessage<{ type: string; std: number; sparse: number; variance_norm: number }>('FillerParameter');
    expect([f.type, f.std, f.sparse, f.variance_norm]).toEqual(['constant', 1, -1, 0]);
    expect(createMessage<{ phase: Phase }>('NetState').phase).toBe(Phase.TEST);
    expect(createMessage<{ normalization: number }>('LossParameter').normalization).toBe(1);
    expect(createMessage<{ lr_mult: number; decay_mult: number }>('ParamSpec')).toMatchObject({ lr_mult: 1, decay_mult: 1 });
    expect(createMessage<{ moving_average_fraction: number; eps: number }>('BatchNormParameter').eps).toBe(Math.fround(1e-5));
    expect(createMessage<{ norm: number }>('HingeLossParameter').norm).toBe(1);
    expect(createMessage<{ operation: number }>('ReductionParameter').operation).toBe(1);
    expect(createMessage<{ crop_mode: string }>('WindowDataParameter').crop_mode).toBe('warp');
    expect(createMessage<{ prefetch: number }>('DataParameter').prefetch).toBe(4);
    const layer = defaults<LayerParameter>('LayerParameter');
    expect(layer.name).toBe('');
    expect(layer.phase).toBe(Phase.TRAIN);
    expect(layer.bottom).toEqual([]);
  });

  it('hasField tells set fields from defaults', () => {
    const l = parseText<LayerParameter>('LayerParameter', 'name: "" convolution_param { bias_term: true }');
    expect(hasField(l, 'name')).toBe(true);
    expect(hasField(l, 'type')).toBe(false);
    expect(hasField(l, 'bottom')).toBe(false);
    expect(hasField(l, 'convolution_param')).toBe(true);
    expect(hasField(l.convolution_param!, 'bias_term')).toBe(true);
    expect(hasField(l.convolution_param!, 'group')).toBe(false);
    expect(hasField({ a: [] }, 'a')).toBe(false);
    expect(hasField({ a: 0 }, 'a')).toBe(true);
    expect(hasField({ a: null }, 'a')).toBe(false);
  });
});

describe('createMessage', () => {
  it('builds nested messages, with enums by name or number', () => {
    const net = createMessage<NetParameter>('NetParameter', {
      name: 'n',
      layer: [{ name: 'p', type: 'Pooling', pooling_param: { pool: 'AVE', round_mode: 1 } }],
      state: { phase: 'TRAIN' },
    });
    expect(net.layer[0]!.pooling_param!.pool).toBe(PoolingParameter_PoolMethod.AVE);
    expect(net.layer[0]!.pooling_param!.round_mode).toBe(PoolingParameter_RoundMode.FLOOR);
    expect(net.state!.phase).toBe(Phase.TRAIN);
    expect(hasField(net.layer[0]!, 'bottom')).toBe(false);
    expect(net.layer[0]!.pooling_param!.stride).toBe(1);
    expect(hasField(net, 'force_backward')).toBe(false);
  });

  it('rounds float fields to float32, as parsing does', () => {
    const s = createMessage<SolverParameter>('SolverParameter', { base_lr: 0.01 });
    expect(s.base_lr).toBe(Math.fround(0.01));
  });

  it('accepts 64-bit ints as numbers, bigints or decimal strings', () => {
    const s = createMessage<SolverParameter>('SolverParameter', { random_seed: 5n });
    expect(s.random_seed).toBe(5);
    expect(createMessage<SolverParameter>('SolverParameter', { random_seed: '-3' }).random_seed).toBe(-3);
  });

  it('takes message instances as they are and skips null/undefined', () => {
    const conv = createMessage<ConvolutionParameter>('ConvolutionParameter', { num_output: 3 });
    const l = createMessage<LayerParameter>('LayerParameter', { convolution_param: conv, name: undefined, type: null });
    expect(l.convolution_param).toBe(conv);
    expect(hasField(l, 'name')).toBe(false);
  });

  it('rejects unknown fields and ill-typed values with the field path', () => {
    expect(() => createMessage('LayerParameter', { nmae: 'x' })).toThrow(
      "unknown field 'nmae' in caffe.LayerParameter; did you mean 'name'?",
    );
    expect(() => createMessage('NetParameter', { layer: [{}, { convolution_param: { kernal_size: [3] } }] })).toThrow(
      "layer[1].convolution_param: unknown field 'kernal_size' in caffe.ConvolutionParameter; did you mean 'kernel_size'?",
    );
    expect(() => createMessage('PoolingParameter', { pool: 'MAXX' })).toThrow(
      "pool: bad value 'MAXX' for enum caffe.PoolingParameter.PoolMethod (expected one of MAX, AVE, STOCHASTIC)",
    );
    expect(() => createMessage('ConvolutionParameter', { num_output: -1 })).toThrow('num_output: value -1 is out of range for uint32');
    expect(() => createMessage('ConvolutionParameter', { num_output: 1.5 })).toThrow(
      'num_output: expected an integer (uint32), got 1.5',
    );
    expect(() => createMessage('LayerParameter', { bottom: 'x' })).toThrow('bottom: expected an array (repeated string), got "x"');
    expect(() => createMessage('LayerParameter', { name: 3 })).toThrow('name: expected a string, got 3');
    expect(() => createMessage('LayerParameter', { convolution_param: 3 })).toThrow(ProtoSchemaError);
  });
});

describe('errors', () => {
  it('carry Symbol.for markers so copies of the package interoperate', () => {
    const e = new ProtoTextError('x', { line: 1, column: 2, fieldPath: 'a' });
    const rec = e as unknown as Record<symbol, unknown>;
    expect(rec[Symbol.for('caffe-ts.error')]).toBe(true);
    expect(rec[errorMarker('ProtoTextError')]).toBe(true);
    expect(rec[errorMarker('CaffeError')]).toBe(true);
    expect(CaffeError.isInstance(e)).toBe(true);
    expect(ProtoTextError.isInstance(e)).toBe(true);
    expect(ProtoBinaryError.isInstance(e)).toBe(false);
    expect(CaffeError.isInstance(new Error('x'))).toBe(false);
    expect(CaffeError.isInstance(null)).toBe(false);
    // An error from another copy: same markers, different class.
    const foreign = Object.assign(new Error('y'), {
      [Symbol.for('caffe-ts.error')]: true,
      [errorMarker('CaffeFileError')]: true,
    });
    expect(CaffeError.isInstance(foreign)).toBe(true);
    expect(CaffeFileError.isInstance(foreign)).toBe(true);
    expect(ProtoTextError.isInstance(foreign)).toBe(false);
  });

  it('subclasses in other packages get markers without extra code', () => {
    class LayerError extends CaffeError {
      override readonly name: string = 'LayerError';
    }
    class ShapeError extends LayerError {}
    const e = new ShapeError('bad shape');
    expect(e.name).toBe('LayerError');
    expect(e.message).toBe('bad shape');
    expect(LayerError.isInstance(e)).toBe(true);
    expect(ShapeError.isInstance(e)).toBe(true);
    expect(CaffeError.isInstance(e)).toBe(true);
    expect(ProtoTextError.isInstance(e)).toBe(false);
    expect((e as unknown as Record<symbol, unknown>)[errorMarker('ShapeError')]).toBe(true);
    expect(ShapeError.isInstance(new LayerError('x'))).toBe(false);
  });

  it('ProtoTextError exposes location fields', () => {
    const e = new ProtoTextError('boom', { file: 'a.prototxt', line: 3, column: 7, fieldPath: 'layer[0].name' });
    expect(e.message).toBe('a.prototxt:3:7: boom');
    expect([e.file, e.line, e.column, e.fieldPath, e.reason]).toEqual(['a.prototxt', 3, 7, 'layer[0].name', 'boom']);
    expect(e).toBeInstanceOf(Error);
    expect(e.stack).toContain('ProtoTextError');
  });
});
