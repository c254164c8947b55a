import { Blob, hostMemoryInfo, setHostAllocator, shutdownThreads } from '@caffe-ts/blob';
import { Phase, SPPParameter_PoolMethod as SPPPool } from '@caffe-ts/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContrastiveLossLayer } from './layers/contrastive-loss-layer.js';
import { InnerProductLayer } from './layers/inner-product-layer.js';
import { createLayer, makeBlob } from './testing.js';

let previous: ReturnType<typeof setHostAllocator>;
beforeAll(() => {
  previous = setHostAllocator('wasm');
});
afterAll(async () => {
  setHostAllocator(previous);
  await shutdownThreads();
});

const f32 = (shape: number[]) => makeBlob(shape, { dtype: 'float32' });

describe('Layer.dispose', () => {
  it('empties the params and the buffers in the layer’s own fields', () => {
    const ip = createLayer<InnerProductLayer>('InnerProduct', { inner_product_param: { num_output: 3 } }, { dtype: 'float32' });
    ip.setUp([f32([2, 4])], [new Blob([])]);
    const loss = createLayer<ContrastiveLossLayer>('ContrastiveLoss', {}, { dtype: 'float32' });
    const top = new Blob([]);
    loss.setUp([f32([2, 3]), f32([2, 3]), makeBlob([2], { dtype: 'float32', filler: 'zeros' })], [top]);
    expect(ip.blobs.map((b) => b.count())).toEqual([12, 3]);
    expect(loss.difference.count()).toBe(6);
    ip.dispose();
    loss.dispose();
    expect(ip.blobs.map((b) => b.count())).toEqual([0, 0]);
    expect([loss.difference.count(), loss.distSq.count()]).toEqual([0, 0]);
  });

  it.skipIf(process.env.CAFFE_TS_GEMM === 'js')("gives every kernel-heap block back at once, inner layers' and MAX pooling's argmax included ('wasm' host allocator)", () => {
    const inUse = () => hostMemoryInfo().heap!.bytesInUse;
    const run = () => {
      const bottom = f32([2, 3, 13, 11]);
      const top = new Blob([]);
      const spp = createLayer('SPP', { phase: Phase.TRAIN, spp_param: { pyramid_height: 3, pool: SPPPool.MAX } }, { dtype: 'float32' });
      spp.setUp([bottom], [top]);
      spp.forward([bottom], [top]);
      top.mutableCpuDiff().fill(1);
      spp.backward([top], [true], [bottom]);
      const pooling = createLayer('Pooling', { pooling_param: { pool: 0, kernel_size: 2, stride: 2 } }, { dtype: 'float32' });
      const pooled = new Blob([]);
      pooling.setUp([bottom], [pooled]);
      pooling.forward([bottom], [pooled]);
      return () => {
        spp.dispose();
        pooling.dispose();
        for (const b of [bottom, top, pooled]) b.dispose();
      };
    };
    // The kernels' own scratch blocks, made on first use, stay: a first round makes them.
    run()();
    const before = inUse();
    const dispose = run();
    expect(inUse()).toBeGreaterThan(before);
    dispose();
    expect(inUse()).toBe(before);
  });
});
