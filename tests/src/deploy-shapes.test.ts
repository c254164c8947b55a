/**
 * Every deploy/inference prototxt of the corpus that uses only BVLC layer types builds, at
 * batch 1, with the top shapes C++ Caffe gives it. The expected shapes come from an independent
 * oracle, OpenCV's dnn module (getLayersShapes on the same prototxt), recorded with the reasons
 * for skipped nets in tests/fixtures/oracle/deploy-shapes.json by
 *   /usr/bin/python3 scripts/oracle/make-fixtures.py
 * Only shapes: net construction computes them, nothing runs forward.
 */
import { describe, expect, it } from 'vitest';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { readNetParameter } from '@caffe-ts/net/node';
import { Phase, type FillerParameter, type LayerParameter } from '@caffe-ts/proto';
import { corpus, hasCorpus } from './helpers.js';
import { readOracleJson, setInputs, type DeployShapes } from './oracle-fixtures.js';

const registry = registerBuiltinLayers(new LayerRegistry());
const shapes = readOracleJson<DeployShapes>('deploy-shapes.json');
const built = shapes.nets.filter((n) => n.skip === undefined);
const skipped = shapes.nets.filter((n) => n.skip !== undefined);

/**
 * Fill weights with constants: a shape test has no use for random numbers, and drawing them for
 * AlexNet-sized nets (60M weights each) would take most of the time.
 */
function constantFillers(layer: LayerParameter): void {
  const params = [
    layer.convolution_param,
    layer.inner_product_param,
    layer.scale_param,
    layer.bias_param,
    layer.prelu_param,
  ] as ({ [k: string]: unknown } | null)[];
  for (const p of params) {
    if (!p) continue;
    for (const key of ['weight_filler', 'bias_filler', 'filler']) {
      const f = p[key] as FillerParameter | null | undefined;
      if (f) {
        f.type = 'constant';
        f.value = 0;
      }
    }
  }
}

describe('deploy-shapes fixture', () => {
  it('lists the corpus deploy nets the issue names, with their outputs', () => {
    const out = Object.fromEntries(built.map((n) => [n.file, n.outputs]));
    expect(out['nets/resnet/ResNet-50-deploy.prototxt']).toEqual({ prob: [1, 1000] });
    expect(out['nets/squeezenet_v1.1/deploy.prototxt']).toEqual({ prob: [1, 1000, 1, 1] });
    expect(out['nets/misc_examples/bvlc_caffenet_full_conv.prototxt']).toEqual({ prob: [1, 1000, 8, 8] });
    expect(out['nets/bvlc_googlenet/deploy.prototxt']).toEqual({ prob: [1, 1000] });
    expect(out['nets/vgg/VGG_ILSVRC_16_layers_deploy.prototxt']).toEqual({ pool5: [1, 512, 7, 7] });
    expect(out['nets/bvlc_alexnet/deploy.prototxt']).toEqual({ prob: [1, 1000] });
    expect(out['nets/mobilenet_v2/mobilenet_v2_deploy.prototxt']).toEqual({ prob: [1, 1000, 1, 1] });
    expect(out['nets/gender_net/deploy.prototxt']).toEqual({ prob: [1, 2] });
    expect(skipped.map((n) => n.file)).toContain('nets/mobilenet_ssd/MobileNetSSD_deploy.prototxt');
  });
});

describe.skipIf(!hasCorpus)('corpus deploy nets: top shapes at batch 1 match OpenCV', () => {
  it.each(built.map((n) => [n.file, n] as const))('%s', (file, entry) => {
    const param = readNetParameter(corpus(file), { log: false });
    setInputs(
      param,
      Object.entries(entry.inputs!).map(([blob, shape]) => ({ blob, shape })),
    );
    param.layer.forEach(constantFillers);
    const net = new Net(param, { registry, phase: Phase.TEST, log: false, name: file });

    const mismatches: string[] = [];
    for (const [name, type, tops] of entry.layers!) {
      if (!net.hasLayer(name)) {
        mismatches.push(`${name}: no such layer`);
        continue;
      }
      const i = net.layerIndexOf(name);
      const got = net.topVecs[i]!.map((b) => b.shape);
      const gotType = net.layers[i]!.type;
      if (gotType !== type || JSON.stringify(got) !== JSON.stringify(tops)) {
        mismatches.push(`${name} (${gotType}): ${JSON.stringify(got)}, OpenCV (${type}): ${JSON.stringify(tops)}`);
      }
    }
    expect(mismatches).toEqual([]);
    // Every non-Input, non-Split layer of the net was checked.
    const checked = new Set(entry.layers!.map(([name]) => name));
    expect(net.layerNames.filter((n, i) => !checked.has(n) && !['Input', 'Split'].includes(net.layers[i]!.type))).toEqual([]);

    const outputs = Object.fromEntries(net.outputBlobNames.map((n, k) => [n, net.outputBlobs[k]!.shape]));
    expect(outputs).toEqual(entry.outputs);
  });

  // Listed so the run shows what is left out and why.
  it.skip.each(skipped.map((n) => [n.file, n.skip!] as const))('%s: %s', () => {});
});
