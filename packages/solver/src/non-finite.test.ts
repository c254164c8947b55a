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

function solver(stop: boolean, text = netText, props: Record<string, unknown> = {}) {
  const registry = registerBuiltinLayers(new LayerRegistry());
  const param = solverParam({ net_param: parseNetParameter(text), base_lr: 0.1, lr_policy: 'fixed', max_iter: 3, display: 0, snapshot_after_train: false, ...props });
  return createSolver(param, { registry, stopOnNonFinite: stop, log: true });
}

async function errorLines(run: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const prev = setLogSink((l) => lines.push(l));
  try {
    await run();
  } finally {
    setLogSink(prev);
  }
  return lines.filter((l) => l.startsWith('E')).map((l) => l.slice(l.indexOf('] ') + 2));
}

// A finite loss whose weight gradient (3) times the learning rate (3e38) overflows float32: the
// update itself makes the weights infinite, at iteration 0, before any loss is non-finite.
const overflowNet = `
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 1 dim: 3 } shape { dim: 1 dim: 1 } data_filler { type: "constant" value: 1 } data_filler { type: "constant" value: 0 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 1 weight_filler { type: "constant" value: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "label" top: "loss" }
`;

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
    // The loss once per iteration (training went on); the NaN the update then put in the ip
    // weights once, at the iteration that produced it.
    expect(errors.map((l) => l.slice(l.indexOf('] ') + 2))).toEqual([
      "Iteration 0, loss = NaN: first non-finite value (NaN) in top 'logd' of layer 'log' (Log)",
      "Iteration 0: the update (lr = 0.1) made param 0 of layer 'ip' (InnerProduct) non-finite (NaN at element 0 of 3 3 (9))",
      "Iteration 1, loss = NaN: first non-finite value (NaN) in param 0 of layer 'ip' (InnerProduct)",
    ]);
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

describe('non-finite params', () => {
  it('are detected at the iteration whose update produced them, naming the layer and param', async () => {
    let s: ReturnType<typeof solver> | undefined;
    const errors = await errorLines(() => (s = solver(false, overflowNet, { base_lr: 3e38 })).step(3));
    expect(errors).toEqual([
      "Iteration 0: the update (lr = 3e+38) made param 0 of layer 'ip' (InnerProduct) non-finite (-Infinity at element 0 of 1 3 (3))",
      "Iteration 1, loss = Infinity: first non-finite value (-Infinity) in param 0 of layer 'ip' (InnerProduct)",
      "Iteration 2, loss = NaN: first non-finite value (NaN) in param 0 of layer 'ip' (InnerProduct)",
    ]);
    expect(s!.iter).toBe(3);
  });

  it('stop the run at that iteration when asked to', async () => {
    let s: ReturnType<typeof solver> | undefined;
    const errors = await errorLines(async () => {
      s = solver(true, overflowNet, { base_lr: 3e38 });
      const e = await s.step(3).catch((x: unknown) => x);
      expect(SolverError.isInstance(e)).toBe(true);
      expect((e as Error).message).toBe(
        "Training stopped: Iteration 0: the update (lr = 3e+38) made param 0 of layer 'ip' (InnerProduct) non-finite (-Infinity at element 0 of 1 3 (3)) (--stop_on_nan)",
      );
    });
    expect(errors.length).toBe(1);
    expect(s!.iter).toBe(0);
  });

  it('a finite run reports nothing', async () => {
    expect(await errorLines(() => solver(true, overflowNet, { base_lr: 0.01 }).step(3))).toEqual([]);
  });
});
