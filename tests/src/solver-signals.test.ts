/**
 * Signals as `caffe train` handles them (Caffe's SignalHandler defaults): SIGHUP snapshots and
 * keeps training, SIGINT stops; the stop still snapshots (snapshot_after_train) and exits 0 after
 * "Optimization stopped early.". Runs the built CLI in a child process (skipped without a build).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// Not through ./helpers.js: this test only needs the built CLI, not the workspace sources.
const bin = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));

/** A net that trains forever on constant inputs: two Input tops → InnerProduct → EuclideanLoss. */
const NET = `
name: "forever"
layer { name: "x" type: "Input" top: "x" top: "t" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 1 weight_filler { type: "gaussian" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
`;

describe.skipIf(!existsSync(bin))('caffe train and signals (built CLI)', () => {
  const dir = { path: mkdtempSync(join(tmpdir(), 'caffe-ts-signals-')) };
  afterAll(() => rmSync(dir.path, { recursive: true, force: true }));

  it('SIGHUP snapshots and training goes on; SIGINT stops with a final snapshot and exit status 0', async () => {
    writeFileSync(join(dir.path, 'net.prototxt'), NET);
    mkdirSync(join(dir.path, 'snap'));
    writeFileSync(
      join(dir.path, 'solver.prototxt'),
      'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 100000000\ndisplay: 0\nsnapshot_prefix: "snap/forever"\n',
    );
    const child = spawn(process.execPath, [bin, 'train', '--solver', 'solver.prototxt'], { cwd: dir.path, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const waiters: { re: RegExp; resolve: () => void }[] = [];
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      for (const w of [...waiters]) {
        if (w.re.test(output)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    let exitedEarly: ((why: Error) => void)[] = [];
    const waitFor = (re: RegExp) =>
      new Promise<void>((resolve, reject) => {
        if (re.test(output)) return resolve();
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output so far:\n${output.slice(-2000)}`)), 30_000);
        waiters.push({ re, resolve: () => (clearTimeout(timer), resolve()) });
        exitedEarly.push((why) => (clearTimeout(timer), reject(why)));
      });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => {
        // A CLI that dies (a broken build, say) fails the wait at once, with its output.
        for (const fail of exitedEarly) fail(new Error(`caffe exited (code ${code}, signal ${signal}) first; output:\n${output.slice(-2000)}`));
        exitedEarly = [];
        resolve({ code, signal });
      }),
    );
    try {
      await waitFor(/Starting Optimization/);
      child.kill('SIGHUP');
      await waitFor(/Snapshotting solver state to binary proto file snap\/forever_iter_\d+\.solverstate/);
      // Still training after the snapshot: the process is alive.
      expect(child.exitCode).toBeNull();
      child.kill('SIGINT');
      const { code, signal } = await exited;
      expect(signal).toBeNull();
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    const stopped = output.indexOf('Optimization stopped early.');
    expect(stopped).toBeGreaterThan(0);
    // caffe.cpp's closing line comes after the solver's.
    expect(output.indexOf('Optimization Done.', stopped)).toBeGreaterThan(stopped);
    const snaps = [...output.matchAll(/Snapshotting to binary proto file snap\/forever_iter_(\d+)\.caffemodel/g)].map((m) => Number(m[1]));
    // One snapshot for SIGHUP, one when SIGINT stopped training (snapshot_after_train).
    expect(snaps).toHaveLength(2);
    expect(snaps[1]!).toBeGreaterThanOrEqual(snaps[0]!);
    const files = readdirSync(join(dir.path, 'snap')).sort();
    const expected = [...new Set(snaps)].flatMap((i) => [`forever_iter_${i}.caffemodel`, `forever_iter_${i}.solverstate`]).sort();
    // Written atomically: exactly the snapshot files, no temp files left behind.
    expect(files).toEqual(expected);
  }, 60_000);
});
