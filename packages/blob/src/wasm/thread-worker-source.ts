// The source of a kernel worker thread, as a string: it runs from `new Worker(code, { eval: true })`
// in Node and from a Blob URL in browsers, so the package needs no separate worker file that a
// bundler would have to find. Keep it plain ES2020 with no imports.
//
// A worker instantiates the shared-memory GEMM module builds it is given over the pool's shared
// WebAssembly.Memory, marks itself ready, then sleeps on the job counter. For each job that
// names it (its command region's first word equals the counter, which it swaps for -1 to claim
// the list: the caller may have taken it back), it runs its command list (calls
// of the module's exports with arguments read from the region) and counts the job down. The
// command layout is documented in threads.ts, which writes it.

export const WORKER_SOURCE = String.raw`
'use strict';
function start(d, post) {
  var memory = d.memory, id = d.id, region = d.region, words = d.regionWords;
  var env = { env: { memory: memory } };
  // Builds by variant: 0, 1 the GEMM module (SIMD, relaxed SIMD); 2, 3 the inference module's;
  // 4, 5 the training module's.
  var inst = [];
  for (var v = 0; v < d.modules.length; v++) inst.push(d.modules[v] ? new WebAssembly.Instance(d.modules[v], env).exports : null);
  var ctl = new Int32Array(memory.buffer, 0, d.ctlWords);
  var i = new Int32Array(memory.buffer, region, words);
  var f = new Float32Array(memory.buffer, region, words);
  var SEQ = d.SEQ, PENDING = d.PENDING, ERRORS = d.ERRORS, STOP = d.STOP, LISTS = d.WORKER_LISTS, HEAD = d.HEAD, CMD = d.CMD, SPIN = d.SPIN, SPIN_WORD = d.SPIN_WORD;
  function run() {
    var n = i[1];
    for (var c = 0; c < n; c++) {
      var o = HEAD + c * CMD, op = i[o], ex = inst[op >> 8], a = o + 1;
      i[2] = op;
      switch (op & 255) {
        case 1: ex.gemm(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], f[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], f[a + 10], i[a + 11], i[a + 12], i[a + 13], i[a + 14], i[a + 15]); break;
        case 2: ex.im2col(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], i[a + 10], i[a + 11], i[a + 12]); break;
        case 3: ex.col2im(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], i[a + 10], i[a + 11], i[a + 12]); break;
        case 4: ex.gather(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4]); break;
        case 5: ex.scatter(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6]); break;
        case 6: ex.rowsum(i[a], i[a + 1], i[a + 2], i[a + 3]); break;
        case 7: ex.zero(i[a], i[a + 1]); break;
        case 8: ex.pconv(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], i[a + 10],
          i[a + 11], i[a + 12], i[a + 13], i[a + 14], i[a + 15], i[a + 16], i[a + 17], f[a + 18], i[a + 19], i[a + 20], i[a + 21], i[a + 22]); break;
        case 10: ex.rowdot(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8]); break;
        case 11: ex.depthwise(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], i[a + 10],
          i[a + 11], i[a + 12], i[a + 13], i[a + 14], i[a + 15], i[a + 16], i[a + 17], i[a + 18]); break;
        case 12: ex.relu(i[a], i[a + 1], i[a + 2], f[a + 3]); break;
        case 13: case 15: (op & 255) === 13
          ? ex.wino_in(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9])
          : ex.wino4_in(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9]); break;
        case 14: case 16: (op & 255) === 14
          ? ex.wino_out(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], i[a + 10], f[a + 11], i[a + 12], i[a + 13])
          : ex.wino4_out(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], i[a + 10], f[a + 11], i[a + 12], i[a + 13]); break;
        case 17: ex.gemm_mt(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], f[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], f[a + 10], i[a + 11],
          i[a + 12], i[a + 13], i[a + 14], i[a + 15], i[a + 16], i[a + 17], i[a + 18], i[a + 19], i[a + 20], i[a + 21], i[a + 22]); break;
        case 18: ex.padimg(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6]); break;
        case 19: ex.padimg2(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8]); break;
        case 20: ex.wino25_in(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9]); break;
        case 21: ex.wino25_out(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], i[a + 10], f[a + 11], i[a + 12], i[a + 13]); break;
        case 22: ex.maxpool_direct(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], i[a + 10]); break;
        case 23: ex.maxpool(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], i[a + 10],
          i[a + 11], i[a + 12], i[a + 13], i[a + 14], i[a + 15]); break;
        case 24: ex.lrn(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], f[a + 7], f[a + 8], i[a + 9], i[a + 10], i[a + 11]); break;
        case 25: ex.maxpool2x2(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7]); break;
        case 26: ex.maxunpool(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5]); break;
        case 27: ex.sconv_stage(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8]); break;
        case 28: ex.sconv_wgrad(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], i[a + 10]); break;
        case 29: ex.sconv_bsum(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4]); break;
        case 30: ex.sgd_step_at(i[a]); break;
        case 9: ex.wgemm(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], f[a + 9], i[a + 10]); break;
        default: throw new Error('unknown command ' + op);
      }
    }
    i[2] = 0;
  }
  var seen = Atomics.load(ctl, SEQ);
  Atomics.store(ctl, d.READY + id, 1);
  post({ ready: id });
  for (;;) {
    var s, spins = 0, word = Atomics.load(ctl, SPIN_WORD), limit = word === 0 ? SPIN : word - 1;
    while ((s = Atomics.load(ctl, SEQ)) === seen) {
      if (Atomics.load(ctl, STOP)) return;
      // A short spin catches back-to-back jobs (a layer's GEMMs) without a futex round trip.
      if (++spins > limit) { Atomics.wait(ctl, SEQ, seen, 1000); spins = 0; }
    }
    seen = s;
    // Claim the list (the caller takes back lists nobody has claimed once it is done with its own).
    if (Atomics.compareExchange(i, 0, s, -1) !== s) continue;
    try {
      run();
      Atomics.add(ctl, LISTS, 1);
    } catch (e) {
      Atomics.add(ctl, ERRORS, 1);
      post({ error: String(e && e.message || e), op: i[2] });
    }
    if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
  }
}
if (typeof require === 'function' && typeof process === 'object' && process.versions && process.versions.node) {
  var wt = require('worker_threads');
  start(wt.workerData, function (m) { wt.parentPort.postMessage(m); });
} else {
  self.onmessage = function (e) { self.onmessage = null; start(e.data, function (m) { self.postMessage(m); }); };
}
`;
