import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { readNetParameter } from '@caffe-ts/net/node';
import { zooModel, zooModels } from '@caffe-ts/zoo';
import { createMessage, parseSolverParameter, Phase, type LayerParameter, type NetParameter } from '@caffe-ts/proto';
import { corpus, hasCorpus, repoRoot } from './helpers.js';

/** Zoo model → the corpus deploy net it must match (shapes and learnable params). */
const CORPUS: Record<string, string> = {
  lenet: 'nets/mnist_lenet/lenet.prototxt',
  cifar10_quick: 'nets/cifar10/cifar10_quick.prototxt',
  cifar10_full: 'nets/cifar10/cifar10_full.prototxt',
  caffenet: 'nets/bvlc_reference_caffenet/deploy.prototxt',
  caffenet_full_conv: 'nets/misc_examples/bvlc_caffenet_full_conv.prototxt',
  rcnn_ilsvrc13: 'nets/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt',
  finetune_flickr_style: 'nets/finetune_flickr_style/deploy.prototxt',
  alexnet: 'nets/bvlc_alexnet/deploy.prototxt',
  googlenet: 'nets/bvlc_googlenet/deploy.prototxt',
  vgg16: 'nets/vgg/VGG_ILSVRC_16_layers_deploy.prototxt',
  resnet50: 'nets/resnet/ResNet-50-deploy.prototxt',
  'squeezenet_v1.1': 'nets/squeezenet_v1.1/deploy.prototxt',
  mobilenet_v1: 'nets/mobilenet_v1/mobilenet_deploy.prototxt',
  mobilenet_v2: 'nets/mobilenet_v2/mobilenet_v2_deploy.prototxt',
};

interface OracleNet {
  file: string;
  inputs?: Record<string, number[]>;
  outputs?: Record<string, number[]>;
  layers?: [string, string, number[][]][];
}
const oracle = JSON.parse(readFileSync(`${repoRoot}/tests/fixtures/oracle/deploy-shapes.json`, 'utf8')) as { nets: OracleNet[] };

/** Input shapes set to batch 1 (both the `Input` layer and legacy `input_shape` forms). */
function batchOne(param: NetParameter): NetParameter {
  for (const l of param.layer) if (l.type === 'Input') for (const s of l.input_param!.shape) s.dim[0] = 1;
  for (const s of param.input_shape) s.dim[0] = 1;
  if (param.input_dim.length > 0) param.input_dim[0] = 1;
  return param;
}

/** Layer name → shapes of its learnable param blobs. */
function paramShapes(net: Net): Map<string, number[][]> {
  return new Map([...net.params].map(([name, blobs]) => [name, blobs.map((b) => [...b.shape])]));
}

describe('zoo deploy nets', () => {
  it('covers every zoo model', () => {
    expect(Object.keys(CORPUS).sort()).toEqual(zooModels().sort());
  });

  for (const name of Object.keys(CORPUS)) {
    it.skipIf(!hasCorpus)(`${name}: batch-1 shapes match the OpenCV oracle and params match the corpus net`, () => {
      const entry = oracle.nets.find((n) => n.file === CORPUS[name]);
      expect(entry?.layers, `oracle entry for ${CORPUS[name]}`).toBeDefined();
      const zooNet = new Net(batchOne(readNetParameter(zooModel(name).files.deploy!, { log: false })), { log: false });
      // Every top the oracle lists with a name the zoo net also has must agree; outputs must exist.
      let compared = 0;
      for (const [layer, , tops] of entry!.layers!) {
        const lp = zooNet.hasLayer(layer) ? zooNet.layer(layer).param : null;
        if (!lp) continue;
        lp.top.forEach((top, i) => {
          expect(zooNet.blob(top).shape, `${name}: top ${top} of ${layer}`).toEqual(tops[i]);
          compared++;
        });
      }
      expect(compared).toBeGreaterThanOrEqual(entry!.layers!.length - 1);
      for (const [out, shape] of Object.entries(entry!.outputs!)) expect(zooNet.blob(out).shape, `${name}: output ${out}`).toEqual(shape);
      const zooParams = paramShapes(zooNet);
      zooNet.layers.length = 0; // let the zoo net's memory go before building the corpus one
      const corpusNet = new Net(batchOne(readNetParameter(corpus(CORPUS[name]!), { log: false })), { log: false });
      const corpusParams = paramShapes(corpusNet);
      for (const [layer, shapes] of corpusParams) expect(zooParams.get(layer), `${name}: params of ${layer}`).toEqual(shapes);
      // Extra learnable layers only where the corpus file is truncated (VGG's ends at pool5).
      const extra = [...zooParams.keys()].filter((l) => !corpusParams.has(l));
      expect(extra).toEqual(name === 'vgg16' ? ['fc6', 'fc7', 'fc8'] : []);
    }, 60_000);
  }
});

/** Zoo model → the corpus train/val net its own must match layer for layer (names, types, param specs). */
const CORPUS_TRAIN: Record<string, string> = {
  caffenet: 'nets/bvlc_reference_caffenet/train_val.prototxt',
  alexnet: 'nets/bvlc_alexnet/train_val.prototxt',
  finetune_flickr_style: 'nets/finetune_flickr_style/train_val.prototxt',
};

describe('zoo train/val nets against the released ones', () => {
  for (const [name, file] of Object.entries(CORPUS_TRAIN)) {
    it.skipIf(!hasCorpus)(`${name}: the same layers, in order, with the same learning-rate and decay multipliers`, () => {
      const summary = (param: NetParameter) =>
        param.layer.map((l) => `${l.name} ${l.type} ${l.param.map((p) => `lr ${p.lr_mult} decay ${p.decay_mult}`).join(', ')}`);
      expect(summary(readNetParameter(zooModel(name).files.trainTest!, { log: false }))).toEqual(summary(readNetParameter(corpus(file), { log: false })));
    });
  }
});

describe('zoo train/test nets and solvers', () => {
  const withTraining = zooModels().filter((m) => m !== 'lenet' && zooModel(m).files.trainTest);

  it('covers the models Caffe trained with a solver', () => {
    expect(withTraining.sort()).toEqual(['alexnet', 'caffenet', 'cifar10_full', 'cifar10_quick', 'finetune_flickr_style', 'googlenet', 'squeezenet_v1.1']);
  });

  for (const name of withTraining) {
    it(`${name}: builds in TRAIN and TEST with inputs in place of its Data layers; its solver points at it`, () => {
      const m = zooModel(name);
      const solver = parseSolverParameter(readFileSync(m.files.solver!, 'utf8'), m.files.solver);
      // Found beside the solver, as caffe train falls back to the solver's folder.
      expect(join(dirname(m.files.solver!), solver.net)).toBe(m.files.trainTest);
      expect(solver.base_lr).toBeGreaterThan(0);
      for (const phase of [Phase.TRAIN, Phase.TEST]) {
        const param = readNetParameter(m.files.trainTest!, { log: false });
        const isData = (l: LayerParameter) => l.type === 'Data' || l.type === 'ImageData';
        const crop = param.layer.find(isData)!.transform_param!.crop_size || 32;
        let swapped = 0;
        param.layer = param.layer.map((l) => {
          // Constant-zero weights (no filler) keep construction fast; only the structure is tested.
          if (l.convolution_param) l.convolution_param.weight_filler = null;
          if (l.inner_product_param) l.inner_product_param.weight_filler = null;
          if (!isData(l)) return l;
          swapped++;
          return createMessage<LayerParameter>('LayerParameter', {
            name: l.name, type: 'Input', top: l.top.slice(), include: l.include,
            input_param: { shape: [{ dim: [2, 3, crop, crop] }, { dim: [2] }] },
          });
        });
        expect(swapped).toBe(2);
        const net = new Net(param, { phase, log: false });
        const losses = net.outputBlobNames.filter((_, i) => net.blobLossWeights[net.outputBlobIndices[i]!] !== 0);
        const what = `${name} ${Phase[phase]} outputs ${net.outputBlobNames.join(', ')}`;
        if (phase === Phase.TRAIN) expect(losses.length, what).toBeGreaterThan(0);
        else expect(net.outputBlobNames.some((b) => /accuracy|top-1/.test(b)), what).toBe(true);
        if (name === 'googlenet') {
          expect(losses.sort()).toEqual(['loss1/loss1', 'loss2/loss2', 'loss3/loss3']);
          expect(net.blobLossWeights[net.outputBlobIndices[net.outputBlobNames.indexOf('loss1/loss1')]!]).toBeCloseTo(0.3);
        }
      }
    }, 60_000);
  }
});
