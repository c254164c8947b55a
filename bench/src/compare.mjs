#!/usr/bin/env node
// caffe-ts against its peers (TensorFlow.js wasm and cpu backends, onnxruntime-node) in one run:
// the same networks, built from the zoo's prototxts and converted from a caffe-ts Net with random
// weights, checked to agree with caffe-ts, then timed. Prints one table (medians and ratios) and
// writes the figures as JSON.
//
//   pnpm build && pnpm bench                       (root: this, then the other bench scripts)
//   node bench/src/compare.mjs [--quick] [--only gemm,lenet,cifar10,caffenet,googlenet,resnet50,squeezenet,mobilenet_v2]
//       [--threads 1,2] [--frameworks caffe-ts,caffe-ts-native,tfjs-wasm,tfjs-cpu,onnxruntime] [--json PATH]
//       [--budget SECONDS] [--tolerance 1e-3] [--slow] [--keep-bundles] [--rounds N] [--host-alloc wasm|js]
//
// caffe-ts-native is caffe-ts under @caffe-ts/backend-native's OpenBLAS kernels (in the default
// list where its addon is built), checked against the WebAssembly run's results as a peer is;
// extra columns set the other peers against it.
// Each framework runs in its own child process (src/peers/worker.mjs), one after the other, so
// its peak RSS is its own and no two compete for the cores. caffe-ts runs first and leaves the
// converted nets' bundles (spec, weights, inputs, its outputs) in a temporary folder.
// --quick: SGEMM 256/512, LeNet inference and SqueezeNet, short budgets (well under a minute).
// --slow: also the tfjs-cpu cells that take many minutes (SGEMM 2048, CIFAR-10 training).
// Times are wall-clock medians; the JSON also has each cell's minimum and run count.
// --host-alloc wasm|js (default wasm): caffe-ts's float32 blob memory, as CAFFE_TS_HOST_ALLOCATOR:
// 'wasm' is what the caffe command uses (the kernels work on blobs in place), 'js' the library's
// default (plain arrays, copied into the kernels' memory and back on every call).
// --rounds N (default 1): the frameworks' processes run N times, taking turns (caffe-ts first in
// the first round, then the order rotates), each with 1/N of the budget. A cell is then the median
// of its rounds' medians and a ratio the median of the rounds' ratios, so a machine whose speed
// drifts over minutes (shared hosts: a core runs 20-30% slower for tens of seconds at a time)
// slows every framework alike instead of whichever ran during the slow spell.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuTicks, stealPercent } from './host-steal.mjs';
import { parseBenchArgs } from './cli-args.mjs';
import { FRAMEWORKS, selectRows } from './peers/rows.mjs';

const here = dirname(fileURLToPath(import.meta.url));
/** Every framework, but caffe-ts-native only where @caffe-ts/backend-native's addon is built. */
async function defaultFrameworks() {
  const { nativeAvailability } = await import('@caffe-ts/backend-native');
  const { available, reason } = nativeAvailability();
  if (!available) process.stderr.write(`caffe-ts-native left out: ${reason}\n`);
  return FRAMEWORKS.filter((f) => available || f !== 'caffe-ts-native');
}

const { values } = parseBenchArgs({
  // `pnpm bench -- --quick` hands the script a literal '--' first.
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    threads: { type: 'string', default: '1,2' },
    frameworks: { type: 'string', default: (await defaultFrameworks()).join(',') },
    json: { type: 'string' },
    budget: { type: 'string' },
    tolerance: { type: 'string', default: '1e-3' },
    'keep-bundles': { type: 'boolean', default: false },
    slow: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    'host-alloc': { type: 'string', default: 'wasm' },
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
const hostAlloc = values['host-alloc'];
if (hostAlloc !== 'wasm' && hostAlloc !== 'js') throw new Error(`--host-alloc ${hostAlloc}: expected wasm or js`);
const rounds = Number(values.rounds);
if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds ${values.rounds}: expected a positive integer`);
// Each round gets its share of the per-cell budget (the worker's default: 4 s, 0.4 with --quick).
const budget = values.budget ?? (rounds > 1 ? String((values.quick ? 0.4 : 4) / rounds) : undefined);

const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
const jsonPath = resolve(values.json ?? join(here, '..', 'results', `${stamp}${values.quick ? '-quick' : ''}.json`));
const bundle = mkdtempSync(join(tmpdir(), 'caffe-ts-bench-'));
const started = performance.now();

/** Per framework, each round's worker result (cells by row id and thread count). */
const perRound = Object.fromEntries(frameworks.map((f) => [f, []]));
/** Per framework, each round's steal (% of the machine's CPU time; see host-steal.mjs). */
const stealByFramework = Object.fromEntries(frameworks.map((f) => [f, []]));
const workerFailures = [];
try {
  for (let round = 0; round < rounds; round++) {
    // caffe-ts writes the bundles the peers read, so it opens the first round; later rounds rotate.
    const order = frameworks.map((_, i) => frameworks[(i + round) % frameworks.length]);
    for (const f of order) {
      const out = join(bundle, `${f}.result.json`);
      const args = [
        // caffe-ts picks relaxed-SIMD GEMM where the flag is on, as the caffe CLI does.
        ...(f.startsWith('caffe-ts') ? ['--experimental-wasm-relaxed-simd'] : []),
        join(here, 'peers', 'worker.mjs'),
        '--framework', f, '--rows', rows.map((r) => r.id).join(','), '--threads', threads.join(','),
        '--bundle', bundle, '--out', out,
        ...(values.quick ? ['--quick'] : []),
        ...(values.slow ? ['--slow'] : []),
        ...(budget ? ['--budget', budget] : []),
      ];
      process.stderr.write(`== ${f}${rounds > 1 ? ` (round ${round + 1} of ${rounds})` : ''}\n`);
      const env = f.startsWith('caffe-ts') ? { ...process.env, CAFFE_TS_HOST_ALLOCATOR: hostAlloc } : process.env;
      const ticks = cpuTicks();
      const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: join(here, '..'), env });
      const steal = stealPercent(ticks, cpuTicks());
      if (steal !== null) stealByFramework[f].push(steal);
      if (r.status !== 0) {
        perRound[f].push({ framework: f, failed: `worker exited with ${r.status ?? r.signal}`, cells: {} });
        workerFailures.push(`${f}${rounds > 1 ? ` (round ${round + 1})` : ''}: worker exited with ${r.status ?? r.signal} (its output is above)`);
        process.stderr.write(`${f}: worker exited with ${r.status ?? r.signal}\n`);
        continue;
      }
      perRound[f].push(JSON.parse(readFileSync(out, 'utf8')));
    }
  }
} finally {
  if (values['keep-bundles']) process.stderr.write(`bundles kept in ${bundle}\n`);
  else rmSync(bundle, { recursive: true, force: true });
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const results = Object.fromEntries(frameworks.map((f) => [f, mergeRounds(perRound[f])]));

/**
 * One framework's rounds as one result: each cell the median of its rounds' medians (GFLOP/s
 * from that), the least minimum, the runs summed, the largest error, and each round's median
 * kept by round (null where that round failed), so per-round ratios pair the same rounds. A cell
 * that failed in any round keeps that failure, so it is reported.
 */
function mergeRounds(list) {
  const ok = list.filter((r) => !r.failed);
  if (ok.length === 0) return list[0] ?? { cells: {} };
  if (list.length === 1) return ok[0];
  const merged = { ...ok[ok.length - 1], cells: {}, maxRssMB: Math.max(...ok.map((r) => r.maxRssMB ?? 0)) || undefined };
  list.forEach((r, round) => {
    for (const [id, byThreads] of Object.entries(r.cells ?? {})) {
      for (const [t, cell] of Object.entries(byThreads)) {
        ((merged.cells[id] ??= {})[t] ??= new Array(list.length).fill(null))[round] = cell;
      }
    }
  });
  for (const byThreads of Object.values(merged.cells)) {
    for (const [t, cells] of Object.entries(byThreads)) {
      const failed = cells.find((c) => c?.error);
      const timed = cells.filter((c) => c?.ms > 0 && !c.error);
      if (failed || timed.length === 0) {
        byThreads[t] = failed ?? cells.filter(Boolean).at(-1);
        continue;
      }
      const ms = median(timed.map((c) => c.ms));
      const last = timed[timed.length - 1];
      const errs = timed.map((c) => c.err).filter((e) => e !== undefined);
      byThreads[t] = {
        ...last,
        ms,
        ...(last.gflops !== undefined ? { gflops: (last.gflops * last.ms) / ms } : {}),
        ...(last.minMs !== undefined ? { minMs: Math.min(...timed.map((c) => c.minMs)) } : {}),
        ...(last.reps !== undefined ? { reps: timed.reduce((a, c) => a + (c.reps ?? 0), 0) } : {}),
        ...(errs.length ? { err: Math.max(...errs) } : {}),
        roundMs: cells.map((c) => (c?.ms > 0 && !c.error ? c.ms : null)),
      };
    }
  }
  return merged;
}

/** peer ÷ caffe-ts for one cell: the median over rounds of the rounds' ratios (one round: the plain ratio). */
function ratioOf(own, peer) {
  if (!own?.ms || !peer?.ms) return undefined;
  if (!own.roundMs || !peer.roundMs) return peer.ms / own.ms;
  const each = own.roundMs.map((o, i) => (o && peer.roundMs[i] ? peer.roundMs[i] / o : null)).filter((x) => x !== null);
  return each.length ? median(each) : peer.ms / own.ms;
}

// ---------------------------------------------------------------------------------------------
const peers = frameworks.filter((f) => f !== 'caffe-ts');
// With the native kernels in the run, the other peers are also set against them.
const nativeRun = frameworks.includes('caffe-ts-native');
const nativePeers = nativeRun ? peers.filter((f) => f !== 'caffe-ts-native') : [];
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
const header = ['work', 'threads', ...frameworks, ...peers.map((p) => `${p} ÷ caffe-ts`), ...nativePeers.map((p) => `${p} ÷ native`), 'max rel err (peers)'];
for (const row of rows) {
  for (const t of threads) {
    const cell = (f) => results[f]?.cells?.[row.id]?.[t];
    const own = cell('caffe-ts');
    const line = [row.label, String(t), ...frameworks.map((f) => cellText(row, cell(f)))];
    for (const p of peers) {
      const c = cell(p);
      const ratio = ratioOf(own, c);
      line.push(ratio !== undefined ? `${ratio.toFixed(2)}×` : '—');
    }
    for (const p of nativePeers) {
      const ratio = ratioOf(cell('caffe-ts-native'), cell(p));
      line.push(ratio !== undefined ? `${ratio.toFixed(2)}×` : '—');
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
      if (f !== 'caffe-ts' || row.kind === 'gemm') errs.push(`${f === 'caffe-ts' ? 'caffe-ts' : f.replace('onnxruntime', 'ort').replace('caffe-ts-native', 'native')} ${c.err.toExponential(1)}${c.disagrees ? ' FAIL' : ''}`);
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

console.log(`caffe-ts vs peers: node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${values.quick ? 'quick, ' : ''}${rounds > 1 ? `${rounds} alternating rounds, ` : ''}wall-clock medians (ratio = peer ÷ caffe-ts: above 1, caffe-ts is faster)`);
console.log(lines.join('\n'));
console.log(`peak RSS per framework process: ${rss}`);
console.log(`versions: ${versions}`);
const stealLine = frameworks
  .filter((f) => stealByFramework[f].length > 0)
  .map((f) => `${f} ${stealByFramework[f].map((x) => `${x.toFixed(1)}%`).join('/')}`)
  .join(', ');
if (stealLine) console.log(`steal (the hypervisor's share of this machine's CPU time while each framework's process ran, per round): ${stealLine}`);
for (const n of notes) console.log(`note: ${n}`);
console.log('training step = forward + backward (gradients, no update); GEMM max rel err is against float64 at 256 sampled entries; net errors are against caffe-ts (outputs and logits, or loss and every gradient).');

const json = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model,
  cores: cpus().length,
  quick: values.quick,
  rounds,
  hostAlloc,
  threads,
  tolerance,
  elapsedSeconds: elapsed,
  rows: rows.map((r) => ({ id: r.id, label: r.label, kind: r.kind, group: r.group, ...(r.n ? { n: r.n } : { batch: r.batch }) })),
  frameworks: Object.fromEntries(frameworks.map((f) => [f, results[f]])),
  stealPercent: stealByFramework,
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
