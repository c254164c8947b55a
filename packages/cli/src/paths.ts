import { isAbsolute, resolve } from 'node:path';

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
