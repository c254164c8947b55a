#!/usr/bin/env node
// Packs bench/src/gpu.mjs into one self-contained folder, for a machine that has Node 20 and a GPU
// but not this repository's install (no pnpm, no registry):
//
//   pnpm build && node bench/src/bundle-gpu.mjs --out DIR
//   # there: xvfb-run -a node DIR/bin/gpu.mjs --modes headlessgl --json out.json
//
// DIR/bin/gpu.mjs is the script with the built caffe-ts packages, gpu.js and headless-gl's
// JavaScript bundled in (esbuild); DIR/bin/webgl.node is headless-gl's native module as built
// here (so the same Node ABI and an x86-64 Linux with libX11 are needed there); DIR/models holds
// the zoo definitions the script reads. gpu.js's WebGPU path and the image/database native modules
// (sharp, classic-level, lmdb) are left out: the script never calls them.
import { cpSync, mkdirSync, realpathSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { parseBenchArgs } from './cli-args.mjs';

const { values } = parseBenchArgs({ options: { out: { type: 'string', default: 'results/gpu-bundle' } } }, import.meta.url);
const root = fileURLToPath(new URL('../../', import.meta.url));
const out = resolve(values.out);
const backendGpu = join(root, 'packages/backend-gpu');
// gl is an optional dependency of gpu.js, found from backend-gpu's install.
const requireFromGpu = createRequire(createRequire(join(backendGpu, 'package.json')).resolve('gpu.js'));
const glDir = dirname(realpathSync(requireFromGpu.resolve('gl/package.json')));
const nativeModule = join(glDir, 'build/Release/webgl.node');

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'bin'), { recursive: true });

/** Rewrites the two places that locate files at run time so the bundle finds its own copies. */
const relocate = {
  name: 'relocate',
  setup(b) {
    // gpu.mjs loads backend-gpu's build by path (bench/ does not depend on it): bundle it instead.
    b.onLoad({ filter: /bench[\\/]src[\\/]gpu\.mjs$/ }, async (args) => {
      const { readFileSync } = await import('node:fs');
      const text = readFileSync(args.path, 'utf8').replace(
        "new URL('../../packages/backend-gpu/dist/index.js', import.meta.url).href",
        JSON.stringify(join(backendGpu, 'dist/index.js')),
      );
      return { contents: text, loader: 'js', resolveDir: dirname(args.path) };
    });
    // headless-gl finds its native module through `bindings`, which searches beside its package.
    b.onLoad({ filter: /gl[\\/]src[\\/]javascript[\\/]native-gl\.js$/ }, async (args) => {
      const { readFileSync } = await import('node:fs');
      const text = readFileSync(args.path, 'utf8').replace("require('bindings')('webgl')", "require('./webgl.node')");
      return { contents: text, loader: 'js', resolveDir: dirname(args.path) };
    });
    b.onResolve({ filter: /^\.\/webgl\.node$/ }, () => ({ path: './webgl.node', external: true }));
    // The zoo's index reaches io-leveldb's image and database code, whose native modules this
    // script never calls: they load as stand-ins that fail if called.
    b.onResolve({ filter: /^(sharp|classic-level|lmdb)$/ }, (args) => ({ path: args.path, namespace: 'absent' }));
    b.onLoad({ filter: /.*/, namespace: 'absent' }, (args) => ({
      contents: `const absent = () => { throw new Error(${JSON.stringify(`${args.path} is not part of the gpu bench bundle`)}); };
        export default absent; export const ClassicLevel = absent; export const open = absent;`,
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: [join(root, 'bench/src/gpu.mjs')],
  outfile: join(out, 'bin/gpu.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['webgpu'],
  nodePaths: [join(backendGpu, 'node_modules'), dirname(glDir)],
  // CommonJS inside an ES module bundle needs a real require (for webgl.node and node: builtins).
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  plugins: [relocate],
  logLevel: 'warning',
});
cpSync(nativeModule, join(out, 'bin/webgl.node'));
for (const model of ['lenet', 'caffenet']) cpSync(join(root, 'packages/zoo/models', model), join(out, 'models', model), { recursive: true });
console.log(`wrote ${out}/bin/gpu.mjs, ${out}/bin/webgl.node and ${out}/models`);
