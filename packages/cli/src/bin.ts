#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { runCli } from './cli.js';

// Relaxed SIMD (fused multiply-add in the WASM GEMM, ~40% faster) is standard WebAssembly, on
// by default in newer V8s; Node 20 still keeps it behind a flag. Set before any module compiles.
setFlagsFromString('--experimental-wasm-relaxed-simd');
import { launchDirectory } from './paths.js';

// Under `pnpm caffe …` the process starts in the workspace root; work from the user's directory
// so that every relative path (flags, and paths inside prototxt files) resolves as in C++ Caffe.
process.chdir(launchDirectory());

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`caffe: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
