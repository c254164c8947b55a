import { Blob, cpuBackend, type Backend } from '@caffe-ts/blob';
import { createLayer } from '@caffe-ts/layers/testing';
import { describe, expect, it } from 'vitest';
import { backendFor } from './test-modes.js';

/** A label out of range gives the CPU backend's message on the gpu backend too (gpu.js cpu mode: always available). */
function run(type: string, backend: Backend, labels: number[], classes: number): () => void {
  const layer = createLayer(type, { name: 'l', bottom: ['score', 'label'] }, { dtype: 'float32', backend });
  const scores = new Blob([labels.length, classes], { dtype: 'float32', device: backend.device });
  scores.mutableCpuData().fill(0.5);
  const label = new Blob([labels.length], { dtype: 'float32', device: backend.device });
  label.mutableCpuData().set(labels);
  const top = [new Blob([], { dtype: 'float32', device: backend.device })];
  layer.setUp([scores, label], top);
  return () => layer.forward([scores, label], top);
}

describe('labels out of range on the gpu backend', () => {
  for (const type of ['SoftmaxWithLoss', 'Accuracy']) {
    it(`${type}: the same LayerError as on the CPU backend`, () => {
      const message = `${type} layer 'l': label 4 in bottom 'label' (batch item 2) is outside the valid range [0, 3] (4 classes)`;
      expect(run(type, cpuBackend(), [0, 3, 4], 4)).toThrow(message);
      expect(run(type, backendFor('cpu'), [0, 3, 4], 4)).toThrow(message);
      expect(run(type, backendFor('cpu'), [0, 3, 1], 4)).not.toThrow();
    });
  }
});
