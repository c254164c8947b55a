import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, makeBlob } from '../testing.js';
import { silenceLayerDef } from './silence-layer.js';

describe('SilenceLayer', () => {
  it('consumes any number of bottoms, produces nothing, and zeroes the diffs asked for', () => {
    const layer = createLayer(silenceLayerDef);
    const a = makeBlob([2, 3]);
    const b = makeBlob([4]);
    a.mutableCpuDiff().fill(7);
    b.mutableCpuDiff().fill(7);
    layer.setUp([a, b], []);
    expect(layer.forward([a, b], [])).toBe(0);
    layer.backward([], [true, false], [a, b]);
    expect(blobValues(a, 'diff')).toEqual([0, 0, 0, 0, 0, 0]);
    expect(blobValues(b, 'diff')).toEqual([7, 7, 7, 7]);
  });

  it('rejects tops and a missing bottom', () => {
    const layer = createLayer(silenceLayerDef, { name: 's1' });
    expect(() => layer.setUp([makeBlob([1])], [makeBlob([1])])).toThrow(
      "Silence layer 's1': Silence Layer produces 0 top blob(s) as output (got 1).",
    );
    expect(() => layer.setUp([], [])).toThrow("Silence layer 's1': Silence Layer takes at least 1 bottom blob(s) as input (got 0).");
  });
});
