/**
 * Progress bars for long CLI runs (train, test, converters) on a terminal: done/total, ETA,
 * throughput and the latest loss, drawn by cli-progress on stderr.
 *
 * Bars are drawn only when stderr is a TTY and --verbose-logs was not given; then Caffe's INFO log
 * lines are held back (warnings and errors still print, above the bar). Otherwise the Caffe log
 * lines print as always and no bar is drawn, so a non-TTY never gets both.
 */
import cliProgress from 'cli-progress';
import { setLogSink, type LogSink } from '@caffe-ts/blob';
import type { Flags } from './args.js';

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
  cursorTo?(x: number, y?: number): unknown;
  moveCursor?(dx: number, dy: number): unknown;
  clearLine?(dir: -1 | 0 | 1): unknown;
  clearScreenDown?(): unknown;
}

/**
 * Whether to draw bars: stderr is a terminal and neither --verbose-logs (either spelling) nor
 * CAFFE_TS_PROGRESS=0 asks for plain log lines. CI and test runners (which capture the log
 * lines) get plain lines unless CAFFE_TS_PROGRESS=1. Reads the flag so checkAllUsed accepts it.
 */
export function wantProgress(flags: Flags, stream: ProgressStream = process.stderr): boolean {
  const verbose = flags.bool('verbose-logs') || flags.bool('verbose_logs');
  const env = process.env.CAFFE_TS_PROGRESS?.trim();
  if (env === '0' || verbose || stream.isTTY !== true) return false;
  if (env === '1') return true;
  return !process.env.CI && !process.env.VITEST;
}

export interface Progress {
  /** Set the count done (absolute) and the values shown after the bar. */
  update(done: number, values?: { loss?: number; [key: string]: number | string | undefined }): void;
  /** Print a line above the bar. */
  log(line: string): void;
  /** Draw the final state, restore the log sink. */
  stop(): void;
}

export interface ProgressOptions {
  /** What is counted ("iters", "batches", "images"): shown in the throughput. */
  unit?: string;
  stream?: ProgressStream;
  /** The count done when the bar starts (a resumed run): throughput counts from here. */
  start?: number;
  /** Show the loss (default true; converters have none). */
  loss?: boolean;
}

function formatLoss(v: unknown): string {
  return typeof v === 'number' && Number.isFinite(v) ? (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toFixed(4)) : '-';
}

/** A bar for `total` steps labelled `label`; Caffe's INFO lines are held back until `stop`. */
export function startProgress(label: string, total: number, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const unit = options.unit ?? 'it';
  const start = options.start ?? 0;
  const multi = new cliProgress.MultiBar(
    {
      stream: stream as NodeJS.WriteStream,
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | ETA {eta_formatted} | {rate} ${unit}/s${options.loss === false ? '' : ' | loss {loss}'}`,
      hideCursor: false,
      clearOnComplete: false,
      stopOnComplete: false,
      etaBuffer: 20,
      fps: 10,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = multi.create(total, start, { rate: '-', loss: '-' });
  const began = performance.now();
  // Warnings and errors stay visible; INFO lines would scroll the bar away.
  const previous: LogSink = setLogSink((line, level) => {
    if (level !== 'I') multi.log(line.endsWith('\n') ? line : line + '\n');
  });
  let stopped = false;
  return {
    update(done, values = {}) {
      const secs = (performance.now() - began) / 1000;
      const rate = secs > 0 ? (done - start) / secs : 0;
      const payload: Record<string, string> = { rate: rate >= 100 ? rate.toFixed(0) : rate.toFixed(2) };
      for (const [k, v] of Object.entries(values)) payload[k] = k === 'loss' ? formatLoss(v) : String(v);
      bar.update(done, payload);
    },
    log(line) {
      multi.log(line.endsWith('\n') ? line : line + '\n');
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.update(); // flushes lines logged since the last redraw (stop() alone drops them)
      multi.stop();
      setLogSink(previous);
    },
  };
}

/**
 * An `onProgress(done, total)` callback (the converters' hook) that draws a bar once the total
 * is known, when `enabled`; `stop` ends it (safe to call when no bar was drawn).
 */
export function progressCallback(label: string, enabled: boolean, unit = 'items', stream?: ProgressStream): { onProgress?: (done: number, total: number) => void; stop(): void } {
  let bar: Progress | undefined;
  if (!enabled) return { stop() {} };
  return {
    onProgress(done, total) {
      bar ??= startProgress(label, total, { unit, loss: false, ...(stream ? { stream } : {}) });
      bar.update(done);
    },
    stop() {
      bar?.stop();
    },
  };
}
