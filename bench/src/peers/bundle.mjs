// Bundles of the peer comparison, free of caffe-ts imports so the peers' processes load none of
// caffe-ts: <dir>/<row>.json (spec, inputs and reference arrays with offsets) and <dir>/<row>.bin
// (all float32 arrays back to back).
import { closeSync, openSync, readFileSync, writeFileSync, writeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Writes a bundle: the spec, named input arrays and named reference arrays (caffe-ts results the
 * peers must reproduce), all float32.
 */
export function saveBundle(dir, row, spec, inputs, reference, extra = {}) {
  mkdirSync(dir, { recursive: true });
  const chunks = [];
  let offset = 0;
  const put = (arr) => {
    const f = arr instanceof Float32Array ? arr : Float32Array.from(arr);
    chunks.push(Buffer.from(f.buffer, f.byteOffset, f.byteLength));
    const at = offset;
    offset += f.length;
    return { offset: at, length: f.length };
  };
  const json = {
    spec: { ...spec, layers: spec.layers.map((l) => ({ ...l, blobs: l.blobs.map((b) => ({ shape: b.shape, ...put(b.data) })) })) },
    inputs: Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { shape: v.shape, ...put(v.data) }])),
    reference: Object.fromEntries(Object.entries(reference).map(([k, v]) => [k, { shape: v.shape, ...put(v.data) }])),
    ...extra,
  };
  // Chunk by chunk: a concatenation would hold every weight a second time (CaffeNet: 244 MB).
  const fd = openSync(join(dir, `${row}.bin`), 'w');
  try {
    for (const c of chunks) for (let at = 0; at < c.length; ) at += writeSync(fd, c, at);
  } finally {
    closeSync(fd);
  }
  writeFileSync(join(dir, `${row}.json`), JSON.stringify(json));
}

/** Reads a bundle written by saveBundle; arrays come back as Float32Array views. */
export function loadBundle(dir, row) {
  let json;
  try {
    json = JSON.parse(readFileSync(join(dir, `${row}.json`), 'utf8'));
  } catch (e) {
    throw new Error(`no caffe-ts bundle for row ${row} in ${dir} (the caffe-ts worker writes it first): ${e.message}`);
  }
  const buf = readFileSync(join(dir, `${row}.bin`));
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const get = ({ offset, length }) => all.subarray(offset, offset + length);
  json.spec.layers = json.spec.layers.map((l) => ({ ...l, blobs: l.blobs.map((b) => ({ shape: b.shape, data: get(b) })) }));
  for (const group of ['inputs', 'reference']) {
    for (const [k, v] of Object.entries(json[group])) json[group][k] = { shape: v.shape, data: get(v) };
  }
  return json;
}

/**
 * Largest absolute difference relative to the reference's largest magnitude: one number per
 * array that stays meaningful for logits, probabilities and gradients alike.
 */
export function maxRelError(got, ref) {
  if (got.length !== ref.length) throw new Error(`size mismatch: ${got.length} values, expected ${ref.length}`);
  let diff = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= diff)) diff = d; // NaN propagates as the largest difference
    const m = Math.abs(ref[i]);
    if (m > scale) scale = m;
  }
  return diff / Math.max(scale, 1e-30);
}
