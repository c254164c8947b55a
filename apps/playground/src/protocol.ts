/** Messages between the page (main.ts) and the worker that trains and runs nets (worker.ts). */

export type BackendChoice = 'cpu' | 'gpu';

export interface TrainRequest {
  type: 'train';
  backend: BackendChoice;
  iterations: number;
  batchSize: number;
  /** Test on the held-out digits every this many iterations (and at the end). */
  testInterval: number;
  /** Held-out digits per test pass: batches of 100 (fewer than 100: one smaller batch). */
  testDigits: number;
  /** Kernel threads of the CPU backend (the page's `?threads=N`); every core when absent. */
  threads?: number;
}

export type ToWorker =
  /** First message: where the digits file is (beside index.html; see vite.config.ts). */
  | { type: 'init'; digitsUrl: string }
  | TrainRequest
  | { type: 'stop' }
  /** The weights being trained, as a .caffemodel (Caffe's binary NetParameter). */
  | { type: 'exportWeights' }
  /** 28×28 grey values in [0, 1), row-major: the drawn digit. */
  | { type: 'predict'; id: number; pixels: Float32Array }
  | { type: 'loadModel'; prototxt: string; prototxtName: string; weights: ArrayBuffer; weightsName: string }
  /** One input, already laid out as the model's first input blob (C×H×W, preprocessed). */
  | { type: 'runModel'; id: number; input: Float32Array };

export interface ModelInfo {
  name: string;
  layers: number;
  inputs: { name: string; shape: number[] }[];
  outputs: { name: string; shape: number[] }[];
  /** Learnable blobs copied from the caffemodel, and layers of the net it had no weights for. */
  copied: number;
  missing: string[];
}

export type FromWorker =
  | { type: 'status'; text: string }
  /** threads: the CPU backend's kernel threads (1 for gpu.js). */
  | { type: 'backend'; backend: BackendChoice; mode: string; detail: string; threads: number }
  | { type: 'iteration'; iter: number; loss: number; batchAccuracy: number; lr: number; itersPerSecond: number }
  | { type: 'test'; iter: number; accuracy: number; loss: number }
  /** conv1's weights (num × 1 × k × k), sent as training goes. */
  | { type: 'filters'; iter: number; shape: number[]; weights: Float32Array }
  | { type: 'done'; iter: number; reason: 'finished' | 'stopped' | 'error' }
  | { type: 'prediction'; id: number; probabilities: Float32Array }
  | { type: 'weights'; iter: number; bytes: Uint8Array }
  | { type: 'modelLoaded'; info: ModelInfo }
  | { type: 'modelOutput'; id: number; blob: string; shape: number[]; values: Float32Array; ms: number }
  | { type: 'error'; where: 'train' | 'predict' | 'model' | 'digits' | 'export'; message: string };
