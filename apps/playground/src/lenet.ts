/**
 * LeNet as the zoo defines it (packages/zoo/models/lenet), adapted for a page: the LMDB `Data`
 * layers become `Input` layers that the worker fills with batches of the bundled digits (as a
 * pycaffe loop sets `net.blobs['data'].data`), and the solver keeps Caffe's LeNet
 * hyper-parameters (SGD, base_lr 0.01, momentum 0.9, weight_decay 5e-4, "inv" policy).
 */
import { createMessage, parseNetParameter, parseSolverParameter, Phase, type LayerParameter, type NetParameter, type SolverParameter } from '@caffe-ts/proto';
import deployText from '@caffe-ts/zoo/models/lenet/lenet_deploy.prototxt?raw';
import solverText from '@caffe-ts/zoo/models/lenet/lenet_solver.prototxt?raw';
import trainTestText from '@caffe-ts/zoo/models/lenet/lenet_train_test.prototxt?raw';

export const LENET_FILES = {
  trainTest: 'packages/zoo/models/lenet/lenet_train_test.prototxt',
  solver: 'packages/zoo/models/lenet/lenet_solver.prototxt',
  deploy: 'packages/zoo/models/lenet/lenet_deploy.prototxt',
};

/** The train/test net with `Input` layers: `trainBatch` digits a TRAIN step, `testBatch` a TEST one. */
export function lenetTrainTest(trainBatch: number, testBatch: number): NetParameter {
  const param = parseNetParameter(trainTestText, LENET_FILES.trainTest);
  param.layer = param.layer.map((layer): LayerParameter => {
    if (layer.type !== 'Data') return layer;
    const test = layer.include.some((rule) => rule.phase === Phase.TEST);
    const batch = test ? testBatch : trainBatch;
    return createMessage<LayerParameter>('LayerParameter', {
      name: layer.name,
      type: 'Input',
      top: layer.top,
      include: layer.include,
      input_param: { shape: [{ dim: [batch, 1, 28, 28] }, { dim: [batch] }] },
    });
  });
  return param;
}

/** The deploy net (one 28×28 digit in, `prob` out). */
export function lenetDeploy(): NetParameter {
  return parseNetParameter(deployText, LENET_FILES.deploy);
}

/**
 * The zoo's LeNet solver with the net inline, no snapshots, no solver-run test passes (the worker
 * tests on the held-out digits itself, feeding the test net's Input layers).
 */
export function lenetSolver(net: NetParameter, maxIter: number): SolverParameter {
  const param = parseSolverParameter(solverText, LENET_FILES.solver);
  return createMessage<SolverParameter>('SolverParameter', {
    net_param: net,
    base_lr: param.base_lr,
    momentum: param.momentum,
    weight_decay: param.weight_decay,
    lr_policy: param.lr_policy,
    gamma: param.gamma,
    power: param.power,
    max_iter: maxIter,
    display: 0,
    snapshot: 0,
    snapshot_after_train: false,
    test_interval: 0,
    random_seed: 1701,
  });
}
