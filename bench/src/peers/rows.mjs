// The rows of the peer comparison: what each one runs, in which group (--only), and which
// frameworks can run it at all. Networks come from the zoo package's prototxts.
// Only the caffe-ts worker builds nets, so caffe-ts packages load lazily (none in the peers'
// processes, whose peak RSS is measured).
import { readFileSync } from 'node:fs';

export const FRAMEWORKS = ['caffe-ts', 'caffe-ts-native', 'tfjs-wasm', 'tfjs-cpu', 'onnxruntime'];

/** Why a framework has no figure for a kind of row (printed in its cell). */
export const NOT_AVAILABLE = {
  train: { 'tfjs-wasm': 'n/a: no Conv2DBackpropFilter kernel', onnxruntime: 'n/a: inference only' },
};

const zoo = () => import('@caffe-ts/zoo');
const deploy = async (model) => (await zoo()).zooModel(model).files.deploy;
const trainTest = async (model) => (await zoo()).zooModel(model).files.trainTest;

/**
 * Every row. kind: gemm (n³ SGEMM), infer (deploy net forward at `batch`), train (TRAIN-phase
 * forward + backward at `batch`, Data layers swapped for an Input of the same tops).
 * quick: in the --quick run; tfjsCpu: false where the pure-JS backend would take many minutes
 * (run anyway with --slow); tfjsCpuSteps: timed training steps there (no warm-up).
 */
export const ROWS = [
  { id: 'gemm-256', group: 'gemm', kind: 'gemm', n: 256, label: 'SGEMM 256³', quick: true },
  { id: 'gemm-512', group: 'gemm', kind: 'gemm', n: 512, label: 'SGEMM 512³', quick: true },
  { id: 'gemm-1024', group: 'gemm', kind: 'gemm', n: 1024, label: 'SGEMM 1024³' },
  { id: 'gemm-2048', group: 'gemm', kind: 'gemm', n: 2048, label: 'SGEMM 2048³', tfjsCpu: false, tfjsCpuWhy: 'pure JS: ~1 min a product' },
  { id: 'lenet-train', group: 'lenet', kind: 'train', file: () => trainTest('lenet'), batch: 64, input: [1, 28, 28], label: 'LeNet train step b64', tfjsCpuSteps: 1 },
  { id: 'lenet-infer', group: 'lenet', kind: 'infer', file: () => deploy('lenet'), batch: 64, label: 'LeNet inference b64', quick: true },
  { id: 'cifar10-train', group: 'cifar10', kind: 'train', file: () => trainTest('cifar10_quick'), batch: 100, input: [3, 32, 32], label: 'CIFAR-10 quick train step b100', tfjsCpuSteps: 1, tfjsCpu: false,
    tfjsCpuWhy: 'its Conv2DBackpropFilter: about 6× LeNet\'s multiply-adds, LeNet\'s step already takes minutes' },
  { id: 'caffenet-b1', group: 'caffenet', kind: 'infer', file: () => deploy('caffenet'), batch: 1, label: 'CaffeNet b1' },
  { id: 'caffenet-b10', group: 'caffenet', kind: 'infer', file: () => deploy('caffenet'), batch: 10, label: 'CaffeNet b10' },
  { id: 'googlenet', group: 'googlenet', kind: 'infer', file: () => deploy('googlenet'), batch: 1, label: 'GoogLeNet b1' },
  { id: 'resnet50', group: 'resnet50', kind: 'infer', file: () => deploy('resnet50'), batch: 1, label: 'ResNet-50 b1' },
  { id: 'squeezenet', group: 'squeezenet', kind: 'infer', file: () => deploy('squeezenet_v1.1'), batch: 1, label: 'SqueezeNet 1.1 b1', quick: true },
  { id: 'mobilenet_v2', group: 'mobilenet_v2', kind: 'infer', file: () => deploy('mobilenet_v2'), batch: 1, label: 'MobileNet v2 b1' },
];

export const GROUPS = [...new Set(ROWS.map((r) => r.group))];

/** The rows a run selects: --only groups or row ids, --quick keeps the quick ones. */
export function selectRows({ only, quick }) {
  let rows = ROWS;
  if (only) {
    const want = only.split(',').map((s) => s.trim()).filter(Boolean);
    for (const w of want) {
      if (!GROUPS.includes(w) && !ROWS.some((r) => r.id === w)) {
        throw new Error(`--only ${w}: unknown group or row (groups: ${GROUPS.join(', ')}; rows: ${ROWS.map((r) => r.id).join(', ')})`);
      }
    }
    rows = rows.filter((r) => want.includes(r.group) || want.includes(r.id));
  }
  if (quick) rows = rows.filter((r) => r.quick);
  return rows;
}

/**
 * The NetParameter of a net row. Deploy nets get their Input batch dimension set to the row's
 * batch; training nets get their Data layers replaced by one Input layer with the same tops
 * (data N×C×H×W, label N), as bench/src/lenet.mjs does.
 */
export async function rowNetParameter(row) {
  const { parseNetParameter, createMessage, Phase } = await import('@caffe-ts/proto');
  const file = await row.file();
  const param = parseNetParameter(readFileSync(file, 'utf8'));
  if (row.kind === 'infer') {
    const inputs = param.layer.filter((l) => l.type === 'Input');
    if (inputs.length !== 1) throw new Error(`${file}: expected one Input layer, found ${inputs.length}`);
    for (const shape of inputs[0].input_param.shape) shape.dim[0] = row.batch;
    return { param, phase: Phase.TEST };
  }
  const dataTops = [];
  param.layer = param.layer.filter((l) => {
    if (l.type !== 'Data') return true;
    const inTrain = l.include.length === 0 || l.include.some((r) => r.phase === Phase.TRAIN);
    if (inTrain && dataTops.length === 0) dataTops.push(...l.top);
    return false;
  });
  if (dataTops.length !== 2) throw new Error(`${file}: expected a TRAIN Data layer with data and label tops`);
  param.layer.unshift(createMessage('LayerParameter', {
    name: 'input',
    type: 'Input',
    top: dataTops,
    input_param: { shape: [{ dim: [row.batch, ...row.input] }, { dim: [row.batch] }] },
  }));
  return { param, phase: Phase.TRAIN };
}
