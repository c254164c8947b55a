import { describe, expect, it } from 'vitest';
import {
  createMessage,
  decodeNetParameter,
  encodeNetParameter,
  hasField,
  lookupType,
  parseNetParameter,
  parseText,
  printText,
  ProtoSchemaError,
  ProtoTextError,
  registerField,
  registerLayerParamField,
  registerProtoTypes,
} from './index.js';

// Tests in this file share one schema (vitest isolates files, not tests).
const MY_PROTO = `
message MyLayerParameter {
  optional float gain = 1 [default = 2.5];
  repeated uint32 taps = 2;
  enum Mode {
    FAST = 0;
    EXACT = 1;
  }
  optional Mode mode = 3 [default = EXACT];
  optional FillerParameter filler = 4;
  optional int64 big = 5;
}
`;

interface MyLayerParameter {
  gain: number;
  taps: number[];
  mode: number;
  filler: { type: string } | null;
  big: number;
}
type WithMy = { my_layer_param: MyLayerParameter | null; name: string };

describe('registerLayerParamField', () => {
  it('adds a message type and a LayerParameter field that parse, print and round-trip', () => {
    const layerBefore = createMessage<Record<string, unknown>>('LayerParameter');
    registerLayerParamField({ name: 'my_layer_param', id: 5001, typeName: 'MyLayerParameter', protoText: MY_PROTO });
    expect(lookupType('caffe.MyLayerParameter').fields['gain']!.id).toBe(1);
    expect(layerBefore['my_layer_param']).toBeNull(); // the existing prototype sees the new default too

    const text = 'name: "net"\nlayer {\n  name: "m"\n  type: "My"\n  my_layer_param {\n    gain: 0.1\n    taps: 1\n    taps: 2\n    mode: FAST\n    filler {\n      type: "xavier"\n    }\n    big: 9007199254740991\n  }\n}\n';
    const net = parseNetParameter(text);
    const l = net.layer[0] as unknown as WithMy;
    expect(l.my_layer_param!.gain).toBe(Math.fround(0.1));
    expect(l.my_layer_param!.taps).toEqual([1, 2]);
    expect(l.my_layer_param!.mode).toBe(0);
    expect(l.my_layer_param!.filler!.type).toBe('xavier');
    expect(l.my_layer_param!.big).toBe(Number.MAX_SAFE_INTEGER);
    expect(printText('NetParameter', net)).toBe(text);

    const back = decodeNetParameter(encodeNetParameter(net));
    expect(back).toEqual(net);
    expect(typeof (back.layer[0] as unknown as WithMy).my_layer_param!.big).toBe('number');

    const empty = parseText<WithMy>('LayerParameter', 'my_layer_param { }');
    expect(empty.my_layer_param!.gain).toBe(2.5);
    expect(empty.my_layer_param!.mode).toBe(1);
    expect(hasField(empty.my_layer_param!, 'gain')).toBe(false);
    expect(parseText<WithMy>('LayerParameter', 'name: "x"').my_layer_param).toBeNull();
  });

  it('errors name the new type, with suggestions', () => {
    expect(() => parseText('LayerParameter', 'my_layer_param { gian: 1 }', { file: 'p.prototxt' })).toThrow(
      "p.prototxt:1:18: unknown field 'gian' in caffe.MyLayerParameter (at my_layer_param); did you mean 'gain'?",
    );
    expect(() => parseText('LayerParameter', 'my_layer_param { mode: SLOW }')).toThrow(ProtoTextError);
  });

  it('is idempotent, and rejects clashes', () => {
    expect(() =>
      registerLayerParamField({ name: 'my_layer_param', id: 5001, typeName: 'MyLayerParameter', protoText: MY_PROTO }),
    ).not.toThrow();
    expect(() => registerLayerParamField({ name: 'my_layer_param', id: 5002, typeName: 'MyLayerParameter' })).toThrow(
      "field 'my_layer_param' already exists in caffe.LayerParameter as number 5001 (caffe.MyLayerParameter)",
    );
    expect(() => registerLayerParamField({ name: 'other_param', id: 106, typeName: 'MyLayerParameter' })).toThrow(
      "field number 106 of caffe.LayerParameter is already used by 'convolution_param'",
    );
    expect(() => registerLayerParamField({ name: 'x_param', id: 5003, typeName: 'Nope' })).toThrow(
      "unknown type 'Nope' (declare it in protoText or register it first)",
    );
    expect(() => registerProtoTypes('message MyLayerParameter { optional int32 other = 1; }')).toThrow(
      'type caffe.MyLayerParameter is already defined differently',
    );
    expect(() => registerProtoTypes('message Broken { optional NoSuchType x = 1; }')).toThrow(ProtoSchemaError);
    expect(() => lookupType('Broken')).toThrow(ProtoSchemaError); // rolled back
    expect(() => registerProtoTypes('message {')).toThrow(ProtoSchemaError);
  });

  it('extends other messages too, including repeated scalar fields', () => {
    registerField({ message: 'TransformationParameter', name: 'my_extra', id: 900, type: 'float', rule: 'repeated', packed: true });
    registerField({ message: 'TransformationParameter', name: 'my_flag', id: 901, type: 'bool', defaultValue: true });
    const l = parseText<{ transform_param: { my_extra: number[]; my_flag: boolean } }>(
      'LayerParameter',
      'transform_param { my_extra: [1, 2.5] }',
    );
    expect(l.transform_param.my_extra).toEqual([1, 2.5]);
    expect(l.transform_param.my_flag).toBe(true);
    const fresh = createMessage<{ my_extra: number[] }>('TransformationParameter');
    expect(fresh.my_extra).toEqual([]);
    fresh.my_extra.push(3); // an own array, not the shared frozen default
    const net = createMessage('NetParameter', { layer: [l] });
    expect(decodeNetParameter(encodeNetParameter(net as never))).toEqual(net);
  });

  it('deeply nested plugin messages are bounded', () => {
    registerProtoTypes('message MyTree { repeated MyTree child = 1; }');
    registerLayerParamField({ name: 'my_tree', id: 5010, typeName: 'MyTree' });
    const ok = 'my_tree { ' + 'child { '.repeat(50) + '}'.repeat(51);
    expect(() => parseText('LayerParameter', ok)).not.toThrow();
    const deep = 'my_tree { ' + 'child { '.repeat(120) + '}'.repeat(121);
    expect(() => parseText('LayerParameter', deep)).toThrow('messages nested deeper than 100 levels');
  });
});
