// Float32Array GEMM in plain JS. gemm-f64.ts is the same code for Float64Array: each element
// type gets its own functions so V8 keeps every array access monomorphic. Edit both together
// (gemm.test.ts checks that they differ only in the element type).

/** Tile sizes: a KB-row slice of B times NB columns stays in L2 while 4 rows of C stream. */
const KB = 128;
const NB = 256;

let scratch = new Float32Array(0);

function scratchOf(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch;
}

/** C[0 : M·N] ← beta·C, where beta = 0 overwrites (NaN/Inf in C do not survive). */
export function scaleF32(len: number, beta: number, C: Float32Array): void {
  if (beta === 1) return;
  if (beta === 0) {
    C.fill(0, 0, len);
    return;
  }
  for (let i = 0; i < len; i++) C[i] = beta * C[i]!;
}

/**
 * C (M×N, row stride N) += alpha · op(A) · B, with B row-major K×N (row stride ldb) and
 * op(A)[i, k] = A[i·sai + k·sak]. Order i-k-j with 4 rows × 4 k per step: each pass over a
 * contiguous row of B feeds 16 multiply-adds into 4 rows of C.
 */
export function mmNNF32(
  M: number, N: number, K: number, alpha: number,
  A: Float32Array, sai: number, sak: number,
  B: Float32Array, ldb: number, C: Float32Array,
): void {
  for (let j0 = 0; j0 < N; j0 += NB) {
    const j1 = Math.min(N, j0 + NB);
    for (let k0 = 0; k0 < K; k0 += KB) {
      const k1 = Math.min(K, k0 + KB);
      const k4 = k1 - ((k1 - k0) & 3);
      let i = 0;
      for (; i + 3 < M; i += 4) {
        const c0 = i * N, c1 = c0 + N, c2 = c1 + N, c3 = c2 + N;
        const a0 = i * sai, a1 = a0 + sai, a2 = a1 + sai, a3 = a2 + sai;
        let k = k0;
        for (; k < k4; k += 4) {
          const o0 = k * sak, o1 = o0 + sak, o2 = o1 + sak, o3 = o2 + sak;
          const p0 = alpha * A[a0 + o0]!, p1 = alpha * A[a0 + o1]!, p2 = alpha * A[a0 + o2]!, p3 = alpha * A[a0 + o3]!;
          const q0 = alpha * A[a1 + o0]!, q1 = alpha * A[a1 + o1]!, q2 = alpha * A[a1 + o2]!, q3 = alpha * A[a1 + o3]!;
          const r0 = alpha * A[a2 + o0]!, r1 = alpha * A[a2 + o1]!, r2 = alpha * A[a2 + o2]!, r3 = alpha * A[a2 + o3]!;
          const s0 = alpha * A[a3 + o0]!, s1 = alpha * A[a3 + o1]!, s2 = alpha * A[a3 + o2]!, s3 = alpha * A[a3 + o3]!;
          const b0 = k * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
          for (let j = j0; j < j1; j++) {
            const x0 = B[b0 + j]!, x1 = B[b1 + j]!, x2 = B[b2 + j]!, x3 = B[b3 + j]!;
            C[c0 + j] = C[c0 + j]! + (p0 * x0 + p1 * x1 + p2 * x2 + p3 * x3);
            C[c1 + j] = C[c1 + j]! + (q0 * x0 + q1 * x1 + q2 * x2 + q3 * x3);
            C[c2 + j] = C[c2 + j]! + (r0 * x0 + r1 * x1 + r2 * x2 + r3 * x3);
            C[c3 + j] = C[c3 + j]! + (s0 * x0 + s1 * x1 + s2 * x2 + s3 * x3);
          }
        }
        for (; k < k1; k++) {
          const o = k * sak;
          const p = alpha * A[a0 + o]!, q = alpha * A[a1 + o]!, r = alpha * A[a2 + o]!, s = alpha * A[a3 + o]!;
          const b = k * ldb;
          for (let j = j0; j < j1; j++) {
            const x = B[b + j]!;
            C[c0 + j] = C[c0 + j]! + p * x;
            C[c1 + j] = C[c1 + j]! + q * x;
            C[c2 + j] = C[c2 + j]! + r * x;
            C[c3 + j] = C[c3 + j]! + s * x;
          }
        }
      }
      for (; i < M; i++) {
        const c0 = i * N, a0 = i * sai;
        for (let k = k0; k < k1; k++) {
          const p = alpha * A[a0 + k * sak]!;
          const b = k * ldb;
          for (let j = j0; j < j1; j++) C[c0 + j] = C[c0 + j]! + p * B[b + j]!;
        }
      }
    }
  }
}

/**
 * C (M×N, row stride N) += alpha · A · Bᵀ with A row-major M×K (row stride lda) and B row-major
 * N×K (row stride ldb): 4×4 blocks of dot products over contiguous rows of both, so a
 * transposed B is never copied.
 */
export function mmNTF32(
  M: number, N: number, K: number, alpha: number,
  A: Float32Array, lda: number, B: Float32Array, ldb: number, C: Float32Array,
): void {
  const KD = 512;
  for (let k0 = 0; k0 < K; k0 += KD) {
    const k1 = Math.min(K, k0 + KD);
    let i = 0;
    for (; i + 3 < M; i += 4) {
      const a0 = i * lda, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda;
      let j = 0;
      for (; j + 3 < N; j += 4) {
        const b0 = j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
        let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (let k = k0; k < k1; k++) {
          const x0 = A[a0 + k]!, x1 = A[a1 + k]!, x2 = A[a2 + k]!, x3 = A[a3 + k]!;
          const y0 = B[b0 + k]!, y1 = B[b1 + k]!, y2 = B[b2 + k]!, y3 = B[b3 + k]!;
          c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
          c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
          c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
          c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
        }
        let c = i * N + j;
        C[c] = C[c]! + alpha * c00; C[c + 1] = C[c + 1]! + alpha * c01;
        C[c + 2] = C[c + 2]! + alpha * c02; C[c + 3] = C[c + 3]! + alpha * c03;
        c += N;
        C[c] = C[c]! + alpha * c10; C[c + 1] = C[c + 1]! + alpha * c11;
        C[c + 2] = C[c + 2]! + alpha * c12; C[c + 3] = C[c + 3]! + alpha * c13;
        c += N;
        C[c] = C[c]! + alpha * c20; C[c + 1] = C[c + 1]! + alpha * c21;
        C[c + 2] = C[c + 2]! + alpha * c22; C[c + 3] = C[c + 3]! + alpha * c23;
        c += N;
        C[c] = C[c]! + alpha * c30; C[c + 1] = C[c + 1]! + alpha * c31;
        C[c + 2] = C[c + 2]! + alpha * c32; C[c + 3] = C[c + 3]! + alpha * c33;
      }
      for (; j < N; j++) {
        const b = j * ldb;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let k = k0; k < k1; k++) {
          const y = B[b + k]!;
          s0 += A[a0 + k]! * y; s1 += A[a1 + k]! * y; s2 += A[a2 + k]! * y; s3 += A[a3 + k]! * y;
        }
        const c = i * N + j;
        C[c] = C[c]! + alpha * s0; C[c + N] = C[c + N]! + alpha * s1;
        C[c + 2 * N] = C[c + 2 * N]! + alpha * s2; C[c + 3 * N] = C[c + 3 * N]! + alpha * s3;
      }
    }
    for (; i < M; i++) {
      const a = i * lda;
      let j = 0;
      for (; j + 3 < N; j += 4) {
        const b0 = j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let k = k0; k < k1; k++) {
          const x = A[a + k]!;
          s0 += x * B[b0 + k]!; s1 += x * B[b1 + k]!; s2 += x * B[b2 + k]!; s3 += x * B[b3 + k]!;
        }
        const c = i * N + j;
        C[c] = C[c]! + alpha * s0; C[c + 1] = C[c + 1]! + alpha * s1;
        C[c + 2] = C[c + 2]! + alpha * s2; C[c + 3] = C[c + 3]! + alpha * s3;
      }
      for (; j < N; j++) {
        const b = j * ldb;
        let s = 0;
        for (let k = k0; k < k1; k++) s += A[a + k]! * B[b + k]!;
        C[i * N + j] = C[i * N + j]! + alpha * s;
      }
    }
  }
}

/** dst (cols×rows, row-major) ← srcᵀ for src rows×cols row-major; tiled to stay in cache. */
export function transposeF32(rows: number, cols: number, src: Float32Array, dst: Float32Array): void {
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) {
        const s = r * cols;
        for (let c = c0; c < c1; c++) dst[c * rows + r] = src[s + c]!;
      }
    }
  }
}

/** Caffe's caffe_cpu_gemm for Float32Array operands (arguments already validated). */
export function gemmF32(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array,
): void {
  scaleF32(M * N, beta, C);
  if (alpha === 0 || K === 0 || M === 0 || N === 0) return;
  if (!transB) {
    // op(A)[i, k] is A[i·K + k], or A[k·M + i] when transposed; A is only read outside
    // the inner loop, so the strided access costs nothing worth a copy.
    if (transA) mmNNF32(M, N, K, alpha, A, 1, M, B, N, C);
    else mmNNF32(M, N, K, alpha, A, K, 1, B, N, C);
    return;
  }
  if (transA) {
    // The dot-product kernel needs contiguous rows of op(A): transpose A (K×M) once.
    const packed = scratchOf(M * K);
    transposeF32(K, M, A, packed);
    mmNTF32(M, N, K, alpha, packed, K, B, K, C);
    return;
  }
  mmNTF32(M, N, K, alpha, A, K, B, K, C);
}
