// What the A/B timing scripts (gemm-ab.mjs, pconv-ab.mjs, depthwise-ab.mjs) share: loading a
// WAT generator as it was at a git revision, instantiating generated modules, and timing two
// builds' calls alternately in one process.
//
// On a shared or virtual machine the speed of a core drifts by 20-30 % for seconds at a time, so
// two builds timed in separate processes (or one after the other) differ by more than most kernel
// changes do. Here each round calls A then B (B then A on odd rounds) on the same operands, and
// the verdict is the median of the per-round ratios base / work tree (above 1: the working tree
// is faster).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import wabtInit from 'wabt';
import { assembleWat } from './wat-assemble.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The module `file` (a script of this folder) as it was at git revision `base`: every script of
 * the folder at that revision is written to a temporary folder beside this one (so that relative
 * imports resolve to their own versions), the module is imported, and the folder removed.
 */
export async function importAtRevision(base, file) {
  const root = execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd: here, encoding: 'utf8' }).trim();
  const files = execFileSync('git', ['ls-tree', '--name-only', base, 'packages/blob/scripts/'], { cwd: root, encoding: 'utf8' })
    .split('\n').filter((f) => f.endsWith('.mjs'));
  const tmp = join(here, `.ab-${process.pid}`);
  try {
    mkdirSync(tmp, { recursive: true });
    for (const f of files) writeFileSync(join(tmp, f.split('/').pop()), execFileSync('git', ['show', `${base}:${f}`], { cwd: root, encoding: 'utf8' }));
    return await import(pathToFileURL(join(tmp, file)).href);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A function that assembles WAT text with the given features and instantiates it (own memory). */
export async function instantiator(features) {
  const wabt = await wabtInit();
  return (text) => new WebAssembly.Instance(new WebAssembly.Module(assembleWat(wabt, 'ab.wat', text, features)), {}).exports;
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/**
 * Times `runs` (two of { call(), out(), before?() }; before() runs untimed ahead of each timed call) over `rounds` alternating rounds after three warm-up
 * calls each. Returns each run's median ms, the median of the per-round ratios first / second,
 * and whether the two outputs are the same bits.
 */
export function alternate(runs, rounds) {
  for (let r = 0; r < 3; r++) for (const run of runs) run.call();
  const [a, b] = runs.map((run) => run.out());
  const same = a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
  const times = runs.map(() => []);
  for (let r = 0; r < rounds; r++) {
    const order = r & 1 ? [1, 0] : [0, 1];
    for (const k of order) {
      runs[k].before?.();
      const t0 = performance.now();
      runs[k].call();
      times[k].push(performance.now() - t0);
    }
  }
  return { ms: times.map(median), ratio: median(times[0].map((t, i) => t / times[1][i])), same };
}

/** Parses --rounds: an integer of at least 3. */
export function roundsOf(text) {
  const rounds = Number(text);
  if (!(Number.isInteger(rounds) && rounds >= 3)) throw new Error(`--rounds ${text}: expected an integer >= 3`);
  return rounds;
}
