import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** A live line chart over iterations; points are buffered and drawn at most once a frame. */
export class LiveChart {
  private readonly plot: uPlot;
  private readonly data: number[][];
  private pending = false;

  constructor(el: HTMLElement, title: string, series: { label: string; stroke: string }[], yRange?: [number, number]) {
    this.data = [[], ...series.map(() => [])];
    const width = Math.max(320, Math.min(560, el.clientWidth || 480));
    this.plot = new uPlot(
      {
        title,
        width,
        height: 200,
        scales: { x: { time: false }, y: yRange ? { range: yRange } : {} },
        axes: [{ label: 'iteration' }, {}],
        series: [{ label: 'iteration' }, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, spanGaps: true }))],
      },
      this.data as uPlot.AlignedData,
      el,
    );
  }

  /** Add a point: x and one value per series (null where a series has none at x). */
  push(x: number, ...ys: (number | null)[]): void {
    this.data[0]!.push(x);
    ys.forEach((y, i) => this.data[i + 1]!.push(y as number));
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.plot.setData(this.data as uPlot.AlignedData);
    });
  }

  clear(): void {
    for (const s of this.data) s.length = 0;
    this.plot.setData(this.data as uPlot.AlignedData);
  }
}
