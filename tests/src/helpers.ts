import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setLogSink, type LogSink } from '@caffe-ts/blob';
import { runCli } from '@caffe-ts/cli';
import { openDatumDb } from '@caffe-ts/io-leveldb';
import { decodeDatum, type Datum } from '@caffe-ts/proto';

/** `../shared/corpus` beside the repository, when present (read-only real Caffe files). */
export const corpusDir = fileURLToPath(new URL('../../../shared/corpus', import.meta.url));
export const hasCorpus = existsSync(corpusDir);
export const corpus = (...parts: string[]) => join(corpusDir, ...parts);

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const zooDir = join(repoRoot, 'packages/zoo/models');

export function tempDir(prefix = 'caffe-ts-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Caffe log lines emitted while the command ran. */
  log: string[];
}

/** Run the caffe CLI in this process with `cwd` as the working directory. */
export async function caffe(args: string[], cwd: string): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const log: string[] = [];
  const sink: LogSink = (line) => {
    log.push(line);
  };
  const previousSink = setLogSink(sink);
  const previousCwd = process.cwd();
  process.chdir(cwd);
  try {
    const code = await runCli(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
    return { code, stdout, stderr, log };
  } finally {
    process.chdir(previousCwd);
    setLogSink(previousSink);
  }
}

/** The message part of glog lines ("I1125 22:04:24.123456  4321 solver.ts] msg" → "msg"). */
export function messages(log: string[]): string[] {
  return log.map((l) => l.replace(/^[IWE]\d{4} [\d:.]+ +\d+ [^\]]+\] /, ''));
}

/** Runs `run` with the environment variable `name` set to `value` (undefined: unset), restoring it after. */
export async function withEnv<T>(name: string, value: string | undefined, run: () => Promise<T>): Promise<T> {
  const saved = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return await run();
  } finally {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
}

/** Runs `run` with CAFFE_TS_WORKERS set to `value` (undefined: unset, the CLI's own default), restoring it after. */
export function withWorkersEnv<T>(value: string | undefined, run: () => Promise<T>): Promise<T> {
  return withEnv('CAFFE_TS_WORKERS', value, run);
}

/** Every record of a Datum database, in key order, its value decoded. */
export async function readDatums(path: string, backend: 'leveldb' | 'lmdb'): Promise<{ key: string; datum: Datum }[]> {
  const db = await openDatumDb(path, { backend });
  const out: { key: string; datum: Datum }[] = [];
  for await (const r of db.entries()) out.push({ key: r.key, datum: decodeDatum(r.value) });
  await db.close();
  return out;
}
