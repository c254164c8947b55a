// Generates the WebAssembly text (WAT) of the inference kernels that the GEMM module does not
// cover well (src/wasm/infer-wasm.ts runs them):
//
// - rowdot: Y[m, n] = Σ_k X[m, k] · W[n, k] (+ b[n]): an inner product whose weights are stored
//   one output per row (Caffe's InnerProduct layout, the GEMM's transB). For a handful of input
//   rows (batch-1 inference) the blocked GEMM spends its time packing the whole weight matrix;
//   here the weights stream through once, four rows at a time, each group of four rows reused
//   for every input row (two input rows at a time) while it is in cache.
// - depthwise: a 2-D convolution with one filter per channel (group = channels = outputs), the
//   shape of MobileNet's depthwise layers, which im2col + GEMM runs as one tiny GEMM per channel.
//   Each channel plane is copied into a zero-bordered scratch plane (so the window loop needs no
//   bounds tests), then four outputs of a row are computed at once: for stride 1 from four
//   consecutive inputs, for stride 2 from the even lanes of eight; 3×3 windows (MobileNet's) in
//   a plane kernel that keeps the nine weights in registers and, at stride 1, computes two output
//   rows per pass; other strides run one output at a time.
//
// - maxpool: MAX pooling without the argmax (inference), windows over a NaN-bordered scratch
//   plane, four outputs at a time for strides 1 and 2.
// - lrn: Local Response Normalization across channels (β of 0.75, 0.5 or 1: square roots), the
//   window's squares summed plane by plane into a plane-sized scratch buffer.
// - relu, affine (per-channel a·x + b, optionally then ReLU) and sum2 (c0·a + c1·b, optionally
//   then ReLU): the elementwise steps of inference in float32 SIMD (ReLU layers, and the fused
//   BatchNorm → Scale → ReLU and Eltwise → ReLU chains of Net.forward).
//
// `scripts/build-infer-wasm.mjs` assembles it with wabt into src/wasm/generated/infer-wasm.ts
// (an own-memory build and one importing the kernel threads' shared memory); a test checks the
// committed output is in sync.

/**
 * @param {{ shared?: boolean, relaxed?: boolean }} [options] shared: import env.memory (shared)
 *   instead of exporting an own memory; relaxed: the packed convolution's micro-kernel uses
 *   f32x4.relaxed_madd (fused where the host has FMA) instead of f32x4.mul + f32x4.add.
 * @returns {string}
 */
/**
 * WAT lines copying $n bytes (a multiple of 4) from address $src to $dst (i32 locals; $i an i32
 * scratch local): short rows in v128 then f32 steps, where a memory.copy call's fixed cost would
 * dominate (planes of 7 or 14 columns), long ones with memory.copy.
 */
function rowCopyWat(dst, src, n, i) {
  const d = `(local.get ${dst})`, s = `(local.get ${src})`, nb = `(local.get ${n})`, ix = `(local.get ${i})`;
  return [
    `(if (i32.lt_u ${nb} (i32.const 256)) (then`,
    `  (local.set ${i} (i32.const 0))`,
    `  (block $rcV (loop $rcVL`,
    `    (br_if $rcV (i32.gt_u (i32.add ${ix} (i32.const 16)) ${nb}))`,
    `    (v128.store (i32.add ${d} ${ix}) (v128.load (i32.add ${s} ${ix})))`,
    `    (local.set ${i} (i32.add ${ix} (i32.const 16)))`,
    '    (br $rcVL)))',
    `  (block $rcS (loop $rcSL`,
    `    (br_if $rcS (i32.ge_u ${ix} ${nb}))`,
    `    (f32.store (i32.add ${d} ${ix}) (f32.load (i32.add ${s} ${ix})))`,
    `    (local.set ${i} (i32.add ${ix} (i32.const 4)))`,
    '    (br $rcSL))))',
    `(else (memory.copy ${d} ${s} ${nb})))`,
  ];
}

/**
 * Input rows rowdot takes together against each group of four weight rows. Two: CaffeNet's fc6
 * at batch 10 (10 × 4096 × 9216) 40.6 -> 28.6 ms CPU median against one at a time; three ran
 * as slow as one (twelve accumulators and three inputs spill on x64's 16 vector registers).
 */
const ROWDOT_ROWS = 2;

/**
 * acc + a·b as WAT: one fused multiply-add in the relaxed build (where the engine fuses it), else
 * a product then a sum.
 */
const maddWat = (relaxed) => (a, b, acc) => (relaxed ? `(f32x4.relaxed_madd ${a} ${b} ${acc})` : `(f32x4.add ${acc} (f32x4.mul ${a} ${b}))`);

/**
 * Output rows per pass of the 3×3 depthwise plane kernels, by column stride (where the row stride
 * is the same and that many rows remain; else one). Two output rows at stride 1 share the
 * window's two middle input rows, so each of those vectors is loaded once for two multiply-adds
 * (12 loads per 8 outputs instead of 18), and the two accumulators are independent chains:
 * 1.18–1.32× as fast as one row at a time on MobileNet v2's planes (depthwise-ab.mjs). Three rows
 * at stride 1, and two at stride 2 (which share one input row of five), measured slower than
 * these: with the nine weights held in registers, their extra vectors spill on x64.
 */
const DW_ROWS = Object.freeze({ 1: 2, 2: 1 });

/**
 * WAT of `$dw3s<stride>`: one channel's 3×3 undilated depthwise plane, y = b + Σ w·x over the
 * padded plane at $pad (rows $WpB bytes apart), output rows of $OW floats from $yc, $OH of them.
 * Each output is the same sequential sum as the general loops': the bias, then the nine taps in
 * order (ky, then kx). The row's last 1–3 outputs are one vector whose lanes past the row are not
 * stored; its loads stay inside the padded row and its slack.
 */
function depthwisePlaneWat(stride, relaxed) {
  const madd = maddWat(relaxed);
  const ROWS = DW_ROWS[stride];
  const L = [];
  const e = (indent, line) => L.push('  '.repeat(indent) + line);
  const EVEN = '0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27', ODD = '4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31';
  e(0, `(func $dw3s${stride} (param $pad i32) (param $WpB i32) (param $SH i32) (param $yc i32) (param $OH i32) (param $OW i32) (param $wc i32) (param $bias f32)`);
  e(1, '(local $oy i32) (local $ox i32) (local $n i32) (local $p i32) (local $q i32) (local $rowB i32) (local $outB i32) (local $most i32)');
  e(1, '(local $va v128) (local $vb v128) (local $x v128)');
  e(1, Array.from({ length: ROWS }, (_, j) => `(local $acc${j} v128) (local $y${j} i32)`).join(' '));
  e(1, Array.from({ length: stride * (ROWS - 1) + 3 }, (_, i) => `(local $r${i} i32)`).join(' '));
  e(1, Array.from({ length: 9 }, (_, t) => `(local $w${t} v128)`).join(' '));
  for (let t = 0; t < 9; t++) e(1, `(local.set $w${t} (v128.load32_splat offset=${4 * t} (local.get $wc)))`);
  e(1, '(local.set $rowB (i32.mul (local.get $WpB) (local.get $SH)))');
  // Output rows share input rows (one body for n rows) only where the row stride is the column's.
  e(1, `(local.set $most (select (i32.const ${ROWS}) (i32.const 1) (i32.eq (local.get $SH) (i32.const ${stride}))))`);
  e(1, '(local.set $outB (i32.shl (local.get $OW) (i32.const 2)))');
  e(1, '(block $done (loop $rows');
  e(2, '(br_if $done (i32.ge_s (local.get $oy) (local.get $OH)))');
  e(2, '(local.set $r0 (i32.add (local.get $pad) (i32.mul (local.get $oy) (local.get $rowB))))');
  e(2, '(local.set $y0 (i32.add (local.get $yc) (i32.mul (local.get $oy) (local.get $outB))))');
  e(2, '(local.set $n (select (local.get $most) (i32.sub (local.get $OH) (local.get $oy)) (i32.ge_s (i32.sub (local.get $OH) (local.get $oy)) (local.get $most))))');
  // One body per row count, largest first: n rows of outputs from stride·(n − 1) + 3 input rows.
  for (let n = ROWS; n >= 1; n--) {
    const inRows = stride * (n - 1) + 3;
    e(2, `(if (i32.eq (local.get $n) (i32.const ${n})) (then`);
    for (let i = 1; i < inRows; i++) e(3, `(local.set $r${i} (i32.add (local.get $r${i - 1}) (local.get $WpB)))`);
    for (let j = 1; j < n; j++) e(3, `(local.set $y${j} (i32.add (local.get $y${j - 1}) (local.get $outB)))`);
    e(3, '(local.set $ox (i32.const 0))');
    for (const tail of [false, true]) {
      if (tail) e(3, '(if (i32.lt_s (local.get $ox) (local.get $OW)) (then');
      else {
        e(3, `(block $vDone${n} (loop $v${n}`);
        e(4, `(br_if $vDone${n} (i32.gt_s (i32.add (local.get $ox) (i32.const 4)) (local.get $OW)))`);
      }
      e(4, '(local.set $acc0 (f32x4.splat (local.get $bias)))');
      for (let j = 1; j < n; j++) e(4, `(local.set $acc${j} (local.get $acc0))`);
      e(4, `(local.set $p (i32.shl (local.get $ox) (i32.const ${stride + 1})))`);
      // Input row i feeds output row j with the taps of row ky = i − stride·j.
      for (let i = 0; i < inRows; i++) {
        e(4, `(local.set $q (i32.add (local.get $r${i}) (local.get $p)))`);
        // Each tap column's vector is made just before its multiply-adds: with the nine weights
        // and the accumulators, three live inputs would spill on x64's vector registers.
        const column = [
          stride === 1 ? '(v128.load (local.get $q))' : `(i8x16.shuffle ${EVEN} (local.get $va) (local.get $vb))`,
          stride === 1 ? '(v128.load offset=4 (local.get $q))' : `(i8x16.shuffle ${ODD} (local.get $va) (local.get $vb))`,
          stride === 1 ? '(v128.load offset=8 (local.get $q))' : `(i8x16.shuffle ${EVEN} (v128.load offset=8 (local.get $q)) (v128.load offset=24 (local.get $q)))`,
        ];
        if (stride === 2) {
          // Columns 2·ox + kx of four outputs: even lanes (kx = 0), odd lanes (1), even lanes two on (2).
          e(4, '(local.set $va (v128.load (local.get $q)))');
          e(4, '(local.set $vb (v128.load offset=16 (local.get $q)))');
        }
        for (let kx = 0; kx < 3; kx++) {
          e(4, `(local.set $x ${column[kx]})`);
          for (let j = 0; j < n; j++) {
            const ky = i - stride * j;
            if (ky >= 0 && ky < 3) e(4, `(local.set $acc${j} ${madd(`(local.get $w${3 * ky + kx})`, '(local.get $x)', `(local.get $acc${j})`)})`);
          }
        }
      }
      if (tail) {
        for (let j = 0; j < n; j++) {
          e(4, `(local.set $q (i32.add (local.get $y${j}) (i32.shl (local.get $ox) (i32.const 2))))`);
          e(4, `(f32.store (local.get $q) (f32x4.extract_lane 0 (local.get $acc${j})))`);
          e(4, `(if (i32.lt_s (i32.add (local.get $ox) (i32.const 1)) (local.get $OW)) (then (f32.store offset=4 (local.get $q) (f32x4.extract_lane 1 (local.get $acc${j})))))`);
          e(4, `(if (i32.lt_s (i32.add (local.get $ox) (i32.const 2)) (local.get $OW)) (then (f32.store offset=8 (local.get $q) (f32x4.extract_lane 2 (local.get $acc${j})))))`);
        }
        e(3, '))');
      } else {
        e(4, '(local.set $q (i32.shl (local.get $ox) (i32.const 2)))');
        for (let j = 0; j < n; j++) e(4, `(v128.store (i32.add (local.get $y${j}) (local.get $q)) (local.get $acc${j}))`);
        e(4, '(local.set $ox (i32.add (local.get $ox) (i32.const 4)))');
        e(4, `(br $v${n})))`);
      }
    }
    e(2, '))');
  }
  e(2, '(local.set $oy (i32.add (local.get $oy) (local.get $n)))');
  e(2, '(br $rows)))');
  e(0, ')');
  return L;
}

export function generateInferWat({ shared = false, relaxed = false } = {}) {
  const out = [];
  const emit = (indent, line) => out.push('  '.repeat(indent) + line);
  const madd = maddWat(relaxed);
  emit(0, `;; GENERATED by packages/blob/scripts/infer-wat.mjs (${relaxed ? 'relaxed SIMD' : 'SIMD'}${shared ? ', shared memory' : ''} variant). Do not edit.`);
  emit(0, '(module');
  if (shared) emit(1, '(import "env" "memory" (memory 1 65536 shared))');
  else emit(1, '(memory (export "memory") 1)');

  // ---- rowdot ----
  const hsum = (v) =>
    `(f32.add (f32.add (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 1 ${v})) (f32.add (f32x4.extract_lane 2 ${v}) (f32x4.extract_lane 3 ${v})))`;
  emit(1, ';; Y[m, n] = sum_k X[m, k] * W[n, k] (+ b[n]); X is M x K, W is N x K, Y is M x N with row stride ldy (byte pointers).');
  emit(1, '(func (export "rowdot") (param $x i32) (param $M i32) (param $K i32) (param $w i32) (param $N i32) (param $b i32) (param $hasBias i32) (param $y i32) (param $ldy i32)');
  emit(2, '(local $n i32) (local $m i32) (local $k i32) (local $K4 i32) (local $rowB i32)');
  emit(2, '(local $w0 i32) (local $w1 i32) (local $w2 i32) (local $w3 i32) (local $xr i32) (local $xv v128) (local $wv v128)');
  emit(2, '(local $xr1 i32) (local $xv1 v128) (local $xr2 i32) (local $xv2 v128)');
  emit(2, '(local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)');
  emit(2, '(local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128)');
  emit(2, '(local $d0 v128) (local $d1 v128) (local $d2 v128) (local $d3 v128)');
  emit(2, '(local $s0 f32) (local $s1 f32) (local $s2 f32) (local $s3 f32) (local $xs f32) (local $yp i32)');
  emit(2, '(local.set $K4 (i32.and (local.get $K) (i32.const -4)))');
  emit(2, '(local.set $rowB (i32.shl (local.get $K) (i32.const 2)))');
  // `rows` input rows (from $xr, $xr1, $xr2; accumulators $a, $c, $d) against the four weight
  // rows: each output's sum is the same whatever the count (its lanes in k order, then the lanes
  // summed, then the K mod 4 tail), so taking input rows together only divides the weight loads
  // per multiply-add.
  const ACC = ['a', 'c', 'd'], XR = ['$xr', '$xr1', '$xr2'], XV = ['$xv', '$xv1', '$xv2'];
  const rowBody = (indent, rows, tag) => {
    for (let i = 0; i < rows; i++) for (let r = 0; r < 4; r++) emit(indent, `(local.set $${ACC[i]}${r} (v128.const i32x4 0 0 0 0))`);
    emit(indent, '(local.set $k (i32.const 0))');
    emit(indent, `(block $kDone${tag} (loop $kLoop${tag}`);
    emit(indent + 1, `(br_if $kDone${tag} (i32.ge_s (local.get $k) (local.get $K4)))`);
    for (let i = 0; i < rows; i++) emit(indent + 1, `(local.set ${XV[i]} (v128.load (i32.add (local.get ${XR[i]}) (i32.shl (local.get $k) (i32.const 2)))))`);
    for (let r = 0; r < 4; r++) {
      emit(indent + 1, `(local.set $wv (v128.load (i32.add (local.get $w${r}) (i32.shl (local.get $k) (i32.const 2)))))`);
      // acc + x·w: one fused multiply-add in the relaxed build (fc6 at batch 10: 34-37 -> 24-29 ms
      // on one thread; the sums stay per output, so row grouping and threads change no bit).
      for (let i = 0; i < rows; i++) {
        emit(indent + 1, `(local.set $${ACC[i]}${r} ${madd(`(local.get ${XV[i]})`, '(local.get $wv)', `(local.get $${ACC[i]}${r})`)})`);
      }
    }
    emit(indent + 1, '(local.set $k (i32.add (local.get $k) (i32.const 4)))');
    emit(indent + 1, `(br $kLoop${tag})))`);
    for (let i = 0; i < rows; i++) {
      // Each row's tail starts over at K4.
      if (i > 0) emit(indent, '(local.set $k (local.get $K4))');
      for (let r = 0; r < 4; r++) emit(indent, `(local.set $s${r} ${hsum(`(local.get $${ACC[i]}${r})`)})`);
      emit(indent, `(block $tDone${tag}${i} (loop $tLoop${tag}${i}`);
      emit(indent + 1, `(br_if $tDone${tag}${i} (i32.ge_s (local.get $k) (local.get $K)))`);
      emit(indent + 1, `(local.set $xs (f32.load (i32.add (local.get ${XR[i]}) (i32.shl (local.get $k) (i32.const 2)))))`);
      for (let r = 0; r < 4; r++) {
        emit(indent + 1, `(local.set $s${r} (f32.add (local.get $s${r}) (f32.mul (local.get $xs) (f32.load (i32.add (local.get $w${r}) (i32.shl (local.get $k) (i32.const 2)))))))`);
      }
      emit(indent + 1, '(local.set $k (i32.add (local.get $k) (i32.const 1)))');
      emit(indent + 1, `(br $tLoop${tag}${i})))`);
      emit(indent, `(local.set $yp (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (i32.add (local.get $m) (i32.const ${i})) (local.get $ldy)) (local.get $n)) (i32.const 2))))`);
      for (let r = 0; r < 4; r++) {
        emit(indent, `(f32.store offset=${4 * r} (local.get $yp) (select (f32.add (local.get $s${r}) (f32.load offset=${4 * r} (i32.add (local.get $b) (i32.shl (local.get $n) (i32.const 2))))) (local.get $s${r}) (local.get $hasBias)))`);
      }
    }
  };
  const R = ROWDOT_ROWS;
  // Groups of four weight rows.
  emit(2, '(block $nDone (loop $nLoop');
  emit(3, '(br_if $nDone (i32.gt_s (i32.add (local.get $n) (i32.const 4)) (local.get $N)))');
  emit(3, '(local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $rowB))))');
  emit(3, '(local.set $w1 (i32.add (local.get $w0) (local.get $rowB)))');
  emit(3, '(local.set $w2 (i32.add (local.get $w1) (local.get $rowB)))');
  emit(3, '(local.set $w3 (i32.add (local.get $w2) (local.get $rowB)))');
  emit(3, '(local.set $m (i32.const 0))');
  // Input rows R at a time, then the last M mod R: as many together as are left, down to one.
  const setRows = (indent, rows) => {
    emit(indent, '(local.set $xr (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $rowB))))');
    for (let i = 1; i < rows; i++) emit(indent, `(local.set ${XR[i]} (i32.add (local.get ${XR[i - 1]}) (local.get $rowB)))`);
  };
  emit(3, '(block $mDone (loop $mLoop');
  emit(4, `(br_if $mDone (i32.gt_s (i32.add (local.get $m) (i32.const ${R})) (local.get $M)))`);
  setRows(4, R);
  rowBody(4, R, 'R');
  emit(4, `(local.set $m (i32.add (local.get $m) (i32.const ${R})))`);
  emit(4, '(br $mLoop)))');
  for (let rows = R - 1; rows >= 1; rows--) {
    emit(3, `(if (i32.le_s (i32.add (local.get $m) (i32.const ${rows})) (local.get $M)) (then`);
    setRows(4, rows);
    rowBody(4, rows, `L${rows}`);
    emit(4, `(local.set $m (i32.add (local.get $m) (i32.const ${rows})))`);
    emit(3, '))');
  }
  emit(3, '(local.set $n (i32.add (local.get $n) (i32.const 4)))');
  emit(3, '(br $nLoop)))');
  // The last N mod 4 rows, one at a time.
  emit(2, '(block $rDone (loop $rLoop');
  emit(3, '(br_if $rDone (i32.ge_s (local.get $n) (local.get $N)))');
  emit(3, '(local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $rowB))))');
  emit(3, '(local.set $m (i32.const 0))');
  emit(3, '(block $mDone2 (loop $mLoop2');
  emit(4, '(br_if $mDone2 (i32.ge_s (local.get $m) (local.get $M)))');
  emit(4, '(local.set $xr (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $rowB))))');
  emit(4, '(local.set $a0 (v128.const i32x4 0 0 0 0))');
  emit(4, '(local.set $k (i32.const 0))');
  emit(4, '(block $kDone2 (loop $kLoop2');
  emit(5, '(br_if $kDone2 (i32.ge_s (local.get $k) (local.get $K4)))');
  emit(5, `(local.set $a0 ${madd('(v128.load (i32.add (local.get $xr) (i32.shl (local.get $k) (i32.const 2))))', '(v128.load (i32.add (local.get $w0) (i32.shl (local.get $k) (i32.const 2))))', '(local.get $a0)')})`);
  emit(5, '(local.set $k (i32.add (local.get $k) (i32.const 4)))');
  emit(5, '(br $kLoop2)))');
  emit(4, `(local.set $s0 ${hsum('(local.get $a0)')})`);
  emit(4, '(block $tDone2 (loop $tLoop2');
  emit(5, '(br_if $tDone2 (i32.ge_s (local.get $k) (local.get $K)))');
  emit(5, '(local.set $s0 (f32.add (local.get $s0) (f32.mul (f32.load (i32.add (local.get $xr) (i32.shl (local.get $k) (i32.const 2)))) (f32.load (i32.add (local.get $w0) (i32.shl (local.get $k) (i32.const 2)))))))');
  emit(5, '(local.set $k (i32.add (local.get $k) (i32.const 1)))');
  emit(5, '(br $tLoop2)))');
  emit(4, '(f32.store (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $m) (local.get $ldy)) (local.get $n)) (i32.const 2))) (select (f32.add (local.get $s0) (f32.load (i32.add (local.get $b) (i32.shl (local.get $n) (i32.const 2))))) (local.get $s0) (local.get $hasBias)))');
  emit(4, '(local.set $m (i32.add (local.get $m) (i32.const 1)))');
  emit(4, '(br $mLoop2)))');
  emit(3, '(local.set $n (i32.add (local.get $n) (i32.const 1)))');
  emit(3, '(br $rLoop)))');
  emit(1, ')');

  // ---- depthwise ----
  for (const stride of [1, 2]) for (const line of depthwisePlaneWat(stride, relaxed)) emit(1, line);
  emit(1, ';; Depthwise 2-D convolution of C planes H x W: y[c] = w[c] (KH x KW) * x[c] (+ b[c]), output OH x OW;');
  emit(1, ';; $hasBias bit 0: add b[c]; bit 1: then max(v, 0) (a ReLU of slope 0).');
  emit(1, ';; $pad: scratch of (H + 2 PH) x (W + 2 PW + 8) floats.');
  emit(1, '(func (export "depthwise") (param $x i32) (param $C i32) (param $H i32) (param $W i32) (param $w i32) (param $KH i32) (param $KW i32)');
  emit(2, '(param $SH i32) (param $SW i32) (param $PH i32) (param $PW i32) (param $DH i32) (param $DW i32)');
  emit(2, '(param $b i32) (param $hasBias i32) (param $y i32) (param $OH i32) (param $OW i32) (param $pad i32)');
  emit(2, '(local $c i32) (local $r i32) (local $Wp i32) (local $WpB i32) (local $planeB i32) (local $oy i32) (local $ox i32) (local $ky i32) (local $kx i32)');
  emit(2, '(local $wc i32) (local $bias f32) (local $acc v128) (local $s f32) (local $row i32) (local $yrow i32) (local $wv v128) (local $wk f32) (local $p i32) (local $OW4 i32)');
  emit(2, '(local $k3 i32) (local $q i32) (local $end i32) (local $cpD i32) (local $cpS i32) (local $cpN i32) (local $cpI i32)');
  emit(2, '(local.set $k3 (i32.and (i32.and (i32.eq (local.get $KH) (i32.const 3)) (i32.eq (local.get $KW) (i32.const 3))) (i32.and (i32.eq (local.get $DH) (i32.const 1)) (i32.eq (local.get $DW) (i32.const 1)))))');
  emit(2, '(local.set $Wp (i32.add (i32.add (local.get $W) (i32.shl (local.get $PW) (i32.const 1))) (i32.const 8)))');
  emit(2, '(local.set $WpB (i32.shl (local.get $Wp) (i32.const 2)))');
  emit(2, '(local.set $planeB (i32.mul (local.get $WpB) (i32.add (local.get $H) (i32.shl (local.get $PH) (i32.const 1)))))');
  emit(2, '(local.set $OW4 (i32.and (local.get $OW) (i32.const -4)))');
  // The border (and slack) is zeroed once: each channel's rows overwrite only the interior.
  emit(2, '(memory.fill (local.get $pad) (i32.const 0) (local.get $planeB))');
  emit(2, '(block $cDone (loop $cLoop');
  emit(3, '(br_if $cDone (i32.ge_s (local.get $c) (local.get $C)))');
  emit(3, '(local.set $r (i32.const 0))');
  emit(3, '(block $rDone (loop $rLoop');
  emit(4, '(br_if $rDone (i32.ge_s (local.get $r) (local.get $H)))');
  emit(4, '(local.set $cpD (i32.add (local.get $pad) (i32.add (i32.mul (i32.add (local.get $r) (local.get $PH)) (local.get $WpB)) (i32.shl (local.get $PW) (i32.const 2)))))');
  emit(4, '(local.set $cpS (i32.add (local.get $x) (i32.shl (i32.mul (i32.add (i32.mul (local.get $c) (local.get $H)) (local.get $r)) (local.get $W)) (i32.const 2))))');
  emit(4, '(local.set $cpN (i32.shl (local.get $W) (i32.const 2)))');
  for (const l of rowCopyWat('$cpD', '$cpS', '$cpN', '$cpI')) emit(4, l);
  emit(4, '(local.set $r (i32.add (local.get $r) (i32.const 1)))');
  emit(4, '(br $rLoop)))');
  emit(3, '(local.set $wc (i32.add (local.get $w) (i32.shl (i32.mul (local.get $c) (i32.mul (local.get $KH) (local.get $KW))) (i32.const 2))))');
  emit(3, '(local.set $bias (select (f32.load (i32.add (local.get $b) (i32.shl (local.get $c) (i32.const 2)))) (f32.const 0) (i32.and (local.get $hasBias) (i32.const 1))))');
  emit(3, '(local.set $oy (i32.const 0))');
  // 3x3 undilated at column stride 1 or 2 (MobileNet's): a plane kernel does the whole channel;
  // the loops below then have no rows left.
  emit(3, '(if (i32.and (local.get $k3) (i32.le_u (i32.sub (local.get $SW) (i32.const 1)) (i32.const 1))) (then');
  emit(4, '(local.set $q (i32.add (local.get $y) (i32.shl (i32.mul (local.get $c) (i32.mul (local.get $OH) (local.get $OW))) (i32.const 2))))');
  const planeArgs = '(local.get $pad) (local.get $WpB) (local.get $SH) (local.get $q) (local.get $OH) (local.get $OW) (local.get $wc) (local.get $bias)';
  emit(4, `(if (i32.eq (local.get $SW) (i32.const 1)) (then (call $dw3s1 ${planeArgs})) (else (call $dw3s2 ${planeArgs})))`);
  emit(4, '(local.set $oy (local.get $OH))))');
  emit(3, '(block $oyDone (loop $oyLoop');
  emit(4, '(br_if $oyDone (i32.ge_s (local.get $oy) (local.get $OH)))');
  emit(4, '(local.set $yrow (i32.add (local.get $y) (i32.shl (i32.mul (i32.add (i32.mul (local.get $c) (local.get $OH)) (local.get $oy)) (local.get $OW)) (i32.const 2))))');
  emit(4, '(local.set $ox (i32.const 0))');
  // Vector loops for stride 1 and 2: four outputs per step.
  for (const sw of [1, 2]) {
    emit(4, `(if (i32.eq (local.get $SW) (i32.const ${sw})) (then`);
    emit(5, `(block $v${sw}Done (loop $v${sw}Loop`);
    emit(6, `(br_if $v${sw}Done (i32.ge_s (local.get $ox) (local.get $OW4)))`);
    emit(6, '(local.set $acc (f32x4.splat (local.get $bias)))');
    emit(6, '(local.set $ky (i32.const 0))');
    emit(6, `(block $ky${sw}Done (loop $ky${sw}Loop`);
    emit(7, `(br_if $ky${sw}Done (i32.ge_s (local.get $ky) (local.get $KH)))`);
    // Byte address of padded (oy·SH + ky·DH, ox·sw).
    emit(7, `(local.set $row (i32.add (local.get $pad) (i32.add (i32.mul (i32.add (i32.mul (local.get $oy) (local.get $SH)) (i32.mul (local.get $ky) (local.get $DH))) (local.get $WpB)) (i32.shl (local.get $ox) (i32.const ${sw + 1})))))`);
    emit(7, '(local.set $kx (i32.const 0))');
    emit(7, `(block $kx${sw}Done (loop $kx${sw}Loop`);
    emit(8, `(br_if $kx${sw}Done (i32.ge_s (local.get $kx) (local.get $KW)))`);
    emit(8, '(local.set $wv (v128.load32_splat (i32.add (local.get $wc) (i32.shl (i32.add (i32.mul (local.get $ky) (local.get $KW)) (local.get $kx)) (i32.const 2)))))');
    emit(8, '(local.set $p (i32.add (local.get $row) (i32.shl (i32.mul (local.get $kx) (local.get $DW)) (i32.const 2))))');
    const vin = sw === 1
      ? '(v128.load (local.get $p))'
      : '(i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (v128.load (local.get $p)) (v128.load offset=16 (local.get $p)))';
    emit(8, `(local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $wv) ${vin})))`);
    emit(8, '(local.set $kx (i32.add (local.get $kx) (i32.const 1)))');
    emit(8, `(br $kx${sw}Loop)))`);
    emit(7, '(local.set $ky (i32.add (local.get $ky) (i32.const 1)))');
    emit(7, `(br $ky${sw}Loop)))`);
    emit(6, '(v128.store (i32.add (local.get $yrow) (i32.shl (local.get $ox) (i32.const 2))) (local.get $acc))');
    emit(6, '(local.set $ox (i32.add (local.get $ox) (i32.const 4)))');
    emit(6, `(br $v${sw}Loop)))))`);
  }
  // One output at a time: other strides and the row tail.
  emit(4, '(block $sDone (loop $sLoop');
  emit(5, '(br_if $sDone (i32.ge_s (local.get $ox) (local.get $OW)))');
  emit(5, '(local.set $s (local.get $bias))');
  emit(5, '(local.set $ky (i32.const 0))');
  emit(5, '(block $kysDone (loop $kysLoop');
  emit(6, '(br_if $kysDone (i32.ge_s (local.get $ky) (local.get $KH)))');
  emit(6, '(local.set $row (i32.add (local.get $pad) (i32.add (i32.mul (i32.add (i32.mul (local.get $oy) (local.get $SH)) (i32.mul (local.get $ky) (local.get $DH))) (local.get $WpB)) (i32.shl (i32.mul (local.get $ox) (local.get $SW)) (i32.const 2)))))');
  emit(6, '(local.set $kx (i32.const 0))');
  emit(6, '(block $kxsDone (loop $kxsLoop');
  emit(7, '(br_if $kxsDone (i32.ge_s (local.get $kx) (local.get $KW)))');
  emit(7, '(local.set $wk (f32.load (i32.add (local.get $wc) (i32.shl (i32.add (i32.mul (local.get $ky) (local.get $KW)) (local.get $kx)) (i32.const 2)))))');
  emit(7, '(local.set $s (f32.add (local.get $s) (f32.mul (local.get $wk) (f32.load (i32.add (local.get $row) (i32.shl (i32.mul (local.get $kx) (local.get $DW)) (i32.const 2)))))))');
  emit(7, '(local.set $kx (i32.add (local.get $kx) (i32.const 1)))');
  emit(7, '(br $kxsLoop)))');
  emit(6, '(local.set $ky (i32.add (local.get $ky) (i32.const 1)))');
  emit(6, '(br $kysLoop)))');
  emit(5, '(f32.store (i32.add (local.get $yrow) (i32.shl (local.get $ox) (i32.const 2))) (local.get $s))');
  emit(5, '(local.set $ox (i32.add (local.get $ox) (i32.const 1)))');
  emit(5, '(br $sLoop)))');
  emit(4, '(local.set $oy (i32.add (local.get $oy) (i32.const 1)))');
  emit(4, '(br $oyLoop)))');
  // $hasBias bit 1: max(v, 0) over the channel's plane while it is in cache (the values of the
  // relu kernel with slope 0; a separate pass keeps the window loops' registers free).
  emit(3, '(if (i32.and (local.get $hasBias) (i32.const 2)) (then');
  emit(4, '(local.set $q (i32.add (local.get $y) (i32.shl (i32.mul (local.get $c) (i32.mul (local.get $OH) (local.get $OW))) (i32.const 2))))');
  emit(4, '(local.set $end (i32.add (local.get $q) (i32.shl (i32.mul (local.get $OH) (local.get $OW)) (i32.const 2))))');
  emit(4, '(block $rvDone (loop $rvLoop');
  emit(5, '(br_if $rvDone (i32.gt_u (i32.add (local.get $q) (i32.const 16)) (local.get $end)))');
  emit(5, '(v128.store (local.get $q) (f32x4.max (v128.load (local.get $q)) (v128.const i32x4 0 0 0 0)))');
  emit(5, '(local.set $q (i32.add (local.get $q) (i32.const 16)))');
  emit(5, '(br $rvLoop)))');
  emit(4, '(block $rsDone (loop $rsLoop');
  emit(5, '(br_if $rsDone (i32.ge_u (local.get $q) (local.get $end)))');
  emit(5, '(f32.store (local.get $q) (f32.max (f32.load (local.get $q)) (f32.const 0)))');
  emit(5, '(local.set $q (i32.add (local.get $q) (i32.const 4)))');
  emit(5, '(br $rsLoop)))');
  emit(3, '))');
  emit(3, '(local.set $c (i32.add (local.get $c) (i32.const 1)))');
  emit(3, '(br $cLoop)))');
  emit(1, ')');

  // ---- elementwise: relu, per-channel affine (+ relu), weighted sum of two (+ relu) ----
  // Each walks n floats in f32x4 steps, then one at a time. Byte pointers; y may equal x.
  const vecLoop = (name, body, scalarBody) => {
    emit(2, '(local.set $n4 (i32.and (local.get $n) (i32.const -4)))');
    emit(2, `(block $${name}Done (loop $${name}Loop`);
    emit(3, `(br_if $${name}Done (i32.ge_s (local.get $i) (local.get $n4)))`);
    emit(3, '(local.set $o (i32.shl (local.get $i) (i32.const 2)))');
    for (const l of body) emit(3, l);
    emit(3, '(local.set $i (i32.add (local.get $i) (i32.const 4)))');
    emit(3, `(br $${name}Loop)))`);
    emit(2, `(block $${name}TDone (loop $${name}TLoop`);
    emit(3, `(br_if $${name}TDone (i32.ge_s (local.get $i) (local.get $n)))`);
    emit(3, '(local.set $o (i32.shl (local.get $i) (i32.const 2)))');
    for (const l of scalarBody) emit(3, l);
    emit(3, '(local.set $i (i32.add (local.get $i) (i32.const 1)))');
    emit(3, `(br $${name}TLoop)))`);
  };
  // Leaky: max(v, 0) + slope·min(v, 0); slope 0 gives max(v, 0) (+0 for negatives, NaN kept).
  const reluV = (v) => `(f32x4.add (f32x4.max ${v} (local.get $zero)) (f32x4.mul (local.get $slopeV) (f32x4.min ${v} (local.get $zero))))`;
  const reluS = (v) => `(f32.add (f32.max ${v} (f32.const 0)) (f32.mul (local.get $slope) (f32.min ${v} (f32.const 0))))`;
  emit(1, ';; y = max(x, 0) + slope * min(x, 0) over n floats.');
  emit(1, '(func (export "relu") (param $x i32) (param $y i32) (param $n i32) (param $slope f32)');
  emit(2, '(local $i i32) (local $n4 i32) (local $o i32) (local $zero v128) (local $slopeV v128) (local $v v128) (local $s f32)');
  emit(2, '(local.set $slopeV (f32x4.splat (local.get $slope)))');
  vecLoop('relu',
    [`(v128.store (i32.add (local.get $y) (local.get $o)) ${reluV('(v128.load (i32.add (local.get $x) (local.get $o)))')})`],
    ['(local.set $s (f32.load (i32.add (local.get $x) (local.get $o))))', `(f32.store (i32.add (local.get $y) (local.get $o)) ${reluS('(local.get $s)')})`]);
  emit(1, ')');

  emit(1, ';; For each of outer x C planes of S floats: y = a[c] * x + b[c], then the relu (with slope) when $relu.');
  emit(1, '(func (export "affine") (param $x i32) (param $y i32) (param $outer i32) (param $C i32) (param $S i32) (param $a i32) (param $b i32) (param $relu i32) (param $slope f32)');
  emit(2, '(local $i i32) (local $n i32) (local $n4 i32) (local $o i32) (local $zero v128) (local $slopeV v128) (local $v v128) (local $s f32)');
  emit(2, '(local $p i32) (local $c i32) (local $av v128) (local $bv v128) (local $as f32) (local $bs f32) (local $x0 i32) (local $y0 i32)');
  emit(2, '(local.set $slopeV (f32x4.splat (local.get $slope)))');
  emit(2, '(local.set $n (local.get $S))');
  emit(2, '(block $pDone (loop $pLoop');
  emit(3, '(br_if $pDone (i32.ge_s (local.get $p) (i32.mul (local.get $outer) (local.get $C))))');
  emit(3, '(local.set $c (i32.rem_u (local.get $p) (local.get $C)))');
  emit(3, '(local.set $as (f32.load (i32.add (local.get $a) (i32.shl (local.get $c) (i32.const 2)))))');
  emit(3, '(local.set $bs (f32.load (i32.add (local.get $b) (i32.shl (local.get $c) (i32.const 2)))))');
  emit(3, '(local.set $av (f32x4.splat (local.get $as)))');
  emit(3, '(local.set $bv (f32x4.splat (local.get $bs)))');
  emit(3, '(local.set $x0 (i32.add (local.get $x) (i32.shl (i32.mul (local.get $p) (local.get $S)) (i32.const 2))))');
  emit(3, '(local.set $y0 (i32.add (local.get $y) (i32.shl (i32.mul (local.get $p) (local.get $S)) (i32.const 2))))');
  emit(3, '(local.set $i (i32.const 0))');
  out.push(...(() => {
    const save = out.length;
    vecLoop('aff', [
      '(local.set $v (f32x4.add (f32x4.mul (local.get $av) (v128.load (i32.add (local.get $x0) (local.get $o)))) (local.get $bv)))',
      `(v128.store (i32.add (local.get $y0) (local.get $o)) (if (result v128) (local.get $relu) (then ${reluV('(local.get $v)')}) (else (local.get $v))))`,
    ], [
      '(local.set $s (f32.add (f32.mul (local.get $as) (f32.load (i32.add (local.get $x0) (local.get $o)))) (local.get $bs)))',
      `(f32.store (i32.add (local.get $y0) (local.get $o)) (if (result f32) (local.get $relu) (then ${reluS('(local.get $s)')}) (else (local.get $s))))`,
    ]);
    return out.splice(save).map((l) => '  ' + l);
  })());
  emit(3, '(local.set $p (i32.add (local.get $p) (i32.const 1)))');
  emit(3, '(br $pLoop)))');
  emit(1, ')');

  emit(1, ';; y = c0 * a + c1 * b over n floats, then the relu (with slope) when $relu.');
  emit(1, '(func (export "sum2") (param $a i32) (param $b i32) (param $y i32) (param $n i32) (param $c0 f32) (param $c1 f32) (param $relu i32) (param $slope f32)');
  emit(2, '(local $i i32) (local $n4 i32) (local $o i32) (local $zero v128) (local $slopeV v128) (local $v v128) (local $s f32) (local $c0v v128) (local $c1v v128)');
  emit(2, '(local.set $slopeV (f32x4.splat (local.get $slope)))');
  emit(2, '(local.set $c0v (f32x4.splat (local.get $c0)))');
  emit(2, '(local.set $c1v (f32x4.splat (local.get $c1)))');
  vecLoop('sum', [
    '(local.set $v (f32x4.add (f32x4.mul (local.get $c0v) (v128.load (i32.add (local.get $a) (local.get $o)))) (f32x4.mul (local.get $c1v) (v128.load (i32.add (local.get $b) (local.get $o))))))',
    `(v128.store (i32.add (local.get $y) (local.get $o)) (if (result v128) (local.get $relu) (then ${reluV('(local.get $v)')}) (else (local.get $v))))`,
  ], [
    '(local.set $s (f32.add (f32.mul (local.get $c0) (f32.load (i32.add (local.get $a) (local.get $o)))) (f32.mul (local.get $c1) (f32.load (i32.add (local.get $b) (local.get $o))))))',
    `(f32.store (i32.add (local.get $y) (local.get $o)) (if (result f32) (local.get $relu) (then ${reluS('(local.get $s)')}) (else (local.get $s))))`,
  ]);
  emit(1, ')');

  // ---- max pooling without argmax ----
  // Planes copied into a scratch plane whose border is NaN (bytes 0xFF), which f32x4.pmax never
  // picks (pmax(a, b) = a < b ? b : a); each output starts from -inf and takes larger values only,
  // as Caffe's `if (x > top) top = x` does. Scratch: Hs x Ws floats, Ws including 8 slack.
  emit(1, ';; Max pooling of C planes H x W into OH x OW (windows KH x KW, stride SH/SW, padding PH/PW); $pad: scratch, $Hs x $Ws floats.');
  emit(1, '(func (export "maxpool") (param $x i32) (param $C i32) (param $H i32) (param $W i32) (param $KH i32) (param $KW i32)');
  emit(2, '(param $SH i32) (param $SW i32) (param $PH i32) (param $PW i32) (param $y i32) (param $OH i32) (param $OW i32) (param $pad i32) (param $Hs i32) (param $Ws i32)');
  emit(2, '(local $c i32) (local $r i32) (local $WpB i32) (local $oy i32) (local $ox i32) (local $ky i32) (local $kx i32)');
  emit(2, '(local $acc v128) (local $s f32) (local $row i32) (local $yrow i32) (local $p i32) (local $OW4 i32) (local $ninf v128)');
  emit(2, '(local $cpD i32) (local $cpS i32) (local $cpN i32) (local $cpI i32) (local $r0 i32) (local $r1 i32) (local $r2 i32) (local $q i32) (local $va v128) (local $vb v128)');
  emit(2, '(local.set $WpB (i32.shl (local.get $Ws) (i32.const 2)))');
  emit(2, '(local.set $OW4 (i32.and (local.get $OW) (i32.const -4)))');
  emit(2, '(local.set $ninf (f32x4.splat (f32.const -inf)))');
  emit(2, '(memory.fill (local.get $pad) (i32.const 255) (i32.mul (local.get $WpB) (local.get $Hs)))');
  emit(2, '(block $cDone (loop $cLoop');
  emit(3, '(br_if $cDone (i32.ge_s (local.get $c) (local.get $C)))');
  emit(3, '(local.set $r (i32.const 0))');
  emit(3, '(block $rDone (loop $rLoop');
  emit(4, '(br_if $rDone (i32.ge_s (local.get $r) (local.get $H)))');
  emit(4, '(local.set $cpD (i32.add (local.get $pad) (i32.add (i32.mul (i32.add (local.get $r) (local.get $PH)) (local.get $WpB)) (i32.shl (local.get $PW) (i32.const 2)))))');
  emit(4, '(local.set $cpS (i32.add (local.get $x) (i32.shl (i32.mul (i32.add (i32.mul (local.get $c) (local.get $H)) (local.get $r)) (local.get $W)) (i32.const 2))))');
  emit(4, '(local.set $cpN (i32.shl (local.get $W) (i32.const 2)))');
  for (const l of rowCopyWat('$cpD', '$cpS', '$cpN', '$cpI')) emit(4, l);
  emit(4, '(local.set $r (i32.add (local.get $r) (i32.const 1)))');
  emit(4, '(br $rLoop)))');
  emit(3, '(local.set $oy (i32.const 0))');
  emit(3, '(block $oyDone (loop $oyLoop');
  emit(4, '(br_if $oyDone (i32.ge_s (local.get $oy) (local.get $OH)))');
  emit(4, '(local.set $yrow (i32.add (local.get $y) (i32.shl (i32.mul (i32.add (i32.mul (local.get $c) (local.get $OH)) (local.get $oy)) (local.get $OW)) (i32.const 2))))');
  emit(4, '(local.set $ox (i32.const 0))');
  // 3×3 windows at strides 1 and 2 (CaffeNet's, GoogLeNet's, SqueezeNet's, ResNet's pools): the
  // nine taps unrolled in the loops' order (ky, then kx), four outputs per step, then the row's
  // last 1–3 outputs as one vector whose lanes past the row are not stored (its loads stay in the
  // scratch row and its slack, which is NaN and never picked).
  const MEV = '0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27', MOD = '4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31';
  /** The nine taps of four 3×3 windows (rows $r0..$r2, column offset $p) into $acc, in (ky, kx) order; stride 2 takes even lanes. */
  const max3x3Taps = (d, sw) => {
    for (let ky = 0; ky < 3; ky++) {
      emit(d, `(local.set $q (i32.add (local.get $r${ky}) (local.get $p)))`);
      if (sw === 1) {
        for (let kx = 0; kx < 3; kx++) emit(d, `(local.set $acc (f32x4.pmax (local.get $acc) (v128.load offset=${4 * kx} (local.get $q))))`);
        continue;
      }
      emit(d, '(local.set $va (v128.load (local.get $q)))');
      emit(d, '(local.set $vb (v128.load offset=16 (local.get $q)))');
      emit(d, `(local.set $acc (f32x4.pmax (local.get $acc) (i8x16.shuffle ${MEV} (local.get $va) (local.get $vb))))`);
      emit(d, `(local.set $acc (f32x4.pmax (local.get $acc) (i8x16.shuffle ${MOD} (local.get $va) (local.get $vb))))`);
      emit(d, `(local.set $acc (f32x4.pmax (local.get $acc) (i8x16.shuffle ${MEV} (v128.load offset=8 (local.get $q)) (v128.load offset=24 (local.get $q)))))`);
    }
  };
  emit(4, '(if (i32.and (i32.and (i32.eq (local.get $KH) (i32.const 3)) (i32.eq (local.get $KW) (i32.const 3))) (i32.le_u (local.get $SW) (i32.const 2))) (then');
  emit(5, '(local.set $r0 (i32.add (local.get $pad) (i32.mul (i32.mul (local.get $oy) (local.get $SH)) (local.get $WpB))))');
  emit(5, '(local.set $r1 (i32.add (local.get $r0) (local.get $WpB)))');
  emit(5, '(local.set $r2 (i32.add (local.get $r1) (local.get $WpB)))');
  emit(5, '(block $m3Done (loop $m3Loop');
  emit(6, '(br_if $m3Done (i32.ge_s (local.get $ox) (local.get $OW)))');
  emit(6, '(local.set $acc (local.get $ninf))');
  emit(6, '(local.set $p (i32.shl (i32.mul (local.get $ox) (local.get $SW)) (i32.const 2)))');
  emit(6, '(if (i32.eq (local.get $SW) (i32.const 1)) (then');
  max3x3Taps(7, 1);
  emit(6, ') (else');
  max3x3Taps(7, 2);
  emit(6, '))');
  emit(6, '(local.set $q (i32.add (local.get $yrow) (i32.shl (local.get $ox) (i32.const 2))))');
  emit(6, '(if (i32.le_s (i32.add (local.get $ox) (i32.const 4)) (local.get $OW)) (then (v128.store (local.get $q) (local.get $acc))) (else');
  emit(7, '(f32.store (local.get $q) (f32x4.extract_lane 0 (local.get $acc)))');
  emit(7, '(if (i32.lt_s (i32.add (local.get $ox) (i32.const 1)) (local.get $OW)) (then (f32.store offset=4 (local.get $q) (f32x4.extract_lane 1 (local.get $acc)))))');
  emit(7, '(if (i32.lt_s (i32.add (local.get $ox) (i32.const 2)) (local.get $OW)) (then (f32.store offset=8 (local.get $q) (f32x4.extract_lane 2 (local.get $acc)))))');
  emit(6, '))');
  emit(6, '(local.set $ox (i32.add (local.get $ox) (i32.const 4)))');
  emit(6, '(br $m3Loop)))');
  emit(4, '))');
  for (const sw of [1, 2]) {
    emit(4, `(if (i32.eq (local.get $SW) (i32.const ${sw})) (then`);
    emit(5, `(block $mv${sw}Done (loop $mv${sw}Loop`);
    emit(6, `(br_if $mv${sw}Done (i32.ge_s (local.get $ox) (local.get $OW4)))`);
    emit(6, '(local.set $acc (local.get $ninf))');
    emit(6, '(local.set $ky (i32.const 0))');
    emit(6, `(block $mky${sw}Done (loop $mky${sw}Loop`);
    emit(7, `(br_if $mky${sw}Done (i32.ge_s (local.get $ky) (local.get $KH)))`);
    emit(7, `(local.set $row (i32.add (local.get $pad) (i32.add (i32.mul (i32.add (i32.mul (local.get $oy) (local.get $SH)) (local.get $ky)) (local.get $WpB)) (i32.shl (local.get $ox) (i32.const ${sw + 1})))))`);
    emit(7, '(local.set $kx (i32.const 0))');
    emit(7, `(block $mkx${sw}Done (loop $mkx${sw}Loop`);
    emit(8, `(br_if $mkx${sw}Done (i32.ge_s (local.get $kx) (local.get $KW)))`);
    emit(8, '(local.set $p (i32.add (local.get $row) (i32.shl (local.get $kx) (i32.const 2))))');
    const vin = sw === 1
      ? '(v128.load (local.get $p))'
      : '(i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (v128.load (local.get $p)) (v128.load offset=16 (local.get $p)))';
    emit(8, `(local.set $acc (f32x4.pmax (local.get $acc) ${vin}))`);
    emit(8, '(local.set $kx (i32.add (local.get $kx) (i32.const 1)))');
    emit(8, `(br $mkx${sw}Loop)))`);
    emit(7, '(local.set $ky (i32.add (local.get $ky) (i32.const 1)))');
    emit(7, `(br $mky${sw}Loop)))`);
    emit(6, '(v128.store (i32.add (local.get $yrow) (i32.shl (local.get $ox) (i32.const 2))) (local.get $acc))');
    emit(6, '(local.set $ox (i32.add (local.get $ox) (i32.const 4)))');
    emit(6, `(br $mv${sw}Loop)))))`);
  }
  emit(4, '(block $msDone (loop $msLoop');
  emit(5, '(br_if $msDone (i32.ge_s (local.get $ox) (local.get $OW)))');
  emit(5, '(local.set $s (f32.const -inf))');
  emit(5, '(local.set $ky (i32.const 0))');
  emit(5, '(block $mkysDone (loop $mkysLoop');
  emit(6, '(br_if $mkysDone (i32.ge_s (local.get $ky) (local.get $KH)))');
  emit(6, '(local.set $row (i32.add (local.get $pad) (i32.add (i32.mul (i32.add (i32.mul (local.get $oy) (local.get $SH)) (local.get $ky)) (local.get $WpB)) (i32.shl (i32.mul (local.get $ox) (local.get $SW)) (i32.const 2)))))');
  emit(6, '(local.set $kx (i32.const 0))');
  emit(6, '(block $mkxsDone (loop $mkxsLoop');
  emit(7, '(br_if $mkxsDone (i32.ge_s (local.get $kx) (local.get $KW)))');
  emit(7, '(local.set $s (f32x4.extract_lane 0 (f32x4.pmax (f32x4.splat (local.get $s)) (v128.load32_splat (i32.add (local.get $row) (i32.shl (local.get $kx) (i32.const 2)))))))');
  emit(7, '(local.set $kx (i32.add (local.get $kx) (i32.const 1)))');
  emit(7, '(br $mkxsLoop)))');
  emit(6, '(local.set $ky (i32.add (local.get $ky) (i32.const 1)))');
  emit(6, '(br $mkysLoop)))');
  emit(5, '(f32.store (i32.add (local.get $yrow) (i32.shl (local.get $ox) (i32.const 2))) (local.get $s))');
  emit(5, '(local.set $ox (i32.add (local.get $ox) (i32.const 1)))');
  emit(5, '(br $msLoop)))');
  emit(4, '(local.set $oy (i32.add (local.get $oy) (i32.const 1)))');
  emit(4, '(br $oyLoop)))');
  emit(3, '(local.set $c (i32.add (local.get $c) (i32.const 1)))');
  emit(3, '(br $cLoop)))');
  emit(1, ')');

  // ---- max pooling without padding, read in place ----
  // No scratch copy: windows that lie inside the plane are read where they are, four outputs per
  // vector step for as long as the step's loads stay inside the input row ($span: the columns a
  // step reads past its first window's origin), and every other output (the row tail, windows
  // that overhang the plane's bottom or right edge in Caffe's ceil mode) by a scalar loop over the
  // window clipped to the plane. Each output starts from -inf and takes larger values only, in
  // the same (ky, kx) order as maxpool: the same results, NaN never picked.
  emit(1, ';; Max pooling of C planes H x W into OH x OW (windows KH x KW, stride SH/SW), no padding.');
  emit(1, '(func (export "maxpool_direct") (param $x i32) (param $C i32) (param $H i32) (param $W i32) (param $KH i32) (param $KW i32)');
  emit(2, '(param $SH i32) (param $SW i32) (param $y i32) (param $OH i32) (param $OW i32)');
  emit(2, '(local $c i32) (local $plane i32) (local $WB i32) (local $oy i32) (local $ox i32) (local $ky i32) (local $kx i32) (local $span i32) (local $path i32)');
  emit(2, '(local $acc v128) (local $s f32) (local $row i32) (local $yrow i32) (local $p i32) (local $q i32) (local $ninf v128)');
  emit(2, '(local $r0 i32) (local $r1 i32) (local $r2 i32) (local $va v128) (local $vb v128) (local $vc v128) (local $vd v128)');
  emit(2, '(local $hEnd i32) (local $wEnd i32) (local $wStart i32) (local $inside i32)');
  emit(2, '(local.set $WB (i32.shl (local.get $W) (i32.const 2)))');
  emit(2, '(local.set $ninf (f32x4.splat (f32.const -inf)))');
  emit(2, ';; path 1: 3x3 stride 1; 2: 3x3 stride 2; 3: 2x2 stride 2; 4: any window, stride 1; 5: any, stride 2; 0: scalar only');
  emit(2, '(local.set $path (if (result i32) (i32.and (i32.eq (local.get $KH) (i32.const 3)) (i32.eq (local.get $KW) (i32.const 3)))');
  emit(3, '(then (if (result i32) (i32.eq (local.get $SW) (i32.const 1)) (then (i32.const 1)) (else (if (result i32) (i32.eq (local.get $SW) (i32.const 2)) (then (i32.const 2)) (else (i32.const 0))))))');
  emit(3, '(else (if (result i32) (i32.and (i32.and (i32.eq (local.get $KH) (i32.const 2)) (i32.eq (local.get $KW) (i32.const 2))) (i32.eq (local.get $SW) (i32.const 2)))');
  emit(4, '(then (i32.const 3))');
  emit(4, '(else (if (result i32) (i32.eq (local.get $SW) (i32.const 1)) (then (i32.const 4)) (else (if (result i32) (i32.eq (local.get $SW) (i32.const 2)) (then (i32.const 5)) (else (i32.const 0))))))))))');
  emit(2, ';; the last input column a step from output ox reads is ox * SW + span');
  emit(2, '(local.set $span (if (result i32) (i32.eq (local.get $path) (i32.const 1)) (then (i32.const 5))');
  emit(3, '(else (if (result i32) (i32.eq (local.get $path) (i32.const 2)) (then (i32.const 9))');
  emit(3, '(else (if (result i32) (i32.eq (local.get $path) (i32.const 3)) (then (i32.const 7))');
  emit(3, '(else (if (result i32) (i32.eq (local.get $path) (i32.const 4)) (then (i32.add (local.get $KW) (i32.const 2)))');
  emit(3, '(else (i32.add (local.get $KW) (i32.const 6)))))))))))');
  emit(2, '(local.set $plane (i32.mul (local.get $WB) (local.get $H)))');
  emit(2, '(block $cDone (loop $cLoop');
  emit(3, '(br_if $cDone (i32.ge_s (local.get $c) (local.get $C)))');
  emit(3, '(local.set $oy (i32.const 0))');
  emit(3, '(block $oyDone (loop $oyLoop');
  emit(4, '(br_if $oyDone (i32.ge_s (local.get $oy) (local.get $OH)))');
  emit(4, '(local.set $yrow (i32.add (local.get $y) (i32.shl (i32.mul (i32.add (i32.mul (local.get $c) (local.get $OH)) (local.get $oy)) (local.get $OW)) (i32.const 2))))');
  emit(4, '(local.set $r0 (i32.add (local.get $x) (i32.add (i32.mul (local.get $c) (local.get $plane)) (i32.mul (i32.mul (local.get $oy) (local.get $SH)) (local.get $WB)))))');
  emit(4, '(local.set $r1 (i32.add (local.get $r0) (local.get $WB)))');
  emit(4, '(local.set $r2 (i32.add (local.get $r1) (local.get $WB)))');
  emit(4, '(local.set $ox (i32.const 0))');
  emit(4, ';; vector steps only where the whole window column lies inside the plane');
  emit(4, '(local.set $inside (i32.and (i32.ne (local.get $path) (i32.const 0)) (i32.le_s (i32.add (i32.mul (local.get $oy) (local.get $SH)) (local.get $KH)) (local.get $H))))');
  emit(4, '(if (local.get $inside) (then');
  emit(5, '(block $vDone (loop $vLoop');
  emit(6, '(br_if $vDone (i32.gt_s (i32.add (local.get $ox) (i32.const 4)) (local.get $OW)))');
  emit(6, '(br_if $vDone (i32.ge_s (i32.add (i32.mul (local.get $ox) (local.get $SW)) (local.get $span)) (local.get $W)))');
  emit(6, '(local.set $p (i32.shl (i32.mul (local.get $ox) (local.get $SW)) (i32.const 2)))');
  emit(6, '(local.set $acc (local.get $ninf))');
  emit(6, '(if (i32.eq (local.get $path) (i32.const 1)) (then');
  max3x3Taps(7, 1);
  emit(6, '))');
  emit(6, '(if (i32.eq (local.get $path) (i32.const 2)) (then');
  max3x3Taps(7, 2);
  emit(6, '))');
  emit(6, '(if (i32.eq (local.get $path) (i32.const 3)) (then');
  emit(7, '(local.set $va (v128.load (i32.add (local.get $r0) (local.get $p))))');
  emit(7, '(local.set $vb (v128.load offset=16 (i32.add (local.get $r0) (local.get $p))))');
  emit(7, '(local.set $vc (v128.load (i32.add (local.get $r1) (local.get $p))))');
  emit(7, '(local.set $vd (v128.load offset=16 (i32.add (local.get $r1) (local.get $p))))');
  emit(7, `(local.set $acc (f32x4.pmax (local.get $acc) (i8x16.shuffle ${MEV} (local.get $va) (local.get $vb))))`);
  emit(7, `(local.set $acc (f32x4.pmax (local.get $acc) (i8x16.shuffle ${MOD} (local.get $va) (local.get $vb))))`);
  emit(7, `(local.set $acc (f32x4.pmax (local.get $acc) (i8x16.shuffle ${MEV} (local.get $vc) (local.get $vd))))`);
  emit(7, `(local.set $acc (f32x4.pmax (local.get $acc) (i8x16.shuffle ${MOD} (local.get $vc) (local.get $vd))))`);
  emit(6, '))');
  emit(6, '(if (i32.ge_u (local.get $path) (i32.const 4)) (then');
  emit(7, '(local.set $row (i32.add (local.get $r0) (local.get $p)))');
  emit(7, '(local.set $ky (i32.const 0))');
  emit(7, '(block $gkyDone (loop $gkyLoop');
  emit(8, '(br_if $gkyDone (i32.ge_s (local.get $ky) (local.get $KH)))');
  emit(8, '(local.set $kx (i32.const 0))');
  emit(8, '(block $gkxDone (loop $gkxLoop');
  emit(9, '(br_if $gkxDone (i32.ge_s (local.get $kx) (local.get $KW)))');
  emit(9, '(local.set $q (i32.add (local.get $row) (i32.shl (local.get $kx) (i32.const 2))))');
  emit(9, '(local.set $acc (f32x4.pmax (local.get $acc) (if (result v128) (i32.eq (local.get $path) (i32.const 4))');
  emit(10, '(then (v128.load (local.get $q)))');
  emit(10, `(else (i8x16.shuffle ${MEV} (v128.load (local.get $q)) (v128.load offset=16 (local.get $q)))))))`);
  emit(9, '(local.set $kx (i32.add (local.get $kx) (i32.const 1)))');
  emit(9, '(br $gkxLoop)))');
  emit(8, '(local.set $row (i32.add (local.get $row) (local.get $WB)))');
  emit(8, '(local.set $ky (i32.add (local.get $ky) (i32.const 1)))');
  emit(8, '(br $gkyLoop)))');
  emit(6, '))');
  emit(6, '(v128.store (i32.add (local.get $yrow) (i32.shl (local.get $ox) (i32.const 2))) (local.get $acc))');
  emit(6, '(local.set $ox (i32.add (local.get $ox) (i32.const 4)))');
  emit(6, '(br $vLoop)))');
  emit(4, '))');
  emit(4, ';; the rest of the row: one output at a time, the window clipped to the plane');
  emit(4, '(local.set $hEnd (select (i32.sub (local.get $H) (i32.mul (local.get $oy) (local.get $SH))) (local.get $KH)');
  emit(5, '(i32.lt_s (i32.sub (local.get $H) (i32.mul (local.get $oy) (local.get $SH))) (local.get $KH))))');
  emit(4, '(block $sDone (loop $sLoop');
  emit(5, '(br_if $sDone (i32.ge_s (local.get $ox) (local.get $OW)))');
  emit(5, '(local.set $wStart (i32.mul (local.get $ox) (local.get $SW)))');
  emit(5, '(local.set $wEnd (select (i32.sub (local.get $W) (local.get $wStart)) (local.get $KW) (i32.lt_s (i32.sub (local.get $W) (local.get $wStart)) (local.get $KW))))');
  emit(5, '(local.set $s (f32.const -inf))');
  emit(5, '(local.set $row (i32.add (local.get $r0) (i32.shl (local.get $wStart) (i32.const 2))))');
  emit(5, '(local.set $ky (i32.const 0))');
  emit(5, '(block $skyDone (loop $skyLoop');
  emit(6, '(br_if $skyDone (i32.ge_s (local.get $ky) (local.get $hEnd)))');
  emit(6, '(local.set $kx (i32.const 0))');
  emit(6, '(block $skxDone (loop $skxLoop');
  emit(7, '(br_if $skxDone (i32.ge_s (local.get $kx) (local.get $wEnd)))');
  emit(7, '(local.set $s (f32x4.extract_lane 0 (f32x4.pmax (f32x4.splat (local.get $s)) (v128.load32_splat (i32.add (local.get $row) (i32.shl (local.get $kx) (i32.const 2)))))))');
  emit(7, '(local.set $kx (i32.add (local.get $kx) (i32.const 1)))');
  emit(7, '(br $skxLoop)))');
  emit(6, '(local.set $row (i32.add (local.get $row) (local.get $WB)))');
  emit(6, '(local.set $ky (i32.add (local.get $ky) (i32.const 1)))');
  emit(6, '(br $skyLoop)))');
  emit(5, '(f32.store (i32.add (local.get $yrow) (i32.shl (local.get $ox) (i32.const 2))) (local.get $s))');
  emit(5, '(local.set $ox (i32.add (local.get $ox) (i32.const 1)))');
  emit(5, '(br $sLoop)))');
  emit(4, '(local.set $oy (i32.add (local.get $oy) (i32.const 1)))');
  emit(4, '(br $oyLoop)))');
  emit(3, '(local.set $c (i32.add (local.get $c) (i32.const 1)))');
  emit(3, '(br $cLoop)))');
  emit(1, ')');

  // ---- global AVE pooling ----
  // One output per plane: the plane's S values summed from 0 in order, then divided by $div.
  // Four planes at a time, one per lane: each 4 x 4 block (four planes' next four values) is
  // transposed by shuffles so that every lane still adds its own plane's values one by one in
  // order (the same float32 sums as the window loops); leftover values and planes one at a time.
  const TR = (a, b, lanes) => `(i8x16.shuffle ${lanes.flatMap((l) => [0, 1, 2, 3].map((k) => 4 * l + k)).join(' ')} ${a} ${b})`;
  emit(1, ';; y[p] = (sum of the S floats of plane p, in order, from 0) / div, for planes p < $planes.');
  emit(1, '(func (export "avepool_global") (param $x i32) (param $planes i32) (param $S i32) (param $div f32) (param $y i32)');
  emit(2, '(local $p i32) (local $t i32) (local $S4 i32) (local $SB i32) (local $a0 i32) (local $acc v128) (local $s f32) (local $q i32)');
  emit(2, '(local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)');
  emit(2, '(local.set $S4 (i32.and (local.get $S) (i32.const -4)))');
  emit(2, '(local.set $SB (i32.shl (local.get $S) (i32.const 2)))');
  emit(2, '(block $gDone (loop $gLoop');
  emit(3, '(br_if $gDone (i32.gt_u (i32.add (local.get $p) (i32.const 4)) (local.get $planes)))');
  emit(3, '(local.set $a0 (i32.add (local.get $x) (i32.mul (local.get $p) (local.get $SB))))');
  emit(3, '(local.set $acc (v128.const i32x4 0 0 0 0))');
  emit(3, '(local.set $t (i32.const 0))');
  emit(3, '(block $tDone (loop $tLoop');
  emit(4, '(br_if $tDone (i32.ge_u (local.get $t) (local.get $S4)))');
  emit(4, '(local.set $q (i32.add (local.get $a0) (i32.shl (local.get $t) (i32.const 2))))');
  emit(4, '(local.set $v0 (v128.load (local.get $q)))');
  emit(4, '(local.set $q (i32.add (local.get $q) (local.get $SB)))');
  emit(4, '(local.set $v1 (v128.load (local.get $q)))');
  emit(4, '(local.set $q (i32.add (local.get $q) (local.get $SB)))');
  emit(4, '(local.set $v2 (v128.load (local.get $q)))');
  emit(4, '(local.set $q (i32.add (local.get $q) (local.get $SB)))');
  emit(4, '(local.set $v3 (v128.load (local.get $q)))');
  emit(4, `(local.set $t0 ${TR('(local.get $v0)', '(local.get $v1)', [0, 4, 1, 5])})`);
  emit(4, `(local.set $t1 ${TR('(local.get $v2)', '(local.get $v3)', [0, 4, 1, 5])})`);
  emit(4, `(local.set $t2 ${TR('(local.get $v0)', '(local.get $v1)', [2, 6, 3, 7])})`);
  emit(4, `(local.set $t3 ${TR('(local.get $v2)', '(local.get $v3)', [2, 6, 3, 7])})`);
  emit(4, `(local.set $acc (f32x4.add (local.get $acc) ${TR('(local.get $t0)', '(local.get $t1)', [0, 1, 4, 5])}))`);
  emit(4, `(local.set $acc (f32x4.add (local.get $acc) ${TR('(local.get $t0)', '(local.get $t1)', [2, 3, 6, 7])}))`);
  emit(4, `(local.set $acc (f32x4.add (local.get $acc) ${TR('(local.get $t2)', '(local.get $t3)', [0, 1, 4, 5])}))`);
  emit(4, `(local.set $acc (f32x4.add (local.get $acc) ${TR('(local.get $t2)', '(local.get $t3)', [2, 3, 6, 7])}))`);
  emit(4, '(local.set $t (i32.add (local.get $t) (i32.const 4)))');
  emit(4, '(br $tLoop)))');
  emit(3, '(block $rDone (loop $rLoop');
  emit(4, '(br_if $rDone (i32.ge_u (local.get $t) (local.get $S)))');
  emit(4, '(local.set $q (i32.add (local.get $a0) (i32.shl (local.get $t) (i32.const 2))))');
  emit(4, '(local.set $v0 (f32x4.splat (f32.load (local.get $q))))');
  emit(4, '(local.set $q (i32.add (local.get $q) (local.get $SB)))');
  emit(4, '(local.set $v0 (f32x4.replace_lane 1 (local.get $v0) (f32.load (local.get $q))))');
  emit(4, '(local.set $q (i32.add (local.get $q) (local.get $SB)))');
  emit(4, '(local.set $v0 (f32x4.replace_lane 2 (local.get $v0) (f32.load (local.get $q))))');
  emit(4, '(local.set $q (i32.add (local.get $q) (local.get $SB)))');
  emit(4, '(local.set $v0 (f32x4.replace_lane 3 (local.get $v0) (f32.load (local.get $q))))');
  emit(4, '(local.set $acc (f32x4.add (local.get $acc) (local.get $v0)))');
  emit(4, '(local.set $t (i32.add (local.get $t) (i32.const 1)))');
  emit(4, '(br $rLoop)))');
  emit(3, '(v128.store (i32.add (local.get $y) (i32.shl (local.get $p) (i32.const 2))) (f32x4.div (local.get $acc) (f32x4.splat (local.get $div))))');
  emit(3, '(local.set $p (i32.add (local.get $p) (i32.const 4)))');
  emit(3, '(br $gLoop)))');
  emit(2, '(block $pDone (loop $pLoop');
  emit(3, '(br_if $pDone (i32.ge_u (local.get $p) (local.get $planes)))');
  emit(3, '(local.set $a0 (i32.add (local.get $x) (i32.mul (local.get $p) (local.get $SB))))');
  emit(3, '(local.set $s (f32.const 0))');
  emit(3, '(local.set $t (i32.const 0))');
  emit(3, '(block $sDone (loop $sLoop');
  emit(4, '(br_if $sDone (i32.ge_u (local.get $t) (local.get $S)))');
  emit(4, '(local.set $s (f32.add (local.get $s) (f32.load (i32.add (local.get $a0) (i32.shl (local.get $t) (i32.const 2))))))');
  emit(4, '(local.set $t (i32.add (local.get $t) (i32.const 1)))');
  emit(4, '(br $sLoop)))');
  emit(3, '(f32.store (i32.add (local.get $y) (i32.shl (local.get $p) (i32.const 2))) (f32.div (local.get $s) (local.get $div)))');
  emit(3, '(local.set $p (i32.add (local.get $p) (i32.const 1)))');
  emit(3, '(br $pLoop)))');
  emit(1, ')');

  // ---- LRN across channels ----
  // For each image and channel: q = sum of x^2 over channels c-pre .. c+pre (clipped), s = k + alpha_n * q,
  // y = x * s^-beta with beta 0.75 (mode 0: 1 / (sqrt(s) * sqrt(sqrt(s)))), 0.5 (mode 1) or 1 (mode 2).
  // $ld, the planes' stride, may exceed $P: kernel threads split the positions of each plane.
  emit(1, ';; LRN across channels at positions 0 … P − 1 of N images of C planes of $ld floats; $q: scratch of P floats.');
  emit(1, '(func (export "lrn") (param $x i32) (param $s i32) (param $y i32) (param $N i32) (param $C i32) (param $P i32) (param $pre i32) (param $k f32) (param $an f32) (param $mode i32) (param $q i32) (param $ld i32)');
  emit(2, '(local $img i32) (local $c i32) (local $c0 i32) (local $c1 i32) (local $cc i32) (local $i i32) (local $P4 i32) (local $o i32)');
  emit(2, '(local $src i32) (local $base i32) (local $v v128) (local $sv v128) (local $r v128) (local $kv v128) (local $anv v128)');
  emit(2, '(local $sf f32) (local $rf f32) (local $vf f32)');
  emit(2, '(local.set $P4 (i32.and (local.get $P) (i32.const -4)))');
  emit(2, '(local.set $kv (f32x4.splat (local.get $k)))');
  emit(2, '(local.set $anv (f32x4.splat (local.get $an)))');
  emit(2, '(block $imgDone (loop $imgLoop');
  emit(3, '(br_if $imgDone (i32.ge_s (local.get $img) (local.get $N)))');
  emit(3, '(local.set $c (i32.const 0))');
  emit(3, '(block $cDone (loop $cLoop');
  emit(4, '(br_if $cDone (i32.ge_s (local.get $c) (local.get $C)))');
  emit(4, '(local.set $c0 (select (i32.sub (local.get $c) (local.get $pre)) (i32.const 0) (i32.gt_s (i32.sub (local.get $c) (local.get $pre)) (i32.const 0))))');
  emit(4, '(local.set $c1 (select (i32.add (local.get $c) (local.get $pre)) (i32.sub (local.get $C) (i32.const 1)) (i32.lt_s (i32.add (local.get $c) (local.get $pre)) (i32.sub (local.get $C) (i32.const 1)))))');
  // q = x[c0]^2, then += x[cc]^2.
  emit(4, '(local.set $cc (local.get $c0))');
  emit(4, '(block $ccDone (loop $ccLoop');
  emit(5, '(br_if $ccDone (i32.gt_s (local.get $cc) (local.get $c1)))');
  emit(5, '(local.set $src (i32.add (local.get $x) (i32.shl (i32.mul (i32.add (i32.mul (local.get $img) (local.get $C)) (local.get $cc)) (local.get $ld)) (i32.const 2))))');
  emit(5, '(local.set $i (i32.const 0))');
  emit(5, '(block $vDone (loop $vLoop');
  emit(6, '(br_if $vDone (i32.ge_s (local.get $i) (local.get $P4)))');
  emit(6, '(local.set $o (i32.shl (local.get $i) (i32.const 2)))');
  emit(6, '(local.set $v (v128.load (i32.add (local.get $src) (local.get $o))))');
  emit(6, '(local.set $v (f32x4.mul (local.get $v) (local.get $v)))');
  emit(6, '(v128.store (i32.add (local.get $q) (local.get $o)) (if (result v128) (i32.eq (local.get $cc) (local.get $c0)) (then (local.get $v)) (else (f32x4.add (v128.load (i32.add (local.get $q) (local.get $o))) (local.get $v)))))');
  emit(6, '(local.set $i (i32.add (local.get $i) (i32.const 4)))');
  emit(6, '(br $vLoop)))');
  emit(5, '(block $tDone (loop $tLoop');
  emit(6, '(br_if $tDone (i32.ge_s (local.get $i) (local.get $P)))');
  emit(6, '(local.set $o (i32.shl (local.get $i) (i32.const 2)))');
  emit(6, '(local.set $vf (f32.load (i32.add (local.get $src) (local.get $o))))');
  emit(6, '(local.set $vf (f32.mul (local.get $vf) (local.get $vf)))');
  emit(6, '(f32.store (i32.add (local.get $q) (local.get $o)) (if (result f32) (i32.eq (local.get $cc) (local.get $c0)) (then (local.get $vf)) (else (f32.add (f32.load (i32.add (local.get $q) (local.get $o))) (local.get $vf)))))');
  emit(6, '(local.set $i (i32.add (local.get $i) (i32.const 1)))');
  emit(6, '(br $tLoop)))');
  emit(5, '(local.set $cc (i32.add (local.get $cc) (i32.const 1)))');
  emit(5, '(br $ccLoop)))');
  // s and y for this plane.
  emit(4, '(local.set $base (i32.shl (i32.mul (i32.add (i32.mul (local.get $img) (local.get $C)) (local.get $c)) (local.get $ld)) (i32.const 2)))');
  emit(4, '(local.set $i (i32.const 0))');
  const powV = '(if (result v128) (i32.eqz (local.get $mode)) (then (local.set $r (f32x4.sqrt (local.get $sv))) (f32x4.mul (local.get $r) (f32x4.sqrt (local.get $r)))) (else (if (result v128) (i32.eq (local.get $mode) (i32.const 1)) (then (f32x4.sqrt (local.get $sv))) (else (local.get $sv)))))';
  const powS = '(if (result f32) (i32.eqz (local.get $mode)) (then (local.set $rf (f32.sqrt (local.get $sf))) (f32.mul (local.get $rf) (f32.sqrt (local.get $rf)))) (else (if (result f32) (i32.eq (local.get $mode) (i32.const 1)) (then (f32.sqrt (local.get $sf))) (else (local.get $sf)))))';
  emit(4, '(block $fDone (loop $fLoop');
  emit(5, '(br_if $fDone (i32.ge_s (local.get $i) (local.get $P4)))');
  emit(5, '(local.set $o (i32.shl (local.get $i) (i32.const 2)))');
  emit(5, '(local.set $sv (f32x4.add (local.get $kv) (f32x4.mul (local.get $anv) (v128.load (i32.add (local.get $q) (local.get $o))))))');
  emit(5, '(v128.store (i32.add (local.get $s) (i32.add (local.get $base) (local.get $o))) (local.get $sv))');
  emit(5, `(v128.store (i32.add (local.get $y) (i32.add (local.get $base) (local.get $o))) (f32x4.div (v128.load (i32.add (local.get $x) (i32.add (local.get $base) (local.get $o)))) ${powV}))`);
  emit(5, '(local.set $i (i32.add (local.get $i) (i32.const 4)))');
  emit(5, '(br $fLoop)))');
  emit(4, '(block $gDone (loop $gLoop');
  emit(5, '(br_if $gDone (i32.ge_s (local.get $i) (local.get $P)))');
  emit(5, '(local.set $o (i32.shl (local.get $i) (i32.const 2)))');
  emit(5, '(local.set $sf (f32.add (local.get $k) (f32.mul (local.get $an) (f32.load (i32.add (local.get $q) (local.get $o))))))');
  emit(5, '(f32.store (i32.add (local.get $s) (i32.add (local.get $base) (local.get $o))) (local.get $sf))');
  emit(5, `(f32.store (i32.add (local.get $y) (i32.add (local.get $base) (local.get $o))) (f32.div (f32.load (i32.add (local.get $x) (i32.add (local.get $base) (local.get $o)))) ${powS}))`);
  emit(5, '(local.set $i (i32.add (local.get $i) (i32.const 1)))');
  emit(5, '(br $gLoop)))');
  emit(4, '(local.set $c (i32.add (local.get $c) (i32.const 1)))');
  emit(4, '(br $cLoop)))');
  emit(3, '(local.set $img (i32.add (local.get $img) (i32.const 1)))');
  emit(3, '(br $imgLoop)))');
  emit(1, ')');
  for (const line of packedConvWat({ relaxed })) emit(1, line);
  emit(0, ')');
  return out.join('\n') + '\n';
}

/** Blocking of the packed convolution GEMM (exported by the module as immutable globals). */
export const PCONV_BLOCKING = Object.freeze({ MR: 4, NR: 8, MC: 128, KC: 512, NC: 1024 });

/**
 * Most output channels for which pconv reads its B panels straight from the image (dtile) where
 * the geometry allows (unit column stride, one k block, output rows of whole tiles).
 */
export const DIRECT_MAX_ROWS = 32;

/**
 * The packed convolution of inference: y = act(a ⊙ (W · im2col(x)) + b) for one image and
 * group, with W packed once (per weights version) into MR-tall panels (`packa`) and the
 * columns unfolded straight into NR-wide GEMM panels (`packb`: no column matrix, no second
 * packing pass), then a register-tiled MR × NR micro-kernel (as the GEMM module's) whose
 * epilogue applies the per-output-channel affine a·v + b (the bias, or a folded
 * BatchNorm/Scale) and the ReLU on the last k block. A 1×1 stride-1 unpadded convolution is
 * passed in as a 1 × (H·W) image, so every full panel is two vector loads.
 * Layouts (floats): packed W: per k block pc (KC deep, the last one shorter), per panel of MR
 * rows, [kc][MR] (rows past M zero); packed B: per panel of NR columns, [kc][NR].
 * @param {{ relaxed?: boolean }} options
 * @returns {string[]} lines of WAT (module fields)
 */
function packedConvWat({ relaxed }) {
  const { MR, NR, MC, KC, NC } = PCONV_BLOCKING;
  const L = [];
  const e = (s) => L.push(s);
  const madd = maddWat(relaxed);
  for (const [name, value] of Object.entries({ MR, NR, MC, KC, NC })) e(`(global (export "PCONV_${name}") i32 (i32.const ${value}))`);

  // ---- packa ----
  e(';; dst = W (M x K, row-major) packed: per k block, per MR-row panel, [kc][MR], rows >= M zero.');
  e('(func (export "packa") (param $src i32) (param $M i32) (param $K i32) (param $dst i32)');
  e('  (local $pc i32) (local $kc i32) (local $p i32) (local $k i32) (local $row i32) (local $Mp i32)');
  e(`  (local.set $Mp (i32.and (i32.add (local.get $M) (i32.const ${MR - 1})) (i32.const ${-MR})))`);
  e('  (loop $pcLoop');
  e(`    (local.set $kc (select (i32.sub (local.get $K) (local.get $pc)) (i32.const ${KC}) (i32.lt_u (i32.sub (local.get $K) (local.get $pc)) (i32.const ${KC}))))`);
  e('    (local.set $p (i32.const 0))');
  e('    (loop $pLoop');
  e('      (local.set $k (i32.const 0))');
  e('      (loop $kLoop');
  for (let r = 0; r < MR; r++) {
    e(`        (local.set $row (i32.add (local.get $p) (i32.const ${r})))`);
    e(`        (f32.store offset=${4 * r} (local.get $dst) (if (result f32) (i32.lt_u (local.get $row) (local.get $M))`);
    e('          (then (f32.load (i32.add (local.get $src) (i32.shl (i32.add (i32.mul (local.get $row) (local.get $K)) (i32.add (local.get $pc) (local.get $k))) (i32.const 2)))))');
    e('          (else (f32.const 0))))');
  }
  e(`        (local.set $dst (i32.add (local.get $dst) (i32.const ${4 * MR})))`);
  e('        (local.set $k (i32.add (local.get $k) (i32.const 1)))');
  e('        (br_if $kLoop (i32.lt_u (local.get $k) (local.get $kc))))');
  e(`      (local.set $p (i32.add (local.get $p) (i32.const ${MR})))`);
  e('      (br_if $pLoop (i32.lt_u (local.get $p) (local.get $Mp))))');
  e(`    (local.set $pc (i32.add (local.get $pc) (i32.const ${KC})))`);
  e('    (br_if $pcLoop (i32.lt_u (local.get $pc) (local.get $K))))');
  e(')');

  // ---- padimg ----
  e(';; dst = x (C planes H x W) with PH zero rows above and below and PW zero columns either side.');
  e('(func (export "padimg") (param $x i32) (param $C i32) (param $H i32) (param $W i32) (param $PH i32) (param $PW i32) (param $dst i32)');
  e('  (local $c i32) (local $r i32) (local $Hp i32) (local $rowB i32) (local $padB i32) (local $wB i32) (local $cpD i32) (local $cpI i32)');
  e('  (local.set $Hp (i32.add (local.get $H) (i32.shl (local.get $PH) (i32.const 1))))');
  e('  (local.set $wB (i32.shl (local.get $W) (i32.const 2)))');
  e('  (local.set $padB (i32.shl (local.get $PW) (i32.const 2)))');
  e('  (local.set $rowB (i32.add (local.get $wB) (i32.shl (local.get $padB) (i32.const 1))))');
  e('  (block $done (loop $planes');
  e('    (br_if $done (i32.ge_u (local.get $c) (local.get $C)))');
  e('    (memory.fill (local.get $dst) (i32.const 0) (i32.mul (local.get $PH) (local.get $rowB)))');
  e('    (local.set $dst (i32.add (local.get $dst) (i32.mul (local.get $PH) (local.get $rowB))))');
  e('    (local.set $r (i32.const 0))');
  e('    (block $rdone (loop $rows');
  e('      (br_if $rdone (i32.ge_u (local.get $r) (local.get $H)))');
  e('      (memory.fill (local.get $dst) (i32.const 0) (local.get $padB))');
  e('      (local.set $cpD (i32.add (local.get $dst) (local.get $padB)))');
  for (const l of rowCopyWat('$cpD', '$x', '$wB', '$cpI')) e('      ' + l);
  e('      (memory.fill (i32.add (i32.add (local.get $dst) (local.get $padB)) (local.get $wB)) (i32.const 0) (local.get $padB))');
  e('      (local.set $dst (i32.add (local.get $dst) (local.get $rowB)))');
  e('      (local.set $x (i32.add (local.get $x) (local.get $wB)))');
  e('      (local.set $r (i32.add (local.get $r) (i32.const 1)))');
  e('      (br $rows)))');
  e('    (memory.fill (local.get $dst) (i32.const 0) (i32.mul (local.get $PH) (local.get $rowB)))');
  e('    (local.set $dst (i32.add (local.get $dst) (i32.mul (local.get $PH) (local.get $rowB))))');
  e('    (local.set $c (i32.add (local.get $c) (i32.const 1)))');
  e('    (br $planes)))');
  e(')');

  // ---- packb ----
  // Over a padded image no window leaves the plane, so a lane's input is at a fixed byte offset
  // from the k row's origin: lane offsets are set once per panel, the origin moves per k row.
  const lanes = Array.from({ length: NR }, (_, l) => l);
  e(';; Columns j0 … j0+nc-1 (output positions, row-major over OH x OW) and rows pc … pc+kc-1');
  e(';; (k = (c·KH + kh)·KW + kw) of im2col(xp), xp an already padded image (C planes Hp x Wp), written');
  e(';; as NR-wide panels [kc][NR] at dst. Lanes past nc repeat the last column (never stored).');
  e('(func $packb (export "packb") (param $xp i32) (param $Hp i32) (param $Wp i32) (param $KH i32) (param $KW i32)');
  e('  (param $SH i32) (param $SW i32) (param $DH i32) (param $DW i32)');
  e('  (param $OW i32) (param $j0 i32) (param $nc i32) (param $pc i32) (param $kc i32) (param $dst i32)');
  e('  (local $q i32) (local $valid i32) (local $j i32) (local $oh i32) (local $ow i32) (local $mode i32)');
  e('  (local $kh i32) (local $kw i32) (local $t i32) (local $org i32) (local $plane i32) (local $k i32) (local $d i32)');
  e('  (local $rowB i32) (local $dhB i32) (local $dwB i32) (local $src i32) (local $sB i32) (local $wrapW i32) (local $wrapH i32)');
  e(`  ${lanes.map((l) => `(local $L${l} i32)`).join(' ')}`);
  e('  (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)');
  e('  (local.set $rowB (i32.shl (local.get $Wp) (i32.const 2)))');
  e('  (local.set $plane (i32.mul (local.get $rowB) (local.get $Hp)))');
  e('  (local.set $dhB (i32.mul (local.get $rowB) (local.get $DH)))');
  e('  (local.set $dwB (i32.shl (local.get $DW) (i32.const 2)))');
  e('  (local.set $sB (i32.shl (local.get $SW) (i32.const 2)))');
  e('  ;; the origin moves back across the window row (kw wraps) and back up the window (kh wraps)');
  e('  (local.set $wrapW (i32.sub (local.get $dhB) (i32.mul (local.get $KW) (local.get $dwB))))');
  e('  (local.set $wrapH (i32.sub (local.get $plane) (i32.mul (local.get $KH) (local.get $dhB))))');
  e('  (local.set $d (local.get $dst))');
  e('  (loop $panels');
  e(`    (local.set $valid (select (i32.sub (local.get $nc) (local.get $q)) (i32.const ${NR}) (i32.lt_u (i32.sub (local.get $nc) (local.get $q)) (i32.const ${NR}))))`);
  e('    (local.set $j (i32.add (local.get $j0) (local.get $q)))');
  e('    (local.set $oh (i32.div_u (local.get $j) (local.get $OW)))');
  e('    (local.set $ow (i32.sub (local.get $j) (i32.mul (local.get $oh) (local.get $OW))))');
  e('    ;; mode 1: the NR lanes are consecutive outputs of one row (SW apart in the input); else 0');
  e(`    (local.set $mode (i32.and (i32.eq (local.get $valid) (i32.const ${NR})) (i32.le_u (i32.add (local.get $ow) (i32.const ${NR})) (local.get $OW))))`);
  for (const l of lanes) {
    // lane l's offset (bytes) of its window origin; past `valid`, the last valid lane's
    e(`    (local.set $L${l} ${l === 0 ? '' : `(if (result i32) (i32.lt_u (i32.const ${l}) (local.get $valid)) (then `}(i32.shl (i32.add (i32.mul (i32.mul (local.get $oh) (local.get $SH)) (local.get $Wp)) (i32.mul (local.get $ow) (local.get $SW))) (i32.const 2))${l === 0 ? '' : ` ) (else (local.get $L${l - 1})))`})`);
    if (l < NR - 1) {
      e('    (local.set $ow (i32.add (local.get $ow) (i32.const 1)))');
      e('    (if (i32.eq (local.get $ow) (local.get $OW)) (then (local.set $ow (i32.const 0)) (local.set $oh (i32.add (local.get $oh) (i32.const 1)))))');
    }
  }
  e('    ;; the window origin of row pc: channel plane + kh·DH rows + kw·DW columns');
  e('    (local.set $kw (i32.rem_u (local.get $pc) (local.get $KW)))');
  e('    (local.set $t (i32.div_u (local.get $pc) (local.get $KW)))');
  e('    (local.set $kh (i32.rem_u (local.get $t) (local.get $KH)))');
  e('    (local.set $org (i32.add (i32.add (local.get $xp) (i32.mul (i32.div_u (local.get $t) (local.get $KH)) (local.get $plane)))');
  e('      (i32.add (i32.mul (local.get $kh) (local.get $dhB)) (i32.mul (local.get $kw) (local.get $dwB)))))');
  // One row loop per kind of panel, chosen once per panel (a test per k row cost as much as the
  // copy itself). $p walks the window origin of the current k row: kw, then kh, then the channel.
  const rowsLoop = (tag, p, body) => {
    e('    (local.set $k (local.get $kc))');
    e(`    (loop $rows${tag}`);
    for (const line of body) e('      ' + line);
    e(`      (local.set $d (i32.add (local.get $d) (i32.const ${4 * NR})))`);
    e('      (local.set $kw (i32.add (local.get $kw) (i32.const 1)))');
    e(`      (local.set ${p} (i32.add (local.get ${p}) (local.get $dwB)))`);
    e('      (if (i32.eq (local.get $kw) (local.get $KW)) (then');
    e('        (local.set $kw (i32.const 0))');
    e(`        (local.set ${p} (i32.add (local.get ${p}) (local.get $wrapW)))`);
    e('        (local.set $kh (i32.add (local.get $kh) (i32.const 1)))');
    e('        (if (i32.eq (local.get $kh) (local.get $KH)) (then');
    e('          (local.set $kh (i32.const 0))');
    e(`          (local.set ${p} (i32.add (local.get ${p}) (local.get $wrapH)))))))`);
    e('      (local.set $k (i32.sub (local.get $k) (i32.const 1)))');
    e(`      (br_if $rows${tag} (local.get $k)))`);
  };
  e('    (local.set $src (i32.add (local.get $org) (local.get $L0)))');
  e('    (if (i32.and (local.get $mode) (i32.eq (local.get $SW) (i32.const 1))) (then');
  rowsLoop('1', '$src', [
    '(v128.store (local.get $d) (v128.load (local.get $src)))',
    '(v128.store offset=16 (local.get $d) (v128.load offset=16 (local.get $src)))',
  ]);
  e('    ) (else (if (i32.and (local.get $mode) (i32.eq (local.get $SW) (i32.const 2))) (then');
  rowsLoop('2', '$src', [
    '(local.set $v0 (v128.load (local.get $src)))',
    '(local.set $v1 (v128.load offset=16 (local.get $src)))',
    '(local.set $v2 (v128.load offset=32 (local.get $src)))',
    '(local.set $v3 (v128.load offset=48 (local.get $src)))',
    '(v128.store (local.get $d) (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v1)))',
    '(v128.store offset=16 (local.get $d) (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v2) (local.get $v3)))',
  ]);
  e('    ) (else ;; other strides, or a panel over two output rows: lane by lane');
  rowsLoop('0', '$org', lanes.map((l) => `(f32.store offset=${4 * l} (local.get $d) (f32.load (i32.add (local.get $org) (local.get $L${l}))))`));
  e('    ))))');
  e(`    (local.set $q (i32.add (local.get $q) (i32.const ${NR})))`);
  e('    (br_if $panels (i32.lt_u (local.get $q) (local.get $nc))))');
  e(')');

  // ---- micro-kernel ----
  const NV = NR / 4;
  const acc = (r, v) => `$c${r}_${v}`;
  // ptile reads B from a packed panel ($pb0: kc rows of NR floats); dtile (direct) reads it from
  // the image itself: NR consecutive pixels at $xb plus each tap's byte offset ($tab0: kc of
  // them), which is the same panel row where the NR outputs lie in one row and stride 1.
  const tileKernel = (direct) => {
    if (direct) {
      e(';; ptile with B read from the image: row k of the panel = NR floats at $xb + tab[k].');
      e('(func $dtile (param $kc0 i32) (param $pa i32) (param $xb i32) (param $tab0 i32) (param $pc i32) (param $ldc i32) (param $mode i32)');
    } else {
      e(';; $count full MR x NR tiles down a column strip: tile t at $pc + t·MR rows (row stride $ldc bytes)');
      e(';; from the t-th of consecutive A panels and one B panel, kc deep (one call per strip, not per tile).');
      e(';; mode bit 0: first k block (C is not read); bit 1: last (then C = act(a[r]·v + b[r])).');
      e('(func $ptile (param $kc0 i32) (param $pa i32) (param $pb0 i32) (param $pc i32) (param $ldc i32) (param $mode i32)');
    }
    e('  (param $sa i32) (param $sb i32) (param $relu i32) (param $slope f32) (param $count i32)');
    const accL = [];
    for (let r = 0; r < MR; r++) for (let v = 0; v < NV; v++) accL.push(`(local ${acc(r, v)} v128)`);
    e('  ' + accL.join(' '));
    e(`  (local $a v128) ${Array.from({ length: NV }, (_, v) => `(local $b${v} v128)`).join(' ')} (local $row i32) (local $va v128) (local $vb v128) (local $vs v128)`);
    e(direct ? '  (local $kc i32) (local $t i32) (local $off i32)' : '  (local $kc i32) (local $pb i32)');
    e('  (loop $tiles');
    for (let r = 0; r < MR; r++) for (let v = 0; v < NV; v++) e(`  (local.set ${acc(r, v)} (v128.const i32x4 0 0 0 0))`);
    e('  (local.set $kc (local.get $kc0))');
    e(direct ? '  (local.set $t (local.get $tab0))' : '  (local.set $pb (local.get $pb0))');
    // KU k steps per loop iteration with an exit test between them (any kc ≥ 1, no remainder
    // loop); $pa advances per step and $pb by offsets, as the GEMM module's kernel does so that V8
    // keeps the accumulators in registers.
    const KU = 8;
    e('  (block $kDone (loop $k');
    for (let st = 0; st < KU; st++) {
      if (direct) {
        e(`    (local.set $off (i32.add (local.get $xb) (i32.load offset=${4 * st} (local.get $t))))`);
        for (let v = 0; v < NV; v++) e(`    (local.set $b${v} (v128.load offset=${16 * v} (local.get $off)))`);
      } else {
        for (let v = 0; v < NV; v++) e(`    (local.set $b${v} (v128.load offset=${4 * (st * NR + 4 * v)} (local.get $pb)))`);
      }
      for (let r = 0; r < MR; r++) {
        e(`    (local.set $a (v128.load32_splat offset=${4 * r} (local.get $pa)))`);
        for (let v = 0; v < NV; v++) e(`    (local.set ${acc(r, v)} ${madd('(local.get $a)', `(local.get $b${v})`, `(local.get ${acc(r, v)})`)})`);
      }
      e(`    (local.set $pa (i32.add (local.get $pa) (i32.const ${4 * MR})))`);
      if (st < KU - 1) e('    (br_if $kDone (i32.eqz (local.tee $kc (i32.sub (local.get $kc) (i32.const 1)))))');
    }
    e(direct ? `    (local.set $t (i32.add (local.get $t) (i32.const ${4 * KU})))` : `    (local.set $pb (i32.add (local.get $pb) (i32.const ${4 * NR * KU})))`);
    e('    (br_if $k (local.tee $kc (i32.sub (local.get $kc) (i32.const 1))))))');
    e('  (if (i32.eqz (i32.and (local.get $mode) (i32.const 1))) (then ;; accumulate onto the earlier k blocks');
    e('    (local.set $row (local.get $pc))');
    for (let r = 0; r < MR; r++) {
      for (let v = 0; v < NV; v++) e(`    (local.set ${acc(r, v)} (f32x4.add (local.get ${acc(r, v)}) (v128.load offset=${16 * v} (local.get $row))))`);
      if (r < MR - 1) e('    (local.set $row (i32.add (local.get $row) (local.get $ldc)))');
    }
    e('  ))');
    e('  (if (i32.and (local.get $mode) (i32.const 2)) (then ;; epilogue: per-row affine, then the ReLU');
    e('    (local.set $vs (f32x4.splat (local.get $slope)))');
    for (let r = 0; r < MR; r++) {
      e(`    (local.set $va (v128.load32_splat offset=${4 * r} (local.get $sa)))`);
      e(`    (local.set $vb (v128.load32_splat offset=${4 * r} (local.get $sb)))`);
      for (let v = 0; v < NV; v++) e(`    (local.set ${acc(r, v)} (f32x4.add (f32x4.mul (local.get $va) (local.get ${acc(r, v)})) (local.get $vb)))`);
    }
    // $relu 2: slope 0, max(v, 0) alone (the same values as the leaky form's with slope 0).
    e('    (if (i32.eq (local.get $relu) (i32.const 2)) (then');
    for (let r = 0; r < MR; r++) {
      for (let v = 0; v < NV; v++) e(`      (local.set ${acc(r, v)} (f32x4.max (local.get ${acc(r, v)}) (v128.const i32x4 0 0 0 0)))`);
    }
    e('    ) (else (if (local.get $relu) (then');
    for (let r = 0; r < MR; r++) {
      for (let v = 0; v < NV; v++) {
        const a = `(local.get ${acc(r, v)})`;
        e(`      (local.set ${acc(r, v)} (f32x4.add (f32x4.max ${a} (v128.const i32x4 0 0 0 0)) (f32x4.mul (local.get $vs) (f32x4.min ${a} (v128.const i32x4 0 0 0 0)))))`);
      }
    }
    e('    ))))))');
    e('  (local.set $row (local.get $pc))');
    for (let r = 0; r < MR; r++) {
      for (let v = 0; v < NV; v++) e(`  (v128.store offset=${16 * v} (local.get $row) (local.get ${acc(r, v)}))`);
      if (r < MR - 1) e('  (local.set $row (i32.add (local.get $row) (local.get $ldc)))');
    }
    e('  ;; next tile down: the k loop left $pa at the next A panel');
    e(`  (local.set $pc (i32.add (local.get $pc) (i32.mul (local.get $ldc) (i32.const ${MR}))))`);
    e(`  (local.set $sa (i32.add (local.get $sa) (i32.const ${4 * MR})))`);
    e(`  (local.set $sb (i32.add (local.get $sb) (i32.const ${4 * MR})))`);
    e('  (br_if $tiles (local.tee $count (i32.sub (local.get $count) (i32.const 1)))))');
    e(')');
  };
  tileKernel(false);
  tileKernel(true);

  /**
   * The tiles of one KC-deep step, shared by pconv and wgemm: row blocks of MC, strips of NR
   * columns over them, and in each strip the full tiles in one ptile call and the edge tiles one by
   * one through the scratch tile. Expects $kc, $mode, $ablk (this step's A block) and $ldc set, and
   * $Mp = M rounded up to MR. `col` is the strip's first column of y, `cols` the local holding how
   * many columns the sweep covers, `panel` the address of the strip's B panel at this step.
   */
  const tileSweep = (ind, { col, cols, panel }) => {
    const f = (line) => e(ind + line);
    const cAt = (row) => `(i32.add (local.get $y) (i32.shl (i32.add (i32.mul ${row} (local.get $N)) ${col}) (i32.const 2)))`;
    const factors = (row) => `(i32.add (local.get $sa) (i32.shl ${row} (i32.const 2))) (i32.add (local.get $sb) (i32.shl ${row} (i32.const 2)))`;
    f('(local.set $ic (i32.const 0))');
    f('(loop $icLoop');
    f(`  (local.set $mcEnd (select (local.get $Mp) (i32.add (local.get $ic) (i32.const ${MC})) (i32.lt_u (i32.sub (local.get $Mp) (local.get $ic)) (i32.const ${MC}))))`);
    f('  (local.set $jr (i32.const 0))');
    f('  (loop $jrLoop');
    f(`    (local.set $nr (select (i32.sub (local.get ${cols}) (local.get $jr)) (i32.const ${NR}) (i32.lt_u (i32.sub (local.get ${cols}) (local.get $jr)) (i32.const ${NR}))))`);
    f(`    (local.set $pb ${panel})`);
    f('    (local.set $ir (local.get $ic))');
    f('    ;; the full tiles of a full-width strip in one kernel call; edge tiles one by one below');
    f(`    (local.set $fe (select (local.get $mcEnd) (i32.and (local.get $M) (i32.const ${-MR})) (i32.lt_u (local.get $mcEnd) (i32.and (local.get $M) (i32.const ${-MR})))))`);
    f(`    (if (i32.and (i32.eq (local.get $nr) (i32.const ${NR})) (i32.gt_u (local.get $fe) (local.get $ic))) (then`);
    f('      (call $ptile (local.get $kc) (i32.add (local.get $ablk) (i32.shl (i32.mul (local.get $ic) (local.get $kc)) (i32.const 2))) (local.get $pb)');
    f(`        ${cAt('(local.get $ic)')} (local.get $ldc) (local.get $mode)`);
    f(`        ${factors('(local.get $ic)')}`);
    f(`        (local.get $relu) (local.get $slope) (i32.shr_u (i32.sub (local.get $fe) (local.get $ic)) (i32.const ${Math.log2(MR)})))`);
    f('      (local.set $ir (local.get $fe))))');
    f('    (block $irDone (loop $irLoop');
    f('      (br_if $irDone (i32.ge_u (local.get $ir) (local.get $mcEnd)))');
    f(`      (local.set $mr (select (i32.sub (local.get $M) (local.get $ir)) (i32.const ${MR}) (i32.lt_u (i32.sub (local.get $M) (local.get $ir)) (i32.const ${MR}))))`);
    f('      (local.set $pa (i32.add (local.get $ablk) (i32.shl (i32.mul (local.get $ir) (local.get $kc)) (i32.const 2))))');
    f(`      (local.set $cp ${cAt('(local.get $ir)')})`);
    f(`      (if (i32.and (i32.eq (local.get $mr) (i32.const ${MR})) (i32.eq (local.get $nr) (i32.const ${NR})))`);
    f('        (then');
    f('          (call $ptile (local.get $kc) (local.get $pa) (local.get $pb) (local.get $cp) (local.get $ldc) (local.get $mode)');
    f(`            ${factors('(local.get $ir)')}`);
    f('            (local.get $relu) (local.get $slope) (i32.const 1)))');
    f('        (else ;; edge tile: through the scratch tile, valid part only');
    const edgeCopy = (toScratch) => {
      f('          (local.set $r (i32.const 0))');
      f('          (loop $er');
      f('            (local.set $l (i32.const 0))');
      f('            (loop $el');
      const cAddr = '(i32.add (local.get $cp) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $N)) (local.get $l)) (i32.const 2)))';
      const sAddr = `(i32.add (local.get $scratch) (i32.shl (i32.add (i32.mul (local.get $r) (i32.const ${NR})) (local.get $l)) (i32.const 2)))`;
      f(toScratch ? `              (f32.store ${sAddr} (f32.load ${cAddr}))` : `              (f32.store ${cAddr} (f32.load ${sAddr}))`);
      f('              (local.set $l (i32.add (local.get $l) (i32.const 1)))');
      f('              (br_if $el (i32.lt_u (local.get $l) (local.get $nr))))');
      f('            (local.set $r (i32.add (local.get $r) (i32.const 1)))');
      f('            (br_if $er (i32.lt_u (local.get $r) (local.get $mr))))');
    };
    f('          ;; C accumulates after the first step: bring the valid part in first');
    f('          (if (i32.eqz (i32.and (local.get $mode) (i32.const 1))) (then');
    edgeCopy(true);
    f('          ))');
    f(`          (call $ptile (local.get $kc) (local.get $pa) (local.get $pb) (local.get $scratch) (i32.const ${4 * NR}) (local.get $mode)`);
    f(`            ${factors('(local.get $ir)')}`);
    f('            (local.get $relu) (local.get $slope) (i32.const 1))');
    edgeCopy(false);
    f('        ))');
    f(`      (local.set $ir (i32.add (local.get $ir) (i32.const ${MR})))`);
    f('      (br $irLoop)))');
    f(`    (local.set $jr (i32.add (local.get $jr) (i32.const ${NR})))`);
    f(`    (br_if $jrLoop (i32.lt_u (local.get $jr) (local.get ${cols}))))`);
    f(`  (local.set $ic (i32.add (local.get $ic) (i32.const ${MC})))`);
    f('  (br_if $icLoop (i32.lt_u (local.get $ic) (local.get $Mp))))');
  };

  // ---- driver ----
  e(';; y (M x N, row-major) = act(a ⊙ (W · im2col(x)) + b) for one image (and group): W packed by packa');
  e(';; at $pw; a, b: per-row factors ($sa, $sb, M rounded up to MR entries); $bufB: KC x min(NC, N');
  e(';; rounded up to NR) floats (the B panels, or the taps\' offsets where the tiles read the image');
  e(';; itself); $scratch: an MR x NR tile. xp and the geometry as packb. Only columns');
  e(';; $j0 … $j1 - 1 of y are computed (0 and N: all; kernel threads split the columns this way).');
  e('(func (export "pconv") (param $pw i32) (param $M i32) (param $K i32) (param $xp i32) (param $Hp i32) (param $Wp i32)');
  e('  (param $KH i32) (param $KW i32) (param $SH i32) (param $SW i32) (param $DH i32) (param $DW i32)');
  e('  (param $OW i32) (param $N i32) (param $y i32) (param $sa i32) (param $sb i32) (param $relu i32) (param $slope f32)');
  e('  (param $bufB i32) (param $scratch i32) (param $j0 i32) (param $j1 i32)');
  e('  (local $Mp i32) (local $jc i32) (local $nc i32) (local $pc i32) (local $kc i32) (local $mode i32) (local $ablk i32)');
  e('  (local $ic i32) (local $mcEnd i32) (local $jr i32) (local $nr i32) (local $ir i32) (local $mr i32) (local $pa i32) (local $pb i32)');
  e('  (local $cp i32) (local $ldc i32) (local $r i32) (local $l i32) (local $fe i32)');
  e('  (local $c i32) (local $kh i32) (local $kw i32) (local $tk i32) (local $oy i32) (local $xb i32) (local $full i32)');
  e(`  (local.set $Mp (i32.and (i32.add (local.get $M) (i32.const ${MR - 1})) (i32.const ${-MR})))`);
  e('  (local.set $ldc (i32.shl (local.get $N) (i32.const 2)))');
  // Few output channels (rows) over a unit column stride: packing B costs about as much as the
  // products (each packed float serves only M rows), so the tiles read B from the image (dtile),
  // the same floats in the same order: the same bits. Needs one k block, and output rows of whole
  // NR-column tiles (j0, j1 are multiples of NR then).
  e(`  (if (i32.and (i32.and (i32.le_u (local.get $M) (i32.const ${DIRECT_MAX_ROWS})) (i32.eq (local.get $SW) (i32.const 1)))`);
  e(`    (i32.and (i32.le_u (local.get $K) (i32.const ${KC})) (i32.eqz (i32.and (local.get $OW) (i32.const ${NR - 1}))))) (then`);
  e('    ;; the taps\' byte offsets from a window\'s corner, in the weights\' order (c, kh, kw), into $bufB');
  e('    (local.set $tk (local.get $bufB))');
  e('    (local.set $c (i32.const 0))');
  e('    (loop $cT');
  e('      (local.set $kh (i32.const 0))');
  e('      (loop $khT');
  e('        (local.set $kw (i32.const 0))');
  e('        (loop $kwT');
  e('          (i32.store (local.get $tk) (i32.shl (i32.add (i32.mul (i32.add (i32.mul (local.get $c) (local.get $Hp)) (i32.mul (local.get $kh) (local.get $DH)))');
  e('            (local.get $Wp)) (i32.mul (local.get $kw) (local.get $DW))) (i32.const 2)))');
  e('          (local.set $tk (i32.add (local.get $tk) (i32.const 4)))');
  e('          (local.set $kw (i32.add (local.get $kw) (i32.const 1)))');
  e('          (br_if $kwT (i32.lt_u (local.get $kw) (local.get $KW))))');
  e('        (local.set $kh (i32.add (local.get $kh) (i32.const 1)))');
  e('        (br_if $khT (i32.lt_u (local.get $kh) (local.get $KH))))');
  e('      (local.set $c (i32.add (local.get $c) (i32.const 1)))');
  e('      (br_if $cT (i32.lt_u (i32.sub (local.get $tk) (local.get $bufB)) (i32.shl (local.get $K) (i32.const 2)))))');
  e(`    (local.set $full (i32.and (local.get $M) (i32.const ${-MR})))`);
  e('    (local.set $jr (local.get $j0))');
  e('    (block $dDone (loop $dLoop');
  e('      (br_if $dDone (i32.ge_u (local.get $jr) (local.get $j1)))');
  e('      (local.set $oy (i32.div_u (local.get $jr) (local.get $OW)))');
  e('      ;; the window corner of output (oy, ox): padded row oy·SH, column ox');
  e('      (local.set $xb (i32.add (local.get $xp) (i32.shl (i32.add (i32.mul (i32.mul (local.get $oy) (local.get $SH)) (local.get $Wp))');
  e('        (i32.sub (local.get $jr) (i32.mul (local.get $oy) (local.get $OW)))) (i32.const 2))))');
  e('      (local.set $cp (i32.add (local.get $y) (i32.shl (local.get $jr) (i32.const 2))))');
  e('      (if (local.get $full) (then');
  e('        (call $dtile (local.get $K) (local.get $pw) (local.get $xb) (local.get $bufB) (local.get $cp) (local.get $ldc) (i32.const 3)');
  e(`          (local.get $sa) (local.get $sb) (local.get $relu) (local.get $slope) (i32.shr_u (local.get $full) (i32.const ${Math.log2(MR)})))))`);
  e('      (if (i32.gt_u (local.get $M) (local.get $full)) (then ;; the last rows through the scratch tile');
  e('        (call $dtile (local.get $K) (i32.add (local.get $pw) (i32.shl (i32.mul (local.get $full) (local.get $K)) (i32.const 2))) (local.get $xb)');
  e(`          (local.get $bufB) (local.get $scratch) (i32.const ${4 * NR}) (i32.const 3)`);
  e('          (i32.add (local.get $sa) (i32.shl (local.get $full) (i32.const 2))) (i32.add (local.get $sb) (i32.shl (local.get $full) (i32.const 2)))');
  e('          (local.get $relu) (local.get $slope) (i32.const 1))');
  e('        (local.set $cp (i32.add (local.get $cp) (i32.mul (local.get $full) (local.get $ldc))))');
  e('        (local.set $r (i32.const 0))');
  e('        (loop $er');
  for (let v = 0; v < NR / 4; v++) {
    e(`          (v128.store offset=${16 * v} (i32.add (local.get $cp) (i32.mul (local.get $r) (local.get $ldc)))`);
    e(`            (v128.load offset=${16 * v} (i32.add (local.get $scratch) (i32.shl (local.get $r) (i32.const ${Math.log2(4 * NR)})))))`);
  }
  e('          (local.set $r (i32.add (local.get $r) (i32.const 1)))');
  e('          (br_if $er (i32.lt_u (local.get $r) (i32.sub (local.get $M) (local.get $full)))))))');
  e(`      (local.set $jr (i32.add (local.get $jr) (i32.const ${NR})))`);
  e('      (br $dLoop)))');
  e('    (return)))');
  e('  (local.set $jc (local.get $j0))');
  e('  (loop $jcLoop');
  e(`    (local.set $nc (select (i32.sub (local.get $j1) (local.get $jc)) (i32.const ${NC}) (i32.lt_u (i32.sub (local.get $j1) (local.get $jc)) (i32.const ${NC}))))`);
  e('    (local.set $pc (i32.const 0))');
  e('    (loop $pcLoop');
  e(`      (local.set $kc (select (i32.sub (local.get $K) (local.get $pc)) (i32.const ${KC}) (i32.lt_u (i32.sub (local.get $K) (local.get $pc)) (i32.const ${KC}))))`);
  e('      (local.set $mode (i32.or (i32.eqz (local.get $pc)) (i32.shl (i32.ge_u (i32.add (local.get $pc) (local.get $kc)) (local.get $K)) (i32.const 1))))');
  e('      (call $packb (local.get $xp) (local.get $Hp) (local.get $Wp) (local.get $KH) (local.get $KW) (local.get $SH) (local.get $SW)');
  e('        (local.get $DH) (local.get $DW) (local.get $OW) (local.get $jc) (local.get $nc) (local.get $pc) (local.get $kc) (local.get $bufB))');
  e('      (local.set $ablk (i32.add (local.get $pw) (i32.shl (i32.mul (local.get $pc) (local.get $Mp)) (i32.const 2))))');
  tileSweep('      ', {
    col: '(i32.add (local.get $jc) (local.get $jr))',
    cols: '$nc',
    panel: '(i32.add (local.get $bufB) (i32.shl (i32.mul (local.get $jr) (local.get $kc)) (i32.const 2)))',
  });
  e(`      (local.set $pc (i32.add (local.get $pc) (i32.const ${KC})))`);
  e('      (br_if $pcLoop (i32.lt_u (local.get $pc) (local.get $K))))');
  e(`    (local.set $jc (i32.add (local.get $jc) (i32.const ${NC})))`);
  e('    (br_if $jcLoop (i32.lt_u (local.get $jc) (local.get $j1))))');
  e(')');

  // ---- Winograd F(2×2, 3×3) ----
  // (The transforms take a range: wino*_in channels c0 … c1 − 1 of C, wino*_out outputs o0 … o1 − 1
  // of M, so that kernel threads split them; one thread passes 0, C and 0, M.)
  // For 3×3 stride-1 undilated convolutions: each 2×2 output tile comes from a 4×4 input tile d
  // as Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, so the 9·4 multiply-adds per tile and channel pair become 16:
  // the 16 element-wise products over all channels are 16 GEMMs (U_ξ: outputs × channels, the
  // transformed weights, packed once; V_ξ: channels × tiles, the transformed input, written
  // straight into GEMM panels). Four tiles of a tile row are transformed at once, one per lane.
  e(';; dst (C planes Hp x Wp, zeroed) = x (C planes H x W) placed at row PT, column PL.');
  e('(func (export "padimg2") (param $x i32) (param $C i32) (param $H i32) (param $W i32) (param $PT i32) (param $PL i32)');
  e('  (param $Hp i32) (param $Wp i32) (param $dst i32)');
  e('  (local $c i32) (local $r i32) (local $plane i32) (local $wB i32) (local $to i32) (local $cpI i32)');
  e('  (local.set $plane (i32.shl (i32.mul (local.get $Hp) (local.get $Wp)) (i32.const 2)))');
  e('  (local.set $wB (i32.shl (local.get $W) (i32.const 2)))');
  e('  (memory.fill (local.get $dst) (i32.const 0) (i32.mul (local.get $plane) (local.get $C)))');
  e('  (block $done (loop $planes');
  e('    (br_if $done (i32.ge_u (local.get $c) (local.get $C)))');
  e('    (local.set $to (i32.add (local.get $dst) (i32.shl (i32.add (i32.mul (local.get $PT) (local.get $Wp)) (local.get $PL)) (i32.const 2))))');
  e('    (local.set $r (i32.const 0))');
  e('    (block $rdone (loop $rows');
  e('      (br_if $rdone (i32.ge_u (local.get $r) (local.get $H)))');
  for (const l of rowCopyWat('$to', '$x', '$wB', '$cpI')) e('      ' + l);
  e('      (local.set $to (i32.add (local.get $to) (i32.shl (local.get $Wp) (i32.const 2))))');
  e('      (local.set $x (i32.add (local.get $x) (local.get $wB)))');
  e('      (local.set $r (i32.add (local.get $r) (i32.const 1)))');
  e('      (br $rows)))');
  e('    (local.set $dst (i32.add (local.get $dst) (local.get $plane)))');
  e('    (local.set $c (i32.add (local.get $c) (i32.const 1)))');
  e('    (br $planes)))');
  e(')');

  const EV = '0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27';
  const OD = '4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31';
  const g4 = [0, 1, 2, 3];
  /**
   * The input transform of a Winograd variant with n×n input tiles: V_ξ = Bᵀ d B of every tile,
   * four horizontally adjacent tiles to a vector, stored as GEMM panels (V_ξ at V + ξ·vstride
   * bytes, tile p of channel c at ((p >> 3)·C + c)·32 + (p & 7)·4). The tile at tile row th starts
   * at input row th << thShift, the tile group tw at byte tw << twShift of the row. `loadRow(r)`
   * sets $d{r}0 … $d{r}{n−1} (lane l: tile tw + l) from the row at $row; `bt(i, v)` is row i of Bᵀ
   * applied to v(0) … v(n − 1). `locals` declares what loadRow uses.
   */
  const winoIn = ({ name, doc, n, locals, thShift, twShift, loadRow, bt }) => {
    const cn = Array.from({ length: n }, (_, i) => i);
    for (const line of doc) e(`;; ${line}`);
    e(`(func (export "${name}") (param $xp i32) (param $C i32) (param $Hp i32) (param $Wp i32) (param $TH i32) (param $TWp i32)`);
    e('  (param $V i32) (param $vstride i32) (param $c0 i32) (param $c1 i32)');
    e('  (local $c i32) (local $th i32) (local $tw i32) (local $p i32) (local $row i32) (local $rowB i32) (local $plane i32) (local $dst i32)');
    e(`  ${locals}`);
    e(`  ${cn.flatMap((r) => cn.map((j) => `(local $d${r}${j} v128)`)).join(' ')}`);
    e(`  ${cn.flatMap((r) => cn.map((j) => `(local $t${r}${j} v128)`)).join(' ')}`);
    e('  (local.set $rowB (i32.shl (local.get $Wp) (i32.const 2)))');
    e('  (local.set $plane (i32.mul (local.get $rowB) (local.get $Hp)))');
    e('  (local.set $c (local.get $c0))');
    e('  (block $cDone (loop $cLoop');
    e('    (br_if $cDone (i32.ge_u (local.get $c) (local.get $c1)))');
    e('    (local.set $th (i32.const 0))');
    e('    (block $hDone (loop $hLoop');
    e('      (br_if $hDone (i32.ge_u (local.get $th) (local.get $TH)))');
    e('      (local.set $tw (i32.const 0))');
    e('      (block $wDone (loop $wLoop');
    e('        (br_if $wDone (i32.ge_u (local.get $tw) (local.get $TWp)))');
    e('        (local.set $row (i32.add (i32.add (local.get $xp) (i32.mul (local.get $c) (local.get $plane)))');
    e(`          (i32.add (i32.mul (i32.shl (local.get $th) (i32.const ${thShift})) (local.get $rowB)) (i32.shl (local.get $tw) (i32.const ${twShift})))))`);
    for (const r of cn) {
      loadRow(r);
      if (r < n - 1) e('        (local.set $row (i32.add (local.get $row) (local.get $rowB)))');
    }
    for (const i of cn) for (const j of cn) e(`        (local.set $t${i}${j} ${bt(i, (k) => `(local.get $d${k}${j})`)})`);
    e('        (local.set $p (i32.add (i32.mul (local.get $th) (local.get $TWp)) (local.get $tw)))');
    e('        (local.set $dst (i32.add (i32.add (local.get $V) (i32.shl (i32.add (i32.mul (i32.shr_u (local.get $p) (i32.const 3)) (local.get $C)) (local.get $c)) (i32.const 5)))');
    e('          (i32.shl (i32.and (local.get $p) (i32.const 7)) (i32.const 2))))');
    for (const i of cn) {
      for (const j of cn) {
        e(`        (v128.store (local.get $dst) ${bt(j, (k) => `(local.get $t${i}${k})`)})`);
        if (!(i === n - 1 && j === n - 1)) e('        (local.set $dst (i32.add (local.get $dst) (local.get $vstride)))');
      }
    }
    e('        (local.set $tw (i32.add (local.get $tw) (i32.const 4)))');
    e('        (br $wLoop)))');
    e('      (local.set $th (i32.add (local.get $th) (i32.const 1)))');
    e('      (br $hLoop)))');
    e('    (local.set $c (i32.add (local.get $c) (i32.const 1)))');
    e('    (br $cLoop)))');
    e(')');
  };
  winoIn({
    name: 'wino_in',
    doc: [
      'V_ξ = Bᵀ d B for the 4×4 input tiles d (tile p = th·TWp + tw at input row 2th, column 2tw of',
      'the padded planes xp, C planes Hp x Wp, Wp ≥ 2·TWp + 2, TWp a multiple of 4), stored as GEMM',
      'panels: V_ξ at V + ξ·vstride bytes, tile p of channel c at ((p >> 3)·C + c)·32 + (p & 7)·4.',
    ],
    n: 4,
    locals: '(local $l0 v128) (local $l1 v128) (local $l2 v128) (local $l3 v128)',
    thShift: 1,
    twShift: 3,
    loadRow: (r) => {
      e('        (local.set $l0 (v128.load (local.get $row)))');
      e('        (local.set $l1 (v128.load offset=16 (local.get $row)))');
      e('        (local.set $l2 (v128.load offset=8 (local.get $row)))');
      e('        (local.set $l3 (v128.load offset=24 (local.get $row)))');
      e(`        (local.set $d${r}0 (i8x16.shuffle ${EV} (local.get $l0) (local.get $l1)))`);
      e(`        (local.set $d${r}1 (i8x16.shuffle ${OD} (local.get $l0) (local.get $l1)))`);
      e(`        (local.set $d${r}2 (i8x16.shuffle ${EV} (local.get $l2) (local.get $l3)))`);
      e(`        (local.set $d${r}3 (i8x16.shuffle ${OD} (local.get $l2) (local.get $l3)))`);
    },
    // Bᵀ: t0 = d0 − d2, t1 = d1 + d2, t2 = d2 − d1, t3 = d1 − d3 (on the rows, then the columns).
    bt: (i, v) => [`(f32x4.sub ${v(0)} ${v(2)})`, `(f32x4.add ${v(1)} ${v(2)})`, `(f32x4.sub ${v(2)} ${v(1)})`, `(f32x4.sub ${v(1)} ${v(3)})`][i],
  });

  e(';; C (M x N, row-major) = A · B with A packed by packa and B in full-depth panels (panel q,');
  e(';; row k at pb + (q·K + k)·32), then C = act(a ⊙ C + b) as pconv.');
  e('(func (export "wgemm") (param $pw i32) (param $M i32) (param $K i32) (param $pbFull i32) (param $N i32) (param $y i32)');
  e('  (param $sa i32) (param $sb i32) (param $relu i32) (param $slope f32) (param $scratch i32)');
  e('  (local $Mp i32) (local $pc i32) (local $kc i32) (local $mode i32) (local $ablk i32) (local $ic i32) (local $mcEnd i32)');
  e('  (local $jr i32) (local $nr i32) (local $ir i32) (local $mr i32) (local $pa i32) (local $pb i32) (local $cp i32) (local $ldc i32)');
  e('  (local $r i32) (local $l i32) (local $fe i32)');
  e(`  (local.set $Mp (i32.and (i32.add (local.get $M) (i32.const ${MR - 1})) (i32.const ${-MR})))`);
  e('  (local.set $ldc (i32.shl (local.get $N) (i32.const 2)))');
  e('  (loop $pcLoop');
  e(`    (local.set $kc (select (i32.sub (local.get $K) (local.get $pc)) (i32.const ${KC}) (i32.lt_u (i32.sub (local.get $K) (local.get $pc)) (i32.const ${KC}))))`);
  e('    (local.set $mode (i32.or (i32.eqz (local.get $pc)) (i32.shl (i32.ge_u (i32.add (local.get $pc) (local.get $kc)) (local.get $K)) (i32.const 1))))');
  e('    (local.set $ablk (i32.add (local.get $pw) (i32.shl (i32.mul (local.get $pc) (local.get $Mp)) (i32.const 2))))');
  tileSweep('    ', {
    col: '(local.get $jr)',
    cols: '$N',
    // Panel jr / NR of the full-depth panels, at row pc.
    panel: '(i32.add (local.get $pbFull) (i32.shl (i32.add (i32.mul (i32.shr_u (local.get $jr) (i32.const 3)) (local.get $K)) (local.get $pc)) (i32.const 5)))',
  });
  e(`    (local.set $pc (i32.add (local.get $pc) (i32.const ${KC})))`);
  e('    (br_if $pcLoop (i32.lt_u (local.get $pc) (local.get $K))))');
  e(')');

  /** Σ_k row[k]·v(k) as an f32x4 expression (±1 as add/sub, others times a splatted constant). */
  const lin = (row, v) => {
    let expr = null;
    row.forEach((c, k) => {
      if (c === 0) return;
      const term = Math.abs(c) === 1 ? v(k) : `(f32x4.mul (v128.const f32x4 ${Math.abs(c)} ${Math.abs(c)} ${Math.abs(c)} ${Math.abs(c)}) ${v(k)})`;
      if (expr === null) expr = c > 0 ? term : `(f32x4.neg ${term})`;
      else expr = `(f32x4.${c > 0 ? 'add' : 'sub'} ${expr} ${term})`;
    });
    return expr ?? '(v128.const i32x4 0 0 0 0)';
  };
  // 4 × 4 transpose of (a, b, c, d) (lanes l of the inputs → vector l): lane k of output l = input k's lane l.
  const sh = (lanes) => lanes.flatMap((l) => [0, 1, 2, 3].map((q) => 4 * l + q)).join(' ');
  const transpose = (ins, outs, tmp) => {
    const [a, b, c, d] = ins.map((x) => `(local.get ${x})`);
    return [
      `(local.set ${tmp[0]} (i8x16.shuffle ${sh([0, 4, 1, 5])} ${a} ${b}))`,
      `(local.set ${tmp[1]} (i8x16.shuffle ${sh([0, 4, 1, 5])} ${c} ${d}))`,
      `(local.set ${tmp[2]} (i8x16.shuffle ${sh([2, 6, 3, 7])} ${a} ${b}))`,
      `(local.set ${tmp[3]} (i8x16.shuffle ${sh([2, 6, 3, 7])} ${c} ${d}))`,
      ...(outs[0] ? [`(local.set ${outs[0]} (i8x16.shuffle ${sh([0, 1, 4, 5])} (local.get ${tmp[0]}) (local.get ${tmp[1]})))`] : []),
      ...(outs[1] ? [`(local.set ${outs[1]} (i8x16.shuffle ${sh([2, 3, 6, 7])} (local.get ${tmp[0]}) (local.get ${tmp[1]})))`] : []),
      ...(outs[2] ? [`(local.set ${outs[2]} (i8x16.shuffle ${sh([0, 1, 4, 5])} (local.get ${tmp[2]}) (local.get ${tmp[3]})))`] : []),
      ...(outs[3] ? [`(local.set ${outs[3]} (i8x16.shuffle ${sh([2, 3, 6, 7])} (local.get ${tmp[2]}) (local.get ${tmp[3]})))`] : []),
    ];
  };
  /**
   * The output transform of every Winograd variant: y = act(a ⊙ Aᵀ m A + b) of every tile from
   * the n² GEMM products m_ξ (at Mb + ξ·M·N·4 bytes, row-major M × N, N = TH·TWp tiles), four
   * horizontally adjacent tiles to a vector. AT (T × n) gives the T × T outputs $y{i}{j};
   * `storeRow(i)` writes output row i of the four tiles at $tw, after $col = `colExpr`.
   */
  const winoOut = ({ name, doc, extraLocals, AT, colExpr, storeRow }) => {
    const cT = AT.map((_, i) => i), cN = AT[0].map((_, i) => i), last = cN.length - 1;
    for (const line of doc) e(`;; ${line}`);
    e(`(func (export "${name}") (param $Mb i32) (param $M i32) (param $N i32) (param $TH i32) (param $TWp i32) (param $OH i32) (param $OW i32)`);
    e('  (param $y i32) (param $sa i32) (param $sb i32) (param $relu i32) (param $slope f32) (param $o0 i32) (param $o1 i32)');
    e(`  (local $o i32) (local $th i32) (local $tw i32) (local $src i32) (local $xs i32) (local $dst i32) (local $col i32)${extraLocals.i32}`);
    e(`  (local $va v128) (local $vb v128) (local $vs v128) (local $z v128)${extraLocals.v128}`);
    if (extraLocals.line) e(`  ${extraLocals.line}`);
    e(`  ${cN.flatMap((r) => cN.map((j) => `(local $m${r}${j} v128)`)).join(' ')}`);
    e(`  ${cT.flatMap((r) => cN.map((j) => `(local $u${r}${j} v128)`)).join(' ')}`);
    e(`  ${cT.flatMap((r) => cT.map((j) => `(local $y${r}${j} v128)`)).join(' ')}`);
    e('  (local.set $xs (i32.shl (i32.mul (local.get $M) (local.get $N)) (i32.const 2)))');
    e('  (local.set $vs (f32x4.splat (local.get $slope)))');
    e('  (local.set $o (local.get $o0))');
    e('  (block $oDone (loop $oLoop');
    e('    (br_if $oDone (i32.ge_u (local.get $o) (local.get $o1)))');
    e('    (local.set $va (v128.load32_splat (i32.add (local.get $sa) (i32.shl (local.get $o) (i32.const 2)))))');
    e('    (local.set $vb (v128.load32_splat (i32.add (local.get $sb) (i32.shl (local.get $o) (i32.const 2)))))');
    e('    (local.set $th (i32.const 0))');
    e('    (block $hDone (loop $hLoop');
    e('      (br_if $hDone (i32.ge_u (local.get $th) (local.get $TH)))');
    e('      (local.set $tw (i32.const 0))');
    e('      (block $wDone (loop $wLoop');
    e('        (br_if $wDone (i32.ge_u (local.get $tw) (local.get $TWp)))');
    e('        (local.set $src (i32.add (local.get $Mb) (i32.shl (i32.add (i32.mul (local.get $o) (local.get $N)) (i32.add (i32.mul (local.get $th) (local.get $TWp)) (local.get $tw))) (i32.const 2))))');
    for (const i of cN) {
      for (const j of cN) {
        e(`        (local.set $m${i}${j} (v128.load (local.get $src)))`);
        if (!(i === last && j === last)) e('        (local.set $src (i32.add (local.get $src) (local.get $xs)))');
      }
    }
    for (const i of cT) for (const j of cN) e(`        (local.set $u${i}${j} ${lin(AT[i], (k) => `(local.get $m${k}${j})`)})`);
    for (const i of cT) for (const j of cT) e(`        (local.set $y${i}${j} (f32x4.add (f32x4.mul (local.get $va) ${lin(AT[j], (k) => `(local.get $u${i}${k})`)}) (local.get $vb)))`);
    e('        (if (i32.eq (local.get $relu) (i32.const 2)) (then');
    for (const i of cT) for (const j of cT) e(`          (local.set $y${i}${j} (f32x4.max (local.get $y${i}${j}) (local.get $z)))`);
    e('        ) (else (if (local.get $relu) (then');
    for (const i of cT) for (const j of cT) {
      e(`          (local.set $y${i}${j} (f32x4.add (f32x4.max (local.get $y${i}${j}) (local.get $z)) (f32x4.mul (local.get $vs) (f32x4.min (local.get $y${i}${j}) (local.get $z)))))`);
    }
    e('        ))))');
    e(`        (local.set $col ${colExpr})`);
    for (const i of cT) storeRow(i);
    e('        (local.set $tw (i32.add (local.get $tw) (i32.const 4)))');
    e('        (br $wLoop)))');
    e('      (local.set $th (i32.add (local.get $th) (i32.const 1)))');
    e('      (br $hLoop)))');
    e('    (local.set $o (i32.add (local.get $o) (i32.const 1)))');
    e('    (br $oLoop)))');
    e(')');
  };
  /**
   * Output row i of four tiles of T = 2 (F(2×2, 3×3), F(2×2, 5×5)): tile tw + l's two columns are
   * 2(tw + l) and 2(tw + l) + 1, so the lanes of y_i0 and y_i1 interleave into eight consecutive
   * columns from $col.
   */
  const storeRowT2 = (i) => {
    e(`        (if (i32.lt_u (i32.add (i32.shl (local.get $th) (i32.const 1)) (i32.const ${i})) (local.get $OH)) (then`);
    e(`          (local.set $q0 (i8x16.shuffle ${sh([0, 4, 1, 5])} (local.get $y${i}0) (local.get $y${i}1)))`);
    e(`          (local.set $q1 (i8x16.shuffle ${sh([2, 6, 3, 7])} (local.get $y${i}0) (local.get $y${i}1)))`);
    e(`          (local.set $dst (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (i32.add (i32.mul (local.get $o) (local.get $OH)) (i32.add (i32.shl (local.get $th) (i32.const 1)) (i32.const ${i}))) (local.get $OW)) (local.get $col)) (i32.const 2))))`);
    e('          (if (i32.le_u (i32.add (local.get $col) (i32.const 8)) (local.get $OW))');
    e('            (then (v128.store (local.get $dst) (local.get $q0)) (v128.store offset=16 (local.get $dst) (local.get $q1)))');
    e('            (else');
    for (let l = 0; l < 8; l++) {
      e(`              (if (i32.lt_u (i32.add (local.get $col) (i32.const ${l})) (local.get $OW)) (then (f32.store offset=${4 * l} (local.get $dst) (f32x4.extract_lane ${l % 4} (local.get $q${l >> 2})))))`);
    }
    e('            ))))');
  };
  winoOut({
    name: 'wino_out',
    doc: ['y (M planes OH x OW) = act(a ⊙ Aᵀ m A + b) from the 16 GEMM products m_ξ of F(2×2, 3×3).'],
    extraLocals: { i32: '', v128: ' (local $q0 v128) (local $q1 v128)' },
    AT: [[1, 1, 1, 0], [0, 1, -1, -1]],
    colExpr: '(i32.shl (local.get $tw) (i32.const 1))',
    storeRow: storeRowT2,
  });

  // ---- Winograd F(4×4, 3×3) ----
  // The same scheme with 6×6 input tiles at a stride of 4 and 36 GEMMs: 36/16 multiply-adds per
  // output instead of F(2×2, 3×3)'s 16/4 (a further 1.78× fewer), at the price of larger transforms
  // (coefficients up to 8, so float32 results drift a little more). Lanes hold four horizontally
  // adjacent tiles; 4 × 4 transposes move between tile columns and lanes.
  const BT4 = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]];
  const AT4 = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]];
  const c6 = [0, 1, 2, 3, 4, 5];
  // The input transforms of the 6×6-tile variants, F(4×4, 3×3) and F(2×2, 5×5), come from winoIn
  // too (the output transforms share winoOut).
  winoIn({
    name: 'wino4_in',
    doc: [
      'V_ξ = Bᵀ d B (ξ = 6i + j) for the 6×6 input tiles d (tile p = th·TWp + tw at input row 4th,',
      'column 4tw of the padded planes xp, Wp ≥ 4·TWp + 4, TWp a multiple of 4), stored as wino_in does.',
    ],
    n: 6,
    locals: '(local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $v4 v128) (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)',
    bt: (i, v) => lin(BT4[i], v),
    thShift: 2,
    twShift: 4,
    loadRow: (r) => {
      for (let q = 0; q < 5; q++) e(`        (local.set $v${q} (v128.load offset=${16 * q} (local.get $row)))`);
      for (const l of transpose(['$v0', '$v1', '$v2', '$v3'], [`$d${r}0`, `$d${r}1`, `$d${r}2`, `$d${r}3`], ['$s0', '$s1', '$s2', '$s3'])) e('        ' + l);
      for (const l of transpose(['$v1', '$v2', '$v3', '$v4'], [`$d${r}4`, `$d${r}5`, null, null], ['$s0', '$s1', '$s2', '$s3'])) e('        ' + l);
    },
  });

  const c4 = [0, 1, 2, 3];
  winoOut({
    name: 'wino4_out',
    doc: ['y (M planes OH x OW) = act(a ⊙ Aᵀ m A + b) from the 36 GEMM products m_ξ (at Mb + ξ·M·N·4 bytes).'],
    extraLocals: {
      i32: ' (local $r i32)',
      v128: ' (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)',
      line: '(local $q0 v128) (local $q1 v128) (local $q2 v128) (local $q3 v128)',
    },
    AT: AT4,
    colExpr: '(i32.shl (local.get $tw) (i32.const 2))',
    storeRow: (i) => {
      // Output row 4th + i: vector l of the transpose is tile tw + l's four columns.
      e(`        (if (i32.lt_u (i32.add (i32.shl (local.get $th) (i32.const 2)) (i32.const ${i})) (local.get $OH)) (then`);
      for (const l of transpose([`$y${i}0`, `$y${i}1`, `$y${i}2`, `$y${i}3`], ['$q0', '$q1', '$q2', '$q3'], ['$s0', '$s1', '$s2', '$s3'])) e('          ' + l);
      e(`          (local.set $dst (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (i32.add (i32.mul (local.get $o) (local.get $OH)) (i32.add (i32.shl (local.get $th) (i32.const 2)) (i32.const ${i}))) (local.get $OW)) (local.get $col)) (i32.const 2))))`);
      e('          (if (i32.le_u (i32.add (local.get $col) (i32.const 16)) (local.get $OW))');
      e('            (then');
      for (const l of c4) e(`              (v128.store offset=${16 * l} (local.get $dst) (local.get $q${l})))`.slice(0, -1));
      e('            )');
      e('            (else');
      for (const l of c4) {
        for (const k of c4) {
          e(`              (if (i32.lt_u (i32.add (local.get $col) (i32.const ${4 * l + k})) (local.get $OW)) (then (f32.store offset=${4 * (4 * l + k)} (local.get $dst) (f32x4.extract_lane ${k} (local.get $q${l})))))`);
        }
      }
      e('            ))))');
    },
  });

  // ---- Winograd F(2×2, 5×5) ----
  // 6×6 input tiles again, now at a stride of 2: with the same six interpolation points (0, ±1,
  // ±2, ∞) the input transform Bᵀ is F(4×4, 3×3)'s, and only the weight transform (G, 6 × 5, in
  // infer-conv.ts) and the output transform (Aᵀ, 2 × 6) change. 36 multiply-adds per 4 outputs
  // instead of the direct 25 per output (2.8× fewer). Lanes hold four horizontally adjacent tiles,
  // whose columns now lie two apart: even and odd lanes of two vector loads.
  const AT25 = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]];
  const evens = sh([0, 2, 4, 6]), odds = sh([1, 3, 5, 7]);
  winoIn({
    name: 'wino25_in',
    doc: [
      'V_ξ = Bᵀ d B (ξ = 6i + j) for the 6×6 input tiles d (tile p = th·TWp + tw at input row 2th,',
      'column 2tw of the padded planes xp, Wp ≥ 2·TWp + 4, TWp a multiple of 4), stored as wino_in does.',
    ],
    n: 6,
    locals: '(local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $v4 v128)',
    bt: (i, v) => lin(BT4[i], v),
    thShift: 1,
    twShift: 3,
    loadRow: (r) => {
      // Columns 0-3, 4-7, 8-11 (v0, v1, v2) and 2-5, 6-9 (v3, v4) of the four tiles' 12.
      [0, 16, 32, 8, 24].forEach((off, q) => e(`        (local.set $v${q} (v128.load offset=${off} (local.get $row)))`));
      const pairs = [['$v0', '$v1'], ['$v3', '$v4'], ['$v1', '$v2']];
      pairs.forEach(([a, b], h) => {
        e(`        (local.set $d${r}${2 * h} (i8x16.shuffle ${evens} (local.get ${a}) (local.get ${b})))`);
        e(`        (local.set $d${r}${2 * h + 1} (i8x16.shuffle ${odds} (local.get ${a}) (local.get ${b})))`);
      });
    },
  });

  winoOut({
    name: 'wino25_out',
    doc: ['y (M planes OH x OW) = act(a ⊙ Aᵀ m A + b) from the 36 GEMM products m_ξ of F(2×2, 5×5).'],
    extraLocals: { i32: '', v128: ' (local $q0 v128) (local $q1 v128)' },
    AT: AT25,
    colExpr: '(i32.shl (local.get $tw) (i32.const 1))',
    storeRow: storeRowT2,
  });
  return L;
}
