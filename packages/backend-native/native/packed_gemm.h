// GEMM with the left matrix (a layer's weights) packed once, for inference forwards: C = A . B
// with a per-row epilogue and an optional folded sum applied to each tile before it is stored.
#ifndef CAFFE_TS_PACKED_GEMM_H
#define CAFFE_TS_PACKED_GEMM_H

#include <stddef.h>
#include <stdlib.h>

// Loops built twice and picked when the library loads: AVX2 with FMA (x86-64-v3) where the CPU
// has them, else the baseline (SSE2). Needs GCC and glibc's ifunc.
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__)
#define WIDE_SIMD __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define WIDE_SIMD
#endif

// Rows of A per packed panel, columns of B per panel, and the depth and width of the blocks of B
// packed at a time (KC x NC floats: 256 KiB, half of the L2 cache of the machines measured).
#define PG_MR 6
#define PG_NR 16
#define PG_KC 256
#define PG_NC 256

// Floats that pack_a writes for an M x K matrix: M rounded up to PG_MR, times K.
size_t packed_a_floats(int M, int K);

// Packs the M x K row-major matrix A (row stride lda) into `out` (packed_a_floats(M, K)): for
// each block of PG_KC columns, each panel of PG_MR rows, column by column, zero-padded rows.
void pack_a(const float *A, int M, int K, int lda, float *out);

// y = act(scale[r] * acc + shift[r]) per row r; then, with z, z = act2(c0 * first + c1 * second)
// of y and `other` (convFirst: y is first). `other` and z are laid out as C. Rows are C's.
typedef struct {
  const float *scale, *shift;
  int relu;
  float slope;
  const float *other;
  float *z;
  int convFirst, sumRelu;
  float c0, c1, sumSlope;
} PgEpilogue;

// Caffe's ReLU where `on`: max(v, 0) + slope * min(v, 0), slope 0 being max(v, 0) itself (no -0).
static inline float pg_act(float v, int on, float slope) {
  if (!on || v > 0) return v;
  return slope == 0.0f ? 0.0f : v * slope;
}

// The folded sum of e for the convolution's value v and the other operand q:
// act2(c0 * first + c1 * second), each product and the sum rounded apart (as the Eltwise layer).
static inline float pg_sum(const PgEpilogue *e, float v, float q) {
  const float p0 = e->c0 * (e->convFirst ? v : q), p1 = e->c1 * (e->convFirst ? q : v);
  return pg_act(p0 + p1, e->sumRelu, e->sumSlope);
}

// C[r][j] for rows [m0, m1) and columns [n0, n1) of C = packed(A) . B, B K x N row-major (row
// stride ldb), C row stride ldc, the epilogue applied. m0 must be a multiple of PG_MR. `work`:
// PG_KC * PG_NC floats of this thread's own.
void packed_gemm(const float *Ap, int M, int K, const float *B, int ldb, float *C, int ldc,
                 int m0, int m1, int n0, int n1, const PgEpilogue *e, float *work);

// Writes rows [pb, pb + kc) x columns [jc, jc + nc) of the right matrix into `out` as panels of
// PG_NR columns, each kc x PG_NR, row after row, the last one zero-padded (a right matrix that
// is never stored whole: its entries packed from where they come from).
typedef void (*PgPackB)(const void *ctx, int pb, int kc, int jc, int nc, float *out);

// packed_gemm with the right matrix packed by `pack`, C added to where `accumulate` (C += A . B;
// the epilogue, if any, applies to the sum).
void packed_gemm_ex(const float *Ap, int M, int K, PgPackB pack, const void *ctx, float *C, int ldc,
                    int m0, int m1, int n0, int n1, const PgEpilogue *e, float *work, int accumulate);

// Whether packed_gemm runs its AVX2/FMA kernel here (else portable C). The other kernels' AVX2
// branches ask the same.
int packed_gemm_wide(void);

// Allows (the default) or forbids those AVX2 branches (functions built for several targets
// still run their AVX2 builds); returns packed_gemm_wide(). Not for use while kernels run.
int packed_gemm_allow_wide(int allowed);

#endif
