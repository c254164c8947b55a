import { Blob, Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { LSTMLayer, lstmLayerDef } from './lstm-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const O = 7;
const sig = (v: number) => 1 / (1 + Math.exp(-v));

/** Caffe's LSTM test param: num_output 7, gaussian weights (std 0.2) and biases (std 0.1), TEST phase. */
function param(extra: Record<string, unknown> = {}, numOutput = O): Record<string, unknown> {
  return {
    name: 'lstm',
    phase: 1,
    recurrent_param: {
      num_output: numOutput,
      weight_filler: { type: 'gaussian', std: 0.2 },
      bias_filler: { type: 'gaussian', std: 0.1 },
      ...extra,
    },
  };
}

/** Caffe's fixture (x_static smaller): x T×N×3×2 ~ U(−1, 1), cont T×N, x_static N×2×3 ~ U(−1, 1). */
function fixture(T: number, N: number, cont: (i: number) => number) {
  const rng = new Rng(1701);
  return {
    x: makeBlob([T, N, 3, 2], { filler: 'uniform', min: -1, max: 1, rng }),
    cont: makeBlob([T, N], { filler: Array.from({ length: T * N }, (_, i) => cont(i)) }),
    xStatic: makeBlob([N, 2, 3], { filler: 'uniform', min: -1, max: 1, rng }),
  };
}

/** Naive LSTM over plain arrays (gate rows i, f, o, g; W rows are outputs, as in InnerProduct). */
function reference(layer: LSTMLayer, x: Blob, cont: Blob, xStatic: Blob | null, h0?: ArrayLike<number>, c0?: ArrayLike<number>) {
  const [T, N] = [x.shape[0]!, x.shape[1]!];
  const I = x.count(2);
  const S = xStatic ? xStatic.count(1) : 0;
  const G = layer.blobs[1]!.count();
  const O = G / 4;
  const p = layer.blobs.map((b) => b.cpuData());
  const [wxc, bc] = [p[0]!, p[1]!];
  const ws = xStatic ? p[2]! : null;
  const whc = p[xStatic ? 3 : 2]!;
  let h = Array.from({ length: N * O }, (_, k) => (h0 ? h0[k]! : 0));
  let c = Array.from({ length: N * O }, (_, k) => (c0 ? c0[k]! : 0));
  const out: number[] = [];
  for (let t = 0; t < T; t++) {
    const hn: number[] = [];
    const cn: number[] = [];
    for (let n = 0; n < N; n++) {
      const k = cont.cpuData()[t * N + n]!;
      const gate: number[] = [];
      for (let g = 0; g < G; g++) {
        let a = bc[g]!;
        for (let i = 0; i < I; i++) a += wxc[g * I + i]! * x.cpuData()[(t * N + n) * I + i]!;
        for (let s = 0; s < S; s++) a += ws![g * S + s]! * xStatic!.cpuData()[n * S + s]!;
        for (let d = 0; d < O; d++) a += whc[g * O + d]! * k * h[n * O + d]!;
        gate.push(a);
      }
      for (let d = 0; d < O; d++) {
        const cell = k * sig(gate[O + d]!) * c[n * O + d]! + sig(gate[d]!) * Math.tanh(gate[3 * O + d]!);
        cn.push(cell);
        hn.push(sig(gate[2 * O + d]!) * Math.tanh(cell));
      }
    }
    h = hn;
    c = cn;
    out.push(...h);
  }
  return { out, hT: h, cT: c };
}

function setUp(props: Record<string, unknown>, bottom: Blob[], nTop = 1) {
  const layer = createLayer<LSTMLayer>(lstmLayerDef, props);
  const top = Array.from({ length: nTop }, f64);
  layer.setUp(bottom, top);
  return { layer, top };
}

describe('LSTM', () => {
  // Every set-up logs Caffe's "Initializing recurrent layer" line; keep test output quiet.
  let previousSink: LogSink;
  beforeAll(() => {
    previousSink = setLogSink(() => {});
  });
  afterAll(() => {
    setLogSink(previousSink);
  });

  it('sets up top T×N×num_output and Caffe’s params W_xc, b_c, [W_xc_static], W_hc (TestSetUp)', () => {
    const { x, cont, xStatic } = fixture(1, 3, () => 0);
    const { layer, top } = setUp(param(), [x, cont]);
    expect(top[0]!.shape).toEqual([1, 3, O]);
    expect(layer.blobs.map((b) => b.shape)).toEqual([[4 * O, 6], [4 * O], [4 * O, O]]);
    expect(setUp(param(), [x, cont, xStatic]).layer.blobs.map((b) => b.shape)).toEqual([[4 * O, 6], [4 * O], [4 * O, 6], [4 * O, O]]);
    const exposed = setUp(param({ expose_hidden: true }), [x, cont, makeBlob([1, 3, O]), makeBlob([1, 3, O])], 3);
    expect(exposed.top.map((t) => t.shape)).toEqual([[1, 3, O], [1, 3, O], [1, 3, O]]);
  });

  it('forwards as the naive recurrence, with a static input and with cont resets', () => {
    const { x, cont, xStatic } = fixture(3, 2, (i) => (i === 3 ? 0 : i >= 2 ? 1 : 0));
    for (const bottoms of [[x, cont], [x, cont, xStatic]]) {
      const { layer, top } = setUp(param(), bottoms);
      layer.forward(bottoms, top);
      const ref = reference(layer, x, cont, bottoms.length === 3 ? xStatic : null);
      blobValues(top[0]!).forEach((v, i) => expect(v).toBeCloseTo(ref.out[i]!, 12));
      blobValues(layer.finalState[0]!).forEach((v, i) => expect(v).toBeCloseTo(ref.hT[i]!, 12));
      blobValues(layer.finalState[1]!).forEach((v, i) => expect(v).toBeCloseTo(ref.cT[i]!, 12));
    }
  });

  it('gives the same outputs for a whole sequence and for one step at a time (Caffe TestForward)', () => {
    const T = 3;
    const N = 3;
    const { x, cont } = fixture(T, N, (i) => (i >= N ? 1 : 0));
    const whole = setUp(param(), [x, cont]);
    whole.layer.forward([x, cont], whole.top);
    const expected = blobValues(whole.top[0]!);
    const stepX = makeBlob([1, N, 3, 2], { filler: 0 });
    const stepCont = makeBlob([1, N], { filler: 0 });
    const stepped = setUp(param(), [stepX, stepCont]);
    stepped.layer.blobs.forEach((b, i) => b.mutableCpuData().set(whole.layer.blobs[i]!.cpuData()));
    const run = (contValue: (t: number) => number) => {
      const outs: number[][] = [];
      for (let t = 0; t < T; t++) {
        stepX.mutableCpuData().set(x.cpuData().subarray(t * N * 6, (t + 1) * N * 6));
        stepCont.mutableCpuData().fill(contValue(t));
        stepped.layer.forward([stepX, stepCont], stepped.top);
        outs.push(blobValues(stepped.top[0]!));
      }
      return outs;
    };
    run((t) => (t > 0 ? 1 : 0)).forEach((o, t) => o.forEach((v, i) => expect(v).toBeCloseTo(expected[t * N * O + i]!, 12)));
    run(() => 0).forEach((o, t) =>
      o.forEach((v, i) => (t === 0 ? expect(v).toBeCloseTo(expected[i]!, 12) : expect(v).not.toBeCloseTo(expected[t * N * O + i]!, 6))),
    );
  });

  it('carries (h, c) from one forward to the next until reset(), and restarts on a new N', () => {
    const { x, cont } = fixture(2, 2, () => 1);
    const { layer, top } = setUp(param(), [x, cont]);
    layer.forward([x, cont], top);
    const first = blobValues(top[0]!);
    const [hT, cT] = layer.finalState.map((s) => blobValues(s));
    layer.forward([x, cont], top);
    const ref = reference(layer, x, cont, null, hT, cT);
    blobValues(top[0]!).forEach((v, i) => expect(v).toBeCloseTo(ref.out[i]!, 12));
    layer.reset();
    layer.forward([x, cont], top);
    expect(blobValues(top[0]!)).toEqual(first);
    // Three streams instead of two: the old state does not fit and is dropped.
    const more = fixture(2, 3, () => 1);
    layer.forward([more.x, more.cont], top);
    expect(top[0]!.shape).toEqual([2, 3, O]);
    blobValues(top[0]!).forEach((v, i) => expect(v).toBeCloseTo(reference(layer, more.x, more.cont, null).out[i]!, 12));
  });

  it('passes the gradient checks of Caffe (1e-2, 1e-3): cont 0, cont i > 2, T = 2 N = 2, static input', () => {
    const checker = new GradientChecker(1e-2, 1e-3);
    const a = fixture(1, 3, () => 0);
    checker.checkGradientExhaustive(createLayer(lstmLayerDef, param()), [a.x, a.cont], [f64()], 0);
    const b = fixture(2, 2, (i) => (i > 2 ? 1 : 0));
    checker.checkGradientExhaustive(createLayer(lstmLayerDef, param()), [b.x, b.cont], [f64()], 0);
    checker.checkGradientExhaustive(createLayer(lstmLayerDef, param()), [b.x, b.cont, b.xStatic], [f64()], 0);
    checker.checkGradientExhaustive(createLayer(lstmLayerDef, param()), [b.x, b.cont, b.xStatic], [f64()], 2);
  });

  it('exposes h_0, c_0 → h_T, c_T and backpropagates through them, with fractional cont too (num_output 3)', () => {
    const { x, cont } = fixture(2, 2, (i) => [1, 0.5, 1, 0][i]!);
    const rng = new Rng(9);
    const h0 = makeBlob([1, 2, 3], { filler: 'uniform', min: -1, max: 1, rng });
    const c0 = makeBlob([1, 2, 3], { filler: 'uniform', min: -1, max: 1, rng });
    const bottoms = [x, cont, h0, c0];
    const { layer, top } = setUp(param({ expose_hidden: true }, 3), bottoms, 3);
    layer.forward(bottoms, top);
    const ref = reference(layer, x, cont, null, h0.cpuData(), c0.cpuData());
    blobValues(top[0]!).forEach((v, i) => expect(v).toBeCloseTo(ref.out[i]!, 12));
    blobValues(top[1]!).forEach((v, i) => expect(v).toBeCloseTo(ref.hT[i]!, 12));
    blobValues(top[2]!).forEach((v, i) => expect(v).toBeCloseTo(ref.cT[i]!, 12));
    const checker = new GradientChecker(1e-2, 1e-3);
    for (const b of [0, 2, 3]) {
      checker.checkGradientExhaustive(createLayer(lstmLayerDef, param({ expose_hidden: true }, 3)), bottoms, [f64(), f64(), f64()], b);
    }
  });

  it('takes the static input after cont and before the exposed state (num_output 3)', () => {
    const { x, cont, xStatic } = fixture(2, 2, () => 1);
    const h0 = makeBlob([1, 2, 3], { filler: 0.3 });
    const c0 = makeBlob([1, 2, 3], { filler: -0.2 });
    const bottoms = [x, cont, xStatic, h0, c0];
    const { layer, top } = setUp(param({ expose_hidden: true }, 3), bottoms, 3);
    expect(layer.blobs.map((b) => b.shape)).toEqual([[12, 6], [12], [12, 6], [12, 3]]);
    layer.forward(bottoms, top);
    const ref = reference(layer, x, cont, xStatic, h0.cpuData(), c0.cpuData());
    blobValues(top[0]!).forEach((v, i) => expect(v).toBeCloseTo(ref.out[i]!, 12));
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(createLayer(lstmLayerDef, param({ expose_hidden: true }, 3)), bottoms, [f64(), f64(), f64()], 4);
  });

  it('accepts loaded weights of the right shapes and names the wrong ones', () => {
    const { x, cont } = fixture(1, 2, () => 0);
    const bad = createLayer<LSTMLayer>(lstmLayerDef, param());
    bad.blobs = [[4 * O, 6], [4 * O], [O, O]].map((s) => makeBlob(s));
    expect(() => bad.setUp([x, cont], [f64()])).toThrow(
      "LSTM layer 'lstm': Incorrect shape of param 2 (W_hc): expected shape 28 7 (196); instead, shape was 7 7 (49)",
    );
  });

  it('checks blob counts with expose_hidden and refuses backward into cont', () => {
    const { x, cont } = fixture(2, 3, () => 1);
    expect(() => setUp(param({ expose_hidden: true }), [x, cont, makeBlob([1, 3, O])], 3)).toThrow(
      "LSTM layer 'lstm': LSTM Layer takes at least 4 bottom blob(s) as input (got 3).",
    );
    expect(() => setUp(param({ expose_hidden: true }), [x, cont, makeBlob([1, 3, O]), makeBlob([1, 3, O])], 2)).toThrow(
      "LSTM layer 'lstm': LSTM Layer produces 3 top blob(s) as output (got 2).",
    );
    const { layer, top } = setUp(param(), [x, cont]);
    layer.forward([x, cont], top);
    expect(() => layer.backward(top, [true, true], [x, cont])).toThrow("LSTM layer 'lstm': Cannot backpropagate to sequence indicators.");
  });
});
