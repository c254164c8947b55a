import './style.css';
import { LiveChart } from './charts.js';
import { DrawPad } from './draw-pad.js';
import { drawFilters } from './filters.js';
import type { BackendChoice, FromWorker, ModelInfo, ToWorker } from './protocol.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el as T;
};

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (msg: ToWorker, transfer: Transferable[] = []) => worker.postMessage(msg, transfer);
send({ type: 'init', digitsUrl: new URL('mnist-digits.bin', document.baseURI).href });

const lossChart = new LiveChart($('loss-chart'), 'training loss', [{ label: 'loss', stroke: '#c0392b' }]);
const accuracyChart = new LiveChart(
  $('accuracy-chart'),
  'accuracy',
  [
    { label: 'held-out digits', stroke: '#2471a3' },
    { label: 'training batch', stroke: '#a9cce3' },
  ],
  [0, 1],
);

const status = (text: string) => ($('status').textContent = text);
const fmt = (v: number, digits = 4) => v.toFixed(digits);

// ---- training ---------------------------------------------------------------------------------

const trainButton = $<HTMLButtonElement>('train');
const stopButton = $<HTMLButtonElement>('stop');
let training = false;

function setTraining(on: boolean): void {
  training = on;
  trainButton.disabled = on;
  stopButton.disabled = !on;
  document.body.dataset['training'] = on ? 'yes' : 'no';
}

/** `?threads=N` in the page's address: the CPU backend's kernel threads (default: every core). */
const threadsAsked = ((n) => (Number.isInteger(n) && n >= 1 ? n : undefined))(Number(new URLSearchParams(location.search).get('threads') ?? NaN));

$<HTMLFormElement>('train-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (training) return;
  const num = (id: string) => Number($<HTMLInputElement>(id).value);
  const backend = (document.querySelector<HTMLInputElement>('input[name=backend]:checked')?.value ?? 'cpu') as BackendChoice;
  lossChart.clear();
  accuracyChart.clear();
  $('iteration').textContent = '0';
  $('loss').textContent = '–';
  $('accuracy').textContent = '–';
  $('accuracy').dataset['value'] = '';
  $('backend-mode').textContent = '…';
  $('backend-mode').dataset['backend'] = '';
  $('backend-detail').textContent = '';
  // A new net: the last prediction was the old one's.
  $('prediction').replaceChildren();
  setTraining(true);
  send({
    type: 'train',
    backend,
    iterations: Math.max(1, Math.round(num('iterations'))),
    batchSize: Math.max(1, Math.round(num('batch'))),
    testInterval: Math.max(1, Math.round(num('test-interval'))),
    testDigits: Math.max(1, Math.round(num('test-digits'))),
    ...(threadsAsked ? { threads: threadsAsked } : {}),
  });
});
stopButton.addEventListener('click', () => send({ type: 'stop' }));

const saveButton = document.createElement('button');
saveButton.type = 'button';
saveButton.id = 'save-weights';
saveButton.textContent = 'Save weights (.caffemodel)';
saveButton.disabled = true;
saveButton.addEventListener('click', () => send({ type: 'exportWeights' }));
document.querySelector('#train-form .buttons')!.append(saveButton);

// ---- drawing ----------------------------------------------------------------------------------

const pad = new DrawPad($<HTMLCanvasElement>('pad'));
let predictionId = 0;
pad.onStroke = () => {
  const pixels = pad.toMnist($<HTMLCanvasElement>('pad-small'));
  if (pixels) send({ type: 'predict', id: ++predictionId, pixels }, [pixels.buffer]);
};
$('clear').addEventListener('click', () => {
  pad.clear();
  $<HTMLCanvasElement>('pad-small').getContext('2d')!.clearRect(0, 0, 28, 28);
  $('prediction').replaceChildren();
});

/** The k largest values as bars: label, value, a bar as wide as the value (probabilities) or relative. */
function showTop(list: HTMLElement, values: Float32Array, k: number, label: (i: number) => string): void {
  const order = Array.from(values.keys()).sort((a, b) => values[b]! - values[a]!).slice(0, k);
  const sum = values.reduce((a, b) => a + b, 0);
  const probabilities = values.every((v) => v >= 0) && Math.abs(sum - 1) < 1e-3;
  const max = Math.max(...order.map((i) => Math.abs(values[i]!)), 1e-12);
  list.replaceChildren(
    ...order.map((i) => {
      const li = document.createElement('li');
      li.dataset['class'] = String(i);
      li.dataset['value'] = String(values[i]);
      const width = probabilities ? values[i]! : Math.abs(values[i]!) / max;
      li.innerHTML = `<span class="name"></span><span class="bar" style="width:${(width * 100).toFixed(1)}%"></span><span class="value">${
        probabilities ? `${(values[i]! * 100).toFixed(1)}%` : values[i]!.toPrecision(4)
      }</span>`;
      li.querySelector('.name')!.textContent = label(i);
      return li;
    }),
  );
}

// ---- your own model ---------------------------------------------------------------------------

const fileOf = (id: string): File | undefined => $<HTMLInputElement>(id).files?.[0];
let model: ModelInfo | null = null;
let labels: string[] = [];
let runId = 0;

$('model-load').addEventListener('click', async () => {
  const prototxt = fileOf('model-prototxt');
  const weights = fileOf('model-weights');
  if (!prototxt || !weights) {
    $('model-info').textContent = 'Pick a prototxt and a caffemodel first.';
    return;
  }
  const labelFile = fileOf('model-labels');
  labels = labelFile ? (await labelFile.text()).split(/\r?\n/).filter((l) => l.trim() !== '') : [];
  $('model-info').textContent = `loading ${prototxt.name} and ${weights.name}…`;
  const bytes = await weights.arrayBuffer();
  send({ type: 'loadModel', prototxt: await prototxt.text(), prototxtName: prototxt.name, weights: bytes, weightsName: weights.name }, [bytes]);
});

/** The picked image as the model's first input: resized to H×W, channels in the chosen order, (pixel − mean) × scale. */
async function modelInput(info: ModelInfo, file: File): Promise<Float32Array> {
  const shape = info.inputs[0]!.shape;
  const [c = 1, h = 1, w = 1] = shape.length >= 4 ? shape.slice(1) : shape.length === 3 ? shape : [1, 1, shape[shape.length - 1]!];
  const bitmap = await createImageBitmap(file);
  const canvas = $<HTMLCanvasElement>('model-preview');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const order = $<HTMLSelectElement>('model-order').value;
  const range = Number($<HTMLSelectElement>('model-range').value);
  const scale = Number($<HTMLInputElement>('model-scale').value) || 1;
  const invert = $<HTMLInputElement>('model-invert').checked;
  const meanText = $<HTMLInputElement>('model-mean').value.trim();
  const mean = meanText ? meanText.split(/[\s,]+/).map(Number) : [];
  const out = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    // Caffe's colour models are BGR; a one-channel model gets the luminance.
    const src = c === 1 ? -1 : order === 'BGR' ? 2 - Math.min(ch, 2) : Math.min(ch, 2);
    const m = mean.length === 0 ? 0 : (mean[Math.min(ch, mean.length - 1)] ?? 0);
    for (let p = 0; p < h * w; p++) {
      let v = src < 0 ? 0.299 * rgba[p * 4]! + 0.587 * rgba[p * 4 + 1]! + 0.114 * rgba[p * 4 + 2]! : rgba[p * 4 + src]!;
      if (invert) v = 255 - v;
      out[ch * h * w + p] = ((v * range) / 255 - m) * scale;
    }
  }
  return out;
}

async function runModel(): Promise<void> {
  const image = fileOf('model-image');
  if (!model || !image) return;
  const input = await modelInput(model, image);
  send({ type: 'runModel', id: ++runId, input }, [input.buffer]);
}
$('model-run').addEventListener('click', () => void runModel());
$('model-image').addEventListener('change', () => void runModel());

// ---- messages from the worker -----------------------------------------------------------------

worker.onmessage = (event: MessageEvent<FromWorker>) => {
  const msg = event.data;
  switch (msg.type) {
    case 'status':
      status(msg.text);
      break;
    case 'backend':
      $('backend-mode').textContent = `${msg.backend === 'gpu' ? 'gpu.js' : 'CPU'}: ${msg.mode}`;
      $('backend-mode').dataset['backend'] = msg.backend;
      $('backend-mode').dataset['mode'] = msg.mode;
      $('backend-mode').dataset['threads'] = String(msg.threads);
      $('backend-detail').textContent = msg.detail;
      break;
    case 'iteration':
      $('iteration').textContent = String(msg.iter);
      $('loss').textContent = fmt(msg.loss);
      $('speed').textContent = `${msg.itersPerSecond.toFixed(1)} iter/s`;
      lossChart.push(msg.iter, msg.loss);
      accuracyChart.push(msg.iter, null, msg.batchAccuracy);
      saveButton.disabled = false;
      break;
    case 'test':
      $('accuracy').textContent = `${fmt(msg.accuracy)} (iteration ${msg.iter})`;
      $('accuracy').dataset['value'] = String(msg.accuracy);
      $('accuracy').dataset['iter'] = String(msg.iter);
      accuracyChart.push(msg.iter, msg.accuracy, null);
      break;
    case 'filters':
      drawFilters($('filters'), msg.shape, msg.weights);
      break;
    case 'done':
      setTraining(false);
      status(`${msg.reason === 'finished' ? 'finished' : msg.reason} at iteration ${msg.iter}`);
      break;
    case 'prediction': {
      if (msg.id !== predictionId) break;
      showTop($('prediction'), msg.probabilities, 3, (i) => `${i}`);
      break;
    }
    case 'weights': {
      const url = URL.createObjectURL(new Blob([msg.bytes as BlobPart], { type: 'application/octet-stream' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `lenet_iter_${msg.iter}.caffemodel`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      break;
    }
    case 'modelLoaded': {
      model = msg.info;
      const i = msg.info;
      $('model-info').textContent =
        `${i.name || 'net'}: ${i.layers} layers; input ${i.inputs.map((b) => `${b.name} ${b.shape.join('×')}`).join(', ')}; ` +
        `output ${i.outputs.map((b) => `${b.name} ${b.shape.join('×')}`).join(', ')}; weights for ${i.copied} layers` +
        (i.missing.length ? ` (none for ${i.missing.join(', ')})` : '');
      $<HTMLButtonElement>('model-run').disabled = false;
      void runModel();
      break;
    }
    case 'modelOutput': {
      if (msg.id !== runId) break;
      const k = msg.values.length / (msg.shape[0] ?? 1);
      showTop($('model-output'), msg.values.subarray(0, k), 5, (i) => labels[i] ?? `class ${i}`);
      $('model-output').dataset['blob'] = msg.blob;
      $('model-output').title = `${msg.blob} ${msg.shape.join('×')} in ${msg.ms.toFixed(1)} ms`;
      break;
    }
    case 'error':
      if (msg.where === 'model') $('model-info').textContent = `error: ${msg.message}`;
      else status(`error (${msg.where}): ${msg.message}`);
      document.body.dataset['error'] = msg.message;
      break;
  }
};
worker.onerror = (e) => status(`worker error: ${e.message}`);
setTraining(false);
