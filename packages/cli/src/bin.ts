#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { relaxedSimdOptedOut } from '@caffe-ts/blob';
import { runCli } from './cli.js';

// Relaxed SIMD (fused multiply-add in the WASM GEMM, ~40% faster) is standard WebAssembly, on
// by default in newer V8s; Node 20 still keeps it behind a flag. From Node 20.16
// (process.getBuiltinModule) @caffe-ts/blob sets it itself on first use, and device_query then
// says so; before that it is set here, before any module compiles. Either way
// CAFFE_TS_RELAXED_SIMD=off (or CAFFE_TS_GEMM=js|wasm-simd) leaves it alone.
const nodeProcess = process as { getBuiltinModule?: unknown };
if (typeof nodeProcess.getBuiltinModule !== 'function' && !relaxedSimdOptedOut(process.env)) {
  setFlagsFromString('--experimental-wasm-relaxed-simd');
}
import { launchDirectory } from './paths.js';

// The command owns every blob it makes and keeps no view of blob memory across a reshape, so its
// float32 blobs can live in the kernels' shared memory, read in place instead of copied in and out
// of it on every call (see @caffe-ts/blob's README). Set in the environment, not by
// setHostAllocator, so data-parallel worker threads inherit it; CAFFE_TS_HOST_ALLOCATOR=js keeps
// plain arrays.
process.env.CAFFE_TS_HOST_ALLOCATOR ??= 'wasm';

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
