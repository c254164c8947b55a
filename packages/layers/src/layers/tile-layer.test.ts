import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { TileLayer, tileLayerDef } from './tile-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function tile(p: Record<string, unknown> | null, name = 'tile'): TileLayer {
  return createLayer(tileLayerDef, p ? { name, tile_param: p } : { name });
}

function run(layer: TileLayer, bottom: Blob): Blob {
  const top = f64();
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return top;
}

describe('TileLayer', () => {
  it('shapes: tiles 1 is trivial; axis 0, 1 and −1 (Caffe 2×3×4×5)', () => {
    expect(run(tile({ tiles: 1 }), makeBlob([2, 3, 4, 5])).shape).toEqual([2, 3, 4, 5]);
    expect(run(tile({ tiles: 3 }), makeBlob([2, 3, 4, 5])).shape).toEqual([2, 9, 4, 5]);
    expect(run(tile({ tiles: 3, axis: 0 }), makeBlob([2, 3, 4, 5])).shape).toEqual([6, 3, 4, 5]);
    expect(run(tile({ tiles: 2, axis: -1 }), makeBlob([2, 3, 4, 5])).shape).toEqual([2, 3, 4, 10]);
  });

  it('forward repeats each block of axes [axis, …): top[n, t·C + c] = bottom[n, c]', () => {
    const bottom = makeBlob([2, 3, 2]);
    const top = run(tile({ tiles: 3, axis: 1 }), bottom);
    const x = bottom.cpuData();
    const y = top.cpuData();
    for (let n = 0; n < 2; n++) {
      for (let c = 0; c < 9; c++) {
        for (let w = 0; w < 2; w++) expect(y[(n * 9 + c) * 2 + w]).toBe(x[(n * 3 + (c % 3)) * 2 + w]);
      }
    }
    const byNum = run(tile({ tiles: 2, axis: 0 }), bottom);
    expect(blobValues(byNum)).toEqual([...blobValues(bottom), ...blobValues(bottom)]);
  });

  it('backward sums the copies', () => {
    const bottom = makeBlob([1, 2]);
    const layer = tile({ tiles: 3 });
    const top = run(layer, bottom);
    top.mutableCpuDiff().set([1, 2, 3, 4, 5, 6]);
    layer.backward([top], [true], [bottom]);
    expect(blobValues(bottom, 'diff')).toEqual([1 + 3 + 5, 2 + 4 + 6]);
  });

  it('gradient, Caffe (1e-2, 1e-2) exhaustive: trivial, across num, across channels', () => {
    const checker = new GradientChecker(1e-2, 1e-2);
    checker.checkGradientExhaustive(tile({ tiles: 1 }), [makeBlob([2, 3, 2, 2])], [f64()]);
    checker.checkGradientExhaustive(tile({ tiles: 2, axis: 0 }), [makeBlob([2, 3, 2, 2])], [f64()]);
    checker.checkGradientExhaustive(tile({ tiles: 2, axis: 1 }), [makeBlob([2, 2, 2, 2])], [f64()]);
  });

  it('defaults (axis 1) and Caffe\'s error messages', () => {
    expect(tile({}).param.tile_param!.axis).toBe(1);
    expect(() => run(tile(null, 't1'), makeBlob([2, 3]))).toThrow("Tile layer 't1': Number of tiles must be specified");
    expect(() => run(tile({ tiles: 0 }, 't1'), makeBlob([2, 3]))).toThrow("Tile layer 't1': Number of tiles must be positive (got 0).");
    expect(() => run(tile({ tiles: 2, axis: 2 }, 't1'), makeBlob([2, 3]))).toThrow(
      "Tile layer 't1': axis 2 out of range for 2-D bottom blob with shape 2 3 (6)",
    );
  });
});
