import { existsSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { CaffeFileError } from '@caffe-ts/proto/node';

/**
 * The directory relative paths are resolved against: the user's own directory. Under
 * `pnpm caffe …` the process starts in the workspace root and pnpm passes the directory the
 * user ran it from as INIT_CWD.
 */
export function userCwd(): string {
  if (process.env.npm_lifecycle_event && process.env.INIT_CWD) return process.env.INIT_CWD;
  return process.cwd();
}

/**
 * Resolve a path given by the user (flags, arguments) as C++ Caffe does: against the working
 * directory. Paths stored inside files are resolved by the file's reader, which also tries the
 * referring file's folder.
 */
export function userPath(path: string): string {
  return isAbsolute(path) ? path : resolve(userCwd(), path);
}

/**
 * A path found inside `referrer` (a solver's `net`, a state's `learned_net`): tried against the
 * working directory, then the referrer's folder, then its base name in that folder.
 */
export function resolveReferencedPath(path: string, referrer: string, what: string): string {
  const tried: string[] = [];
  const candidates = isAbsolute(path)
    ? [path, resolve(dirname(referrer), basename(path))]
    : [resolve(userCwd(), path), resolve(dirname(referrer), path), resolve(dirname(referrer), basename(path))];
  for (const c of candidates) {
    if (tried.includes(c)) continue;
    tried.push(c);
    if (existsSync(c)) return c;
  }
  throw new CaffeFileError(`${what} '${path}' (named in ${referrer}) not found; tried ${tried.join(', ')}`);
}
