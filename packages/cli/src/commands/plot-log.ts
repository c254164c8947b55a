/**
 * caffe plot_log LOG OUT.svg|OUT.png: the training curves of a Caffe log (what
 * tools/extra/plot_training_log.py draws with matplotlib): train and test losses in one panel,
 * the other test outputs (accuracy, …) in a second, against iterations or seconds.
 *
 * The SVG is written directly by a small chart helper (axes with round ticks, one polyline per
 * series, a legend) so the output is deterministic and needs no browser or canvas; PNG is that
 * SVG rasterised by sharp (librsvg, shipped prebuilt with sharp's npm package).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import type { Command } from './index.js';
import { parseCaffeLog, type LogRow } from './parse-log.js';

export interface Series {
  name: string;
  points: [number, number][];
}

export interface Panel {
  title: string;
  yLabel: string;
  series: Series[];
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

/** About `count` round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(6)));
}

/** Stacked line-chart panels sharing the x axis, as an SVG document. */
export function renderChartSvg(panels: Panel[], xLabel: string, width = 800, panelHeight = 300): string {
  const margin = { left: 70, right: 170, top: 30, bottom: 45 };
  const height = panels.length * panelHeight;
  const allX = panels.flatMap((p) => p.series.flatMap((s) => s.points.map((pt) => pt[0])));
  const xMin = allX.length ? Math.min(...allX) : 0;
  const xMaxRaw = allX.length ? Math.max(...allX) : 1;
  const xMax = xMaxRaw > xMin ? xMaxRaw : xMin + 1;
  const plotW = width - margin.left - margin.right;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  panels.forEach((panel, pi) => {
    const y0 = pi * panelHeight;
    const plotH = panelHeight - margin.top - margin.bottom;
    const ys = panel.series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
    let yMin = ys.length ? Math.min(...ys) : 0;
    let yMax = ys.length ? Math.max(...ys) : 1;
    if (!(yMax > yMin)) {
      yMin -= 0.5;
      yMax += 0.5;
    }
    const sx = (x: number) => margin.left + ((x - xMin) / (xMax - xMin)) * plotW;
    const sy = (y: number) => y0 + margin.top + plotH - ((y - yMin) / (yMax - yMin)) * plotH;
    out.push(`<g class="panel">`);
    out.push(`<text x="${margin.left + plotW / 2}" y="${y0 + 18}" text-anchor="middle" font-size="14">${esc(panel.title)}</text>`);
    for (const t of niceTicks(yMin, yMax)) {
      const y = sy(t).toFixed(2);
      out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${margin.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
    }
    for (const t of niceTicks(xMin, xMax)) {
      const x = sx(t).toFixed(2);
      out.push(`<line x1="${x}" x2="${x}" y1="${y0 + margin.top}" y2="${y0 + margin.top + plotH}" stroke="#f0f0f0"/>`);
      out.push(`<text x="${x}" y="${y0 + margin.top + plotH + 16}" text-anchor="middle">${fmt(t)}</text>`);
    }
    out.push(`<rect x="${margin.left}" y="${y0 + margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
    out.push(`<text x="${margin.left + plotW / 2}" y="${y0 + panelHeight - 8}" text-anchor="middle">${esc(xLabel)}</text>`);
    out.push(`<text transform="translate(16 ${y0 + margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(panel.yLabel)}</text>`);
    panel.series.forEach((s, si) => {
      const color = COLORS[si % COLORS.length]!;
      const pts = s.points.filter((p) => Number.isFinite(p[1])).map(([x, y]) => `${sx(x).toFixed(2)},${sy(y).toFixed(2)}`);
      if (pts.length > 0) out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.join(' ')}"><title>${esc(s.name)}</title></polyline>`);
      const ly = y0 + margin.top + 10 + si * 18;
      const lx = margin.left + plotW + 12;
      out.push(`<line x1="${lx}" x2="${lx + 20}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
      out.push(`<text x="${lx + 26}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
    });
    out.push(`</g>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function seriesOf(rows: LogRow[], prefix: string, x: 'NumIters' | 'Seconds', keep: (name: string) => boolean): Series[] {
  const names = rows.length ? [...rows[0]!.keys()].slice(3).filter(keep) : [];
  return names.map((n) => ({ name: `${prefix} ${n}`, points: rows.filter((r) => r.has(n)).map((r) => [r.get(x)!, r.get(n)!] as [number, number]) }));
}

/** The panels for a parsed log: losses (train and test) and the other test/train outputs. */
export function logPanels(train: LogRow[], test: LogRow[], x: 'NumIters' | 'Seconds'): Panel[] {
  const isLoss = (n: string) => /loss/i.test(n);
  const panels: Panel[] = [
    { title: 'Loss', yLabel: 'loss', series: [...seriesOf(train, 'train', x, isLoss), ...seriesOf(test, 'test', x, isLoss)] },
  ];
  const other = [...seriesOf(train, 'train', x, (n) => !isLoss(n)), ...seriesOf(test, 'test', x, (n) => !isLoss(n))];
  if (other.length > 0) panels.push({ title: 'Outputs', yLabel: 'value', series: other });
  return panels;
}

export const plotLogCommand: Command = {
  summary: 'plot the loss and accuracy curves of a training log as SVG or PNG',
  usage: 'LOGFILE OUT.svg|OUT.png [--x iters|seconds] [--width 800]',
  async run({ flags, positional }) {
    const xName = flags.string('x', 'iters')!;
    const width = flags.int('width', 800);
    flags.checkAllUsed();
    if (positional.length !== 2) throw new UsageError('plot_log takes a log file and an output image');
    if (xName !== 'iters' && xName !== 'seconds') throw new UsageError(`--x must be iters or seconds, got '${xName}'`);
    if (width < 300) throw new UsageError(`--width must be at least 300, got ${width}`);
    const logPath = userPath(positional[0]!);
    const out = userPath(positional[1]!);
    const ext = extname(out).toLowerCase();
    if (ext !== '.svg' && ext !== '.png') throw new UsageError(`plot_log writes .svg or .png, got '${out}'`);
    const { train, test } = parseCaffeLog(readFileSync(logPath, 'utf8'), new Date(statSync(logPath).ctimeMs).getFullYear());
    if (train.length === 0 && test.length === 0) throw new UsageError(`no "Train net output" or "Test net output" lines in '${logPath}'`);
    const x = xName === 'iters' ? 'NumIters' : 'Seconds';
    const svg = renderChartSvg(logPanels(train, test, x), xName === 'iters' ? 'Iterations' : 'Seconds', width);
    if (ext === '.svg') {
      writeFileSync(out, svg);
    } else {
      const { default: sharp } = await import('sharp');
      await sharp(Buffer.from(svg)).png().toFile(out);
    }
    return 0;
  },
};
