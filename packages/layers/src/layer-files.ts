/** Reads a whole file synchronously (layer set-up is synchronous). Throws when it cannot. */
export type BinaryFileReader = (path: string) => Uint8Array;

/**
 * Read a file a layer parameter names (an InfogainLoss matrix, a DetectionEvaluate size list):
 * as given (against the working directory), then beside the net file, then its base name there.
 * `readFile` defaults to Node's readFileSync; where there is none (a browser) the caller must pass
 * one. Failures throw an Error listing every path tried and why, naming `what` (e.g.
 * "infogain_loss_param.source 'h.binaryproto'"); callers prefix the layer.
 */
export function readLayerFile(
  source: string,
  what: string,
  options: { netFile?: string | undefined; readFile?: BinaryFileReader | undefined; readerOption: string },
): { bytes: Uint8Array; path: string } {
  const read = options.readFile ?? nodeReadFile();
  if (!read) throw new Error(`cannot read ${what}: no file system here; pass a readFile option (${options.readerOption})`);
  const candidates = [source];
  if (options.netFile) {
    const dir = dirnameOf(options.netFile);
    if (!isAbsolutePath(source)) candidates.push(joinPath(dir, source));
    candidates.push(joinPath(dir, basenameOf(source)));
  }
  const tried: string[] = [];
  for (const path of new Set(candidates)) {
    try {
      return { bytes: read(path), path };
    } catch (err) {
      tried.push(`${path} (${describeReadError(err)})`);
    }
  }
  throw new Error(`cannot read ${what}${options.netFile ? ` (named in ${options.netFile})` : ''}; tried ${tried.join(', ')}`);
}

/** Node's readFileSync when running on Node, found without a static import so browsers can bundle this file. */
function nodeReadFile(): BinaryFileReader | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const fs = proc?.getBuiltinModule?.('node:fs') as { readFileSync(path: string): Uint8Array } | undefined;
  if (!fs) return undefined;
  return (path) => {
    const buf = fs.readFileSync(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  };
}

function describeReadError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return err instanceof Error ? err.message : String(err);
}

function isAbsolutePath(p: string): boolean {
  return p.startsWith('/') || p.startsWith('\\') || /^[A-Za-z]:[\\/]/.test(p);
}

function dirnameOf(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i < 0 ? '.' : i === 0 ? p.slice(0, 1) : p.slice(0, i);
}

function joinPath(dir: string, name: string): string {
  return dir.endsWith('/') || dir.endsWith('\\') ? dir + name : `${dir}/${name}`;
}

function basenameOf(p: string): string {
  return p.slice(Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\')) + 1);
}
