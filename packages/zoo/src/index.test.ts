import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseNetParameter, parseSolverParameter } from '@caffe-ts/proto';
import { zooModel, zooModels } from './index.js';

describe('zoo', () => {
  it('lists lenet with files that exist and parse', () => {
    expect(zooModels()).toContain('lenet');
    const m = zooModel('lenet');
    for (const f of Object.values(m.files)) expect(existsSync(f)).toBe(true);
    const net = parseNetParameter(readFileSync(m.files.trainTest!, 'utf8'), m.files.trainTest);
    expect(net.layer.map((l) => l.name)).toEqual([
      'mnist', 'mnist', 'conv1', 'pool1', 'conv2', 'pool2', 'ip1', 'relu1', 'ip2', 'accuracy', 'loss',
    ]);
    const solver = parseSolverParameter(readFileSync(m.files.solver!, 'utf8'), m.files.solver);
    expect(solver.base_lr).toBeCloseTo(0.01);
    expect(solver.momentum).toBeCloseTo(0.9);
    expect(solver.weight_decay).toBeCloseTo(0.0005);
    expect(solver.lr_policy).toBe('inv');
    expect(solver.max_iter).toBe(10000);
    expect(solver.snapshot).toBe(5000);
    expect(solver.test_interval).toBe(500);
  });

  it('names the known models for an unknown one', () => {
    expect(() => zooModel('alexnet2')).toThrow(/Unknown zoo model 'alexnet2' \(known models: lenet/);
  });
});
