import { setLogSink } from '@caffe-ts/blob';
import { registerBuiltinLayers, LayerRegistry } from '@caffe-ts/layers';
import { parseNetParameter } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { SolverError } from './errors.js';
import { createSolver } from './solver-registry.js';
import { solverParam } from './test-fixtures.js';

// Log of -1 is NaN: the loss is NaN and the Log layer is the one to blame.
const netText = `
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } data_filler { type: "constant" value: -1 } data_filler { type: "constant" value: 0 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 weight_filler { type: "constant" value: 1 } } }
layer { name: "log" type: "Log" bottom: "ip" top: "logd" }
layer { name: "loss" type: "EuclideanLoss" bottom: "logd" bottom: "label" top: "loss" }
`;

function solver(stop: boolean) {
  const registry = registerBuiltinLayers(new LayerRegistry());
  const param = solverParam({ net_param: parseNetParameter(netText), base_lr: 0.1, lr_policy: 'fixed', max_iter: 3, display: 0, snapshot_after_train: false });
  return createSolver(param, { registry, stopOnNonFinite: stop });
}

describe('non-finite loss', () => {
  it('is logged with the layer that first produced a non-finite value', async () => {
    const lines: string[] = [];
    const prev = setLogSink((l) => lines.push(l));
    try {
      await solver(false).step(2);
    } finally {
      setLogSink(prev);
    }
    const errors = lines.filter((l) => l.startsWith('E'));
    expect(errors.map((l) => l.slice(l.indexOf('] ') + 2))[0]).toBe(
      "Iteration 0, loss = NaN: first non-finite value (NaN) in top 'logd' of layer 'log' (Log)",
    );
    expect(errors.length).toBe(2); // once per iteration; training went on
  });

  it('stops training with a SolverError when asked to', async () => {
    const prev = setLogSink(() => {});
    try {
      const s = solver(true);
      const e = await s.step(3).catch((x: unknown) => x);
      expect(SolverError.isInstance(e)).toBe(true);
      expect((e as Error).message).toBe(
        "Training stopped: Iteration 0, loss = NaN: first non-finite value (NaN) in top 'logd' of layer 'log' (Log) (--stop_on_nan)",
      );
      expect(s.iter).toBe(0);
    } finally {
      setLogSink(prev);
    }
  });
});
