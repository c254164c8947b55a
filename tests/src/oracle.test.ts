/**
 * Real Caffe models run by caffe-ts against an independent oracle: OpenCV's dnn module
 * (cv2.dnn.readNetFromCaffe, OpenCV's own CPU backend, layer fusion off) ran the same prototxt
 * and caffemodel from the corpus on the same input and stored the input and the layers' outputs
 * under tests/fixtures/oracle/<model>/ (see manifest.json there: files, inputs, OpenCV version).
 *
 * Regenerate (Debian's python3-opencv and python3-numpy; only the script needs them):
 *   /usr/bin/python3 scripts/oracle/make-fixtures.py
 *
 * Each stored output must match within max |a − b| ≤ 1e-4 · max(1, |b|), element by element.
 * The fixtures are committed; the weights come from the corpus, so this skips without it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { corpus, hasCorpus } from './helpers.js';
import { readNpy } from '@caffe-ts/zoo';
import { oracleDir, readOracleJson, setInputs, type OracleManifest, type OracleModel } from './oracle-fixtures.js';

const registry = registerBuiltinLayers(new LayerRegistry());
const manifest = readOracleJson<OracleManifest>('manifest.json');

/** The largest |a − b| / max(1, |b|) over the elements, and where it is. */
function worstError(a: ArrayLike<number>, b: ArrayLike<number>): { ratio: number; index: number; a: number; b: number } {
  let worst = { ratio: 0, index: -1, a: 0, b: 0 };
  for (let i = 0; i < b.length; i++) {
    const ratio = Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!));
    // NaN compares false; count it as the worst.
    if (!(ratio <= worst.ratio)) worst = { ratio: Number.isNaN(ratio) ? Infinity : ratio, index: i, a: a[i]!, b: b[i]! };
  }
  return worst;
}

function buildNet(model: OracleModel): Net {
  const param = readNetParameter(corpus(model.prototxt), { log: false });
  setInputs(param, model.inputs, model.drop_layers);
  const net = new Net(param, { registry, phase: Phase.TEST, log: false });
  copyTrainedLayersFromFile(net, corpus(model.caffemodel));
  return net;
}

describe('oracle fixtures', () => {
  it('cover every model the issue names, with inputs and net outputs on disk', () => {
    expect(manifest.oracle).toMatch(/^OpenCV \d+\.\d+/);
    expect(manifest.models.map((m) => m.name)).toEqual([
      'lenet_nn_ex1',
      'lenet_ethereon',
      'cifar10_quick_ikkichung',
      'cifar10_full_nn_ex1',
      'mtcnn_det1',
      'mtcnn_det2',
      'mtcnn_det3',
      'mtcnn_det4',
    ]);
    for (const m of manifest.models) {
      expect(m.outputs.some((o) => o.net_output), m.name).toBe(true);
      for (const f of [...m.inputs.map((i) => i.file), ...m.outputs.map((o) => o.file)]) {
        expect(existsSync(join(oracleDir, m.name, f)), `${m.name}/${f}`).toBe(true);
      }
    }
  });
});

describe.skipIf(!hasCorpus)('caffe-ts against OpenCV dnn on the corpus models', () => {
  it.each(manifest.models.map((m) => [m.name, m] as const))('%s', (_, model) => {
    const net = buildNet(model);
    for (const input of model.inputs) {
      const x = readNpy(join(oracleDir, model.name, input.file));
      const blob = net.blob(input.blob);
      expect(blob.shape).toEqual(x.shape);
      blob.mutableCpuData().set(x.data);
    }
    // Layer by layer, so that outputs later overwritten in place (conv before its ReLU) are seen.
    const byLayer = new Map<string, typeof model.outputs>();
    for (const o of model.outputs) byLayer.set(o.layer, [...(byLayer.get(o.layer) ?? []), o]);
    const checked: string[] = [];
    const failures: string[] = [];
    for (let i = 0; i < net.layers.length; i++) {
      net.forwardFromTo(i, i);
      for (const o of byLayer.get(net.layerNames[i]!) ?? []) {
        const expected = readNpy(join(oracleDir, model.name, o.file));
        const top = net.topVecs[i]![o.top_index]!;
        expect(net.blobNames[net.topIdVecs[i]![o.top_index]!], o.file).toBe(o.top);
        expect(top.shape, `${model.name} ${o.layer} top ${o.top_index} shape`).toEqual(expected.shape);
        const w = worstError(top.cpuData(), expected.data);
        if (!(w.ratio <= 1e-4)) {
          failures.push(`${o.layer} top ${o.top_index} ('${o.top}'): element ${w.index} is ${w.a}, OpenCV says ${w.b} (error ${w.ratio.toExponential(2)} of max(1, |b|))`);
        }
        checked.push(o.file);
      }
    }
    expect(failures, model.name).toEqual([]);
    // Every stored blob had a layer of that name in the caffe-ts net.
    expect(checked.sort()).toEqual(model.outputs.map((o) => o.file).sort());
  });
});
