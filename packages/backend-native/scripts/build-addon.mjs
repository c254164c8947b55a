#!/usr/bin/env node
// Compiles the native addon (native/caffe_native.c against OpenBLAS) with node-gyp, at install
// and at build. It never fails the install: where there is no compiler or no OpenBLAS, it
// leaves build/build-addon-failed.txt with node-gyp's last words, and the package's loader
// reports them (nativeAvailability(), NativeUnavailableError) with how to fix it.
//   node scripts/build-addon.mjs [--force]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build', 'Release', 'caffe_native.node');
const failed = join(root, 'build', 'build-addon-failed.txt');
const sources = ['native/caffe_native.c', 'native/packed_gemm.c', 'native/packed_gemm.h', 'native/winograd.c', 'native/winograd.h', 'native/pool.c', 'native/pool.h', 'native/depthwise.c', 'native/depthwise.h', 'native/lrn.c', 'native/lrn.h', 'native/sgd.c', 'native/sgd.h', 'native/simd.h', 'binding.gyp'].map((f) => join(root, f));

const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
if (!process.argv.includes('--force') && existsSync(addon) && statSync(addon).mtimeMs >= newest) {
  console.log('@caffe-ts/backend-native: the addon is up to date');
  process.exit(0);
}

// npm hands its own node-gyp to install scripts; else the one this package depends on.
let gyp = process.env.npm_config_node_gyp;
if (!gyp || !existsSync(gyp)) {
  try {
    gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    gyp = undefined;
  }
}
const args = ['rebuild'];
// Build against this Node's own headers where it has them: no download (offline machines).
const prefix = resolve(process.execPath, '..', '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);

function fail(why) {
  mkdirSync(dirname(failed), { recursive: true });
  writeFileSync(failed, `${why.trim()}\n`);
  console.warn(`@caffe-ts/backend-native: the native addon was not built (the package will say so when used):\n${why.trim().split('\n').slice(-8).join('\n')}`);
  process.exit(0);
}

if (!gyp) fail('node-gyp was not found (neither npm_config_node_gyp nor the node-gyp package)');
const run = spawnSync(process.execPath, [gyp, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 26 });
const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
if (run.error) fail(`node-gyp could not run: ${run.error.message}`);
if (run.status !== 0 || !existsSync(addon)) {
  const errors = output.split('\n').filter((l) => /error|fatal|not found|No such file/i.test(l));
  fail(`node-gyp ${args.join(' ')} failed (exit ${run.status}):\n${(errors.length ? errors : output.split('\n')).slice(-12).join('\n')}`);
}
console.log('@caffe-ts/backend-native: built build/Release/caffe_native.node');
