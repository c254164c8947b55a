// Test support (not exported): the zoo's deploy nets at a small input on the gpu backend against
// the CPU backend. Used by src/deploy-nets.test.ts (small inputs) and slow/deploy-nets.slow.test.ts.
import { readFileSync } from 'node:fs';
import { cpuBackend, Rng, type Blob } from '@caffe-ts/blob';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import type { GpuBackend } from './backend.js';
import type { GpuMode } from './runtime.js';
import { backendFor, testModes } from './test-modes.js';

export const ZOO_MODELS = new URL('../../zoo/models/', import.meta.url).pathname;

export interface DeployCase {
  /** Folder under packages/zoo/models. */
  model: string;
  /** Input shape N, C, H, W replacing the deploy net's. */
  input: [number, number, number, number];
  /** Text replacements applied to the prototxt (each must match). */
  edits?: [string, string][];
}

/** Deploy prototxt text with the input shape and edits applied. */
export function deployText(c: DeployCase): string {
  let text = readFileSync(`${ZOO_MODELS}${c.model}/deploy.prototxt`, 'utf8');
  const shape = /input_param \{ shape \{ dim: \d+ dim: \d+ dim: \d+ dim: \d+ \} \}/;
  if (!shape.test(text)) throw new Error(`${c.model}: no 4-D input_param shape in its deploy.prototxt`);
  text = text.replace(shape, `input_param { shape { ${c.input.map((d) => `dim: ${d}`).join(' ')} } }`);
  for (const [from, to] of c.edits ?? []) {
    if (!text.includes(from)) throw new Error(`${c.model}: edit target not found: ${from}`);
    text = text.split(from).join(to);
  }
  return text;
}

/** Layer types of a deploy net that the backend has no kernel for. */
export function missingKernels(text: string, backend: Pick<GpuBackend, 'layerKernel'>): string[] {
  const types = new Set(parseNetParameter(text).layer.map((l) => l.type));
  return [...types].filter((t) => !backend.layerKernel(t)).sort();
}

function fill(b: Blob, f: () => number): void {
  const d = b.mutableCpuData();
  for (let i = 0; i < d.length; i++) d[i] = f();
}

/**
 * Random weights that keep activations O(1) through a deep ReLU net: He-scaled weights, small
 * biases; BatchNorm statistics near the identity with scale factor 2 (so 1/s is exercised);
 * Scale near 1. Deploy nets carry no fillers (their weights would all be 0).
 */
export function randomizeWeights(net: Net, seed: number): void {
  const rng = new Rng(seed);
  for (const layer of net.layers) {
    const [w, b, s] = layer.blobs;
    switch (layer.type) {
      case 'Convolution':
      case 'InnerProduct': {
        // He variance 2/fan_in, drawn uniform (as fast as it gets for ResNet-50's 25 M weights).
        const half = Math.sqrt(3) * Math.sqrt(2 / (w!.count() / w!.shape[0]!));
        fill(w!, () => half * (2 * rng.uniform() - 1));
        if (b) fill(b, () => rng.gaussian(0, 0.01));
        break;
      }
      case 'BatchNorm':
        fill(w!, () => 2 * rng.gaussian(0, 0.1));
        fill(b!, () => 2 * (0.5 + rng.uniform()));
        fill(s!, () => 2);
        break;
      case 'Scale':
        fill(w!, () => 0.5 + 0.5 * rng.uniform());
        if (b) fill(b, () => rng.gaussian(0, 0.1));
        break;
      default:
        for (const blob of layer.blobs) fill(blob, () => rng.gaussian(0, 0.1));
    }
  }
}

/**
 * Scale the last parameterised layer before the final Softmax so the logits' spread is about
 * `target` (random weights can give logits of hundreds: a one-hot softmax would hide errors).
 * ReLU and average pooling between them are positively homogeneous, so scaling is exact.
 */
export function calibrateLogits(net: Net, target = 3): void {
  net.forward();
  const last = net.layers[net.layers.length - 1]!;
  const logits = net.blob(last.param.bottom[0]!).cpuData();
  let sum = 0;
  let sq = 0;
  for (const v of logits) {
    sum += v;
    sq += v * v;
  }
  const mean = sum / logits.length;
  const std = Math.sqrt(Math.max(sq / logits.length - mean * mean, 1e-30));
  const owner = [...net.layers].reverse().find((l) => l.blobs.length > 0)!;
  for (const blob of owner.blobs) {
    const d = blob.mutableCpuData();
    for (let i = 0; i < d.length; i++) d[i] = d[i]! * (target / std);
  }
}

export interface DeployParity {
  /** max |gpu − cpu| / max |cpu| over the output. */
  relErr: number;
  argmaxAgree: boolean;
  uploads: number;
  readbacks: number;
  paramBlobs: number;
  cpuMs: number;
  gpuMs: number;
  cpuFallbacks: Record<string, number>;
  output: string;
}

/** Build the net on both backends with the same random weights and input; forward once each. */
export function deployParity(c: DeployCase, gpu: GpuBackend, seed = 1701): DeployParity {
  const param = parseNetParameter(deployText(c));
  const ref = new Net(param, { backend: cpuBackend(), phase: Phase.TEST, log: false });
  randomizeWeights(ref, seed);
  const input = ref.blob(ref.inputBlobNames[0]!);
  const rng = new Rng(seed + 1);
  fill(input, () => rng.uniform() * 2 - 1);
  calibrateLogits(ref);
  let t = performance.now();
  ref.forward();
  const cpuMs = performance.now() - t;
  const output = ref.outputBlobNames[0]!;
  const want = ref.blob(output).cpuData();

  const net = new Net(parseNetParameter(deployText(c)), { backend: gpu, phase: Phase.TEST, log: false });
  let paramBlobs = 0;
  ref.layers.forEach((l, i) =>
    l.blobs.forEach((b, k) => {
      net.layers[i]!.blobs[k]!.mutableCpuData().set(b.cpuData());
      paramBlobs++;
    }),
  );
  net.blob(net.inputBlobNames[0]!).mutableCpuData().set(input.cpuData());
  const before = { ...gpu.stats() };
  t = performance.now();
  net.forward();
  const got = net.blob(output).cpuData();
  const gpuMs = performance.now() - t;
  const after = gpu.stats();

  let scale = 0;
  let err = 0;
  let am = [0, 0];
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
    if (want[i]! > want[am[0]!]!) am = [i, am[1]!];
    if (got[i]! > got[am[1]!]!) am = [am[0]!, i];
  }
  return {
    relErr: err / scale,
    argmaxAgree: am[0] === am[1],
    uploads: after.uploads - before.uploads,
    readbacks: after.readbacks - before.readbacks,
    paramBlobs,
    cpuMs,
    gpuMs,
    cpuFallbacks: { ...after.cpuFallbacks },
    output,
  };
}

/** Inference parity tolerance: max |gpu − cpu| / max |cpu| over the class probabilities. */
export const DEPLOY_TOL = 1e-3;

/**
 * Vitest suite for one deploy case in the given gpu.js modes: probabilities within DEPLOY_TOL of
 * the CPU backend, argmax equal, no CPU fallback, one readback (the output), one upload per
 * param blob plus the input.
 */
export function describeDeployNet(name: string, c: DeployCase, modes: { mode: GpuMode; skip: string | null }[], timeoutMs: number): void {
  for (const { mode, skip } of modes) {
    describe.skipIf(skip !== null)(`${name} deploy net at ${c.input.join('×')} on the gpu backend (gpu.js ${mode}${skip ? `: skipped, ${skip}` : ''})`, () => {
      it(`probabilities within ${DEPLOY_TOL} of the CPU backend; reads back only the output`, () => {
        const r = deployParity(c, backendFor(mode));
        console.log(`${name} ${c.input.join('x')} (${mode}): relErr ${r.relErr.toExponential(2)}, forward cpu ${r.cpuMs.toFixed(0)} ms, gpu ${r.gpuMs.toFixed(0)} ms (first run: kernel compiles), ${r.paramBlobs} param blobs`);
        expect(r.cpuFallbacks).toEqual({});
        expect(r.relErr).toBeLessThan(DEPLOY_TOL);
        expect(r.argmaxAgree).toBe(true);
        expect(r.readbacks).toBe(1);
        expect(r.uploads).toBe(1 + r.paramBlobs);
      }, timeoutMs);
    });
  }
}

/** wasm when it loads (else cpu): the default suite's mode for whole nets. */
export function wasmOrCpu(): { mode: GpuMode; skip: string | null }[] {
  const all = testModes();
  return all.find((m) => m.mode === 'wasm')!.skip === null ? all.filter((m) => m.mode === 'wasm') : all.filter((m) => m.mode === 'cpu');
}
