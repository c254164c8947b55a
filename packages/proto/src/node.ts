/**
 * Node file helpers (`@caffe-ts/proto/node`): read and write Caffe's text and binary proto
 * files. Kept out of the main entry so that one stays browser-safe.
 *
 * Writes are atomic: a temp file in the same folder, fsync, then rename, so a crash while
 * snapshotting never leaves a half-written .caffemodel where a good one was.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, promises as fs, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { decodeBinary, encodeBinary } from './binary.js';
import { CaffeFileError } from './errors.js';
import type { Message } from './schema.js';
import { parseText } from './text-parser.js';
import { printText, type PrintTextOptions } from './text-printer.js';

/** A CaffeFileError naming `path` and why reading or writing it failed (Node's error code in words). */
export function fileError(action: string, path: string, err: unknown): CaffeFileError {
  const code = (err as { code?: unknown } | null)?.code;
  const c = typeof code === 'string' ? code : undefined;
  const why =
    c === 'ENOENT'
      ? action === 'read'
        ? 'no such file'
        : 'its folder does not exist'
      : c === 'EACCES' || c === 'EPERM'
        ? 'permission denied'
        : c === 'EISDIR'
          ? 'it is a directory'
          : c === 'ENOSPC'
            ? `no space left on device (${(err as Error).message})`
          : (err as Error | null)?.message ?? String(err);
  return new CaffeFileError(`cannot ${action} '${path}': ${why}`, { path, ...(c === undefined ? {} : { code: c }), cause: err });
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    const buf = await fs.readFile(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw fileError('read', path, err);
  }
}

/** Reads a .prototxt as `typeName`; ProtoTextError names the file. */
export async function readTextProto<T = Message>(typeName: string, path: string): Promise<T> {
  const bytes = await readBytes(path);
  return parseText<T>(typeName, new TextDecoder('utf-8').decode(bytes), { file: path });
}

/** Reads a binary proto file (.caffemodel, .solverstate, .binaryproto) as `typeName`. */
export async function readBinaryProto<T = Message>(typeName: string, path: string): Promise<T> {
  return decodeBinary<T>(typeName, await readBytes(path), { file: path });
}

/**
 * CAFFE_TS_FAULT_ENOSPC=<text>: writes to paths containing <text> fail as on a full disk (for
 * tests of what a failed snapshot leaves behind). Unset in normal use.
 */
function simulatedDiskFull(path: string): Error | undefined {
  const match = typeof process === 'undefined' ? undefined : process.env['CAFFE_TS_FAULT_ENOSPC'];
  if (!match || !path.includes(match)) return undefined;
  return Object.assign(new Error('ENOSPC: no space left on device, write (simulated by CAFFE_TS_FAULT_ENOSPC)'), { code: 'ENOSPC' });
}

/** Writes `data` to `path` atomically (temp file in the same folder, fsync, rename). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(tmp, 'wx');
    const fault = simulatedDiskFull(path);
    if (fault) {
      // Fault injection for tests (a disk that fills up mid-write): half the bytes, then ENOSPC.
      const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
      await handle.write(bytes.subarray(0, bytes.length >> 1));
      throw fault;
    }
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(tmp, path);
  } catch (err) {
    if (handle) await handle.close().catch(() => {});
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw fileError('write', path, err);
  }
}

/**
 * The synchronous twin of writeFileAtomic, for callers that must not yield (saving weights from
 * synchronous APIs): same temp-file, fsync, rename sequence and the same fault hook.
 */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx');
    const fault = simulatedDiskFull(path);
    if (fault) {
      writeSync(fd, bytes, 0, bytes.length >> 1);
      throw fault;
    }
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw fileError('write', path, err);
  }
}

export async function writeBinaryProto(typeName: string, path: string, msg: object): Promise<void> {
  await writeFileAtomic(path, encodeBinary(typeName, msg));
}

export async function writeTextProto(typeName: string, path: string, msg: object, opts: PrintTextOptions = {}): Promise<void> {
  await writeFileAtomic(path, printText(typeName, msg, opts));
}
