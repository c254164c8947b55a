import { createMessage, Phase, type NetParameter } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { chunkPlan, MIN_AUTO_ROWS, nextCut } from './chunks.js';

const TRAIN = { phase: Phase.TRAIN };

function net(batch: number, extra: Record<string, unknown>[] = []): NetParameter {
  return createMessage<NetParameter>('NetParameter', {
    name: 'n',
    layer: [
      { name: 'data', type: 'Data', top: ['data', 'label'], include: [{ phase: Phase.TRAIN }], data_param: { source: 'x', batch_size: batch } },
      { name: 'tdata', type: 'Data', top: ['data', 'label'], include: [{ phase: Phase.TEST }], data_param: { source: 'y', batch_size: 3 } },
      { name: 'ip', type: 'InnerProduct', bottom: ['data'], top: ['ip'], inner_product_param: { num_output: 2 } },
      ...extra,
      { name: 'loss', type: 'SoftmaxWithLoss', bottom: ['ip', 'label'], top: ['loss'] },
    ],
  });
}

describe('chunkPlan (chunked split)', () => {
  it('chooses 2 chunks per replica where each keeps MIN_AUTO_ROWS rows, else one per replica; an explicit count must divide', () => {
    const chunks = (batch: number, workers = 2, requested = 0) => {
      const p = chunkPlan(net(batch), workers, TRAIN, requested);
      return typeof p === 'string' ? p : p.chunks;
    };
    expect(MIN_AUTO_ROWS).toBe(32);
    expect(chunks(128)).toBe(4); // 32 rows each
    expect(chunks(64)).toBe(2); // LeNet: 16-row chunks would run the layers less efficiently
    expect(chunks(100)).toBe(2); // CIFAR-10 quick
    expect(chunks(8)).toBe(2);
    expect(chunks(64, 3)).toMatch(/batch sizes \(64\) do not divide into 3 chunks/);
    expect(chunks(64, 2, 8)).toBe(8);
    expect(chunks(64, 2, 6)).toMatch(/do not divide into 6 chunks/);
    // The TEST-only data layer is not part of the train net (its batch of 3 does not matter).
    const p = chunkPlan(net(64), 2, TRAIN, 0);
    expect(typeof p !== 'string' && p.dataParam.layer.map((l) => l.name)).toEqual(['data']);
  });

  it('refuses nets whose data layers do not lead, or with another layer without bottoms', () => {
    const dummy = [{ name: 'noise', type: 'DummyData', top: ['noise'], dummy_data_param: { shape: [{ dim: [64, 1] }] } }];
    expect(chunkPlan(net(64, dummy), 2, TRAIN, 0)).toMatch(/layer 'noise' \(DummyData\) takes no bottom but does not lead the net/);
    const input = createMessage<NetParameter>('NetParameter', {
      name: 'i',
      layer: [{ name: 'in', type: 'Input', top: ['x'], input_param: { shape: [{ dim: [4, 2] }] } }, { name: 'r', type: 'ReLU', bottom: ['x'], top: ['x'] }],
    });
    expect(chunkPlan(input, 2, TRAIN, 0)).toMatch(/Input layer 'in' is not a data layer with a batch_size/);
    // MemoryData is fed by its caller through the train net's layer: not moved into a data net.
    const memory = createMessage<NetParameter>('NetParameter', {
      name: 'm',
      layer: [{ name: 'mem', type: 'MemoryData', top: ['x', 'y'], memory_data_param: { batch_size: 64, channels: 1, height: 1, width: 1 } }],
    });
    expect(chunkPlan(memory, 2, TRAIN, 0)).toMatch(/MemoryData layer 'mem' is not a data layer with a batch_size/);
  });
});

describe('nextCut (balanced shares)', () => {
  it('moves half the gap in rows toward the rank that finished first, at most batch/16 a step, within [batch/4, 3·batch/4]', () => {
    // The worker (rows [cut, 64)) 1 ms late at 0.5 ms per row for both together: 1 row to rank 0.
    expect(nextCut(32, 64, 1, 0.5)).toBe(33);
    expect(nextCut(32, 64, -1, 0.5)).toBe(31);
    expect(nextCut(32, 64, 100, 0.5)).toBe(36); // at most 64/16 rows
    expect(nextCut(47, 64, 100, 0.5)).toBe(48); // at most 3/4 of the batch
    expect(nextCut(17, 64, -100, 0.5)).toBe(16);
    expect(nextCut(32, 64, Number.NaN, 0.5)).toBe(32);
    expect(nextCut(32, 64, 1, 0)).toBe(32);
  });
});
