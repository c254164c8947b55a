/**
 * caffe parse_log LOG OUTDIR: Caffe's tools/extra/parse_log.py — the training log's train and
 * test net outputs as CSV tables `<log>.train` and `<log>.test` in OUTDIR.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import type { Command } from './index.js';

export type LogRow = Map<string, number>;

export interface ParsedLog {
  train: LogRow[];
  test: LogRow[];
}

const ITERATION = /Iteration (\d+)/;
const TRAIN_OUTPUT = /Train net output #(\d+): (\S+) = ([.\deE+-]+)/;
const TEST_OUTPUT = /Test net output #(\d+): (\S+) = ([.\deE+-]+)/;
const LEARNING_RATE = /lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)/;

/** Milliseconds since an arbitrary epoch of a glog line's "Immdd hh:mm:ss.uuuuuu"; null if it has none. */
function lineTime(line: string, year: number): number | null {
  const m = /^\s*[IWEF](\d\d)(\d\d)\s+(\d+):(\d+):(\d+)\.(\d+)\s/.exec(line);
  if (!m) return null;
  const [month, day, h, min, s] = m.slice(1, 6).map(Number) as [number, number, number, number, number];
  const micro = Number(m[6]);
  if (micro > 999999 || month < 1 || month > 12) return null;
  return Date.UTC(year, month - 1, day, h, min, s) + micro / 1000;
}

/**
 * Parse a Caffe training log as parse_log.py does: nothing before the first "Iteration N";
 * seconds counted from the "Solving" line; a row per iteration holding every output name of the
 * first row (a row is complete once it has as many columns as the first one); the first row's
 * learning rate (unknown when it was printed) taken from the second row. `year` is the year of
 * the log's dates (glog lines have none; the script uses the file's creation year).
 */
export function parseCaffeLog(text: string, year: number = new Date().getFullYear()): ParsedLog {
  const lines = text.split('\n');
  let i = 0;
  let start: number | null = null;
  for (; i < lines.length; i++) {
    if (lines[i]!.includes('Solving')) {
      start = lineTime(lines[i]!.trim(), year);
      i++;
      break;
    }
  }
  if (start === null) throw new UsageError('the log has no "Solving" line with a Caffe timestamp to count seconds from');
  let y = year;
  let lastMonth = new Date(start).getUTCMonth();
  let iteration = -1;
  let lr = Number.NaN;
  const train: LogRow[] = [];
  const test: LogRow[] = [];
  let trainRow: LogRow | null = null;
  let testRow: LogRow | null = null;

  const output = (re: RegExp, row: LogRow | null, list: LogRow[], line: string, seconds: number): LogRow | null => {
    const m = re.exec(line);
    if (m) {
      if (!row || row.get('NumIters') !== iteration) {
        if (row) list.push(row);
        row = new Map([
          ['NumIters', iteration],
          ['Seconds', seconds],
          ['LearningRate', lr],
        ]);
      }
      row.set(m[2]!, Number.parseFloat(m[3]!));
    }
    if (row && list.length >= 1 && row.size === list[0]!.size) {
      list.push(row);
      row = null;
    }
    return row;
  };

  for (; i < lines.length; i++) {
    const line = lines[i]!;
    const it = ITERATION.exec(line);
    if (it) iteration = Number(it[1]);
    if (iteration === -1) continue;
    let t = lineTime(line, y);
    if (t === null) continue; // not a log line (e.g. a message continued on the next line)
    if (new Date(t).getUTCMonth() < lastMonth) {
      y += 1; // the log ran into the next year
      t = lineTime(line, y)!;
    }
    lastMonth = new Date(t).getUTCMonth();
    const seconds = (t - start) / 1000;
    const rate = LEARNING_RATE.exec(line);
    if (rate) lr = Number.parseFloat(rate[1]!);
    trainRow = output(TRAIN_OUTPUT, trainRow, train, line, seconds);
    testRow = output(TEST_OUTPUT, testRow, test, line, seconds);
  }
  for (const list of [train, test]) if (list.length > 1) list[0]!.set('LearningRate', list[1]!.get('LearningRate')!);
  return { train, test };
}

/** A float as Python's repr writes it (csv writes floats with repr): 100.0, 0.01, 1e-05, nan. */
export function pythonFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expStr] = x.toExponential().split('e') as [string, string];
  const exp = Number(expStr);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let body: string;
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
      const frac = digits.slice(exp + 1);
      body = `${intPart}.${frac === '' ? '0' : frac}`;
    } else {
      body = `0.${'0'.repeat(-exp - 1)}${digits}`;
    }
  } else {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    body = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return (neg ? '-' : '') + body;
}

/** The rows as csv.DictWriter writes them (excel dialect: CRLF line ends), columns of the first row. */
export function logRowsToCsv(rows: LogRow[], delimiter = ','): string {
  if (rows.length === 0) return '';
  const columns = [...rows[0]!.keys()];
  const quote = (s: string) => (s.includes(delimiter) || s.includes('"') || /[\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const out = [columns.map(quote).join(delimiter)];
  for (const r of rows) out.push(columns.map((c) => (r.has(c) ? pythonFloat(r.get(c)!) : '')).join(delimiter));
  return out.join('\r\n') + '\r\n';
}

export const parseLogCommand: Command = {
  summary: 'parse a training log into <log>.train and <log>.test CSV files (tools/extra/parse_log.py)',
  usage: 'LOGFILE OUTPUT_DIR [--delimiter ,] [--verbose]',
  async run({ flags, positional, io }) {
    const delimiter = flags.string('delimiter', ',')!;
    const verbose = flags.bool('verbose');
    flags.checkAllUsed();
    if (positional.length !== 2) throw new UsageError('parse_log takes a log file and an output folder');
    if (delimiter.length !== 1) throw new UsageError(`--delimiter must be one character, got '${delimiter}'`);
    const logPath = userPath(positional[0]!);
    const outDir = userPath(positional[1]!);
    // parse_log.py takes the year from the log file's creation time.
    const year = new Date(statSync(logPath).ctimeMs).getFullYear();
    const parsed = parseCaffeLog(readFileSync(logPath, 'utf8'), year);
    for (const [suffix, rows] of [['train', parsed.train], ['test', parsed.test]] as const) {
      const file = join(outDir, `${basename(logPath)}.${suffix}`);
      if (rows.length === 0) {
        if (verbose) io.stdout(`Not writing ${file}; no lines to write\n`);
        continue;
      }
      writeFileSync(file, logRowsToCsv(rows, delimiter));
      if (verbose) io.stdout(`Wrote ${file}\n`);
    }
    return 0;
  },
};
