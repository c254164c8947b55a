import { Blob, Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { RNNLayer, rnnLayerDef } from './rnn-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const O = 7;

/** Caffe's RNN test param: num_output 7, gaussian weights (std 0.2) and biases (std 0.1), TEST phase. */
function param(extra: Record<string, unknown> = {}, numOutput = O): Record<string, unknown> {
  return {
    name: 'rnn',
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

/** Naive RNN over plain arrays: W rows are outputs, as in InnerProduct. */
function reference(layer: RNNLayer, x: Blob, cont: Blob, xStatic: Blob | null, h0: ArrayLike<number> | null) {
  const [T, N] = [x.shape[0]!, x.shape[1]!];
  const I = x.count(2);
  const S = xStatic ? xStatic.count(1) : 0;
  const O = layer.blobs[1]!.count();
  const p = layer.blobs.map((b) => b.cpuData());
  const [wxh, bh] = [p[0]!, p[1]!];
  const ws = xStatic ? p[2]! : null;
  const [whh, who, bo] = p.slice(xStatic ? 3 : 2);
  let h = Array.from({ length: N * O }, (_, k) => (h0 ? h0[k]! : 0));
  const out: number[] = [];
  for (let t = 0; t < T; t++) {
    const next: number[] = [];
    for (let n = 0; n < N; n++) {
      const k = cont.cpuData()[t * N + n]!;
      for (let o = 0; o < O; o++) {
        let a = bh[o]!;
        for (let i = 0; i < I; i++) a += wxh[o * I + i]! * x.cpuData()[(t * N + n) * I + i]!;
        for (let s = 0; s < S; s++) a += ws![o * S + s]! * xStatic!.cpuData()[n * S + s]!;
        for (let d = 0; d < O; d++) a += whh![o * O + d]! * k * h[n * O + d]!;
        next.push(Math.tanh(a));
      }
    }
    h = next;
    for (let n = 0; n < N; n++) {
      for (let o = 0; o < O; o++) {
        let z = bo![o]!;
        for (let d = 0; d < O; d++) z += who![o * O + d]! * h[n * O + d]!;
        out.push(Math.tanh(z));
      }
    }
  }
  return { out, hT: h };
}

function setUp(props: Record<string, unknown>, bottom: Blob[], nTop = 1) {
  const layer = createLayer<RNNLayer>(rnnLayerDef, props);
  const top = Array.from({ length: nTop }, f64);
  layer.setUp(bottom, top);
  return { layer, top };
}

describe('RNN', () => {
  // Every set-up logs Caffe's "Initializing recurrent layer" line; keep test output quiet.
  let previousSink: LogSink;
  beforeAll(() => {
    previousSink = setLogSink(() => {});
  });
  afterAll(() => {
    setLogSink(previousSink);
  });

  it('sets up top T×N×num_output and Caffe’s params W_xh, b_h, [W_xh_static], W_hh, W_ho, b_o (TestSetUp)', () => {
    const lines: string[] = [];
    const prev = setLogSink((l) => lines.push(l));
    try {
      const { x, cont, xStatic } = fixture(1, 3, () => 0);
      const { layer, top } = setUp(param(), [x, cont]);
      expect(top[0]!.shape).toEqual([1, 3, O]);
      expect(layer.blobs.map((b) => b.shape)).toEqual([[O, 6], [O], [O, O], [O, O], [O]]);
      expect(lines.some((l) => l.endsWith('Initializing recurrent layer: assuming input batch contains 1 timesteps of 3 independent streams.'))).toBe(true);
      const withStatic = setUp(param(), [x, cont, xStatic]).layer;
      expect(withStatic.blobs.map((b) => b.shape)).toEqual([[O, 6], [O], [O, 6], [O, O], [O, O], [O]]);
      expect(layer.paramPropagateDown).toEqual([true, true, true, true, true]);
    } finally {
      setLogSink(prev);
    }
  });

  it('forwards as the naive recurrence, with a static input and with cont resets', () => {
    const { x, cont, xStatic } = fixture(3, 2, (i) => (i === 3 ? 0 : i >= 2 ? 1 : 0));
    for (const bottoms of [[x, cont], [x, cont, xStatic]]) {
      const { layer, top } = setUp(param(), bottoms);
      layer.forward(bottoms, top);
      const ref = reference(layer, x, cont, bottoms.length === 3 ? xStatic : null, null);
      blobValues(top[0]!).forEach((v, i) => expect(v).toBeCloseTo(ref.out[i]!, 12));
      blobValues(layer.finalState[0]!).forEach((v, i) => expect(v).toBeCloseTo(ref.hT[i]!, 12));
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
    // All cont 0: every step starts afresh, so only the first step matches.
    run(() => 0).forEach((o, t) =>
      o.forEach((v, i) => (t === 0 ? expect(v).toBeCloseTo(expected[i]!, 12) : expect(v).not.toBeCloseTo(expected[t * N * O + i]!, 6))),
    );
  });

  it('carries the state from one forward to the next until reset()', () => {
    const { x, cont } = fixture(2, 2, () => 1);
    const { layer, top } = setUp(param(), [x, cont]);
    layer.forward([x, cont], top);
    const first = blobValues(top[0]!);
    const hT = blobValues(layer.finalState[0]!);
    layer.forward([x, cont], top);
    expect(blobValues(top[0]!)).not.toEqual(first);
    blobValues(top[0]!).forEach((v, i) => expect(v).toBeCloseTo(reference(layer, x, cont, null, hT).out[i]!, 12));
    layer.reset();
    layer.forward([x, cont], top);
    expect(blobValues(top[0]!)).toEqual(first);
  });

  it('passes the gradient checks of Caffe (1e-2, 1e-3): cont 0, cont i > 2, T = 2 N = 2, static input', () => {
    const checker = new GradientChecker(1e-2, 1e-3);
    const a = fixture(1, 3, () => 0);
    checker.checkGradientExhaustive(createLayer(rnnLayerDef, param()), [a.x, a.cont], [f64()], 0);
    const b = fixture(2, 2, (i) => (i > 2 ? 1 : 0));
    checker.checkGradientExhaustive(createLayer(rnnLayerDef, param()), [b.x, b.cont], [f64()], 0);
    checker.checkGradientExhaustive(createLayer(rnnLayerDef, param()), [b.x, b.cont, b.xStatic], [f64()], 0);
    checker.checkGradientExhaustive(createLayer(rnnLayerDef, param()), [b.x, b.cont, b.xStatic], [f64()], 2);
  });

  it('exposes h_0 → h_T and backpropagates through them, with fractional cont too (num_output 3)', () => {
    const { x, cont } = fixture(2, 2, (i) => [1, 0.5, 1, 0][i]!);
    const h0 = makeBlob([1, 2, 3], { filler: 'uniform', min: -1, max: 1, rng: new Rng(9) });
    const { layer, top } = setUp(param({ expose_hidden: true }, 3), [x, cont, h0], 2);
    expect(top[1]!.shape).toEqual([1, 2, 3]);
    layer.forward([x, cont, h0], top);
    const ref = reference(layer, x, cont, null, h0.cpuData());
    blobValues(top[0]!).forEach((v, i) => expect(v).toBeCloseTo(ref.out[i]!, 12));
    blobValues(top[1]!).forEach((v, i) => expect(v).toBeCloseTo(ref.hT[i]!, 12));
    // A second forward starts from h_0 again, not from the last state.
    layer.forward([x, cont, h0], top);
    blobValues(top[0]!).forEach((v, i) => expect(v).toBeCloseTo(ref.out[i]!, 12));
    const checker = new GradientChecker(1e-2, 1e-3);
    for (const b of [0, 2]) {
      checker.checkGradientExhaustive(createLayer(rnnLayerDef, param({ expose_hidden: true }, 3)), [x, cont, h0], [f64(), f64()], b);
    }
  });

  it('runs in float32 close to float64', () => {
    const { x, cont } = fixture(2, 2, (i) => (i > 1 ? 1 : 0));
    const ref = setUp(param(), [x, cont]);
    ref.layer.forward([x, cont], ref.top);
    const x32 = makeBlob(x.shape, { dtype: 'float32', filler: x.cpuData() });
    const c32 = makeBlob(cont.shape, { dtype: 'float32', filler: cont.cpuData() });
    const layer = createLayer<RNNLayer>(rnnLayerDef, param(), { dtype: 'float32' });
    const top = new Blob([], { dtype: 'float32' });
    layer.setUp([x32, c32], [top]);
    layer.blobs.forEach((b, i) => b.mutableCpuData().set(ref.layer.blobs[i]!.cpuData()));
    layer.forward([x32, c32], [top]);
    blobValues(top).forEach((v, i) => expect(v).toBeCloseTo(blobValues(ref.top[0]!)[i]!, 5));
  });

  it('accepts loaded weights of the right shapes and names the wrong ones', () => {
    const { x, cont } = fixture(1, 2, () => 0);
    const layer = createLayer<RNNLayer>(rnnLayerDef, param());
    layer.blobs = [[O, 6], [O], [O, O], [O, O], [O]].map((s) => makeBlob(s, { filler: 0.5 }));
    layer.setUp([x, cont], [f64()]);
    expect(layer.blobs[0]!.cpuData()[0]).toBe(0.5);
    const bad = createLayer<RNNLayer>(rnnLayerDef, param());
    bad.blobs = [[O, 6], [O], [O, 6], [O, O], [O]].map((s) => makeBlob(s));
    expect(() => bad.setUp([x, cont], [f64()])).toThrow(
      "RNN layer 'rnn': Incorrect shape of param 2 (W_hh): expected shape 7 7 (49); instead, shape was 7 6 (42)",
    );
    const few = createLayer<RNNLayer>(rnnLayerDef, param());
    few.blobs = [makeBlob([O, 6])];
    expect(() => few.setUp([x, cont], [f64()])).toThrow(
      "RNN layer 'rnn': Incorrect number of weight blobs (expected 5: W_xh, b_h, W_hh, W_ho, b_o; got 1).",
    );
  });

  it('checks num_output, shapes, blob counts and cont backward', () => {
    const { x, cont, xStatic } = fixture(2, 3, () => 1);
    expect(() => setUp({ name: 'rnn' }, [x, cont])).toThrow("RNN layer 'rnn': num_output must be positive (got 0)");
    expect(() => setUp(param(), [x, makeBlob([2, 3, 1])])).toThrow(
      "RNN layer 'rnn': bottom[1] must have exactly 2 axes -- (#timesteps, #streams) (got 2 3 1 (6))",
    );
    expect(() => setUp(param(), [x, makeBlob([2, 2])])).toThrow("RNN layer 'rnn': bottom[1] (cont) must be T×N = 2×3 like bottom[0] (got 2 2 (4))");
    expect(() => setUp(param(), [makeBlob([4]), makeBlob([4, 1])])).toThrow(
      "RNN layer 'rnn': bottom[0] must have at least 2 axes -- (#timesteps, #streams, ...) (got 4 (4))",
    );
    expect(() => setUp(param(), [x, cont, makeBlob([2, 4])])).toThrow("RNN layer 'rnn': bottom 2 (x_static) must have shape N×… with N = 3 (got 2 4 (8))");
    expect(() => setUp(param({ expose_hidden: true }), [x, cont], 2)).toThrow(
      "RNN layer 'rnn': RNN Layer takes at least 3 bottom blob(s) as input (got 2).",
    );
    expect(() => setUp(param({ expose_hidden: true }), [x, cont, makeBlob([1, 3, 6])], 2)).toThrow(
      "RNN layer 'rnn': shape mismatch - h_0 must be 1 3 7 (21); bottom 2 is 1 3 6 (18)",
    );
    expect(() => setUp(param(), [x, cont, xStatic], 2)).toThrow("RNN layer 'rnn': RNN Layer produces 1 top blob(s) as output (got 2).");
    const { layer, top } = setUp(param(), [x, cont]);
    layer.forward([x, cont], top);
    expect(() => layer.backward(top, [true, true], [x, cont])).toThrow("RNN layer 'rnn': Cannot backpropagate to sequence indicators.");
    expect([0, 1, 2].map((i) => layer.allowForceBackward(i))).toEqual([true, false, true]);
  });
});
