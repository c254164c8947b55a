import { describe, expect, it, vi } from 'vitest';
import { Blob, SyncedMemory } from '@caffe-ts/blob';
import { ConvolutionLayer } from '@caffe-ts/layers';
import { Phase } from '@caffe-ts/proto';
import { Net } from './net.js';
import { net, testRegistry } from './test-helpers.js';

// Layers that keep data only for their own backward (a `backwardNeeded` flag) are told when the
// net never runs it, so inference skips that work.
const body = `
  layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 2 dim: 3 dim: 2 dim: 2 } shape { dim: 2 } } }
  layer { name: "scale" type: "Scale" bottom: "data" top: "data" scale_param { bias_term: true } }
  layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 2 } }
`;
const scaleOf = (n: Net) => n.layers[n.layerNames.indexOf('scale')] as unknown as { backwardNeeded: boolean };

describe('Net: layers outside backward', () => {
  it('clears backwardNeeded where no loss reaches the layer, and the forward still works', () => {
    const n = new Net(net(body), { phase: Phase.TEST, registry: testRegistry(), log: false });
    expect(scaleOf(n).backwardNeeded).toBe(false);
    n.blobs.get('data')!.mutableCpuData().fill(1);
    n.forward();
    expect(n.blobs.get('data')!.cpuData()[0]).toBe(1);
    // Net.backward skips the layer (it would refuse the scale gradient without its bottom copy).
    expect(() => n.backward()).not.toThrow();
  });

  it('leaves it set under a loss, and with force_backward', () => {
    const withLoss = `${body} layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }`;
    expect(scaleOf(new Net(net(withLoss), { phase: Phase.TRAIN, registry: testRegistry(), log: false })).backwardNeeded).toBe(true);
    expect(scaleOf(new Net(net(`force_backward: true ${body}`), { phase: Phase.TEST, registry: testRegistry(), log: false })).backwardNeeded).toBe(true);
  });
});

describe('Net: fused inference chains', () => {
  it.each([['off', false], [' OFF ', false], ['on', true], ['', true]] as const)(
    'CAFFE_TS_FUSION=%j sets fuseInference %s for nets made after it (spaces and case do not matter)',
    (value, fused) => {
      const before = process.env.CAFFE_TS_FUSION;
      process.env.CAFFE_TS_FUSION = value;
      try {
        expect(new Net(net(body), { phase: Phase.TEST, registry: testRegistry(), log: false }).fuseInference).toBe(fused);
      } finally {
        if (before === undefined) delete process.env.CAFFE_TS_FUSION;
        else process.env.CAFFE_TS_FUSION = before;
      }
    },
  );

  const chainNet = (slope: number, scaleBias: boolean) => `
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 5 } } }
    layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 } } }
    layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
    layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: ${scaleBias} } }
    layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" relu_param { negative_slope: ${slope} } }
    layer { name: "conv2" type: "Convolution" bottom: "conv" top: "conv2" convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }
    layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "conv2" }
    layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" relu_param { negative_slope: ${slope} } }
    layer { name: "scale3" type: "Scale" bottom: "conv2" top: "s3" scale_param { bias_term: true } }
    layer { name: "relu3" type: "ReLU" bottom: "s3" top: "s3" }
    layer { name: "sum" type: "Eltwise" bottom: "conv" bottom: "s3" top: "sum" eltwise_param { coeff: 1 coeff: -0.7 } }
    layer { name: "relu4" type: "ReLU" bottom: "sum" top: "sum" relu_param { negative_slope: ${slope} } }
  `;
  const build = (text: string, dtype: 'float32' | 'float64') => {
    const n = new Net(net(text), { phase: Phase.TEST, registry: testRegistry(), log: false, dtype });
    // Random statistics, scales and biases (deploy files carry none), the same for every build.
    let seed = 3;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (const layer of n.layers) {
      for (const [i, b] of layer.blobs.entries()) {
        const d = b.mutableCpuData();
        for (let k = 0; k < d.length; k++) d[k] = layer.type === 'BatchNorm' ? (i === 2 ? 1.5 : i === 1 ? 0.2 + rand() : rand() - 0.5) : rand() * 2 - 1;
      }
    }
    const x = n.blobs.get('data')!.mutableCpuData();
    for (let k = 0; k < x.length; k++) x[k] = rand() * 4 - 2;
    return n;
  };
  for (const dtype of ['float32', 'float64'] as const) {
    for (const [slope, bias] of [[0, true], [0, false], [0.125, true]] as const) {
      it(`matches the layers one by one (${dtype}: ${dtype === 'float64' ? 'bit-identical' : 'to 2e-6'}; slope ${slope}, scale bias ${bias})`, () => {
        const text = chainNet(slope, bias);
        const fused = build(text, dtype), plain = build(text, dtype);
        plain.fuseInference = false;
        // Float32 convolutions take their BatchNorm/Scale/ReLU into the packed kernel's epilogue.
        const convHead = dtype === 'float32' ? ['conv', 'conv2'] : ['bn', 'bn2'];
        expect([...fused.fusedChains().values()].map((c) => [fused.layerNames[c.start], fused.layerNames[c.end]])).toEqual([
          [convHead[0], 'relu'], [convHead[1], 'relu2'], ['scale3', 'relu3'], ['sum', 'relu4'],
        ]);
        fused.forward();
        plain.forward();
        for (const name of ['conv', 'conv2', 's3', 'sum']) {
          const got = fused.blobs.get(name)!.cpuData(), want = plain.blobs.get(name)!.cpuData();
          if (dtype === 'float64') {
            // JS loops with the layers' own arithmetic.
            expect(Array.from(got), name).toEqual(Array.from(want));
          } else {
            // WebAssembly SIMD: the folded per-channel affine rounds differently (about 1e-7).
            const scale = Math.max(1, ...Array.from(want, Math.abs));
            for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${name}[${i}]`).toBeLessThanOrEqual(2e-6 * scale);
          }
        }
      });
    }
  }

  // One image: the packed kernels (depthwise with its folded epilogue too); two images with kernel
  // threads: the batched paths, then the BatchNorm/Scale/ReLU chains.
  it.each([1, 2])('float32 Convolution → BatchNorm/Scale/ReLU fuse into the packed kernels (%i image(s)), with the same values', (batch) => {
    const text = `
      layer { name: "data" type: "Input" top: "data" input_param { shape { dim: ${batch} dim: 4 dim: 7 dim: 9 } } }
      layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 6 kernel_size: 3 stride: 2 pad: 1 group: 2 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" } } }
      layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
      layer { name: "dw" type: "Convolution" bottom: "conv" top: "dw" convolution_param { num_output: 6 group: 6 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 } } }
      layer { name: "dwbn" type: "BatchNorm" bottom: "dw" top: "dw" }
      layer { name: "dwscale" type: "Scale" bottom: "dw" top: "dw" scale_param { bias_term: true } }
      layer { name: "dwrelu" type: "ReLU" bottom: "dw" top: "dw" }
      layer { name: "pw" type: "Convolution" bottom: "dw" top: "pw" convolution_param { num_output: 5 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }
      layer { name: "pwbn" type: "BatchNorm" bottom: "pw" top: "pw" }
    `;
    const fused = build(text, 'float32'), plain = build(text, 'float32');
    plain.fuseInference = false;
    expect([...fused.fusedChains().values()].map((c) => [fused.layerNames[c.start], fused.layerNames[c.end]])).toEqual([
      ['conv', 'relu'], ['dw', 'dwrelu'], ['pw', 'pwbn'],
    ]);
    for (let round = 0; round < 2; round++) {
      fused.forward();
      plain.forward();
      for (const name of ['conv', 'dw', 'pw']) {
        const got = fused.blobs.get(name)!.cpuData(), want = plain.blobs.get(name)!.cpuData();
        const scale = Math.max(1, ...Array.from(want, Math.abs));
        for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${name}[${i}]`).toBeLessThanOrEqual(2e-6 * scale);
      }
      // New weights between forwards (as a shared test net sees after a training step).
      for (const n of [fused, plain]) for (const b of n.layers[n.layerNames.indexOf('conv')]!.blobs) b.mutableCpuData()[0] = 0.75 + round;
    }
  });

  // The folded BatchNorm/Scale factors are kept while their params stay: new statistics, a new
  // scale, or another blob in a layer's place (params shared from another net) fold again.
  it('folds a chain\'s BatchNorm/Scale again when their params change or are replaced, not otherwise', () => {
    const text = chainNet(0, true);
    const fused = build(text, 'float32'), plain = build(text, 'float32');
    plain.fuseInference = false;
    const check = (what: string) => {
      fused.forward();
      plain.forward();
      for (const name of ['conv', 'conv2', 'sum']) {
        const got = fused.blobs.get(name)!.cpuData(), want = plain.blobs.get(name)!.cpuData();
        const scale = Math.max(1, ...Array.from(want, Math.abs));
        for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${what}: ${name}[${i}]`).toBeLessThanOrEqual(2e-6 * scale);
      }
    };
    const layer = (n: Net, name: string) => n.layers[n.layerNames.indexOf(name)]!;
    check('first');
    check('again, nothing changed');
    for (const n of [fused, plain]) layer(n, 'bn').blobs[0]!.mutableCpuData()[1] = 0.9; // a mean
    check('new mean');
    for (const n of [fused, plain]) layer(n, 'bn').blobs[2]!.mutableCpuData()[0] = 3; // the statistics' scale factor
    check('new statistics factor');
    for (const n of [fused, plain]) layer(n, 'scale').blobs[1]!.mutableCpuData()[2] = -1.5; // a bias
    check('new bias');
    for (const n of [fused, plain]) layer(n, 'bn2').blobs[1]!.mutableCpuData()[3] = 4; // a variance
    check('new variance in the second chain');
    // Another blob in the Scale's place, its version possibly the old one's.
    for (const n of [fused, plain]) {
      const old = layer(n, 'scale').blobs[0]!;
      const other = new Blob(old.shape, { dtype: 'float32' });
      other.mutableCpuData().set(Array.from(old.cpuData(), (v) => -2 * v));
      layer(n, 'scale').blobs[0] = other;
    }
    check('a replaced Scale blob');
  });

  // Residual blocks: ResNet's (Convolution → BatchNorm → Scale → Eltwise SUM with the shortcut →
  // ReLU) and MobileNet v2's (Convolution → BatchNorm → Scale → Eltwise SUM, no ReLU) fold the sum
  // into the convolution's chain (ConvSum), whose output then feeds the next convolution.
  it.each([1, 2])('float32 Convolution → BatchNorm/Scale → Eltwise SUM [→ ReLU] fuse into one chain (%i image(s)), with the same values', (batch) => {
    const conv = (name: string, bottom: string, k: number, out = 6) =>
      `layer { name: "${name}" type: "Convolution" bottom: "${bottom}" top: "${name}" convolution_param { num_output: ${out} kernel_size: ${k} pad: ${(k - 1) / 2} weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" } } }`;
    const text = `
      layer { name: "data" type: "Input" top: "data" input_param { shape { dim: ${batch} dim: 4 dim: 7 dim: 9 } } }
      ${conv('short', 'data', 1)}
      layer { name: "short_bn" type: "BatchNorm" bottom: "short" top: "short" }
      layer { name: "short_scale" type: "Scale" bottom: "short" top: "short" scale_param { bias_term: true } }
      ${conv('b', 'data', 3, 16)}
      layer { name: "b_relu" type: "ReLU" bottom: "b" top: "b" }
      ${conv('c', 'b', 3, 6)}
      layer { name: "c_bn" type: "BatchNorm" bottom: "c" top: "c" }
      layer { name: "c_scale" type: "Scale" bottom: "c" top: "c" scale_param { bias_term: true } }
      layer { name: "sum" type: "Eltwise" bottom: "short" bottom: "c" top: "sum" eltwise_param { coeff: 0.5 coeff: -1.5 } }
      layer { name: "sum_relu" type: "ReLU" bottom: "sum" top: "sum" }
      ${conv('d', 'sum', 1)}
      layer { name: "d_bn" type: "BatchNorm" bottom: "d" top: "d" }
      layer { name: "sum2" type: "Eltwise" bottom: "d" bottom: "sum" top: "sum2" }
      ${conv('e', 'sum2', 1, 5)}
      layer { name: "e_relu" type: "ReLU" bottom: "e" top: "e" relu_param { negative_slope: 0.25 } }
    `;
    const fused = build(text, 'float32'), plain = build(text, 'float32');
    plain.fuseInference = false;
    expect([...fused.fusedChains().values()].map((c) => [fused.layerNames[c.start], fused.layerNames[c.end]])).toEqual([
      ['short', 'short_scale'], ['b', 'b_relu'], ['c', 'sum_relu'], ['d', 'sum2'], ['e', 'e_relu'],
    ]);
    // Where the packed path declines, the chain runs the convolution, its affine layers, then the
    // sum (the Eltwise → ReLU chain, or the layers): the same values.
    const declined = build(text, 'float32');
    const spy = vi.spyOn(ConvolutionLayer.prototype, 'forwardWithEpilogue').mockReturnValue(false);
    try {
      declined.forward();
    } finally {
      spy.mockRestore();
    }
    for (let round = 0; round < 2; round++) {
      fused.forward();
      plain.forward();
      if (round === 0) {
        for (const name of ['short', 'b', 'c', 'sum', 'd', 'sum2', 'e']) {
          const got = declined.blobs.get(name)!.cpuData(), want = plain.blobs.get(name)!.cpuData();
          const scale = Math.max(1, ...Array.from(want, Math.abs));
          for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `declined ${name}[${i}]`).toBeLessThanOrEqual(4e-6 * scale);
        }
      }
      for (const name of ['short', 'b', 'c', 'sum', 'd', 'sum2', 'e']) {
        const got = fused.blobs.get(name)!.cpuData(), want = plain.blobs.get(name)!.cpuData();
        const scale = Math.max(1, ...Array.from(want, Math.abs));
        for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${name}[${i}]`).toBeLessThanOrEqual(4e-6 * scale);
      }
      // A new shortcut between forwards: the sum reads it again (nothing stale is kept).
      for (const n of [fused, plain]) for (const b of n.layers[n.layerNames.indexOf('short')]!.blobs) b.mutableCpuData()[0] = 0.75 + round;
    }
  });

  // SqueezeNet's fire modules and GoogLeNet's inception blocks: convolutions whose outputs only a
  // Concat reads write straight into its top (one image); the Concat copies the other bottoms.
  it.skipIf(process.env.CAFFE_TS_GEMM === 'js').each([1, 2])('float32 convolutions feeding a Concat write into its top (%i image(s)), with the same values', (batch) => {
    const conv = (name: string, bottom: string, k: number, out: number) =>
      `layer { name: "${name}" type: "Convolution" bottom: "${bottom}" top: "${name}" convolution_param { num_output: ${out} kernel_size: ${k} pad: ${(k - 1) / 2} weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" } } }
       layer { name: "${name}_relu" type: "ReLU" bottom: "${name}" top: "${name}" }`;
    const text = `
      layer { name: "data" type: "Input" top: "data" input_param { shape { dim: ${batch} dim: 5 dim: 7 dim: 9 } } }
      ${conv('squeeze', 'data', 1, 4)}
      ${conv('e1', 'squeeze', 1, 6)}
      ${conv('e3', 'squeeze', 3, 7)}
      layer { name: "pool" type: "Pooling" bottom: "squeeze" top: "pool" pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }
      ${conv('shared', 'squeeze', 1, 3)}
      layer { name: "cat" type: "Concat" bottom: "e1" bottom: "pool" bottom: "e3" bottom: "shared" top: "cat" }
      layer { name: "after" type: "Scale" bottom: "shared" top: "after" scale_param { bias_term: true } }
      ${conv('next', 'cat', 3, 5)}
    `;
    const fused = build(text, 'float32'), plain = build(text, 'float32');
    plain.fuseInference = false;
    // 'shared' is read after the Concat too: it keeps its own top (and is copied in).
    expect([...fused.fusedChains().values()].map((c) => [fused.layerNames[c.start], fused.layerNames[c.end]])).toEqual([
      ['squeeze', 'squeeze_relu'], ['e1', 'cat'], ['e3', 'e3_relu'], ['shared', 'shared_relu'], ['next', 'next_relu'],
    ]);
    const compare = (n: Net, names: string[], what: string) => {
      for (const name of names) {
        const got = n.blobs.get(name)!.cpuData(), want = plain.blobs.get(name)!.cpuData();
        const scale = Math.max(1, ...Array.from(want, Math.abs));
        for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${what} ${name}[${i}]`).toBeLessThanOrEqual(4e-6 * scale);
      }
    };
    // Where the packed path declines, each chain runs as usual and the Concat copies every bottom;
    // also after a forward that wrote them in place and left their copies pending.
    const declined = build(text, 'float32');
    if (batch === 1) declined.forward();
    declined.blobs.get('cat')!.mutableCpuData();
    const spy = vi.spyOn(ConvolutionLayer.prototype, 'forwardWithEpilogue').mockReturnValue(false);
    try {
      declined.forward();
    } finally {
      spy.mockRestore();
    }
    plain.forward();
    compare(declined, ['e1', 'e3', 'pool', 'shared', 'cat', 'after', 'next'], 'declined');
    // The Concat's top written after a fused forward: a bottom it held can no longer be read.
    if (batch === 1) {
      const n = build(text, 'float32');
      n.forward();
      n.blobs.get('cat')!.mutableCpuData()[0] = 5;
      expect(() => n.blobs.get('e1')!.cpuData()).toThrow(/blob 'e1' was fused into Concat 'cat''s top, which has been written since/);
      expect(Array.from(n.blobs.get('pool')!.cpuData())).toEqual(Array.from(plain.blobs.get('pool')!.cpuData()));
    }
    // A forward that stops inside the group runs its layers one by one: every bottom is written.
    const partial = build(text, 'float32');
    partial.forwardFromTo(0, partial.layerNames.indexOf('shared_relu'));
    partial.forwardFromTo(partial.layerNames.indexOf('cat'), partial.layers.length - 1);
    compare(partial, ['e1', 'e3', 'cat', 'next'], 'partial');
    for (let round = 0; round < 2; round++) {
      fused.forward();
      plain.forward();
      const lazy = vi.spyOn(SyncedMemory.prototype, 'setLazyContents');
      let lazyCalls = 0;
      try {
        fused.forward();
        lazyCalls = lazy.mock.calls.filter(([fill]) => fill !== null).length;
      } finally {
        lazy.mockRestore();
      }
      // One image: e1 and e3 went straight into the Concat's top, and their own memories copy
      // their slices when read; two: the slices are not contiguous, so they were written and copied.
      expect(lazyCalls).toBe(batch === 1 ? 2 : 0);
      compare(fused, ['e1', 'e3', 'pool', 'shared', 'cat', 'after', 'next'], 'fused');
      // New weights between forwards: the Concat's top is rewritten from them.
      for (const n of [fused, plain]) for (const b of n.layers[n.layerNames.indexOf('e3')]!.blobs) b.mutableCpuData()[0] = 0.75 + round;
    }
  });

  it('runs per-layer calls unfused, and nothing fuses under a loss or with debug_info', () => {
    const text = chainNet(0, true);
    const n = build(text, 'float32');
    const ref = build(text, 'float32');
    ref.fuseInference = false;
    ref.forward();
    // Layer by layer (as `caffe time` does): each layer does its own step.
    for (let i = 0; i < n.layers.length; i++) n.forwardFromTo(i, i);
    // Float32 ReLU layers run in WebAssembly with the same values: still bit-identical.
    expect(Array.from(n.blobs.get('sum')!.cpuData())).toEqual(Array.from(ref.blobs.get('sum')!.cpuData()));
    const withLoss = `${text} layer { name: "loss" type: "EuclideanLoss" bottom: "sum" bottom: "sum" top: "loss" }`;
    const train = new Net(net(withLoss), { phase: Phase.TRAIN, registry: testRegistry(), log: false });
    expect(train.fusedChains().size).toBe(0);
  });
});
