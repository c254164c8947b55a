/**
 * The playground's worker: trains LeNet, answers predictions for the drawn digit and runs the
 * user's own model, so that the page never waits on a forward or backward pass.
 */
import { activeGemmKernelName, cpuBackend, initThreads, setHostAllocator, setNumThreads, threadPoolInfo, wasmGemmInfo, type Backend } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net, setInputs } from '@caffe-ts/net';
import { decodeNetParameter, encodeNetParameter, parseNetParameter, Phase } from '@caffe-ts/proto';
import { createSolver, type Solver } from '@caffe-ts/solver';
import { lenetDeploy, lenetSolver, lenetTrainTest } from './lenet.js';
import { BatchReader, loadDigits, type Digits } from './mnist.js';
import type { BackendChoice, FromWorker, ModelInfo, ToWorker, TrainRequest } from './protocol.js';

interface WorkerScope {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  setImmediate?: (callback: () => void) => void;
}
const scope = self as unknown as WorkerScope;
const post = (message: FromWorker, transfer: Transferable[] = []) => scope.postMessage(message, transfer);

// The solver yields a macrotask after each iteration (setImmediate where there is one, else
// setTimeout, which browsers clamp to 4 ms once nested). A MessageChannel gives the page's
// messages (stop, predict) their turn without that wait.
{
  const queue: (() => void)[] = [];
  const channel = new MessageChannel();
  channel.port1.onmessage = () => queue.shift()?.();
  scope.setImmediate = (callback) => {
    queue.push(callback);
    channel.port2.postMessage(null);
  };
}

const registry = registerBuiltinLayers(new LayerRegistry());
/** The test net's batch, at most (the zoo's LeNet tests in batches of 100). */
const TEST_BATCH = 100;

let digitsUrl: string | undefined;
let digits: Promise<Digits> | undefined;
function bundledDigits(): Promise<Digits> {
  if (!digitsUrl) return Promise.reject(new Error('the page has not said where the digits are'));
  digits ??= loadDigits(digitsUrl);
  return digits;
}

interface Training {
  solver: Solver;
  backend: Backend;
  /** The zoo's deploy LeNet, sharing the weights being trained (for the drawn digit). */
  deploy: Net;
  testNet: Net;
  stop: boolean;
  /** Its loop has ended. */
  finished: boolean;
}
let training: Training | null = null;
/** The latest run: its nets predict drawn digits and export weights. */
let trained: Training | null = null;

/**
 * A replaced run's nets give their memory back now (on the gpu backend, textures that the
 * collector never frees), once its loop has ended; a gpu backend of its own goes too (each run
 * makes one, with a GL context: browsers keep only a few).
 */
function disposeRun(run: Training): void {
  run.deploy.dispose();
  run.testNet.dispose();
  run.solver.dispose();
  (run.backend as Backend & { destroy?: () => void }).destroy?.();
}
let userModel: Net | null = null;

/**
 * The CPU backend's kernel threads: `asked` (default every core) where memory can be shared
 * between workers, i.e. where the page is cross-origin isolated (vite.config.ts sends the
 * COOP/COEP headers); else one, saying why.
 */
async function startKernelThreads(asked: number | undefined): Promise<{ threads: number; note: string }> {
  const pool = threadPoolInfo();
  if (!pool.supported) {
    setNumThreads(1);
    return { threads: 1, note: `1 thread: ${pool.reason ?? 'kernel threads unsupported'}` };
  }
  const threads = await initThreads(asked);
  // Blobs in the kernels' shared memory, as the caffe command places them: the threads then work
  // on them in place instead of copying each layer's operands in and out.
  setHostAllocator(threads > 1 ? 'wasm' : undefined);
  return { threads, note: `${threads} kernel thread${threads === 1 ? '' : 's'}` };
}

async function makeBackend(choice: BackendChoice, threadsAsked?: number): Promise<{ backend: Backend; mode: string; detail: string; threads: number }> {
  if (choice === 'cpu') {
    const info = wasmGemmInfo();
    const mode = info.variant ? `wasm-${info.variant}` : 'js';
    const { threads, note } = info.variant ? await startKernelThreads(threadsAsked) : { threads: 1, note: '1 thread' };
    const detail = info.variant
      ? `CPU backend, GEMM/conv in WebAssembly ${info.variant === 'relaxed-simd' ? 'relaxed SIMD' : 'SIMD'} (MR×NR ${info.blocking.MR}×${info.blocking.NR}), ${note}`
      : 'CPU backend, plain JavaScript (this engine has no WebAssembly SIMD)';
    return { backend: cpuBackend(), mode, detail, threads };
  }
  // Loaded on demand: gpu.js is most of the bundle and the CPU path never needs it.
  const { createGpuBackend } = await import('@caffe-ts/backend-gpu');
  const backend = createGpuBackend();
  const info = backend.info();
  const skipped = info.skipped.filter((s) => s.mode !== 'headlessgl').map((s) => `${s.mode}: ${s.reason}`);
  const detail =
    `gpu.js ${info.gpuJsMode}` +
    (Number.isFinite(info.maxTextureSize) ? `, max texture ${info.maxTextureSize}` : '') +
    (skipped.length ? ` (passed over ${skipped.join('; ')})` : '');
  return { backend, mode: info.mode, detail, threads: 1 };
}

function argmaxAccuracy(scores: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number {
  let right = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[i * classes + c]! > scores[i * classes + best]!) best = c;
    if (best === labels[i]) right++;
  }
  return right / labels.length;
}

function postFilters(net: Net, iter: number): void {
  const w = net.params.get('conv1')?.[0];
  if (!w) return;
  const weights = Float32Array.from(w.cpuData());
  post({ type: 'filters', iter, shape: [...w.shape], weights }, [weights.buffer]);
}

/** Accuracy and loss of the current weights over the first `batches` test batches of held-out digits. */
function test(testNet: Net, trainNet: Net, reader: BatchReader, batches: number): { accuracy: number; loss: number } {
  testNet.shareTrainedLayersWith(trainNet);
  reader.rewind();
  const batch = testNet.blob('data').shape[0]!;
  let accuracy = 0;
  let loss = 0;
  for (let b = 0; b < batches; b++) {
    setInputs(testNet, reader.batch(batch));
    loss += testNet.forward();
    accuracy += testNet.blob('accuracy').cpuData()[0]!;
  }
  return { accuracy: accuracy / batches, loss: loss / batches };
}

async function train(req: TrainRequest): Promise<void> {
  if (training) training.stop = true;
  post({ type: 'status', text: 'loading the bundled MNIST digits…' });
  const data = await bundledDigits();
  post({ type: 'status', text: `starting the ${req.backend === 'gpu' ? 'gpu.js' : 'CPU'} backend…` });
  const { backend, mode, detail, threads } = await makeBackend(req.backend, req.threads);
  post({ type: 'backend', backend: req.backend, mode, detail, threads });

  // Fewer held-out digits than a batch of 100 make a smaller test batch (a quick GPU check).
  const testBatch = Math.min(TEST_BATCH, Math.max(1, req.testDigits));
  const testBatches = Math.max(1, Math.round(req.testDigits / testBatch));
  const netParam = lenetTrainTest(req.batchSize, testBatch);
  const solver = createSolver(lenetSolver(netParam, req.iterations), { registry, backend, log: false });
  const testNet = new Net(netParam, { phase: Phase.TEST, registry, backend, log: false });
  const deploy = new Net(lenetDeploy(), { phase: Phase.TEST, registry, backend, log: false });
  deploy.shareTrainedLayersWith(solver.net);
  const run: Training = { solver, backend, deploy, testNet, stop: false, finished: false };
  training = run;
  const previous = trained;
  trained = run;
  if (previous?.finished) disposeRun(previous);

  const trainReader = new BatchReader(data.train);
  const testReader = new BatchReader(data.test);
  post({
    type: 'status',
    text: `training LeNet: ${data.train.count} train digits, ${testBatches * testBatch} of ${data.test.count} held-out digits per test, batch ${req.batchSize}`,
  });
  postFilters(solver.net, 0);

  let reason: 'finished' | 'stopped' | 'error' = 'finished';
  const times: number[] = [];
  let lastFilters = performance.now();
  try {
    while (solver.iter < req.iterations) {
      if (run.stop) {
        reason = 'stopped';
        break;
      }
      const batch = trainReader.batch(req.batchSize);
      setInputs(solver.net, batch);
      const t0 = performance.now();
      await solver.step(1);
      times.push(performance.now() - t0);
      if (times.length > 20) times.shift();
      const loss = solver.net.blob('loss').cpuData()[0]!;
      const batchAccuracy = argmaxAccuracy(solver.net.blob('ip2').cpuData(), batch.label, 10);
      const itersPerSecond = (1000 * times.length) / times.reduce((a, b) => a + b, 0);
      post({ type: 'iteration', iter: solver.iter, loss, batchAccuracy, lr: solver.learningRate, itersPerSecond });
      if (solver.iter === 1 && req.backend === 'cpu') {
        // The GEMM kernel is picked on the first large product: say which one ran.
        post({ type: 'backend', backend: 'cpu', mode: activeGemmKernelName(), detail, threads });
      }
      const now = performance.now();
      if (now - lastFilters > 300 || solver.iter === req.iterations) {
        postFilters(solver.net, solver.iter);
        lastFilters = now;
      }
      if (solver.iter % req.testInterval === 0 || solver.iter === req.iterations) {
        const r = test(testNet, solver.net, testReader, testBatches);
        post({ type: 'test', iter: solver.iter, ...r });
      }
    }
  } catch (e) {
    reason = 'error';
    post({ type: 'error', where: 'train', message: (e as Error).message });
  }
  if (training === run) training = null;
  run.finished = true;
  if (trained !== run) disposeRun(run);
  post({ type: 'done', iter: solver.iter, reason });
}

function predict(id: number, pixels: Float32Array): void {
  if (!trained) {
    post({ type: 'error', where: 'predict', message: 'Train LeNet first: the drawn digit goes through the net being trained.' });
    return;
  }
  const net = trained.deploy;
  setInputs(net, { data: pixels });
  net.forward();
  const probabilities = Float32Array.from(net.blob('prob').cpuData());
  post({ type: 'prediction', id, probabilities }, [probabilities.buffer]);
}

function exportWeights(): void {
  if (!trained) throw new Error('Train LeNet first: there are no weights to save yet.');
  const bytes = encodeNetParameter(trained.solver.net.toProto());
  post({ type: 'weights', iter: trained.solver.iter, bytes }, [bytes.buffer as ArrayBuffer]);
}

function loadModel(prototxt: string, prototxtName: string, weights: ArrayBuffer, weightsName: string): void {
  const param = parseNetParameter(prototxt, prototxtName);
  const net = new Net(param, { phase: Phase.TEST, registry, backend: cpuBackend(), log: false });
  const saved = decodeNetParameter(new Uint8Array(weights), weightsName);
  net.copyTrainedLayersFrom(saved);
  const sources = new Set((saved.layer.length > 0 ? saved.layer : saved.layers).filter((l) => l.blobs.length > 0).map((l) => l.name));
  const withParams = net.layers.map((l, i) => ({ l, name: net.layerNames[i]! })).filter(({ l }) => l.blobs.length > 0);
  if (net.inputBlobs.length === 0) {
    throw new Error(
      `${prototxtName}: the net has no inputs to feed (no Input layer or input: field); use its deploy prototxt rather than a train/val one`,
    );
  }
  const info: ModelInfo = {
    name: net.name,
    layers: net.layers.length,
    inputs: net.inputBlobNames.map((name, i) => ({ name, shape: [...net.inputBlobs[i]!.shape] })),
    outputs: net.outputBlobNames.map((name, i) => ({ name, shape: [...net.outputBlobs[i]!.shape] })),
    copied: withParams.filter(({ name }) => sources.has(name)).length,
    missing: withParams.filter(({ name }) => !sources.has(name)).map(({ name }) => name),
  };
  // The model it replaces lets go of its memory now rather than when the collector gets to it.
  userModel?.dispose();
  userModel = net;
  post({ type: 'modelLoaded', info });
}

function runModel(id: number, input: Float32Array): void {
  const net = userModel;
  if (!net) throw new Error('Load a prototxt and a caffemodel first.');
  const t0 = performance.now();
  setInputs(net, { [net.inputBlobNames[0]!]: input });
  net.forward();
  const ms = performance.now() - t0;
  const blob = net.outputBlobs[net.outputBlobs.length - 1]!;
  const values = Float32Array.from(blob.cpuData());
  post({ type: 'modelOutput', id, blob: net.outputBlobNames[net.outputBlobs.length - 1]!, shape: [...blob.shape], values, ms }, [values.buffer]);
}

scope.onmessage = (event) => {
  const msg = event.data;
  const fail = (where: 'train' | 'predict' | 'model' | 'export') => (e: unknown) => post({ type: 'error', where, message: (e as Error).message });
  try {
    switch (msg.type) {
      case 'init':
        digitsUrl = msg.digitsUrl;
        // Fetch the digits while the page settles, so the first Train click starts at once.
        bundledDigits().then(
          (d) => post({ type: 'status', text: `ready: ${d.train.count} training and ${d.test.count} held-out MNIST digits loaded` }),
          (e) => post({ type: 'error', where: 'digits', message: `could not load the bundled digits: ${(e as Error).message}` }),
        );
        break;
      case 'train':
        train(msg).catch(fail('train'));
        break;
      case 'stop':
        if (training) training.stop = true;
        break;
      case 'predict':
        predict(msg.id, msg.pixels);
        break;
      case 'exportWeights':
        exportWeights();
        break;
      case 'loadModel':
        loadModel(msg.prototxt, msg.prototxtName, msg.weights, msg.weightsName);
        break;
      case 'runModel':
        runModel(msg.id, msg.input);
        break;
    }
  } catch (e) {
    fail(msg.type === 'predict' ? 'predict' : msg.type === 'exportWeights' ? 'export' : 'model')(e);
  }
};

