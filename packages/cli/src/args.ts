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
export function parseArgs(argv: string[], booleanFlags: string[] = []): ParsedArgs {
  const out = parse(argv, {
    boolean: booleanFlags,
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
