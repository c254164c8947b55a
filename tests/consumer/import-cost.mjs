// Import cost of @caffe-ts/net from an application's install (tests/consumer/run.sh copies this
// file into the training install, which also holds the solver, the io-leveldb plugin and its
// native modules). Run there as `node import-cost.mjs`:
//   - which modules `import('@caffe-ts/net')` loads (ESM through a loader hook, CommonJS from the
//     require cache), printed by package; it fails if any @caffe-ts package other than proto,
//     blob, layers and net is loaded, or any plugin dependency (level, node-lmdb, sharp, …);
//   - how long the import takes: in-process (performance.now() around the import) and as a whole
//     `node -e "import('@caffe-ts/net')"` minus an empty `node -e ""`, medians of several runs.
// For comparison it also times the imports an inference app makes (+ '@caffe-ts/layers/register')
// and the LevelDB plugin. Timings on a shared machine are noisy: they are reported, not checked.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const RUNS = Number(process.env.IMPORT_COST_RUNS ?? 7);
const ALLOWED_CAFFE = new Set(['@caffe-ts/proto', '@caffe-ts/blob', '@caffe-ts/layers', '@caffe-ts/net']);
const FORBIDDEN = ['level', 'classic-level', 'abstract-level', 'node-lmdb', 'sharp', 'h5wasm', 'mnist', 'gpu.js', 'yargs-parser'];

const work = mkdtempSync(join(tmpdir(), 'caffe-ts-import-cost-'));
const hooks = join(work, 'hooks.mjs');
const registerHooks = join(work, 'register-hooks.mjs');
writeFileSync(
  hooks,
  `import { appendFileSync } from 'node:fs';
let logFile;
export function initialize(data) { logFile = data.logFile; }
export async function load(url, context, next) {
  appendFileSync(logFile, url + '\\n');
  return next(url, context);
}
`,
);
writeFileSync(
  registerHooks,
  `import { register } from 'node:module';
register(${JSON.stringify(pathToFileURL(hooks).href)}, { data: { logFile: process.env.IMPORT_COST_LOG } });
`,
);

/** Package name of a module URL or path inside node_modules, or null for Node built-ins and files outside. */
function packageOf(p) {
  const s = p.startsWith('file:') ? decodeURIComponent(new URL(p).pathname) : p;
  const i = s.lastIndexOf('/node_modules/');
  if (i < 0) return null;
  const parts = s.slice(i + '/node_modules/'.length).split('/');
  return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
}

/** The modules `import(spec)` loads: ESM from the hook log, CommonJS from the require cache. */
function loadedModules(spec) {
  const logFile = join(work, 'loaded.txt');
  writeFileSync(logFile, '');
  const script = `
    import { createRequire } from 'node:module';
    await import(${JSON.stringify(spec)});
    console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));
  `;
  const out = execFileSync(process.execPath, ['--import', pathToFileURL(registerHooks).href, '--input-type=module', '-e', script], {
    cwd: process.cwd(),
    env: { ...process.env, IMPORT_COST_LOG: logFile },
    encoding: 'utf8',
  });
  const cjs = JSON.parse(out.trim().split('\n').pop());
  const esm = readFileSync(logFile, 'utf8').split('\n').filter((u) => u.startsWith('file:'));
  return [...esm, ...cjs];
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median wall time (ms) of a fresh `node` running `code` as an ES module. */
function wallTime(code) {
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const t = process.hrtime.bigint();
    execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd: process.cwd(), stdio: 'ignore' });
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(times);
}

/** Median in-process time (ms) of importing `specs`, each run in a fresh process. */
function inProcess(specs) {
  const code = `const t = performance.now(); ${specs.map((s) => `await import(${JSON.stringify(s)});`).join(' ')} console.log(performance.now() - t);`;
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    times.push(Number(execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd: process.cwd(), encoding: 'utf8' }).trim()));
  }
  return median(times);
}

let ok = true;
try {
  const loaded = loadedModules('@caffe-ts/net');
  const byPackage = new Map();
  for (const m of loaded) {
    const pkg = packageOf(m);
    if (pkg) byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + 1);
  }
  const caffe = [...byPackage.keys()].filter((p) => p.startsWith('@caffe-ts/')).sort();
  const others = [...byPackage.keys()].filter((p) => !p.startsWith('@caffe-ts/')).sort();
  console.log(`import-cost: import('@caffe-ts/net') loads ${loaded.length} modules`);
  console.log(`  @caffe-ts: ${caffe.map((p) => `${p} (${byPackage.get(p)})`).join(', ')}`);
  console.log(`  third-party: ${others.map((p) => `${p} (${byPackage.get(p)})`).join(', ') || 'none'}`);
  const extra = caffe.filter((p) => !ALLOWED_CAFFE.has(p));
  const forbidden = others.filter((p) => FORBIDDEN.includes(p));
  if (extra.length > 0) {
    ok = false;
    console.log(`import-cost: FAILED: @caffe-ts/net loads ${extra.join(', ')} (only proto, blob, layers and net may load)`);
  }
  if (forbidden.length > 0) {
    ok = false;
    console.log(`import-cost: FAILED: @caffe-ts/net loads plugin dependencies ${forbidden.join(', ')}`);
  }
  for (const p of ['@caffe-ts/proto', '@caffe-ts/blob', '@caffe-ts/layers', '@caffe-ts/net']) {
    if (!caffe.includes(p)) {
      ok = false;
      console.log(`import-cost: FAILED: ${p} was not seen loading (is the hook working?)`);
    }
  }

  const base = wallTime('');
  const net = wallTime("await import('@caffe-ts/net')");
  const fmt = (ms) => `${ms.toFixed(0)} ms`;
  console.log(`import-cost: node -e "import('@caffe-ts/net')": ${fmt(net)} wall, ${fmt(net - base)} over an empty node (${fmt(base)}); median of ${RUNS}`);
  console.log(`import-cost: in-process import('@caffe-ts/net'): ${fmt(inProcess(['@caffe-ts/net']))}`);
  console.log(`import-cost: in-process + '@caffe-ts/layers/register': ${fmt(inProcess(['@caffe-ts/net', '@caffe-ts/layers/register']))}`);
  console.log(`import-cost: in-process '@caffe-ts/io-leveldb' (plugin, for comparison): ${fmt(inProcess(['@caffe-ts/io-leveldb']))}`);
} catch (e) {
  ok = false;
  console.log(`import-cost: FAILED: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(ok ? 'import-cost: ok' : 'import-cost: FAILED');
process.exit(ok ? 0 : 1);
