import { BackendError } from '@caffe-ts/blob';
import type { LayerKernel, PoolingLayer } from '@caffe-ts/layers';
import { PoolingParameter_PoolMethod as PoolMethod } from '@caffe-ts/proto';
import { dataOf, deviceOf, diffOf, withConstants, writeData, writeDiff, IDIV } from './util.js';

const GEOM = 'H, Wd, PHt, PWt, KH, KW, SH, SW, PH, PW';
/** The geometry and element count, baked into each kernel as constants (GL folds the divisions). */
const geom = (l: PoolingLayer, H: number, W: number, count: number) => ({
  count,
  H,
  Wd: W,
  PHt: l.pooledHeight,
  PWt: l.pooledWidth,
  KH: l.kernelH,
  KW: l.kernelW,
  SH: l.strideH,
  SW: l.strideW,
  PH: l.padH,
  PW: l.padW,
});

/**
 * The max of window (ph, pw) of plane nc, clipped to the image, in `best` and its h·W + w in `at`
 * (the first wins on ties, as Caffe). The MAX forward returns one of them; the MAX backward
 * recomputes them for each window covering a bottom position.
 */
const WINDOW_MAX = `
    const hs = ph * SH - PH;
    const ws = pw * SW - PW;
    const he = Math.min(hs + KH, H);
    const we = Math.min(ws + KW, Wd);
    const h0 = Math.max(hs, 0);
    const w0 = Math.max(ws, 0);
    let best = -3.4028234e38;
    let at = -1.0;
    for (let r = 0; r < KH * KW; r++) {
      const dh = ${IDIV('r', 'KW')};
      const hh = h0 + dh;
      const ww = w0 + r - dh * KW;
      if (hh < he && ww < we) {
        const v = X[(nc * H + hh) * Wd + ww];
        if (v > best) { best = v; at = hh * Wd + ww; }
      }
    }`;

/** The top position of thread i: plane nc (image·channels + channel), row ph, column pw. */
const TOP_AT = `
    const t1 = ${IDIV('i', 'PWt')};
    const pw = i - t1 * PWt;
    const nc = ${IDIV('t1', 'PHt')};
    const ph = t1 - nc * PHt;`;

/** MAX: the window's max; `wantIndex` returns its h·W + w instead (the mask top). */
const maxForwardSpec = (l: PoolingLayer, wantIndex: boolean) => ({
  name: wantIndex ? 'pool-max-idx' : 'pool-max',
  loop: l.kernelH * l.kernelW,
  source: `function (X, count, ${GEOM}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }${TOP_AT}
${WINDOW_MAX}
    return ${wantIndex ? 'at' : 'best'};
  }`,
});

/** AVE: the sum over the window clipped to the image, divided by its size clipped to the padded image (Caffe). */
const aveForwardSpec = (l: PoolingLayer) => ({
  name: 'pool-ave',
  loop: l.kernelH * l.kernelW,
  source: `function (X, count, ${GEOM}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }${TOP_AT}
    const hs = ph * SH - PH;
    const ws = pw * SW - PW;
    const hp = Math.min(hs + KH, H + PH);
    const wp = Math.min(ws + KW, Wd + PW);
    const size = (hp - hs) * (wp - ws);
    const h0 = Math.max(hs, 0);
    const w0 = Math.max(ws, 0);
    const he = Math.min(hp, H);
    const we = Math.min(wp, Wd);
    let s = 0.0;
    for (let r = 0; r < KH * KW; r++) {
      const dh = ${IDIV('r', 'KW')};
      const h = h0 + dh;
      const w = w0 + r - dh * KW;
      if (h < he && w < we) { s += X[(nc * H + h) * Wd + w]; }
    }
    return s / size;
  }`,
});

/** Windows covering a bottom position: ph in [phs, phe), pw in [pws, pwe) (Caffe's GPU backward). */
const COVER = `
    const t1 = ${IDIV('i', 'Wd')};
    const w = i - t1 * Wd;
    const nc = ${IDIV('t1', 'H')};
    const h = t1 - nc * H;
    let phs = 0.0;
    if (h + PH >= KH) { phs = ${IDIV('(h + PH - KH)', 'SH')} + 1; }
    let pws = 0.0;
    if (w + PW >= KW) { pws = ${IDIV('(w + PW - KW)', 'SW')} + 1; }
    const phe = Math.min(${IDIV('(h + PH)', 'SH')} + 1, PHt);
    const pwe = Math.min(${IDIV('(w + PW)', 'SW')} + 1, PWt);
    const nph = Math.max(phe - phs, 0);
    const npw = Math.max(pwe - pws, 0);`;

/** MAX backward recomputes each covering window's argmax from the bottom data instead of keeping a mask texture. */
const maxBackwardSpec = (l: PoolingLayer) => ({
  name: 'pool-max-bwd',
  loop: Math.max(l.kernelH * l.kernelW, Math.ceil(l.kernelH / l.strideH + 1) * Math.ceil(l.kernelW / l.strideW + 1)),
  source: `function (X, DY, count, ${GEOM}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }${COVER}
    const me = h * Wd + w;
    let g = 0.0;
    for (let q = 0; q < nph * npw; q++) {
      const a = ${IDIV('q', 'npw')};
      const ph = phs + a;
      const pw = pws + q - a * npw;
${WINDOW_MAX}
      if (at == me) { g += DY[(nc * PHt + ph) * PWt + pw]; }
    }
    return g;
  }`,
});

/**
 * MAX backward when windows tile the input without overlap or padding (stride = kernel, LeNet's
 * 2×2/2): each bottom position lies in at most one window, so no loop over covering windows.
 */
const maxBackwardTiledSpec = (l: PoolingLayer) => ({
  name: 'pool-max-bwd-tiled',
  loop: l.kernelH * l.kernelW,
  source: `function (X, DY, count, ${GEOM}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const t1 = ${IDIV('i', 'Wd')};
    const w = i - t1 * Wd;
    const nc = ${IDIV('t1', 'H')};
    const h = t1 - nc * H;
    const ph = ${IDIV('h', 'SH')};
    const pw = ${IDIV('w', 'SW')};
    if (ph >= PHt || pw >= PWt) { return 0; }
    const hs = ph * SH;
    const ws = pw * SW;
    const me = h * Wd + w;
    let best = -3.4028234e38;
    let at = -1.0;
    for (let dh = 0; dh < KH; dh++) {
      for (let dw = 0; dw < KW; dw++) {
        const hh = hs + dh;
        const ww = ws + dw;
        if (hh < H && ww < Wd) {
          const v = X[(nc * H + hh) * Wd + ww];
          if (v > best) { best = v; at = hh * Wd + ww; }
        }
      }
    }
    if (at == me) { return DY[(nc * PHt + ph) * PWt + pw]; }
    return 0;
  }`,
});

const aveBackwardSpec = (l: PoolingLayer) => ({
  name: 'pool-ave-bwd',
  loop: Math.ceil(l.kernelH / l.strideH + 1) * Math.ceil(l.kernelW / l.strideW + 1),
  source: `function (DY, count, ${GEOM}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }${COVER}
    let g = 0.0;
    for (let q = 0; q < nph * npw; q++) {
      const a = ${IDIV('q', 'npw')};
      const ph = phs + a;
      const pw = pws + q - a * npw;
      const hs = ph * SH - PH;
      const ws = pw * SW - PW;
      const hp = Math.min(hs + KH, H + PH);
      const wp = Math.min(ws + KW, Wd + PW);
      g += DY[(nc * PHt + ph) * PWt + pw] / ((hp - hs) * (wp - ws));
    }
    return g;
  }`,
});

function method(layer: PoolingLayer): PoolMethod {
  const m = layer.param.pooling_param?.pool ?? PoolMethod.MAX;
  if (m !== PoolMethod.MAX && m !== PoolMethod.AVE) {
    throw new BackendError(`Pooling layer '${layer.name}': the gpu backend has MAX and AVE pooling only (got method ${m})`);
  }
  return m;
}

export const poolingKernel: LayerKernel<PoolingLayer> = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const [H, W] = [bottom[0]!.shape[2]!, bottom[0]!.shape[3]!];
    const x = dataOf(dev, bottom[0]!);
    const m = method(layer);
    const g = geom(layer, H, W, top[0]!.count());
    writeData(dev, top[0]!, withConstants(m === PoolMethod.MAX ? maxForwardSpec(layer, false) : aveForwardSpec(layer), g), [x]);
    if (top.length > 1) {
      if (m !== PoolMethod.MAX) throw new BackendError(`Pooling layer '${layer.name}': a mask top needs MAX pooling`);
      writeData(dev, top[1]!, withConstants(maxForwardSpec(layer, true), g), [x]);
    }
  },
  backward(layer, top, propagateDown, bottom) {
    if (!propagateDown[0]) return;
    const dev = deviceOf(layer);
    const [H, W] = [bottom[0]!.shape[2]!, bottom[0]!.shape[3]!];
    const dy = diffOf(dev, top[0]!);
    const g = geom(layer, H, W, bottom[0]!.count());
    if (method(layer) === PoolMethod.MAX) {
      const tiled = layer.strideH === layer.kernelH && layer.strideW === layer.kernelW && layer.padH === 0 && layer.padW === 0;
      writeDiff(dev, bottom[0]!, withConstants(tiled ? maxBackwardTiledSpec(layer) : maxBackwardSpec(layer), g), [dataOf(dev, bottom[0]!), dy]);
    } else {
      writeDiff(dev, bottom[0]!, withConstants(aveBackwardSpec(layer), g), [dy]);
    }
  },
};
