import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Phase, printText } from '@caffe-ts/proto';
import { L, NetSpec } from './net-spec.js';
import { Net } from './net.js';
import { saveNet } from './node.js';
import { netFromFiles } from './pycaffe-node.js';
import { forwardWith, netInputs, netOutputs } from './pycaffe.js';
import { NetError } from './errors.js';
import { testRegistry } from './test-helpers.js';

function spec(): NetSpec {
  const n = new NetSpec();
  n.data = L.Input({ shape: [{ dim: [1, 3] }] });
  n.ip = L.InnerProduct(n.data, { num_output: 2, weight_filler: { type: 'gaussian', std: 1 }, bias_filler: { type: 'constant', value: 0.5 } });
  n.prob = L.Softmax(n.ip);
  return n;
}

describe('pycaffe-style helpers', () => {
  it('forwardWith feeds named inputs, reshapes on a new shape and returns named outputs', () => {
    const net = new Net(spec().toProto(), { log: false, registry: testRegistry() });
    expect(netInputs(net)).toEqual(['data']);
    expect(netOutputs(net)).toEqual(['prob']);
    const w = net.params.get('ip')![0]!.cpuData();
    const x = new Float32Array([1, 2, 3]);
    const out = forwardWith(net, { data: x }, { blobs: ['ip'] });
    const ip0 = w[0]! * 1 + w[1]! * 2 + w[2]! * 3 + 0.5;
    expect(out.ip![0]).toBeCloseTo(ip0, 5);
    expect(out.prob!.length).toBe(2);
    expect(out.prob![0]! + out.prob![1]!).toBeCloseTo(1, 6);
    const batch = forwardWith(net, { data: { shape: [2, 3], data: [1, 2, 3, 1, 2, 3] } });
    expect(net.blob('prob').shape).toEqual([2, 2]);
    expect(batch.prob![2]).toBeCloseTo(out.prob![0]!, 6);
    const upToIp = forwardWith(net, {}, { end: 'ip' });
    expect(Object.keys(upToIp)).toEqual(['ip']);
    expect(() => forwardWith(net, { data: [1, 2] })).toThrow(/has 2 values but blob 'data' is 2 3 \(6\)/);
    expect(() => forwardWith(net, { nope: [1] })).toThrow(NetError);
  });

  it('netFromFiles builds a net from a prototxt and loads weights', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pycaffe-'));
    try {
      const proto = join(dir, 'net.prototxt');
      writeFileSync(proto, printText('NetParameter', spec().toProto()));
      const a = new Net(spec().toProto(), { log: false, registry: testRegistry() });
      saveNet(a, join(dir, 'w.caffemodel'));
      const b = await netFromFiles(proto, { weights: join(dir, 'w.caffemodel'), phase: Phase.TEST, log: false, registry: testRegistry() });
      expect(b.phase).toBe(Phase.TEST);
      expect([...b.params.get('ip')![0]!.cpuData()]).toEqual([...a.params.get('ip')![0]!.cpuData()]);
      const x = { data: new Float32Array([0.1, -0.2, 0.3]) };
      expect([...forwardWith(b, x).prob!]).toEqual([...forwardWith(a, x).prob!]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
