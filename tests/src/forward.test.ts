import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { readNetParameter, saveNet } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { blobFileName, readNpy, writeNpy, zooModel } from '@caffe-ts/zoo';
import { caffe, tempDir } from './helpers.js';

const tmp = tempDir('caffe-forward-');
afterAll(() => tmp.remove());

describe('caffe forward', () => {
  const deploy = zooModel('lenet').files.deploy!;

  /** LeNet with gaussian-filled weights, saved as a caffemodel; and the same net in-process. */
  function lenetWithWeights(): { weights: string; net: Net } {
    const param = readNetParameter(deploy, { log: false });
    for (const l of param.layer) {
      const p = l.convolution_param ?? l.inner_product_param;
      if (p) p.weight_filler = { type: 'gaussian', std: 0.1 } as never;
      if (p) p.bias_filler = { type: 'gaussian', std: 0.1 } as never;
    }
    const net = new Net(param, { phase: Phase.TEST, log: false });
    const weights = join(tmp.path, 'lenet_random.caffemodel');
    saveNet(net, weights);
    return { weights, net };
  }

  it('reshapes the input to the .npy given, writes the outputs and requested blobs', async () => {
    const { weights, net } = lenetWithWeights();
    const x = { shape: [2, 1, 28, 28], data: Float32Array.from({ length: 2 * 784 }, (_, i) => ((i * 37) % 255) / 255) };
    writeNpy(join(tmp.path, 'x.npy'), x);
    const out = join(tmp.path, 'out');
    const run = await caffe(['forward', '--model', deploy, '--weights', weights, '--input', 'data=x.npy', '--output', 'out'], tmp.path);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(readdirSync(out)).toEqual(['prob.npy']);
    const prob = readNpy(join(out, 'prob.npy'));
    expect(prob.shape).toEqual([2, 10]);
    // The same numbers as the net run in this process.
    net.blob('data').reshape(x.shape);
    net.blob('data').mutableCpuData().set(x.data);
    net.reshape();
    net.forward();
    const expected = net.blob('prob').cpuData();
    for (let i = 0; i < 20; i++) expect(prob.data[i]).toBeCloseTo(expected[i]!, 6);
    for (let n = 0; n < 2; n++) expect(Array.from(prob.data.slice(n * 10, n * 10 + 10)).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    // Outputs differ between the two images (the batch really holds both).
    expect(Array.from(prob.data.slice(0, 10))).not.toEqual(Array.from(prob.data.slice(10, 20)));

    const run2 = await caffe(['forward', '--model', deploy, '--weights', weights, '--input', 'data=x.npy', '--blobs', 'ip1,pool2', '--output', 'out2'], tmp.path);
    expect(run2.code).toBe(0);
    expect(readNpy(join(tmp.path, 'out2', 'ip1.npy')).shape).toEqual([2, 500]);
    expect(readNpy(join(tmp.path, 'out2', 'pool2.npy')).shape).toEqual([2, 50, 4, 4]);
    expect(existsSync(join(tmp.path, 'out2', 'prob.npy'))).toBe(false);
  });

  it('names unknown inputs and blobs', async () => {
    writeNpy(join(tmp.path, 'y.npy'), { shape: [1, 1, 28, 28], data: new Float32Array(784) });
    const bad = await caffe(['forward', '--model', deploy, '--input', 'image=y.npy', '--output', 'o3'], tmp.path);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/'image' is not an input of net 'LeNet' \(inputs: data\)/);
    const bad2 = await caffe(['forward', '--model', deploy, '--input', 'data=y.npy', '--blobs', 'nope', '--output', 'o4'], tmp.path);
    expect(bad2.stderr).toMatch(/has no blob 'nope'/);
    const bad3 = await caffe(['forward', '--model', deploy, '--input', 'data', '--output', 'o5'], tmp.path);
    expect(bad3.stderr).toMatch(/--input expects name=file.npy, got 'data'/);
  });

  it('turns blob names into safe file names', () => {
    expect(blobFileName('inception_3a/output')).toBe('inception_3a_output');
    expect(blobFileName('a b:c.d-e_f')).toBe('a_b_c.d-e_f');
  });
});
