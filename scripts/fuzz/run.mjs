// Bundles fuzz.ts (and the workspace sources it imports, from packages/*/src) with esbuild into
// scripts/fuzz/.build/, then runs it with the given arguments. No package build needed.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '../..');
// `node run.mjs [entry.ts] [args…]`: the entry defaults to fuzz.ts.
const named = process.argv[2]?.endsWith('.ts');
const entry = named ? process.argv[2] : 'fuzz.ts';
const args = process.argv.slice(named ? 3 : 2);
const outfile = join(here, '.build', entry.replace(/\.ts$/, '.mjs'));

const workspace = {
  name: 'caffe-ts-sources',
  setup(b) {
    b.onResolve({ filter: /^@caffe-ts\// }, (args) => {
      const [, pkg, sub] = /^@caffe-ts\/([^/]+)(?:\/(.*))?$/.exec(args.path);
      const path = join(repo, 'packages', pkg, 'src', sub ? `${sub}.ts` : 'index.ts');
      if (!existsSync(path)) return { errors: [{ text: `no source for ${args.path} (${path})` }] };
      return { path };
    });
    // sharp, h5wasm and the databases are dependencies of packages/io-leveldb (pnpm does not
    // hoist them to the root): resolved from there, absolute, and left out of the bundle.
    b.onResolve({ filter: /^(sharp|h5wasm|node-lmdb|lmdb|classic-level|level|leveldown)(\/.*)?$/ }, async (args) => {
      if (args.pluginData === 'inner') return undefined;
      const r = await b.resolve(args.path, { resolveDir: join(repo, 'packages/io-leveldb'), kind: args.kind, pluginData: 'inner' });
      // An optional package that is not installed stays a bare import (it fails only if loaded).
      return { path: r.errors.length > 0 ? args.path : r.path, external: true };
    });
  },
};

await build({
  entryPoints: [join(here, entry)],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'inline',
  logLevel: 'warning',
  plugins: [workspace],
  // Native and WebAssembly packages stay out of the bundle (see the plugin).
  external: [],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});
const r = spawnSync(process.execPath, ['--enable-source-maps', outfile, ...args], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_DIR: here },
});
process.exit(r.status ?? 1);
