#!/usr/bin/env node
// caffe-ts against its peers (TensorFlow.js wasm and cpu backends, onnxruntime-node) in one run:
// the same networks, built from the zoo's prototxts and converted from a caffe-ts Net with random
// weights, checked to agree with caffe-ts, then timed. Prints one table (medians and ratios) and
// writes the figures as JSON.
//
//   pnpm build && pnpm bench                       (root: this, then the other bench scripts)
//   node bench/src/compare.mjs [--quick] [--only gemm,lenet,cifar10,caffenet,googlenet,resnet50,squeezenet,mobilenet_v2]
//       [--threads 1,2] [--frameworks caffe-ts,tfjs-wasm,tfjs-cpu,onnxruntime] [--json PATH]
//       [--budget SECONDS] [--tolerance 1e-3] [--slow] [--keep-bundles]
//
// Each framework runs in its own child process (src/peers/worker.mjs), one after the other, so
// its peak RSS is its own and no two compete for the cores. caffe-ts runs first and leaves the
// converted nets' bundles (spec, weights, inputs, its outputs) in a temporary folder.
// --quick: SGEMM 256/512, LeNet inference and SqueezeNet, short budgets (well under a minute).
// --slow: also the tfjs-cpu cells that take many minutes (SGEMM 2048, CIFAR-10 training).
// Times are wall-clock medians; the JSON also has each cell's minimum and run count.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs } from './cli-args.mjs';
import { FRAMEWORKS, selectRows } from './peers/rows.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseBenchArgs({
  // `pnpm bench -- --quick` hands the script a literal '--' first.
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    threads: { type: 'string', default: '1,2' },
    frameworks: { type: 'string', default: FRAMEWORKS.join(',') },
    json: { type: 'string' },
    budget: { type: 'string' },
    tolerance: { type: 'string', default: '1e-3' },
    'keep-bundles': { type: 'boolean', default: false },
    slow: { type: 'boolean', default: false },
  },
}, import.meta.url);

const rows = selectRows({ only: values.only, quick: values.quick });
if (rows.length === 0) throw new Error('no rows selected (see --only and --quick)');
const threads = values.threads.split(',').map(Number);
if (threads.some((t) => !(t >= 1 && Number.isInteger(t)))) throw new Error(`--threads ${values.threads}: expected positive integers`);
const frameworks = values.frameworks.split(',');
for (const f of frameworks) if (!FRAMEWORKS.includes(f)) throw new Error(`--frameworks: unknown ${f} (known: ${FRAMEWORKS.join(', ')})`);
// Peers compare against the bundles caffe-ts writes, so caffe-ts always runs (first).
if (!frameworks.includes('caffe-ts')) frameworks.unshift('caffe-ts');
frameworks.sort((a, b) => FRAMEWORKS.indexOf(a) - FRAMEWORKS.indexOf(b));
const tolerance = Number(values.tolerance);

const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
const jsonPath = resolve(values.json ?? join(here, '..', 'results', `${stamp}${values.quick ? '-quick' : ''}.json`));
const bundle = mkdtempSync(join(tmpdir(), 'caffe-ts-bench-'));
const started = performance.now();

const results = {};
const workerFailures = [];
try {
  for (const f of frameworks) {
    const out = join(bundle, `${f}.result.json`);
    const args = [
      // caffe-ts picks relaxed-SIMD GEMM where the flag is on, as the caffe CLI does.
      ...(f === 'caffe-ts' ? ['--experimental-wasm-relaxed-simd'] : []),
      join(here, 'peers', 'worker.mjs'),
      '--framework', f, '--rows', rows.map((r) => r.id).join(','), '--threads', threads.join(','),
      '--bundle', bundle, '--out', out,
      ...(values.quick ? ['--quick'] : []),
      ...(values.slow ? ['--slow'] : []),
      ...(values.budget ? ['--budget', values.budget] : []),
    ];
    process.stderr.write(`== ${f}\n`);
    const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: join(here, '..') });
    if (r.status !== 0) {
      results[f] = { framework: f, failed: `worker exited with ${r.status ?? r.signal}`, cells: {} };
      workerFailures.push(`${f}: worker exited with ${r.status ?? r.signal} (its output is above)`);
      process.stderr.write(`${f}: worker exited with ${r.status ?? r.signal}\n`);
      continue;
    }
    results[f] = JSON.parse(readFileSync(out, 'utf8'));
  }
} finally {
  if (values['keep-bundles']) process.stderr.write(`bundles kept in ${bundle}\n`);
  else rmSync(bundle, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
const peers = frameworks.filter((f) => f !== 'caffe-ts');
const failures = [...workerFailures];
const fmtMs = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
function cellText(row, cell) {
  if (!cell) return '—';
  if (cell.error) return 'FAIL';
  if (cell.note) return cell.note;
  const base = `${fmtMs(cell.ms)} ms`;
  return row.kind === 'gemm' ? `${base} (${cell.gflops.toFixed(1)} GFLOP/s)` : base;
}

const table = [];
const header = ['work', 'threads', ...frameworks, ...peers.map((p) => `${p} ÷ caffe-ts`), 'max rel err (peers)'];
for (const row of rows) {
  for (const t of threads) {
    const cell = (f) => results[f]?.cells?.[row.id]?.[t];
    const own = cell('caffe-ts');
    const line = [row.label, String(t), ...frameworks.map((f) => cellText(row, cell(f)))];
    for (const p of peers) {
      const c = cell(p);
      line.push(own?.ms && c?.ms ? `${(c.ms / own.ms).toFixed(2)}×` : '—');
    }
    const errs = [];
    for (const f of frameworks) {
      const c = cell(f);
      if (c?.error) failures.push(`${row.id} (${t} thread${t > 1 ? 's' : ''}) ${f}: ${c.error}`);
      if (c?.err === undefined) continue;
      if (!(c.err <= tolerance)) {
        c.disagrees = true;
        failures.push(`${row.id} (${t} thread${t > 1 ? 's' : ''}) ${f}: max relative error ${c.err.toExponential(2)} at ${c.errAt ?? 'output'} exceeds ${tolerance}`);
      }
      if (f !== 'caffe-ts' || row.kind === 'gemm') errs.push(`${f === 'caffe-ts' ? 'caffe-ts' : f.replace('onnxruntime', 'ort')} ${c.err.toExponential(1)}${c.disagrees ? ' FAIL' : ''}`);
    }
    line.push(errs.join(', ') || '—');
    table.push(line);
  }
}

const md = (cells) => `| ${cells.join(' | ')} |`;
const lines = [md(header), md(header.map(() => '---')), ...table.map(md)];
const rss = frameworks.map((f) => `${f} ${results[f]?.maxRssMB ? `${results[f].maxRssMB.toFixed(0)} MB` : '?'}`).join(', ');
const versions = frameworks.map((f) => `${f} ${results[f]?.version ?? '?'}`).join(', ');
const notes = frameworks.flatMap((f) => results[f]?.notes ?? []);
const elapsed = (performance.now() - started) / 1000;

console.log(`caffe-ts vs peers: node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${values.quick ? 'quick, ' : ''}wall-clock medians (ratio = peer ÷ caffe-ts: above 1, caffe-ts is faster)`);
console.log(lines.join('\n'));
console.log(`peak RSS per framework process: ${rss}`);
console.log(`versions: ${versions}`);
for (const n of notes) console.log(`note: ${n}`);
console.log('training step = forward + backward (gradients, no update); GEMM max rel err is against float64 at 256 sampled entries; net errors are against caffe-ts (outputs and logits, or loss and every gradient).');

const json = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model,
  cores: cpus().length,
  quick: values.quick,
  threads,
  tolerance,
  elapsedSeconds: elapsed,
  rows: rows.map((r) => ({ id: r.id, label: r.label, kind: r.kind, group: r.group, ...(r.n ? { n: r.n } : { batch: r.batch }) })),
  frameworks: Object.fromEntries(frameworks.map((f) => [f, results[f]])),
  table: lines.join('\n'),
  failures,
};
mkdirSync(dirname(jsonPath), { recursive: true });
writeFileSync(jsonPath, `${JSON.stringify(json, null, 1)}\n`);
console.log(`JSON: ${jsonPath} (${elapsed.toFixed(0)} s)`);

if (failures.length > 0) {
  console.error(`\nFAILED (${failures.length}):\n${failures.map((f) => `  ${f}`).join('\n')}`);
  process.exit(1);
}
