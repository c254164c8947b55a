import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { registerContribLayers } from '@caffe-ts/layers-contrib';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { PNG } from 'pngjs';
import { parseNetParameter } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { corpus, hasCorpus, repoRoot } from './helpers.js';
import { readNpy } from '@caffe-ts/zoo';

/** tests/fixtures/contrib: written by scripts/oracle/make-contrib-fixtures.py (OpenCV's dnn module). */
const dir = join(repoRoot, 'tests/fixtures/contrib');

interface Manifest {
  oracle: string;
  deploy: { prototxt: string; input: Record<string, number[]>; shapes: string; priorbox: string; priorbox_note: string }[];
  model: { prototxt: string; caffemodel: string; input: string; blobs: { blob: string; file: string; shape: number[] }[] };
}

const MEAN = [104, 117, 123];
const TOL = 1e-4;

describe.skipIf(!hasCorpus)('yufacedetectnet-open-v2 with the contrib layers vs OpenCV', () => {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  const { model } = manifest;
  const registry = registerContribLayers(registerBuiltinLayers(new LayerRegistry()));
  let net: Net;

  it('builds, loads the weights and runs the oracle input', () => {
    expect(existsSync(corpus(model.caffemodel))).toBe(true);
    net = new Net(readNetParameter(corpus(model.prototxt), { log: false }), { registry, log: false });
    copyTrainedLayersFromFile(net, corpus(model.caffemodel));
    const png = PNG.sync.read(readFileSync(join(dir, model.input)));
    const { width: w, height: h } = png;
    const input = net.blob('data');
    input.reshape([1, 3, h, w]);
    net.reshape();
    const x = input.mutableCpuData();
    // PNG pixels are RGBA; the net takes BGR planes minus the mean.
    for (let c = 0; c < 3; c++) for (let i = 0; i < w * h; i++) x[c * w * h + i] = png.data[i * 4 + (2 - c)]! - MEAN[c]!;
    net.forward();
  });

  for (const { blob, file, shape } of model.blobs) {
    it(`${blob} matches ${manifest.oracle.split(' dnn')[0]} within ${TOL} (relative, absolute below 1)`, () => {
      const want = readNpy(join(dir, file));
      const got = net.blob(blob);
      const a = got.cpuData();
      if (blob === 'detection_out') {
        // OpenCV pads DetectionOutput to keep_top_k rows with zeros; the SSD fork (and this
        // package) writes only the detections kept.
        expect(got.shape.slice(0, 2)).toEqual([1, 1]);
        expect(got.shape[2]).toBeGreaterThan(2);
        expect(got.shape[2]).toBeLessThanOrEqual(shape[2]!);
        expect(Array.from(want.data.slice(a.length)).every((v) => v === 0)).toBe(true);
      } else expect(got.shape).toEqual(shape);
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - want.data[i]!) / Math.max(1, Math.abs(want.data[i]!)));
      expect(worst).toBeLessThanOrEqual(TOL);
    });
  }
});

describe.skipIf(!hasCorpus)('deploy nets with fork layers: shapes and prior boxes vs OpenCV', () => {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  const registry = registerContribLayers(registerBuiltinLayers(new LayerRegistry()));

  for (const entry of manifest.deploy) {
    it(`${entry.prototxt}: every layer's top shapes and ${entry.priorbox_note}`, () => {
      // As published: OpenCV's face detector's `clip` parses too (layers-contrib's TEXT_COMPAT_FIELDS).
      const text = readFileSync(corpus(entry.prototxt), 'utf8');
      const net = new Net(parseNetParameter(text), { registry, log: false, name: entry.prototxt });
      const shapes = JSON.parse(readFileSync(join(dir, entry.shapes), 'utf8')) as Record<string, number[][]>;
      expect(Object.keys(shapes).length).toBeGreaterThan(20);
      for (const [layer, tops] of Object.entries(shapes)) {
        const id = net.layerIndexOf(layer);
        expect([layer, net.topVecs[id]!.map((b) => b.shape)]).toEqual([layer, tops]);
      }
      // The prior boxes depend only on shapes: run just the PriorBox layers and their Concat.
      const concat = net.layerIndexOf('mbox_priorbox');
      net.layers.forEach((l, i) => {
        if (l.type === 'PriorBox') net.forwardFromTo(i, i);
      });
      net.forwardFromTo(concat, concat);
      const got = net.blob('mbox_priorbox').cpuData();
      const want = readNpy(join(dir, entry.priorbox)).data;
      const stride = Number(/every (\d+)th/.exec(entry.priorbox_note)![1]);
      expect(want.length).toBe(Math.ceil(got.length / stride));
      let worst = 0;
      for (let k = 0; k < want.length; k++) worst = Math.max(worst, Math.abs(got[k * stride]! - want[k]!));
      expect(worst).toBeLessThanOrEqual(TOL);
    });
  }
});
