import { isAbsolute, resolve } from 'node:path';

/**
 * The directory relative paths are resolved against: the working directory, which the `caffe`
 * binary sets to the user's own directory (see `launchDirectory`).
 */
export function userCwd(): string {
  return process.cwd();
}

/**
 * Where the user launched `caffe` from. Under the workspace script `pnpm caffe …` the process
 * starts in the workspace root and pnpm passes the user's directory as INIT_CWD; only that
 * script's runs are moved there (other scripts, such as a test run, keep their own directory).
 */
export function launchDirectory(env: NodeJS.ProcessEnv = process.env): string {
  if (env.npm_lifecycle_event === 'caffe' && env.INIT_CWD) return env.INIT_CWD;
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
