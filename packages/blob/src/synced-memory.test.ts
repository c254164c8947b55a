import { describe, expect, it } from 'vitest';
import { Blob } from './blob.js';
import { newTransferStats, type DeviceAllocator } from './device.js';
import type { DType, FloatArray } from './dtype.js';
import { SyncedMemory } from './synced-memory.js';

interface FakeHandle {
  data: Float64Array;
  freed: boolean;
}

/** A "device" in host memory that counts every allocation and transfer. */
class FakeDevice implements DeviceAllocator<FakeHandle> {
  readonly name = 'fake';
  readonly stats = newTransferStats();
  allocations = 0;
  frees = 0;
  allocate(length: number, _dtype: DType): FakeHandle {
    this.allocations++;
    return { data: new Float64Array(length), freed: false };
  }
  upload(handle: FakeHandle, source: FloatArray): void {
    this.stats.uploads++;
    handle.data.set(source.subarray(0, handle.data.length));
  }
  download(handle: FakeHandle, target: FloatArray): void {
    this.stats.readbacks++;
    target.set(handle.data);
  }
  free(handle: FakeHandle): void {
    this.frees++;
    handle.freed = true;
  }
}

describe('SyncedMemory', () => {
  it('starts uninitialized and allocates the host copy lazily, zero-filled', () => {
    const m = new SyncedMemory(4);
    expect(m.head).toBe('uninitialized');
    expect(Array.from(m.cpuData())).toEqual([0, 0, 0, 0]);
    expect(m.head).toBe('cpu');
  });

  it('moves between heads like Caffe, transferring only when the other side is stale', () => {
    const dev = new FakeDevice();
    const m = new SyncedMemory(3, 'float32', dev);
    m.mutableCpuData().set([1, 2, 3]);
    expect(m.head).toBe('cpu');

    const h = m.gpuData() as FakeHandle; // cpu → synced: one upload
    expect(m.head).toBe('synced');
    expect(dev.stats).toEqual({ uploads: 1, readbacks: 0 });
    expect(Array.from(h.data)).toEqual([1, 2, 3]);
    m.gpuData();
    m.cpuData(); // synced: no traffic either way
    expect(dev.stats).toEqual({ uploads: 1, readbacks: 0 });

    (m.mutableGpuData() as FakeHandle).data.set([4, 5, 6]); // device now newer
    expect(m.head).toBe('gpu');
    expect(Array.from(m.cpuData())).toEqual([4, 5, 6]); // gpu → synced: one readback
    expect(m.head).toBe('synced');
    expect(dev.stats).toEqual({ uploads: 1, readbacks: 1 });

    m.mutableCpuData()[0] = 9; // host newer
    expect(m.head).toBe('cpu');
    expect(m.gpuData()).toBe(h); // same device buffer, refreshed
    expect(h.data[0]).toBe(9);
    expect(dev.stats).toEqual({ uploads: 2, readbacks: 1 });
    expect(dev.allocations).toBe(1);
  });

  it('a device-first write allocates on the device without uploading', () => {
    const dev = new FakeDevice();
    const m = new SyncedMemory(2, 'float64', dev);
    m.mutableGpuData();
    expect(m.head).toBe('gpu');
    expect(dev.stats).toEqual({ uploads: 0, readbacks: 0 });
    expect(m.cpuData()).toBeInstanceOf(Float64Array);
    expect(dev.stats.readbacks).toBe(1);
  });

  it('releaseDevice reads back device-only data before freeing', () => {
    const dev = new FakeDevice();
    const m = new SyncedMemory(2, 'float32', dev);
    (m.mutableGpuData() as FakeHandle).data.set([7, 8]);
    m.releaseDevice();
    expect(dev.frees).toBe(1);
    expect(m.head).toBe('cpu');
    expect(Array.from(m.cpuData())).toEqual([7, 8]);
    expect(dev.stats.readbacks).toBe(1);
    m.gpuData(); // a fresh device buffer, uploaded from the host
    expect(dev.allocations).toBe(2);
    expect(dev.stats.uploads).toBe(1);
  });

  it('setLazyContents: the fill runs once, on the next access of either copy; setCpuData or a null fill drops it', () => {
    let calls = 0;
    const fill = (host: FloatArray) => {
      calls++;
      host.set([7, 8, 9]);
    };
    const m = new SyncedMemory(3);
    const v0 = m.version;
    m.setLazyContents(fill);
    expect(m.version).not.toBe(v0);
    expect(calls).toBe(0);
    expect(Array.from(m.cpuData())).toEqual([7, 8, 9]);
    expect(Array.from(m.cpuData())).toEqual([7, 8, 9]);
    expect(calls).toBe(1);
    // Through the device side: filled on the host, then uploaded.
    const dev = new FakeDevice();
    const d = new SyncedMemory(3, 'float32', dev);
    (d.mutableGpuData() as FakeHandle).data.set([1, 1, 1]);
    d.setLazyContents(fill);
    expect(Array.from((d.gpuData() as FakeHandle).data)).toEqual([7, 8, 9]);
    expect(calls).toBe(2);
    // Replaced before anyone looked, or dropped: never called.
    const r = new SyncedMemory(3);
    r.setLazyContents(fill);
    r.setCpuData(new Float32Array([4, 5, 6]));
    expect(Array.from(r.cpuData())).toEqual([4, 5, 6]);
    r.setLazyContents(fill);
    r.setLazyContents(null);
    expect(Array.from(r.mutableCpuData())).toEqual([4, 5, 6]);
    expect(calls).toBe(2);
  });

  it('hands out cached views of the requested length', () => {
    const m = new SyncedMemory(6);
    const v = m.cpuData(4);
    expect(v).toHaveLength(4);
    expect(m.cpuData(4)).toBe(v);
    expect(m.cpuData()).toHaveLength(6);
    expect(() => m.cpuData(7)).toThrow(RangeError);
  });

  it('setCpuData adopts an external array without copying', () => {
    const m = new SyncedMemory(3);
    const ext = new Float32Array([1, 2, 3, 4]);
    m.setCpuData(ext);
    expect(m.head).toBe('cpu');
    expect(m.cpuData(3).buffer).toBe(ext.buffer);
    ext[0] = 5;
    expect(m.cpuData()[0]).toBe(5);
    expect(() => m.setCpuData(new Float32Array(2))).toThrow(/array has 2 elements, memory needs 3/);
  });

  it('without a device allocator, device access fails', () => {
    expect(() => new SyncedMemory(2).gpuData()).toThrow(/no device allocator/);
  });

  it('a Blob on a device counts transfers across data and diff', () => {
    const dev = new FakeDevice();
    const b = new Blob([2, 2], { device: dev });
    b.mutableCpuData().fill(1);
    b.gpuData();
    b.mutableGpuDiff();
    b.cpuDiff();
    expect(dev.stats).toEqual({ uploads: 1, readbacks: 1 });
    expect(b.data.head).toBe('synced');
    expect(b.diff.head).toBe('synced');
  });
});
