import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import {
  CaffeError,
  createMessage,
  decodeBinary,
  decodeBlobProto,
  decodeDatum,
  decodeNetParameter,
  decodeSolverState,
  encodeBinary,
  encodeBlobProto,
  encodeDatum,
  encodeNetParameter,
  encodeSolverState,
  hasField,
  parseNetParameter,
  parseSolverParameter,
  ProtoBinaryError,
  type BlobProto,
  type BlobShape,
  type Datum,
  type SolverParameter,
  type SolverState,
} from './index.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function binaryError(fn: () => unknown): ProtoBinaryError {
  try {
    fn();
  } catch (e) {
    expect(ProtoBinaryError.isInstance(e)).toBe(true);
    expect(CaffeError.isInstance(e)).toBe(true);
    expect(e).not.toBeInstanceOf(RangeError);
    return e as ProtoBinaryError;
  }
  throw new Error('expected a ProtoBinaryError');
}

describe('binary encoding', () => {
  it('packs BlobProto.data and BlobShape.dim like C++ Caffe', () => {
    const b = createMessage<BlobProto>('BlobProto', { shape: { dim: [2, 1] }, data: [1, -2] });
    // shape (field 7) { dim (field 1, packed) [2, 1] }, data (field 5, packed) [1.0f, -2.0f]
    // Fields are written in number order: data (5) before shape (7).
    expect(hex(encodeBlobProto(b))).toBe('2a08' + '0000803f' + '000000c0' + '3a04' + '0a020201');
  });

  it('writes unpacked repeated scalars where caffe.proto does not say packed', () => {
    const d = createMessage<Datum>('Datum', { float_data: [1, 2] });
    expect(hex(encodeDatum(d))).toBe('350000803f' + '3500000040');
    // Decoders accept both forms.
    expect(decodeDatum(new Uint8Array([0x32, 0x08, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40])).float_data).toEqual([1, 2]);
  });

  it('writes only present fields, and returns a plain Uint8Array', () => {
    const net = parseNetParameter('name: "x"');
    const bytes = encodeNetParameter(net);
    expect(Object.getPrototypeOf(bytes)).toBe(Uint8Array.prototype);
    expect(bytes.byteOffset).toBe(0);
    expect(bytes.buffer.byteLength).toBe(bytes.length);
    expect(hex(bytes)).toBe('0a0178');
    expect(encodeBinary('NetParameter', createMessage('NetParameter'))).toEqual(new Uint8Array(0));
  });
});

describe('binary round trips', () => {
  it('Datum with bytes, label and float data', () => {
    const d = createMessage<Datum>('Datum', {
      channels: 1,
      height: 2,
      width: 2,
      data: new Uint8Array([0, 127, 128, 255]),
      label: 7,
      encoded: false,
    });
    const back = decodeDatum(encodeDatum(d));
    expect(back.data).toBeInstanceOf(Uint8Array);
    expect(Object.getPrototypeOf(back.data)).toBe(Uint8Array.prototype);
    expect(Array.from(back.data)).toEqual([0, 127, 128, 255]);
    expect([back.channels, back.height, back.width, back.label]).toEqual([1, 2, 2, 7]);
    expect(hasField(back, 'encoded')).toBe(true);
    expect(hasField(back, 'float_data')).toBe(false);
  });

  it('decoded bytes do not alias the input buffer', () => {
    const bytes = encodeDatum(createMessage<Datum>('Datum', { data: new Uint8Array([1, 2, 3]) }));
    const d = decodeDatum(Buffer.from(bytes));
    bytes.fill(0);
    expect(Array.from(d.data)).toEqual([1, 2, 3]);
    expect(Object.getPrototypeOf(d.data)).toBe(Uint8Array.prototype);
  });

  it('unset bytes read an empty Uint8Array', () => {
    const d = decodeDatum(new Uint8Array(0));
    expect(d.data).toBeInstanceOf(Uint8Array);
    expect(d.data.length).toBe(0);
    expect(hasField(d, 'data')).toBe(false);
  });

  it('int64 fields are plain numbers (BlobShape.dim, SolverParameter.random_seed)', () => {
    const shape = decodeBinary<BlobShape>('BlobShape', encodeBinary('BlobShape', { dim: [64, 3, 224, 224, 2 ** 40] }));
    expect(shape.dim).toEqual([64, 3, 224, 224, 2 ** 40]);
    for (const d of shape.dim) expect(typeof d).toBe('number');
    const s = parseSolverParameter('random_seed: -7');
    const back = decodeBinary<SolverParameter>('SolverParameter', encodeBinary('SolverParameter', s));
    expect(back.random_seed).toBe(-7);
    expect(typeof decodeBinary<SolverParameter>('SolverParameter', new Uint8Array(0)).random_seed).toBe('number');
    expect(decodeBinary<SolverParameter>('SolverParameter', new Uint8Array(0)).random_seed).toBe(-1);
    expect(JSON.parse(JSON.stringify(shape))).toEqual({ dim: [64, 3, 224, 224, 2 ** 40] });
  });

  it('leaves protobufjs global Long handling alone', () => {
    const type = protobuf.Root.fromJSON({ nested: { M: { fields: { v: { type: 'int64', id: 1 } } } } }).lookupType('M');
    const other = type.decode(type.encode({ v: 5 }).finish()) as unknown as { v: unknown };
    // Whatever protobufjs produces by default is unchanged by loading this package.
    expect(typeof other.v === 'number' || typeof (other.v as { low?: unknown }).low === 'number').toBe(true);
    expect(protobuf.util.Long === null || typeof protobuf.util.Long === 'function').toBe(true);
  });

  it('SolverState with history blobs', () => {
    const st = createMessage<SolverState>('SolverState', {
      iter: 500,
      learned_net: 'lenet_iter_500.caffemodel',
      // Typed arrays, as BlobProto's packed fields decode (number[] would compare unequal).
      history: [{ shape: { dim: [2] }, data: new Float32Array([0.5, -0.25]) }, { double_data: new Float64Array([1 / 3]) }],
      current_step: 1,
    });
    const back = decodeSolverState(encodeSolverState(st));
    expect(back).toEqual(st);
    expect(back.history[1]!.double_data[0]).toBe(1 / 3);
  });

  it('a net parsed from text survives encode → decode unchanged', () => {
    const net = parseNetParameter(
      'name: "n" layer { name: "c" type: "Convolution" convolution_param { num_output: 3 kernel_size: 5 engine: CUDNN } ' +
        'blobs { shape { dim: 3 dim: 1 } data: [0.1, 0.2, 0.3] } param { lr_mult: 0.1 } }',
    );
    const back = decodeNetParameter(encodeNetParameter(net));
    // Blob values parsed from text are a number[]; decoded, a Float32Array (BlobProto's packed fields).
    expect(back.layer[0]!.blobs[0]!.data).toEqual(Float32Array.from([0.1, 0.2, 0.3]));
    net.layer[0]!.blobs[0]!.data = Float32Array.from(net.layer[0]!.blobs[0]!.data);
    expect(back).toEqual(net);
  });

  it('accepts an ArrayBuffer and Buffer input', () => {
    const bytes = encodeBlobProto(createMessage<BlobProto>('BlobProto', { data: [1, 2, 3] }));
    expect(decodeBlobProto(bytes.buffer as ArrayBuffer).data).toEqual(Float32Array.from([1, 2, 3]));
    // An odd offset: the floats are copied out to an aligned buffer of their own.
    const padded = Buffer.concat([Buffer.from([9, 9, 9]), Buffer.from(bytes)]).subarray(3);
    const fromPadded = decodeBlobProto(padded);
    expect(fromPadded.data).toEqual(Float32Array.from([1, 2, 3]));
    padded.fill(0);
    expect(fromPadded.data).toEqual(Float32Array.from([1, 2, 3]));
  });

  it('Float32Array values encode as packed floats', () => {
    const b = createMessage<BlobProto>('BlobProto', { data: new Float32Array([0.5, 0.25]) });
    expect(decodeBlobProto(encodeBlobProto(b)).data).toEqual(Float32Array.from([0.5, 0.25]));
    // The same bytes as from a number[] (the typed array is written as its bytes).
    expect(encodeBlobProto(b)).toEqual(encodeBlobProto(createMessage<BlobProto>('BlobProto', { data: [0.5, 0.25] })));
  });

  it('packed float/double fields decode to Float32Array/Float64Array; split and unpacked occurrences still read', () => {
    const dbl = createMessage<BlobProto>('BlobProto', { double_data: [1 / 3, -2], double_diff: new Float64Array([5]) });
    const back = decodeBlobProto(encodeBlobProto(dbl));
    expect(back.double_data).toBeInstanceOf(Float64Array);
    expect(Array.from(back.double_data)).toEqual([1 / 3, -2]);
    expect(back.double_diff).toEqual(Float64Array.from([5]));
    // data (field 5) packed twice: the chunks concatenate, as protobuf merges them.
    const chunk = (values: number[]) => {
      const f = new Uint8Array(new Float32Array(values).buffer);
      return [0x2a, f.length, ...f];
    };
    const twice = decodeBlobProto(Uint8Array.from([...chunk([1, 2]), ...chunk([3])]));
    expect(twice.data).toEqual(Float32Array.from([1, 2, 3]));
    // An unpacked occurrence (wire type 5) after a packed one: every value is kept, as a number[].
    const mixed = decodeBlobProto(Uint8Array.from([...chunk([1, 2]), 0x2d, 0, 0, 0x40, 0x40]));
    expect(mixed.data).toEqual([1, 2, 3]);
  });
});

describe('wire compatibility', () => {
  it('skips unknown fields and fields whose wire type does not match the schema, as C++ does', () => {
    // LayerParameter: name (1) = "a"; field 145 (parameter_param, a message) sent as varint 1;
    // field 999 unknown (fixed32); field 147 as a group; type (2) = "b".
    const bytes = new Uint8Array([
      0x0a, 0x01, 0x61,
      0x88, 0x09, 0x01,
      0xbd, 0x3e, 1, 2, 3, 4,
      0x9b, 0x09, 0x08, 0x05, 0x9c, 0x09,
      0x12, 0x01, 0x62,
    ]);
    const l = decodeBinary<{ name: string; type: string; parameter_param: unknown }>('LayerParameter', bytes);
    expect(l.name).toBe('a');
    expect(l.type).toBe('b');
    expect(l.parameter_param).toBeNull();
  });

  it('reads packed and unpacked forms of any repeated scalar, and merges repeated singular messages', () => {
    // ConvolutionParameter.kernel_size (4) packed [3, 5], then unpacked 7.
    const c = decodeBinary<{ kernel_size: number[] }>('ConvolutionParameter', new Uint8Array([0x22, 0x02, 3, 5, 0x20, 7]));
    expect(c.kernel_size).toEqual([3, 5, 7]);
    // LayerParameter.convolution_param (106) twice: {num_output: 2} then {group: 2}.
    const l = decodeBinary<{ convolution_param: { num_output: number; group: number } }>(
      'LayerParameter',
      new Uint8Array([0xd2, 0x06, 0x02, 0x08, 0x02, 0xd2, 0x06, 0x02, 0x28, 0x02]),
    );
    expect(l.convolution_param.num_output).toBe(2);
    expect(l.convolution_param.group).toBe(2);
  });

  it('drops unknown enum values, as proto2 C++ does', () => {
    // PoolingParameter.pool (1) = 9 (not a PoolMethod).
    const p = decodeBinary<{ pool: number }>('PoolingParameter', new Uint8Array([0x08, 0x09]));
    expect(hasField(p, 'pool')).toBe(false);
  });

  it('encodes negative int32 as 10-byte varints and int64 in two\'s complement', () => {
    const bytes = encodeBinary('ConvolutionParameter', { axis: -1 } as never);
    expect(hex(bytes)).toBe('80' + '01' + 'ffffffffffffffffff01');
    const s = createMessage<SolverParameter>('SolverParameter', { random_seed: -2 });
    expect(hex(encodeBinary('SolverParameter', s))).toBe('a001' + 'feffffffffffffffff01');
    expect(decodeBinary<SolverParameter>('SolverParameter', encodeBinary('SolverParameter', s)).random_seed).toBe(-2);
    const big = createMessage<SolverParameter>('SolverParameter', { random_seed: -(2 ** 40) - 3 });
    expect(decodeBinary<SolverParameter>('SolverParameter', encodeBinary('SolverParameter', big)).random_seed).toBe(-(2 ** 40) - 3);
  });

  it('refuses to encode ill-typed values and missing required fields', () => {
    expect(() => encodeBinary('ConvolutionParameter', { num_output: 1.5 } as never)).toThrow(
      "cannot encode caffe.ConvolutionParameter: field 'num_output': expected an integer (uint32), got 1.5",
    );
    expect(() => encodeBinary('LayerParameter', { name: 3 } as never)).toThrow("field 'name': expected a string, got 3");
    expect(() => encodeBinary('ClipParameter', createMessage('ClipParameter', {}) as never)).toThrow(
      "missing required field 'min' in caffe.ClipParameter",
    );
  });
});

describe('binary errors', () => {
  it('truncated data gives ProtoBinaryError with offset and type', () => {
    const bytes = encodeBlobProto(createMessage<BlobProto>('BlobProto', { data: [1, 2, 3, 4] }));
    const e = binaryError(() => decodeBlobProto(bytes.subarray(0, bytes.length - 3), 'mean.binaryproto'));
    expect(e.file).toBe('mean.binaryproto');
    expect(e.typeName).toBe('caffe.BlobProto');
    expect(e.offset).toBeGreaterThanOrEqual(0);
    expect(e.offset).toBeLessThanOrEqual(bytes.length);
    expect(e.message).toBe("mean.binaryproto: cannot decode caffe.BlobProto at byte 2: unexpected end of data: field 'data' needs 16 byte(s), 13 left");
  });

  it('a truncated nested message and a truncated string both give typed errors', () => {
    const net = encodeNetParameter(parseNetParameter('name: "abcdef" layer { name: "conv" type: "ReLU" }'));
    for (let cut = 1; cut < net.length; cut++) {
      try {
        decodeNetParameter(net.subarray(0, cut));
      } catch (e) {
        expect(ProtoBinaryError.isInstance(e)).toBe(true);
      }
    }
    const e = binaryError(() => decodeNetParameter(net.subarray(0, 4)));
    expect(e.typeName).toBe('caffe.NetParameter');
    expect(e.message).toContain('<bytes>: cannot decode caffe.NetParameter at byte');
  });

  it('garbage gives typed errors, never a raw RangeError', () => {
    let seed = 99;
    let failures = 0;
    for (let i = 0; i < 300; i++) {
      const g = new Uint8Array(64);
      for (let k = 0; k < g.length; k++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        g[k] = seed >>> 24;
      }
      try {
        decodeNetParameter(g);
      } catch (e) {
        failures++;
        expect(ProtoBinaryError.isInstance(e)).toBe(true);
      }
    }
    expect(failures).toBeGreaterThan(0);
    const e = binaryError(() => decodeDatum(new Uint8Array([0x7f])));
    expect(e.message).toBe('<bytes>: cannot decode caffe.Datum at byte 1: invalid wire type 7 (field 15)');
  });

  it('errors inside nested messages name the inner type and the field path', () => {
    const net = encodeNetParameter(
      parseNetParameter('layer { name: "a" } layer { name: "b" blobs { data: [1, 2] } blobs { data: [1, 2, 3] } }'),
    );
    // Corrupt the length of the last packed data field (3 floats = 12 bytes) to 13.
    const bad = Uint8Array.from(net);
    const at = bad.lastIndexOf(12);
    bad[at] = 13;
    const e = binaryError(() => decodeNetParameter(bad, 'x.caffemodel'));
    expect(e.message).toMatch(
      /^x\.caffemodel: cannot decode caffe\.NetParameter at byte \d+: .* \(in caffe\.BlobProto at layer\[1\]\.blobs\[1\]\)$/,
    );
  });

  it('missing required fields are reported', () => {
    const e = binaryError(() => decodeBinary('ClipParameter', new Uint8Array([0x0d, 0, 0, 0x80, 0x3f])));
    expect(e.message).toBe("<bytes>: cannot decode caffe.ClipParameter at byte 5: missing required field 'max' in caffe.ClipParameter");
  });
});

describe('binary error field paths', () => {
  it('a truncated layer is named with its index in fieldPath and the message', () => {
    const net = encodeNetParameter(parseNetParameter('name: "n" layer { name: "a" type: "ReLU" } layer { name: "conv" type: "ReLU" }'));
    const e = binaryError(() => decodeNetParameter(net.subarray(0, net.length - 4), 'w.caffemodel'));
    expect(e.fieldPath).toBe('layer[1]');
    expect(e.message).toMatch(/^w\.caffemodel: cannot decode caffe\.NetParameter at byte \d+: unexpected end of data: field 'layer' needs \d+ byte\(s\), \d+ left \(in caffe\.LayerParameter at layer\[1\]\)$/);
    const top = binaryError(() => decodeNetParameter(Uint8Array.from([0x0a, 0x05, 0x61]), 'w.caffemodel'));
    expect(top.fieldPath).toBe('');
  });
});
