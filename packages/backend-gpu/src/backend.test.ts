import { Blob, BackendError, getBackend, registeredBackends } from '@caffe-ts/blob';
import { LayerError } from '@caffe-ts/layers';
import { createLayer } from '@caffe-ts/layers/testing';
import { describe, expect, it, vi } from 'vitest';
import { createGpuBackend, gpuKernelTypes } from './backend.js';
import { GpuBuffer, GpuDevice } from './device.js';
import { registerGpuBackend } from './register-backend.js';
import { GPU_MODE_ORDER, type GpuMode } from './runtime.js';
import { backendFor } from './test-modes.js';

describe('createGpuBackend', () => {
  it('picks the first working mode in the fallback order and reports it', () => {
    const b = createGpuBackend();
    const info = b.info();
    expect(GPU_MODE_ORDER).toContain(info.mode);
    // Every mode before the chosen one is listed as skipped, with a reason.
    const before = GPU_MODE_ORDER.slice(0, GPU_MODE_ORDER.indexOf(info.mode));
    expect(info.skipped.map((s) => s.mode)).toEqual(before);
    for (const s of info.skipped) expect(s.reason.length).toBeGreaterThan(0);
    expect(info.floatPrecision).toBe('single');
    // Measured, not assumed: every mode here keeps float32's 23 mantissa bits through a round trip.
    expect(info.mantissaBits).toBe(23);
    expect(info.epsilon).toBe(2 ** -23);
    expect(info.kernels).toEqual(gpuKernelTypes());
    expect(b.name).toBe('gpu');
    expect(b.device.name).toBe(`gpu.js/${info.mode}`);
    // GL modes name what renders (headless-gl's own answer is a fixed 'ANGLE'); the others do not.
    if (info.mode === 'headlessgl') expect(info.renderer).toMatch(/^ANGLE \(.+\)/);
    else if (info.mode === 'wasm' || info.mode === 'cpu') expect(info.renderer).toBeUndefined();
    b.destroy();
  });

  it('honours an explicit mode, and names the modes when given an unknown one', () => {
    const b = createGpuBackend({ mode: 'cpu' });
    expect(b.info()).toMatchObject({ mode: 'cpu', gpuJsMode: 'cpu', maxTextureSize: Infinity, mantissaBits: 23, skipped: [] });
    b.destroy();
    expect(() => createGpuBackend({ mode: 'cuda' as GpuMode })).toThrow(/unknown mode 'cuda' \(expected one of headlessgl, webgl2, webgl, wasm, cpu\)/);
  });

  it('fails with the reason when a requested mode is unavailable', () => {
    // No browser here, so WebGL2 never loads in Node.
    expect(() => createGpuBackend({ mode: 'webgl2' })).toThrow(BackendError);
    expect(() => createGpuBackend({ mode: 'webgl2' })).toThrow(/mode 'webgl2' is available here \(webgl2: /);
  });

  it('registers as "gpu" with blob\'s backend registry', async () => {
    registerGpuBackend({ mode: 'cpu' });
    registerGpuBackend(); // idempotent
    expect(registeredBackends()).toContain('gpu');
    const b = await getBackend('gpu');
    expect(b.name).toBe('gpu');
    expect(b.device).not.toBeNull();
    expect(await getBackend('gpu')).toBe(b);
  });
});

describe('device memory', () => {
  it('round-trips data, counts transfers, frees textures', () => {
    const b = createGpuBackend({ mode: 'cpu' });
    const blob = new Blob([2, 3], { dtype: 'float32', device: b.device });
    blob.mutableCpuData().set([1, 2, 3, 4, 5, 6]);
    blob.mutableGpuData(); // upload
    expect(b.stats()).toMatchObject({ uploads: 1, readbacks: 0, liveBuffers: 1 });
    expect(Array.from(blob.cpuData())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(b.stats().readbacks).toBe(1);
    blob.cpuData(); // already synced: no second readback
    expect(b.stats().readbacks).toBe(1);
    blob.data.releaseDevice();
    blob.diff.releaseDevice();
    expect(b.stats().liveBuffers).toBe(0);
    b.destroy();
  });

  it('stores float64 blobs in single precision on the device', () => {
    const b = createGpuBackend({ mode: 'cpu' });
    const blob = new Blob([2], { dtype: 'float64', device: b.device });
    blob.mutableCpuData().set([1 / 3, 1e-50]);
    blob.mutableGpuData();
    const back = Array.from(blob.cpuData());
    expect(back[0]).toBe(Math.fround(1 / 3));
    expect(back[1]).toBe(0);
    b.destroy();
  });

  it('with a forced small max texture size, lays buffers longer than a texture side out in 2-D and splits more than side² floats', () => {
    const b = createGpuBackend({ maxTextureSize: 32 });
    expect(b.info().maxTextureSize).toBe(32);
    // 600 floats (more than one 32-texel row) through a real layer: fine.
    const ip = createLayer('InnerProduct', { name: 'ip', inner_product_param: { num_output: 20, weight_filler: { type: 'constant', value: 0.5 } } }, { dtype: 'float32', backend: b });
    const x = new Blob([2, 30], { dtype: 'float32', device: b.device });
    x.mutableCpuData().fill(1);
    const y = new Blob([], { dtype: 'float32', device: b.device });
    ip.setUp([x], [y]);
    expect(ip.blobs[0]!.count()).toBe(600);
    ip.forward([x], [y]);
    expect(Array.from(y.cpuData())).toEqual(new Array(40).fill(15));
    // A 40 × 30 weight (1200 > 32² = 1024 floats) is held in parts of whole rows.
    const big = createLayer('InnerProduct', { name: 'big', inner_product_param: { num_output: 40, weight_filler: { type: 'constant', value: 0.5 } } }, { dtype: 'float32', backend: b });
    const y2 = new Blob([], { dtype: 'float32', device: b.device });
    big.setUp([x], [y2]);
    big.forward([x], [y2]);
    expect(Array.from(y2.cpuData())).toEqual(new Array(80).fill(15));
    expect((big.blobs[0]!.gpuData() as GpuBuffer).parts).toHaveLength(2);
    // Layers whose images are independent run part by part (here 1,200 one-float images).
    const relu = createLayer('ReLU', { name: 'relu' }, { dtype: 'float32', backend: b });
    const wide = new Blob([1200], { dtype: 'float32', device: b.device });
    wide.mutableCpuData().forEach((_, i, a) => (a[i] = i % 2 ? i : -i));
    const out = new Blob([], { dtype: 'float32', device: b.device });
    relu.setUp([wide], [out]);
    relu.forward([wide], [out]);
    expect(Array.from(out.cpuData())).toEqual(Array.from({ length: 1200 }, (_, i) => (i % 2 ? i : 0)));
    expect((out.gpuData() as GpuBuffer).parts).toHaveLength(2);
    const sum = createLayer('Eltwise', { name: 'sum' }, { dtype: 'float32', backend: b });
    const out2 = new Blob([], { dtype: 'float32', device: b.device });
    sum.setUp([wide, out], [out2]);
    sum.forward([wide, out], [out2]);
    expect(Array.from(out2.cpuData())).toEqual(Array.from({ length: 1200 }, (_, i) => (i % 2 ? 2 * i : i === 0 ? 0 : -i)));
    // A layer tying the images together (a softmax across the batch axis) refuses a split
    // buffer, naming the sizes, rather than index it wrongly.
    const softmax = createLayer('Softmax', { name: 'softmax', softmax_param: { axis: 0 } }, { dtype: 'float32', backend: b });
    const out3 = new Blob([], { dtype: 'float32', device: b.device });
    softmax.setUp([wide], [out3]);
    expect(() => softmax.forward([wide], [out3])).toThrow(/a buffer of 1200 floats is split into 2 parts \(gpu.js indexes exactly only up to 1024 floats\)/);
    b.destroy();
  });

  it('splits a buffer larger than one texture (or 2^24 floats) into parts, and refuses kernel outputs that large', () => {
    const b = createGpuBackend({ mode: 'cpu' });
    const small = new GpuDevice({ ...b.device.runtime, info: { ...b.device.runtime.info, maxTextureSize: 4 } });
    expect(small.allocate(16, 'float32').parts).toBeNull();
    const split = small.allocate(17, 'float32');
    expect(split.parts).toHaveLength(2);
    const src = Float32Array.from({ length: 17 }, (_, i) => i);
    small.upload(split, src);
    const back = new Float32Array(17);
    small.download(split, back);
    expect(Array.from(back)).toEqual(Array.from(src));
    small.repartition(split, 5);
    expect(split.parts).toHaveLength(4);
    small.download(split, back);
    expect(Array.from(back)).toEqual(Array.from(src));
    expect(() => small.run({ name: 'zeros', source: 'function () { return 0; }' }, 17, [])).toThrow(/would write 17 floats in one kernel output, more than the 16/);
    expect(new GpuDevice(b.device.runtime).splitLimit).toBe(2 ** 24);
    b.destroy();
  });

  it('runs axpby, update and clearDiff on the device', () => {
    const b = backendFor('cpu');
    const p = new Blob([4], { dtype: 'float32', device: b.device });
    const h = new Blob([4], { dtype: 'float32', device: b.device });
    p.mutableCpuData().set([1, 2, 3, 4]);
    p.mutableCpuDiff().set([0.5, -1, 2, 0]);
    h.mutableCpuData().set([1, 1, 1, 1]);
    b.ops.sgdUpdate(p, h, 0.1, 0.9);
    // h = 0.1·g + 0.9·h; diff = h; data -= diff
    const hv = [0.95, 0.8, 1.1, 0.9];
    expect(Array.from(h.cpuData())).toEqual(hv.map(Math.fround));
    expect(Array.from(p.cpuDiff())).toEqual(hv.map(Math.fround));
    expect(Array.from(p.cpuData())).toEqual([1, 2, 3, 4].map((v, i) => Math.fround(v - Math.fround(hv[i]!))));
    b.ops.clearDiff(p);
    expect(Array.from(p.cpuDiff())).toEqual([0, 0, 0, 0]);
    b.ops.axpby(2, p.gpuData() as never, 0, h.mutableGpuData() as never);
    expect(Array.from(h.cpuData())).toEqual(Array.from(p.cpuData()).map((v) => Math.fround(2 * v)));
  });

  it('times each kernel by name when asked (profileKernels), and not otherwise', () => {
    const plain = createGpuBackend({ mode: 'cpu' });
    expect(plain.device.kernelProfile()).toBeNull();
    plain.destroy();
    const b = createGpuBackend({ mode: 'cpu', profileKernels: true });
    const p = new Blob([4], { dtype: 'float32', device: b.device });
    const h = new Blob([4], { dtype: 'float32', device: b.device });
    p.mutableCpuData().set([1, 2, 3, 4]);
    p.mutableCpuDiff().set([0.5, -1, 2, 0]);
    for (let i = 0; i < 3; i++) b.ops.sgdUpdate(p, h, 0.1, 0.9);
    const rows = b.device.kernelProfile(true)!;
    expect(rows.length).toBeGreaterThan(0);
    const runs = rows.reduce((n, r) => n + r.calls, 0);
    expect(runs).toBe(b.stats().kernelRuns);
    for (const r of rows) expect(r.ms).toBeGreaterThanOrEqual(0);
    // Sorted slowest first, and cleared by reset.
    for (let i = 1; i < rows.length; i++) expect(rows[i - 1]!.ms).toBeGreaterThanOrEqual(rows[i]!.ms);
    expect(b.device.kernelProfile()).toEqual([]);
    b.destroy();
  });
});

describe('layers without a gpu kernel', () => {
  it('fail unless host fallback is allowed, which is counted and warned once', () => {
    const strict = backendFor('cpu');
    const x = () => {
      const blob = new Blob([2, 3], { dtype: 'float32', device: strict.device });
      blob.mutableCpuData().set([-1, 0, 1, 2, -2, 3]);
      return blob;
    };
    const layer = createLayer('AbsVal', { name: 'abs' }, { dtype: 'float32', backend: strict });
    const bottom = x();
    const top = new Blob([], { dtype: 'float32', device: strict.device });
    layer.setUp([bottom], [top]);
    expect(() => layer.forward([bottom], [top])).toThrow(LayerError);
    expect(() => layer.forward([bottom], [top])).toThrow(/no kernel for layer type 'AbsVal' on backend 'gpu' \(create the backend with \{ allowCpuFallback: true \} to run it on the host\)/);

    const lax = backendFor('cpu', true);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const l2 = createLayer('AbsVal', { name: 'abs' }, { dtype: 'float32', backend: lax });
    const b2 = new Blob([2, 3], { dtype: 'float32', device: lax.device });
    b2.mutableCpuData().set([-1, 0, 1, 2, -2, 3]);
    const t2 = new Blob([], { dtype: 'float32', device: lax.device });
    l2.setUp([b2], [t2]);
    l2.forward([b2], [t2]);
    l2.forward([b2], [t2]);
    expect(Array.from(t2.cpuData())).toEqual([1, 0, 1, 2, 2, 3]);
    expect(lax.stats().cpuFallbacks).toEqual({ AbsVal: 2 });
    expect(warn).toHaveBeenCalledTimes(1);
    warn.mockRestore();
  });
});
