import { describe, expect, it } from 'vitest';
import {
  createMessage,
  formatFloat32,
  parseNetParameter,
  parseSolverParameter,
  parseText,
  printText,
  type BlobProto,
  type Datum,
  type LayerParameter,
} from './index.js';

describe('formatFloat32', () => {
  it('prints the shortest decimal that reads back to the same float32', () => {
    expect(formatFloat32(Math.fround(0.0005))).toBe('0.0005');
    expect(formatFloat32(Math.fround(0.1))).toBe('0.1');
    expect(formatFloat32(Math.fround(1e-8))).toBe('1e-8');
    expect(formatFloat32(Math.fround(0.00390625))).toBe('0.00390625');
    expect(formatFloat32(3)).toBe('3');
    expect(formatFloat32(-0.5)).toBe('-0.5');
    expect(formatFloat32(Math.fround(3.4028234663852886e38))).toBe('3.4028235e+38');
    expect(formatFloat32(Math.fround(1.401298464324817e-45))).toBe('1e-45');
    expect(formatFloat32(0)).toBe('0');
    expect(formatFloat32(-0)).toBe('-0');
    expect(formatFloat32(Infinity)).toBe('inf');
    expect(formatFloat32(-Infinity)).toBe('-inf');
    expect(formatFloat32(NaN)).toBe('nan');
  });

  it('round-trips random float32 values exactly', () => {
    const buf = new Float32Array(1);
    const bits = new Uint32Array(buf.buffer);
    let seed = 12345;
    for (let i = 0; i < 20000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      bits[0] = seed;
      const v = buf[0]!;
      if (!Number.isFinite(v)) continue;
      const s = formatFloat32(v);
      expect(Math.fround(Number(s))).toBe(v);
    }
  });
});

describe('printText', () => {
  it('prints Caffe style: 2-space indent, declaration order, only present fields, enums by name', () => {
    const l = parseText<LayerParameter>(
      'LayerParameter',
      'pooling_param { stride: 2 pool: MAX kernel_size: 3 } top: "p" bottom: "c" type: "Pooling" name: "pool1"',
    );
    expect(printText('LayerParameter', l)).toBe(
      [
        'name: "pool1"',
        'type: "Pooling"',
        'bottom: "c"',
        'top: "p"',
        'pooling_param {',
        '  pool: MAX',
        '  kernel_size: 3',
        '  stride: 2',
        '}',
        '',
      ].join('\n'),
    );
  });

  it("prints by field number on request (C++ Caffe's order)", () => {
    const net = parseNetParameter('layer { name: "a" phase: TRAIN top: "x" } input: "data" name: "n"');
    expect(printText('NetParameter', net, { fieldOrder: 'number' })).toBe(
      ['name: "n"', 'input: "data"', 'layer {', '  name: "a"', '  top: "x"', '  phase: TRAIN', '}', ''].join('\n'),
    );
    expect(printText('NetParameter', net)).toBe(
      ['name: "n"', 'input: "data"', 'layer {', '  name: "a"', '  top: "x"', '  phase: TRAIN', '}', ''].join('\n'),
    );
  });

  it('prints floats as float32-shortest and doubles with full precision', () => {
    const s = parseSolverParameter('base_lr: 0.01 weight_decay: 0.0005 delta: 1e-8 momentum: 0.9');
    expect(printText('SolverParameter', s)).toBe('base_lr: 0.01\nmomentum: 0.9\nweight_decay: 0.0005\ndelta: 1e-8\n');
    const b = createMessage<BlobProto>('BlobProto', { double_data: [0.1, 1 / 3], data: [1 / 3] });
    expect(printText('BlobProto', b)).toBe('data: 0.33333334\ndouble_data: 0.1\ndouble_data: 0.3333333333333333\n');
  });

  it('escapes strings and bytes', () => {
    const l = createMessage<LayerParameter>('LayerParameter', { name: 'a"b\\c\nd\te\u0001é' });
    expect(printText('LayerParameter', l)).toBe('name: "a\\"b\\\\c\\nd\\te\\001é"\n');
    const d = createMessage<Datum>('Datum', { data: new Uint8Array([0, 65, 255, 34, 39, 10]) });
    expect(printText('Datum', d)).toBe(`data: "\\000A\\377\\"\\'\\n"\n`);
    for (const [type, msg] of [
      ['LayerParameter', l],
      ['Datum', d],
    ] as const) {
      expect(parseText(type, printText(type, msg))).toEqual(msg);
    }
  });

  it('prints special float values so they parse back', () => {
    const s = parseSolverParameter('clip_gradients: -inf momentum: inf rms_decay: nan gamma: -0');
    const text = printText('SolverParameter', s);
    expect(text).toBe('gamma: -0\nmomentum: inf\nclip_gradients: -inf\nrms_decay: nan\n');
    const again = parseSolverParameter(text);
    expect(Object.is(again.gamma, -0)).toBe(true);
    expect(again.rms_decay).toBeNaN();
  });

  it('print(parse(x)) parses back identically and printing is stable', () => {
    const src = [
      'name: "n"',
      'input: "data"',
      'input_shape { dim: 1 dim: 3 dim: 224 dim: 224 }',
      'state { phase: TRAIN stage: "s" }',
      'layer {',
      '  name: "c" type: "Convolution" bottom: "data" top: "c"',
      '  param { lr_mult: 1 decay_mult: 0.0001 } param { lr_mult: 2 share_mode: PERMISSIVE }',
      '  include { phase: TEST not_stage: "x" }',
      '  blobs { shape { dim: 2 } data: [0.1, -2.5e-7] double_diff: 1e300 }',
      '  convolution_param { num_output: 8 kernel_size: [3, 3] pad: 1 bias_term: false weight_filler { type: "gaussian" std: 0.01 } }',
      '  loss_weight: 0.333333333',
      '}',
    ].join('\n');
    const a = parseNetParameter(src);
    const t1 = printText('NetParameter', a);
    const b = parseNetParameter(t1);
    expect(b).toEqual(a);
    expect(printText('NetParameter', b)).toBe(t1);
  });
});
