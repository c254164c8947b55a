/**
 * conv1's kernels as pictures: one canvas per output channel, each kernel scaled by the largest
 * absolute weight of the layer so that filters compare (grey is 0, white positive, black negative).
 */
export function drawFilters(container: HTMLElement, shape: readonly number[], weights: Float32Array): void {
  const [num = 0, channels = 1, kh = 1, kw = 1] = shape;
  let max = 1e-12;
  for (const w of weights) max = Math.max(max, Math.abs(w));
  while (container.children.length < num) {
    const c = document.createElement('canvas');
    c.width = kw;
    c.height = kh;
    c.className = 'filter';
    container.append(c);
  }
  for (let f = 0; f < num; f++) {
    const canvas = container.children[f] as HTMLCanvasElement;
    const ctx = canvas.getContext('2d')!;
    const img = ctx.createImageData(kw, kh);
    for (let p = 0; p < kh * kw; p++) {
      // Channel 0 only: LeNet's conv1 sees one grey channel.
      const v = weights[(f * channels) * kh * kw + p]!;
      const g = Math.round(128 + (127 * v) / max);
      img.data.set([g, g, g, 255], p * 4);
    }
    ctx.putImageData(img, 0, 0);
  }
  container.dataset['updates'] = String(Number(container.dataset['updates'] ?? '0') + 1);
}
