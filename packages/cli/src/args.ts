import parse from 'yargs-parser';
import { CaffeError } from '@caffe-ts/proto';

/** A mistake in how the command was called: printed as one line, exit status 1. */
export class UsageError extends CaffeError {
  override readonly name: string = 'UsageError';
}

export interface ParsedArgs {
  command: string | undefined;
  positional: string[];
  flags: Record<string, string | boolean | number | (string | number)[]>;
}

/**
 * Parses Caffe's gflags spellings as well as GNU ones: `-solver=S`, `-solver S`, `--solver=S`,
 * `--solver S`, `-gray`, `--gray=false`. Single-dash words are long flags, as in gflags.
 */
export function parseArgs(argv: string[], booleanFlags: string[] = [], arrayFlags: string[] = []): ParsedArgs {
  const out = parse(argv.map((arg) => gflagsBoolean(arg, booleanFlags)), {
    boolean: booleanFlags,
    // Flags that take every word up to the next flag (train_net.py's `--set KEY VALUE …`).
    array: arrayFlags,
    configuration: {
      'short-option-groups': false,
      'camel-case-expansion': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'duplicate-arguments-array': true,
      'strip-aliased': true,
    },
  });
  const { _, ...flags } = out;
  const positional = _.map(String);
  return { command: positional[0], positional: positional.slice(1), flags: flags as ParsedArgs['flags'] };
}

const GFLAGS_TRUE = new Set(['true', 't', 'yes', 'y', '1']);
const GFLAGS_FALSE = new Set(['false', 'f', 'no', 'n', '0']);

/**
 * A boolean flag as gflags reads it, in the form yargs-parser understands: `--encoded=True`
 * (what the SSD fork's Python scripts write), `=yes`, `=1` and the other spellings gflags takes in
 * any case become `--encoded=true` or `=false`, and `--noencoded` becomes `--encoded=false`.
 * yargs-parser would read an unknown spelling as false without a word; here it is a UsageError.
 */
function gflagsBoolean(arg: string, booleanFlags: readonly string[]): string {
  const m = /^(--?)([\w-]+)(?:=(.*))?$/s.exec(arg);
  if (!m) return arg;
  const [, dashes, name, value] = m as unknown as [string, string, string, string | undefined];
  if (booleanFlags.includes(name)) {
    if (value === undefined) return arg;
    const v = value.toLowerCase();
    if (GFLAGS_TRUE.has(v)) return `${dashes}${name}=true`;
    if (GFLAGS_FALSE.has(v)) return `${dashes}${name}=false`;
    throw new UsageError(`flag --${name} expects true or false, got '${value}'`);
  }
  if (value === undefined && name.startsWith('no') && booleanFlags.includes(name.slice(2))) return `${dashes}${name.slice(2)}=false`;
  return arg;
}

/** Typed access to flags, checking that no unknown flag was given. */
export class Flags {
  private readonly used = new Set<string>();
  constructor(
    private readonly command: string,
    private readonly flags: ParsedArgs['flags'],
  ) {}

  string(name: string, fallback?: string): string | undefined {
    this.used.add(name);
    const v = this.flags[name];
    if (v === undefined) return fallback;
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (typeof last === 'boolean') throw new UsageError(`flag --${name} needs a value`);
    return String(last);
  }

  /** Every value of a flag that may repeat (e.g. --input a --input b). */
  strings(name: string): string[] {
    this.used.add(name);
    const v = this.flags[name];
    if (v === undefined) return [];
    return (Array.isArray(v) ? v : [v]).map(String);
  }

  int(name: string, fallback: number): number {
    const s = this.string(name);
    if (s === undefined) return fallback;
    const n = Number(s);
    if (!Number.isInteger(n)) throw new UsageError(`flag --${name} expects an integer, got '${s}'`);
    return n;
  }

  bool(name: string, fallback = false): boolean {
    this.used.add(name);
    const v = this.flags[name];
    if (v === undefined) return fallback;
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (typeof last === 'boolean') return last;
    if (last === 'true' || last === '1') return true;
    if (last === 'false' || last === '0') return false;
    throw new UsageError(`flag --${name} expects true or false, got '${String(last)}'`);
  }

  /** Throws for any flag the command did not read (a typo must not be ignored). */
  checkAllUsed(): void {
    const unknown = Object.keys(this.flags).filter((f) => !this.used.has(f) && f !== 'verbose');
    if (unknown.length > 0) {
      throw new UsageError(`unknown flag${unknown.length > 1 ? 's' : ''} for '${this.command}': ${unknown.map((f) => '--' + f).join(', ')}`);
    }
  }
}
