/**
 * A canvas to draw a digit on, and its conversion to what LeNet was trained on: MNIST digits are
 * white on black, fitted into a 20×20 box and centred by their centre of mass in 28×28, scaled to
 * [0, 1) as the zoo's LeNet (1/256).
 */
export class DrawPad {
  private drawing = false;
  private last: { x: number; y: number } | null = null;
  private readonly ctx: CanvasRenderingContext2D;
  onStroke: (() => void) | null = null;

  constructor(readonly canvas: HTMLCanvasElement) {
    this.ctx = canvas.getContext('2d', { willReadFrequently: true })!;
    this.clear();
    canvas.addEventListener('pointerdown', (e) => {
      this.drawing = true;
      canvas.setPointerCapture(e.pointerId);
      this.last = this.point(e);
      this.line(this.last, this.last);
    });
    canvas.addEventListener('pointermove', (e) => {
      if (!this.drawing) return;
      const p = this.point(e);
      this.line(this.last ?? p, p);
      this.last = p;
    });
    const end = () => {
      if (!this.drawing) return;
      this.drawing = false;
      this.last = null;
      this.onStroke?.();
    };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
  }

  private point(e: PointerEvent): { x: number; y: number } {
    const r = this.canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) * this.canvas.width) / r.width, y: ((e.clientY - r.top) * this.canvas.height) / r.height };
  }

  private line(a: { x: number; y: number }, b: { x: number; y: number }): void {
    const ctx = this.ctx;
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = this.canvas.width / 14;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  }

  clear(): void {
    this.ctx.fillStyle = '#000';
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  /** The drawing as 28×28 values in [0, 1), or null when nothing is drawn. Also painted into `preview`. */
  toMnist(preview?: HTMLCanvasElement): Float32Array | null {
    const { width, height } = this.canvas;
    const src = this.ctx.getImageData(0, 0, width, height).data;
    let x0 = width;
    let y0 = height;
    let x1 = -1;
    let y1 = -1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (src[(y * width + x) * 4]! > 0) {
          x0 = Math.min(x0, x);
          x1 = Math.max(x1, x);
          y0 = Math.min(y0, y);
          y1 = Math.max(y1, y);
        }
      }
    }
    if (x1 < 0) return null;
    const bw = x1 - x0 + 1;
    const bh = y1 - y0 + 1;
    const s = 20 / Math.max(bw, bh);
    const box = document.createElement('canvas');
    box.width = 28;
    box.height = 28;
    const bctx = box.getContext('2d', { willReadFrequently: true })!;
    bctx.fillStyle = '#000';
    bctx.fillRect(0, 0, 28, 28);
    bctx.imageSmoothingQuality = 'high';
    bctx.drawImage(this.canvas, x0, y0, bw, bh, (28 - bw * s) / 2, (28 - bh * s) / 2, bw * s, bh * s);
    const fitted = bctx.getImageData(0, 0, 28, 28).data;
    // Centre of mass to the centre, as MNIST's preparation did.
    let m = 0;
    let cx = 0;
    let cy = 0;
    for (let i = 0; i < 784; i++) {
      const v = fitted[i * 4]!;
      m += v;
      cx += v * (i % 28);
      cy += v * Math.floor(i / 28);
    }
    const dx = Math.round(13.5 - cx / m);
    const dy = Math.round(13.5 - cy / m);
    const out = new Float32Array(784);
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const sx = x - dx;
        const sy = y - dy;
        if (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) out[y * 28 + x] = fitted[(sy * 28 + sx) * 4]! / 256;
      }
    }
    if (preview) {
      const pctx = preview.getContext('2d')!;
      const img = pctx.createImageData(28, 28);
      out.forEach((v, i) => img.data.set([v * 256, v * 256, v * 256, 255], i * 4));
      pctx.putImageData(img, 0, 0);
    }
    return out;
  }
}
