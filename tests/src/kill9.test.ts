/**
 * Faults during training, with the built CLI in child processes (skipped without a build):
 * SIGKILL at random moments must never leave a partial .caffemodel/.solverstate under its final
 * name, and training must resume from the newest complete snapshot; a disk that fills up during a
 * snapshot must end the run with a clear error and leave the previous snapshot intact.
 * scripts/fuzz/kill9.sh runs the kill loop for longer.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeNetParameter, decodeSolverState } from '@caffe-ts/proto';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));
const KILLS = Number(process.env['KILL9_COUNT'] ?? 50);

const NET = `
name: "tiny"
layer { name: "x" type: "Input" top: "x" top: "t" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 1 weight_filler { type: "gaussian" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
`;

const iterOf = (f: string) => Number(/_iter_(\d+)\./.exec(f)![1]);

/** Every snapshot file under its final name decodes completely; returns the newest solverstate. */
function checkSnapshots(snapDir: string): string | undefined {
  const files = readdirSync(snapDir);
  for (const f of files) {
    if (f.startsWith('.')) {
      // An atomic write's temp file, left by a kill mid-write: never under a final name.
      expect(f).toMatch(/^\.tiny_iter_\d+\.(caffemodel|solverstate)\.\d+\.[0-9a-f]+\.tmp$/);
      continue;
    }
    expect(f).toMatch(/^tiny_iter_\d+\.(caffemodel|solverstate)$/);
    const bytes = readFileSync(join(snapDir, f));
    if (f.endsWith('.caffemodel')) expect(decodeNetParameter(bytes, f).layer.length).toBeGreaterThan(0);
    else {
      const state = decodeSolverState(bytes, f);
      expect(state.iter).toBe(iterOf(f));
      // The weights are written first, so a solverstate always has its caffemodel.
      expect(existsSync(join(snapDir, `tiny_iter_${state.iter}.caffemodel`))).toBe(true);
    }
  }
  const states = files.filter((f) => !f.startsWith('.') && f.endsWith('.solverstate')).sort((a, b) => iterOf(a) - iterOf(b));
  return states.at(-1);
}

describe.skipIf(!existsSync(bin))('training under faults (built CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'caffe-ts-kill9-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`SIGKILL at ${KILLS} random moments leaves only complete snapshots, and training resumes from the newest`, async () => {
    writeFileSync(join(dir, 'net.prototxt'), NET);
    mkdirSync(join(dir, 'snap'));
    writeFileSync(
      join(dir, 'solver.prototxt'),
      'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 100000000\ndisplay: 0\nsnapshot: 300\nsnapshot_prefix: "snap/tiny"\nrandom_seed: 1\n',
    );
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const t0 = Date.now();
    let newest: string | undefined;
    let resumedRuns = 0;
    let kills = 0;
    let startup = 1000; // running estimate of the time to "Solving", ms
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    for (; kills < KILLS; kills++) {
      const args = [bin, 'train', '--solver', 'solver.prototxt', ...(newest ? ['--snapshot', `snap/${newest}`] : [])];
      const started = Date.now();
      const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      let onSolving: (() => void) | undefined;
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (onSolving && /Solving tiny/.test(stderr)) onSolving();
      });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      // Random moments: one kill in five during start-up and restore, the rest while training and
      // snapshotting (a random time after training starts, as start-up time varies with load).
      if (rand() < 0.2) await sleep(rand() * startup);
      else {
        await Promise.race([new Promise<void>((r) => (onSolving = r)), exited]);
        startup = 0.8 * startup + 0.2 * (Date.now() - started);
        await sleep(rand() * 400);
      }
      child.kill('SIGKILL');
      const { signal } = await exited;
      expect(signal, `train exited on its own: ${stderr}`).toBe('SIGKILL');
      const before = newest;
      newest = checkSnapshots(join(dir, 'snap')) ?? newest;
      if (before && newest) {
        resumedRuns++;
        expect(iterOf(newest)).toBeGreaterThanOrEqual(iterOf(before));
      }
    }
    expect(kills).toBe(KILLS);
    expect(newest, 'no snapshot was ever completed').toBeDefined();
    // The newest complete snapshot resumes and trains on to its max_iter.
    const target = iterOf(newest!) + 10;
    writeFileSync(
      join(dir, 'finish.prototxt'),
      `net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: ${target}\ndisplay: 0\nsnapshot_prefix: "snap/tiny"\n`,
    );
    const r = spawnSync(process.execPath, [bin, 'train', '--solver', 'finish.prototxt', '--snapshot', `snap/${newest}`], { cwd: dir, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`Resuming from snap/${newest}`);
    expect(decodeSolverState(readFileSync(join(dir, 'snap', `tiny_iter_${target}.solverstate`))).iter).toBe(target);
    expect(resumedRuns).toBeGreaterThan(0);
    // < 90 s on an idle 2-core machine; a loaded one is slower, so only report the time.
    console.log(`kill9: ${kills} kills, ${resumedRuns} resumed runs, newest ${newest}, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }, 180_000);

  it('a full disk during a snapshot ends training with a clear error and keeps the previous snapshot', () => {
    const d = join(dir, 'full');
    mkdirSync(join(d, 'snap'), { recursive: true });
    writeFileSync(join(d, 'net.prototxt'), NET);
    writeFileSync(
      join(d, 'solver.prototxt'),
      'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 30\ndisplay: 0\nsnapshot: 10\nsnapshot_prefix: "snap/tiny"\n',
    );
    const r = spawnSync(process.execPath, [bin, 'train', '--solver', 'solver.prototxt'], {
      cwd: d,
      encoding: 'utf8',
      env: { ...process.env, CAFFE_TS_FAULT_ENOSPC: 'tiny_iter_20.' },
    });
    expect(r.status).toBe(1);
    const line = r.stderr.trimEnd().split('\n').filter((l) => l.startsWith('caffe train:'))[0];
    expect(line).toBe(
      `caffe train: cannot write '${join(d, 'snap', 'tiny_iter_20.caffemodel')}': no space left on device (ENOSPC: no space left on device, write (simulated by CAFFE_TS_FAULT_ENOSPC))`,
    );
    expect(readdirSync(join(d, 'snap')).sort()).toEqual(['tiny_iter_10.caffemodel', 'tiny_iter_10.solverstate']);
    expect(checkSnapshots(join(d, 'snap'))).toBe('tiny_iter_10.solverstate');
  });
});
