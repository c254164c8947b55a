import { readFileSync } from 'node:fs';
import { Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { renderUpdateWasm, UPDATE_GENERATED_PATH } from '../../scripts/build-update-wasm.mjs';
import type { ArenaRef, ParamSlot } from './protocol.js';
import { arenaArray } from './replica.js';
import { arenaReducer, paramShare, reduceRange, ShareUpdater } from './update.js';
import { allocArenaMemory, createUpdateKernels, updateWasmEnabled } from './update-wasm.js';
import { solverParam } from '../test-fixtures.js';

/** Arenas of `total` floats: params, `ranks` diff arenas, one history section, in one memory. */
function arenas(total: number, ranks: number, wasm: boolean) {
  const bytes = total * (2 + ranks) * 4;
  const region = wasm ? allocArenaMemory(bytes) : { buffer: new SharedArrayBuffer(bytes), memory: null };
  const section = (k: number): ArenaRef => ({ buffer: region.buffer, base: k * total, length: total });
  return {
    memory: region.memory,
    data: section(0),
    diffs: Array.from({ length: ranks }, (_, r) => section(1 + r)),
    history: section(1 + ranks),
  };
}

/** Gaussian values over a wide range of magnitudes, with exact zeros and some huge ones. */
function fill(a: Float32Array, rng: Rng, scale: number): void {
  for (let i = 0; i < a.length; i++) {
    const u = rng.uniform();
    a[i] = u < 0.05 ? 0 : u < 0.07 ? rng.gaussian(0, 1) * 1e30 : rng.gaussian(0, scale) * Math.exp(rng.gaussian(0, 3));
  }
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));

describe('update kernels (WebAssembly SIMD on the shared arenas)', () => {
  it('the committed generated module matches the generator', async () => {
    expect(readFileSync(UPDATE_GENERATED_PATH, 'utf8')).toBe(await renderUpdateWasm());
  });

  it.runIf(updateWasmEnabled())('zero clears exactly the bytes asked (rank 0\'s diff arena before each iteration)', () => {
    const a = arenas(1000, 2, true);
    const all = new Float32Array(a.memory!.buffer as unknown as SharedArrayBuffer, 0, 1000 * 4);
    all.fill(7);
    createUpdateKernels(a.memory)!.zero(a.diffs[0]!.base * 4, a.diffs[0]!.length * 4);
    expect(all.subarray(1000, 2000).every((x) => x === 0)).toBe(true);
    expect(all.subarray(0, 1000).every((x) => x === 7)).toBe(true);
    expect(all.subarray(2000).every((x) => x === 7)).toBe(true);
  });

  it.runIf(updateWasmEnabled())('reduce equals reduceRange bit for bit (2 and 3 ranks, odd ranges)', () => {
    for (const ranks of [2, 3]) {
      const total = 1040;
      const w = arenas(total, ranks, true);
      const j = arenas(total, ranks, false);
      expect(w.memory).not.toBeNull();
      const rng = new Rng(7 + ranks);
      w.diffs.forEach((d, r) => {
        const a = arenaArray(d, 'float32') as Float32Array;
        fill(a, rng, 0.1);
        (arenaArray(j.diffs[r]!, 'float32') as Float32Array).set(a);
      });
      const kernel = arenaReducer(w.diffs, 'float32', createUpdateKernels(w.memory));
      const views = j.diffs.map((d) => arenaArray(d, 'float32'));
      for (const [from, to] of [
        [0, 16],
        [16, 1021],
        [1021, 1023],
      ] as const) {
        kernel(from, to);
        reduceRange(views, 1 / ranks, from, to);
      }
      w.diffs.forEach((d, r) => expect(bits(arenaArray(d, 'float32') as Float32Array)).toEqual(bits(arenaArray(j.diffs[r]!, 'float32') as Float32Array)));
    }
  });

  it.runIf(updateWasmEnabled())('reduceAndApply gives the JavaScript loops\' params, history, diffs and finiteness bit for bit', () => {
    for (const ranks of [2, 3]) {
      // Params of odd sizes (the pieces' tails run the scalar path), one without weight decay.
      const counts = [37, 500, 3, 129];
      const slots: ParamSlot[] = [];
      let total = 0;
      for (const c of counts) {
        slots.push({ offset: total, count: c, frozen: false });
        total += Math.ceil(c / 16) * 16;
      }
      const param = solverParam({ base_lr: 0.01, momentum: 0.9, weight_decay: 5e-4, lr_policy: 'fixed' });
      const run = (wasm: boolean) => {
        const a = arenas(total, ranks, wasm);
        const rng = new Rng(11);
        for (const arena of [a.data, ...a.diffs, a.history]) fill(arenaArray(arena, 'float32') as Float32Array, rng, 0.5);
        const kernels = wasm ? createUpdateKernels(a.memory) : null;
        if (wasm) expect(kernels).not.toBeNull();
        const finite: boolean[] = [];
        for (let rank = 0; rank < ranks; rank++) {
          const u = new ShareUpdater(param, paramShare(slots, rank, ranks), [1, 2, 1, 0], [1, 0, 1, 1], {
            dtype: 'float32',
            slots,
            data: a.data,
            diff: a.diffs[0]!,
            history: a.history,
            total,
            reduce: { diffs: a.diffs, kernels },
          });
          expect(u.canReduceAndApply).toBe(true);
          finite.push(u.reduceAndApply(0.37));
        }
        return { finite, arenas: [a.data, ...a.diffs, a.history].map((x) => bits(arenaArray(x, 'float32') as Float32Array)) };
      };
      const js = run(false);
      const wasm = run(true);
      expect(wasm.finite).toEqual(js.finite);
      wasm.arenas.forEach((x, i) => expect(x).toEqual(js.arenas[i]));
    }
  });

  it.runIf(updateWasmEnabled())('reports a non-finite param of its share', () => {
    const slots: ParamSlot[] = [{ offset: 0, count: 21, frozen: false }];
    const a = arenas(32, 2, true);
    const param = solverParam({ base_lr: 0.1, momentum: 0.9, weight_decay: 0, lr_policy: 'fixed' });
    const u = new ShareUpdater(param, [{ param: 0, start: 0, count: 21 }], [1], [1], {
      dtype: 'float32',
      slots,
      data: a.data,
      diff: a.diffs[0]!,
      history: a.history,
      total: 32,
      reduce: { diffs: a.diffs, kernels: createUpdateKernels(a.memory) },
    });
    expect(u.reduceAndApply(0.1)).toBe(true);
    for (const at of [3, 20]) {
      (arenaArray(a.diffs[1]!, 'float32') as Float32Array)[at] = Infinity;
      expect(u.reduceAndApply(0.1)).toBe(false);
      // Start over: the update left the Inf in the params, the history and rank 0's diffs.
      for (const arena of [a.data, a.history, a.diffs[0]!]) (arenaArray(arena, 'float32') as Float32Array).fill(0);
      expect(u.reduceAndApply(0.1)).toBe(true);
    }
  });
});
