import { describe, expect, it } from 'vitest';
import {
  CaffeError,
  ConvolutionParameter_Engine,
  hasField,
  parseNetParameter,
  parseSolverParameter,
  parseText,
  PoolingParameter_PoolMethod,
  ProtoTextError,
  type BlobProto,
  type Datum,
  type LayerParameter,
  type NetParameter,
  type SolverParameter,
} from './index.js';

function layer(text: string): LayerParameter {
  return parseText<LayerParameter>('LayerParameter', text);
}

/** Runs `fn`, expecting a ProtoTextError, and returns it. */
function textError(fn: () => unknown): ProtoTextError {
  try {
    fn();
  } catch (e) {
    expect(ProtoTextError.isInstance(e)).toBe(true);
    expect(CaffeError.isInstance(e)).toBe(true);
    expect(e).toBeInstanceOf(ProtoTextError);
    return e as ProtoTextError;
  }
  throw new Error('expected a ProtoTextError');
}

describe('parseText: syntax', () => {
  it('reads scalars, nested messages and comments', () => {
    const net = parseNetParameter(
      [
        '# a comment line',
        'name: "LeNet"  # trailing comment',
        'layer {',
        '  name: "conv1"',
        '  type: "Convolution"',
        '  convolution_param { num_output: 20 kernel_size: 5 }',
        '}',
      ].join('\n'),
    );
    expect(net.name).toBe('LeNet');
    expect(net.layer).toHaveLength(1);
    expect(net.layer[0]!.name).toBe('conv1');
    expect(net.layer[0]!.convolution_param!.num_output).toBe(20);
    expect(net.layer[0]!.convolution_param!.kernel_size).toEqual([5]);
  });

  it('accepts `field { }`, `field: { }` and `field < >` for messages', () => {
    const a = layer('convolution_param { num_output: 1 }');
    const b = layer('convolution_param: { num_output: 1 }');
    const c = layer('convolution_param < num_output: 1 >');
    for (const l of [a, b, c]) expect(l.convolution_param!.num_output).toBe(1);
  });

  it('collects repeated fields given several times or as [a, b] lists', () => {
    const l = layer('bottom: "a" bottom: "b" top: ["c", "d"] top: "e" loss_weight: [] propagate_down: [true, false]');
    expect(l.bottom).toEqual(['a', 'b']);
    expect(l.top).toEqual(['c', 'd', 'e']);
    expect(l.loss_weight).toEqual([]);
    expect(l.propagate_down).toEqual([true, false]);
    const m = layer('param: [{ lr_mult: 1 }, { lr_mult: 2 }] param [ < decay_mult: 0 > ]');
    expect(m.param.map((p) => p.lr_mult)).toEqual([1, 2, 1]);
    expect(m.param[2]!.decay_mult).toBe(0);
  });

  it('accepts optional ; and , separators', () => {
    const l = layer('name: "x"; type: "ReLU", bottom: "a";top: "b",');
    expect([l.name, l.type, l.bottom, l.top]).toEqual(['x', 'ReLU', ['a'], ['b']]);
  });

  it('reads single- and double-quoted strings with C escapes, concatenating adjacent literals', () => {
    expect(layer(`name: 'it\\'s'`).name).toBe("it's");
    expect(layer(`name: "a\\"b\\\\c\\n\\t\\r"`).name).toBe('a"b\\c\n\t\r');
    expect(layer(`name: "\\101\\x42\\103"`).name).toBe('ABC');
    expect(layer(`name: "\\u00e9\\U0001F600"`).name).toBe('é😀');
    expect(layer(`name: "\\303\\251"`).name).toBe('é'); // UTF-8 bytes via octal escapes
    expect(layer(`name: "héllo"`).name).toBe('héllo');
    expect(layer(`name: "ab" 'cd'\n "ef"`).name).toBe('abcdef');
    expect(layer(`name: "a\\x41" "b"`).name).toBe('aAb');
    expect(layer(`name: ""`).name).toBe('');
    expect(hasField(layer(`name: ""`), 'name')).toBe(true);
  });

  it('reads bytes fields with escapes into a Uint8Array', () => {
    const d = parseText<Datum>('Datum', `data: "\\000\\001\\377ab" data_dummy_guard: 1`.replace(' data_dummy_guard: 1', ''));
    expect(d.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(d.data)).toEqual([0, 1, 255, 97, 98]);
    const e = parseText<Datum>('Datum', `data: "é"`);
    expect(Array.from(e.data)).toEqual([0xc3, 0xa9]);
  });

  it('reads numbers: exponents, signs, hex, octal, f suffix, inf and nan', () => {
    const s = parseSolverParameter(
      'base_lr: 1e-4 momentum: .9 gamma: -0.5 power: 1f weight_decay: 5E-4 delta: 1.5e+2F clip_gradients: -inf ' +
        'rms_decay: nan momentum2: Infinity max_iter: 0x10 display: 010 test_interval: -0 random_seed: -12345678901',
    );
    expect(s.base_lr).toBe(Math.fround(1e-4));
    expect(s.momentum).toBe(Math.fround(0.9));
    expect(s.gamma).toBe(-0.5);
    expect(s.power).toBe(1);
    expect(s.weight_decay).toBe(Math.fround(5e-4));
    expect(s.delta).toBe(150);
    expect(s.clip_gradients).toBe(-Infinity);
    expect(s.rms_decay).toBeNaN();
    expect(s.momentum2).toBe(Infinity);
    expect(s.max_iter).toBe(16);
    expect(s.display).toBe(8);
    expect(s.test_interval).toBe(0);
    expect(s.random_seed).toBe(-12345678901);
    expect(typeof s.random_seed).toBe('number');
  });

  it('reads integer values into float fields and keeps doubles exact', () => {
    const b = parseText<BlobProto>('BlobProto', 'data: 3 data: 0x10 double_data: 0.1 double_data: 1e-300');
    expect(b.data).toEqual([3, 16]);
    expect(b.double_data).toEqual([0.1, 1e-300]);
  });

  it('reads booleans as true/false/True/False/t/f/1/0', () => {
    const l = layer('propagate_down: [true, false, True, False, t, f, 1, 0]');
    expect(l.propagate_down).toEqual([true, false, true, false, true, false, true, false]);
  });

  it('reads enums by name or number', () => {
    expect(layer('pooling_param { pool: AVE }').pooling_param!.pool).toBe(PoolingParameter_PoolMethod.AVE);
    expect(layer('pooling_param { pool: 2 }').pooling_param!.pool).toBe(PoolingParameter_PoolMethod.STOCHASTIC);
    expect(layer('convolution_param { engine: CUDNN }').convolution_param!.engine).toBe(ConvolutionParameter_Engine.CUDNN);
    expect(layer('phase: TEST').phase).toBe(1);
  });

  it('handles CRLF line endings, tabs and an empty input', () => {
    const net = parseNetParameter('name: "a"\r\n\tinput: "data"\r\n');
    expect(net.name).toBe('a');
    expect(net.input).toEqual(['data']);
    expect(parseNetParameter('\ufeffname: "bom"').name).toBe('bom');
    const empty = parseNetParameter('  # nothing\n');
    expect(hasField(empty, 'name')).toBe(false);
    expect(empty.layer).toEqual([]);
  });

  it('marks only given fields present; the rest read defaults', () => {
    const l = layer('convolution_param { num_output: 4 }');
    const c = l.convolution_param!;
    expect(hasField(c, 'num_output')).toBe(true);
    expect(hasField(c, 'bias_term')).toBe(false);
    expect(c.bias_term).toBe(true);
    expect(hasField(c, 'kernel_size')).toBe(false);
    expect(c.weight_filler).toBeNull();
    expect(hasField(l, 'pooling_param')).toBe(false);
    expect(l.pooling_param).toBeNull();
  });

  it('parses a 5000-line prototxt well under 100 ms', () => {
    const block = [
      'layer {',
      '  name: "conv"',
      '  type: "Convolution"',
      '  bottom: "data"',
      '  top: "conv"',
      '  param { lr_mult: 1 decay_mult: 1 }',
      '  convolution_param {',
      '    num_output: 64 # comment',
      '    kernel_size: 3 pad: 1 stride: 1',
      '    weight_filler { type: "msra" }',
      '  }',
      '}',
    ];
    const lines: string[] = ['name: "big"'];
    while (lines.length < 5000) lines.push(...block);
    const text = lines.join('\n');
    parseNetParameter(text); // warm up
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const net = parseNetParameter(text);
      best = Math.min(best, performance.now() - t0);
      expect(net.layer.length).toBe(Math.floor((lines.length - 1) / block.length));
    }
    expect(best).toBeLessThan(100);
  });
});

describe('parseText: errors', () => {
  const lenet = [
    'name: "LeNet"',
    'layer {',
    '  name: "data"',
    '  type: "Input"',
    '}',
    'layer {',
    '  name: "conv1"',
    '  type: "Convolution"',
    '  convolution_param {',
    '    num_output: 20',
    '    kernal_size: 5',
    '  }',
    '}',
  ].join('\n');

  it('unknown field: location, path and a suggestion', () => {
    const e = textError(() => parseNetParameter(lenet, 'lenet.prototxt'));
    expect(e.message).toBe(
      "lenet.prototxt:11:5: unknown field 'kernal_size' in caffe.ConvolutionParameter (at layer[1].convolution_param); did you mean 'kernel_size'?",
    );
    expect(e.file).toBe('lenet.prototxt');
    expect(e.line).toBe(11);
    expect(e.column).toBe(5);
    expect(e.fieldPath).toBe('layer[1].convolution_param.kernal_size');
    expect(e.name).toBe('ProtoTextError');
  });

  it('unknown field at top level, without a file name', () => {
    const e = textError(() => parseNetParameter('nmae: "x"'));
    expect(e.message).toBe("<text>:1:1: unknown field 'nmae' in caffe.NetParameter; did you mean 'name'?");
    expect(e.file).toBeUndefined();
    expect(e.fieldPath).toBe('nmae');
    const far = textError(() => parseNetParameter('completely_unrelated: 1'));
    expect(far.message).toBe("<text>:1:1: unknown field 'completely_unrelated' in caffe.NetParameter");
  });

  it('bad enum value', () => {
    const e = textError(() =>
      parseNetParameter('layer {\n  name: "p"\n  pooling_param {\n    pool: MAXX\n  }\n}\n', 'lenet.prototxt'),
    );
    expect(e.message).toBe(
      "lenet.prototxt:4:11: bad value 'MAXX' for enum caffe.PoolingParameter.PoolMethod (expected one of MAX, AVE, STOCHASTIC) (at layer[0].pooling_param.pool)",
    );
    expect(e.fieldPath).toBe('layer[0].pooling_param.pool');
    expect([e.line, e.column]).toEqual([4, 11]);
    const n = textError(() => layer('pooling_param { pool: 7 }'));
    expect(n.message).toBe(
      '<text>:1:23: bad value 7 for enum caffe.PoolingParameter.PoolMethod (expected one of MAX, AVE, STOCHASTIC) (at pooling_param.pool)',
    );
    const s = textError(() => layer('pooling_param { pool: "MAX" }'));
    expect(s.reason).toBe(
      `bad value "MAX" for enum caffe.PoolingParameter.PoolMethod (expected one of MAX, AVE, STOCHASTIC) (at pooling_param.pool)`,
    );
  });

  it('wrong value types', () => {
    expect(textError(() => layer('convolution_param { num_output: 1.5 }')).message).toBe(
      "<text>:1:33: expected an integer for field 'num_output' (uint32), found '1.5' (at convolution_param.num_output)",
    );
    expect(textError(() => layer('name: conv1')).message).toBe(
      "<text>:1:7: expected a quoted string for field 'name' (string), found 'conv1' (at name)",
    );
    expect(textError(() => layer('convolution_param { bias_term: yes }')).message).toBe(
      "<text>:1:32: expected true or false for field 'bias_term' (bool), found 'yes' (at convolution_param.bias_term)",
    );
    expect(textError(() => layer('convolution_param { bias_term: 2 }')).reason).toBe(
      "expected true or false for field 'bias_term' (bool), found '2' (at convolution_param.bias_term)",
    );
    expect(textError(() => parseSolverParameter('base_lr: "0.1"')).message).toBe(
      `<text>:1:10: expected a number for field 'base_lr' (float), found "0.1" (at base_lr)`,
    );
    expect(textError(() => parseSolverParameter('base_lr: abc')).message).toBe(
      "<text>:1:10: expected a number for field 'base_lr' (float), found 'abc' (at base_lr)",
    );
    expect(textError(() => layer('convolution_param 5')).message).toBe(
      "<text>:1:19: expected '{' after message field 'convolution_param', found '5' (at convolution_param)",
    );
  });

  it('values out of range', () => {
    expect(textError(() => layer('convolution_param { num_output: -1 }')).message).toBe(
      "<text>:1:33: value -1 is out of range for field 'num_output' (uint32) (at convolution_param.num_output)",
    );
    expect(textError(() => layer('convolution_param { axis: 2147483648 }')).message).toBe(
      "<text>:1:27: value 2147483648 is out of range for field 'axis' (int32) (at convolution_param.axis)",
    );
    expect(layer('convolution_param { axis: -2147483648 num_output: 0xffffffff }').convolution_param!.num_output).toBe(4294967295);
    expect(textError(() => layer('convolution_param { num_output: 4294967296 }')).reason).toBe(
      "value 4294967296 is out of range for field 'num_output' (uint32) (at convolution_param.num_output)",
    );
    expect(textError(() => parseSolverParameter('random_seed: 9223372036854775807')).reason).toBe(
      "value 9223372036854775807 is out of range for field 'random_seed' (int64; JS numbers hold integers up to 2^53 exactly) (at random_seed)",
    );
    expect(textError(() => parseSolverParameter('random_seed: 9223372036854775808')).reason).toBe(
      "value 9223372036854775808 is out of range for field 'random_seed' (int64) (at random_seed)",
    );
  });

  it('syntax errors', () => {
    expect(textError(() => parseNetParameter('name "x"')).message).toBe(
      `<text>:1:6: expected ':' after field 'name', found "x" (at name)`,
    );
    expect(textError(() => parseNetParameter('layer {\n  name: "x"\n')).message).toBe(
      "<text>:3:1: unexpected end of input: '}' missing for the block opened at 1:7 (at layer[0])",
    );
    expect(textError(() => parseNetParameter('name: "x" }')).message).toBe("<text>:1:11: unexpected '}' (no block is open)");
    expect(textError(() => parseNetParameter('layer < name: "x" }')).message).toBe(
      "<text>:1:19: expected '>' to close the block opened at 1:7, found '}' (at layer[0])",
    );
    expect(textError(() => parseNetParameter('name: "abc')).message).toBe('<text>:1:7: unterminated string');
    expect(textError(() => parseNetParameter('name: "ab\nc"')).message).toBe(
      '<text>:1:7: unterminated string (line break inside quotes)',
    );
    expect(textError(() => parseNetParameter('name: "a\\qb"')).message).toBe("<text>:1:9: invalid escape sequence '\\q'");
    expect(textError(() => parseNetParameter('name: "x" @')).message).toBe("<text>:1:11: unexpected character '@'");
    expect(textError(() => parseNetParameter('input_dim: 12abc')).message).toBe("<text>:1:12: invalid number '12abc'");
    expect(textError(() => parseNetParameter('input_dim: 1e')).message).toBe(
      "<text>:1:12: invalid number '1e' (exponent has no digits)",
    );
    expect(textError(() => parseNetParameter('input_dim: 09')).message).toBe("<text>:1:12: invalid octal number '09'");
    expect(textError(() => parseNetParameter(': 1')).message).toBe("<text>:1:1: expected a field name, found ':'");
    expect(parseNetParameter('input: ["a" "b", \'c\']').input).toEqual(['ab', 'c']);
  });

  it('lists and repetition rules', () => {
    expect(textError(() => parseNetParameter('name: ["a"]')).message).toBe(
      "<text>:1:7: field 'name' is not repeated, so it cannot take a [...] list (at name)",
    );
    expect(textError(() => parseNetParameter('input: ["a" 1]')).message).toBe(
      "<text>:1:13: expected ',' or ']' in the list for field 'input', found '1' (at input)",
    );
    expect(textError(() => parseNetParameter('name: "a"\nname: "b"')).message).toBe(
      "<text>:2:1: non-repeated field 'name' is specified multiple times (at name)",
    );
    expect(textError(() => parseNetParameter('state { phase: TEST }\nstate { level: 1 }')).message).toBe(
      "<text>:2:1: non-repeated field 'state' is specified multiple times (at state)",
    );
  });

  it('required fields', () => {
    expect(layer('clip_param { min: -1 max: 1 }').clip_param!.max).toBe(1);
    expect(textError(() => layer('clip_param { min: -1 }')).message).toBe(
      "<text>:1:22: missing required field 'max' in caffe.ClipParameter (at clip_param)",
    );
  });

  it('reports positions in the right place after multi-line input', () => {
    const e = textError(() => parseNetParameter('name: "x"\n\n   # c\n  layer {\n\tfoo: 1 }', 'n.prototxt'));
    expect([e.line, e.column]).toEqual([5, 2]);
    expect(e.fieldPath).toBe('layer[0].foo');
  });

  it('returns typed messages for NetParameter and SolverParameter', () => {
    const n: NetParameter = parseNetParameter('name: "n"');
    const s: SolverParameter = parseSolverParameter('net: "n.prototxt"');
    expect(n.name).toBe('n');
    expect(s.net).toBe('n.prototxt');
    expect(s.type).toBe('SGD');
  });
});

describe('textLocationOf', () => {
  it('remembers where each sub-message was written', async () => {
    const { textLocationOf, copyTextLocation } = await import('./text-parser.js');
    const net = parseText<{ layer: object[] }>('NetParameter', 'name: "n"\nlayer {\n  name: "a"\n}\n  layer { name: "b" }\n', { file: 'x.prototxt' });
    expect(textLocationOf(net.layer[0]!)).toEqual({ file: 'x.prototxt', line: 2, column: 1 });
    expect(textLocationOf(net.layer[1]!)).toEqual({ file: 'x.prototxt', line: 5, column: 3 });
    expect(textLocationOf(net)).toBeUndefined();
    const copy = {};
    copyTextLocation(net.layer[1]!, copy);
    expect(textLocationOf(copy)).toEqual({ file: 'x.prototxt', line: 5, column: 3 });
  });
});
