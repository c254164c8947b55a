/**
 * Caffe's log lines, in glog's format (`I1125 22:04:24.123456  4321 solver.ts] Iteration 100, loss = 0.2`),
 * because users' log parsers (parse_log.py, plot_training_log) read them. The sink is replaceable
 * so that tests and progress bars can take the lines.
 */
export type LogLevel = 'I' | 'W' | 'E';
export type LogSink = (line: string, level: LogLevel) => void;

const LOG_STATE = Symbol.for('caffe-ts.log');
interface LogState {
  sink: LogSink;
  enabled: boolean;
}

function state(): LogState {
  const g = globalThis as Record<symbol, unknown>;
  let s = g[LOG_STATE] as LogState | undefined;
  if (!s) {
    s = { sink: defaultSink, enabled: true };
    g[LOG_STATE] = s;
  }
  return s;
}

function defaultSink(line: string): void {
  const proc = (globalThis as { process?: { stderr?: { write(s: string): void } } }).process;
  if (proc?.stderr) proc.stderr.write(line + '\n');
  else console.log(line);
}

/** Replace where log lines go; returns the previous sink. */
export function setLogSink(sink: LogSink): LogSink {
  const s = state();
  const prev = s.sink;
  s.sink = sink;
  return prev;
}

export function setLogEnabled(enabled: boolean): void {
  state().enabled = enabled;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

function prefix(level: LogLevel, source: string): string {
  const d = new Date();
  const micros = pad(d.getMilliseconds(), 3) + '000';
  const pid = (globalThis as { process?: { pid?: number } }).process?.pid ?? 0;
  return (
    `${level}${pad(d.getMonth() + 1)}${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${micros}` +
    ` ${String(pid).padStart(5)} ${source}] `
  );
}

/** A logger that tags its lines with a source name, as glog tags them with file:line. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export function logger(source: string): Logger {
  const emit = (level: LogLevel, message: string) => {
    const s = state();
    if (s.enabled) s.sink(prefix(level, source) + message, level);
  };
  return {
    info: (m) => emit('I', m),
    warn: (m) => emit('W', m),
    error: (m) => emit('E', m),
  };
}
