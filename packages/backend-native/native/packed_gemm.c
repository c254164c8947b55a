// Packed-weights GEMM for inference forwards (see packed_gemm.h). A layer's weights are packed
// once per version by the caller and reused by every call, where a BLAS sgemm packs them again
// on each call: at batch 1 the right side is one image's columns, and for the small planes of a
// deep layer (7x7 = 49 positions against 512 x 4608 weights) that packing was a third of the
// time. The 6x16 register tile is summed with AVX2 FMA where the CPU has it, and the epilogue
// (scale, shift, ReLU, folded sum) is applied to the tile before it is stored.
#include "packed_gemm.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PG_X86 1
#endif

size_t packed_a_floats(int M, int K) {
  return (size_t)((M + PG_MR - 1) / PG_MR) * PG_MR * (size_t)K;
}

void pack_a(const float *A, int M, int K, int lda, float *out) {
  const int Mp = (M + PG_MR - 1) / PG_MR * PG_MR;
  for (int pb = 0; pb < K; pb += PG_KC) {
    const int kc = K - pb < PG_KC ? K - pb : PG_KC;
    float *block = out + (size_t)Mp * pb;
    for (int ip = 0; ip < Mp / PG_MR; ip++) {
      float *p = block + (size_t)ip * PG_MR * kc;
      for (int i = 0; i < PG_MR; i++) {
        const int r = ip * PG_MR + i;
        if (r < M) for (int k = 0; k < kc; k++) p[k * PG_MR + i] = A[(size_t)r * lda + pb + k];
        else for (int k = 0; k < kc; k++) p[k * PG_MR + i] = 0.0f;
      }
    }
  }
}

// Rows [0, kc) x columns [0, nc) of B (row stride ldb) into panels of PG_NR columns, each kc x
// PG_NR, the last one zero-padded.
static void pack_b(const float *B, int ldb, int kc, int nc, float *out) {
  // Row by row, so that B is read in order (a stream the prefetcher follows) and the panels,
  // which fit the cache, are written 16 floats at a time.
  const int full = nc / PG_NR * PG_NR, w = nc - full;
  for (int k = 0; k < kc; k++) {
    const float *b = B + (size_t)k * ldb;
    float *p = out + (size_t)k * PG_NR;
    for (int jp = 0; jp < full; jp += PG_NR) memcpy(p + (size_t)jp * kc, b + jp, sizeof(float) * PG_NR);
    if (w) {
      memcpy(p + (size_t)full * kc, b + full, sizeof(float) * w);
      memset(p + (size_t)full * kc + w, 0, sizeof(float) * (PG_NR - w));
    }
  }
}

// Stores rows [0, mr) x columns [0, nr) of the tile t at c (adding what c holds where `acc`),
// with the epilogue of row `row` on where e is given; o and z: the sum's operand and output at
// the tile's place (NULL without a sum).
static void store_tile(float t[PG_MR][PG_NR], float *c, int ldc, int acc, const PgEpilogue *e, int row,
                       const float *o, float *z, int mr, int nr) {
  for (int i = 0; i < mr; i++) {
    float *cr = c + (size_t)i * ldc;
    const float sc = e && e->scale ? e->scale[row + i] : 1.0f, sh = e && e->shift ? e->shift[row + i] : 0.0f;
    for (int j = 0; j < nr; j++) {
      float v = t[i][j];
      if (acc) v += cr[j];
      if (e) {
        if (e->scale) v = sc * v + sh;
        else if (e->shift) v += sh;
        v = pg_act(v, e->relu, e->slope);
      }
      cr[j] = v;
      if (z) z[(size_t)i * ldc + j] = pg_sum(e, v, o[(size_t)i * ldc + j]);
    }
  }
}

static void kernel_generic(int kc, const float *a, const float *b, float *c, int ldc, int acc, const PgEpilogue *e,
                           int row, const float *o, float *z, int mr, int nr) {
  float t[PG_MR][PG_NR];
  memset(t, 0, sizeof t);
  for (int k = 0; k < kc; k++, a += PG_MR, b += PG_NR)
    for (int i = 0; i < PG_MR; i++) {
      const float ai = a[i];
      for (int j = 0; j < PG_NR; j++) t[i][j] += ai * b[j];
    }
  store_tile(t, c, ldc, acc, e, row, o, z, mr, nr);
}

#ifdef PG_X86
__attribute__((target("avx2,fma"))) static inline __m256 avx_act(__m256 v, int on, float slope) {
  if (!on) return v;
  const __m256 zero = _mm256_setzero_ps();
  if (slope == 0.0f) return _mm256_max_ps(v, zero);
  return _mm256_blendv_ps(_mm256_mul_ps(v, _mm256_set1_ps(slope)), v, _mm256_cmp_ps(v, zero, _CMP_GT_OQ));
}

// One full row of a tile: 16 values in two registers, stored with the epilogue.
__attribute__((target("avx2,fma"))) static inline void avx_row(__m256 v0, __m256 v1, float *c, int acc, const PgEpilogue *e,
                                                               int row, const float *o, float *z) {
  if (acc) {
    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(c));
    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(c + 8));
  }
  if (e) {
    if (e->scale) {
      const __m256 sc = _mm256_set1_ps(e->scale[row]), sh = _mm256_set1_ps(e->shift ? e->shift[row] : 0.0f);
      v0 = _mm256_fmadd_ps(v0, sc, sh);
      v1 = _mm256_fmadd_ps(v1, sc, sh);
    } else if (e->shift) {
      const __m256 sh = _mm256_set1_ps(e->shift[row]);
      v0 = _mm256_add_ps(v0, sh);
      v1 = _mm256_add_ps(v1, sh);
    }
    v0 = avx_act(v0, e->relu, e->slope);
    v1 = avx_act(v1, e->relu, e->slope);
  }
  _mm256_storeu_ps(c, v0);
  _mm256_storeu_ps(c + 8, v1);
  if (z) {
    // Each product and the sum rounded apart (no fused multiply-add), as the Eltwise layer does.
    const __m256 c0 = _mm256_set1_ps(e->c0), c1 = _mm256_set1_ps(e->c1);
    const __m256 q0 = _mm256_loadu_ps(o), q1 = _mm256_loadu_ps(o + 8);
    __m256 s0, s1;
    if (e->convFirst) {
      s0 = _mm256_add_ps(_mm256_mul_ps(c0, v0), _mm256_mul_ps(c1, q0));
      s1 = _mm256_add_ps(_mm256_mul_ps(c0, v1), _mm256_mul_ps(c1, q1));
    } else {
      s0 = _mm256_add_ps(_mm256_mul_ps(c0, q0), _mm256_mul_ps(c1, v0));
      s1 = _mm256_add_ps(_mm256_mul_ps(c0, q1), _mm256_mul_ps(c1, v1));
    }
    _mm256_storeu_ps(z, avx_act(s0, e->sumRelu, e->sumSlope));
    _mm256_storeu_ps(z + 8, avx_act(s1, e->sumRelu, e->sumSlope));
  }
}

// The 6x16 kernel's loop over the depth for the tile's first `rows` rows only (a constant where
// it is inlined): a last panel of 2 or 4 rows (M = 32, 50, 64: 11 %, 7 %, 3 % of the rows)
// multiplies no rows of zeros.
__attribute__((target("avx2,fma"), always_inline)) static inline void kernel_avx2_rows(
    const int rows, int kc, const float *a, const float *b, __m256 acc[PG_MR][2]) {
  // Fully unrolled with `rows` constant, the accumulators stay in registers.
  __m256 c[PG_MR][2];
  for (int i = 0; i < PG_MR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int k = 0; k < kc; k++, a += PG_MR, b += PG_NR) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < PG_MR; i++) {
      if (i >= rows) break;
      const __m256 x = _mm256_broadcast_ss(a + i);
      c[i][0] = _mm256_fmadd_ps(x, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(x, b1, c[i][1]);
    }
  }
  for (int i = 0; i < PG_MR; i++) {
    acc[i][0] = c[i][0];
    acc[i][1] = c[i][1];
  }
}

__attribute__((target("avx2,fma"))) static void kernel_avx2(int kc, const float *a, const float *b, float *c, int ldc, int acc,
                                                            const PgEpilogue *e, int row, const float *o, float *z, int mr, int nr) {
  __m256 r[PG_MR][2];
  switch (mr) {
    case 1: kernel_avx2_rows(1, kc, a, b, r); break;
    case 2: kernel_avx2_rows(2, kc, a, b, r); break;
    case 3: case 4: kernel_avx2_rows(4, kc, a, b, r); break;
    default: kernel_avx2_rows(6, kc, a, b, r); break;
  }
  if (nr == PG_NR) {
    // Full rows (all of them, or the rows that exist of the last panel): straight from registers.
    const size_t l = (size_t)ldc;
    switch (mr) {
      case 6: avx_row(r[5][0], r[5][1], c + 5 * l, acc, e, row + 5, o ? o + 5 * l : NULL, z ? z + 5 * l : NULL); /* fall through */
      case 5: avx_row(r[4][0], r[4][1], c + 4 * l, acc, e, row + 4, o ? o + 4 * l : NULL, z ? z + 4 * l : NULL); /* fall through */
      case 4: avx_row(r[3][0], r[3][1], c + 3 * l, acc, e, row + 3, o ? o + 3 * l : NULL, z ? z + 3 * l : NULL); /* fall through */
      case 3: avx_row(r[2][0], r[2][1], c + 2 * l, acc, e, row + 2, o ? o + 2 * l : NULL, z ? z + 2 * l : NULL); /* fall through */
      case 2: avx_row(r[1][0], r[1][1], c + l, acc, e, row + 1, o ? o + l : NULL, z ? z + l : NULL); /* fall through */
      default: avx_row(r[0][0], r[0][1], c, acc, e, row, o, z);
    }
    return;
  }
  // A tile cut by the plane's last columns: through a buffer, the rows and columns that exist.
  float t[PG_MR][PG_NR];
  for (int i = 0; i < PG_MR; i++) {
    _mm256_storeu_ps(t[i], r[i][0]);
    _mm256_storeu_ps(t[i] + 8, r[i][1]);
  }
  store_tile(t, c, ldc, acc, e, row, o, z, mr, nr);
}

// A tile of up to 8 columns (the last panel of a plane such as 7x7 = 3 x 16 + 1): half the
// multiplies of the 16-column kernel, reading the first half of each row of the panel.
__attribute__((target("avx2,fma"))) static void kernel_avx2_narrow(int kc, const float *a, const float *b, float *c, int ldc, int acc,
                                                                   const PgEpilogue *e, int row, const float *o, float *z, int mr, int nr) {
  __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  for (int k = 0; k < kc; k++, a += PG_MR, b += PG_NR) {
    const __m256 b0 = _mm256_loadu_ps(b);
    c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), b0, c0);
    c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), b0, c1);
    c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), b0, c2);
    c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), b0, c3);
    c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), b0, c4);
    c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), b0, c5);
  }
  float t[PG_MR][PG_NR];
  _mm256_storeu_ps(t[0], c0); _mm256_storeu_ps(t[1], c1); _mm256_storeu_ps(t[2], c2);
  _mm256_storeu_ps(t[3], c3); _mm256_storeu_ps(t[4], c4); _mm256_storeu_ps(t[5], c5);
  store_tile(t, c, ldc, acc, e, row, o, z, mr, nr);
}
#endif

// Cleared by packed_gemm_allow_wide(0): the portable branches' tests on an AVX2 machine.
static int wide_allowed = 1;

int packed_gemm_wide(void) {
#ifdef PG_X86
  static int wide = -1;  // the same answer from any thread: a benign race
  if (wide < 0) {
    __builtin_cpu_init();
    wide = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return wide && wide_allowed;
#else
  return 0;
#endif
}

int packed_gemm_allow_wide(int allowed) {
  wide_allowed = allowed != 0;
  return packed_gemm_wide();
}

typedef struct {
  const float *B;
  int ldb;
} RowMajor;

static void pack_row_major(const void *ctx, int pb, int kc, int jc, int nc, float *out) {
  const RowMajor *r = (const RowMajor *)ctx;
  pack_b(r->B + (size_t)pb * r->ldb + jc, r->ldb, kc, nc, out);
}

void packed_gemm(const float *Ap, int M, int K, const float *B, int ldb, float *C, int ldc,
                 int m0, int m1, int n0, int n1, const PgEpilogue *e, float *work) {
  const RowMajor r = { B, ldb };
  packed_gemm_ex(Ap, M, K, pack_row_major, &r, C, ldc, m0, m1, n0, n1, e, work, 0);
}

void packed_gemm_ex(const float *Ap, int M, int K, PgPackB pack, const void *ctx, float *C, int ldc,
                    int m0, int m1, int n0, int n1, const PgEpilogue *e, float *work, int accumulate) {
  const int Mp = (M + PG_MR - 1) / PG_MR * PG_MR;
  const int wide = packed_gemm_wide();
  (void)wide;  // only the x86-64 build has the wide kernel
  const int sum = e && e->z;
  if (m1 > M) m1 = M;
  for (int jc = n0; jc < n1; jc += PG_NC) {
    const int nc = n1 - jc < PG_NC ? n1 - jc : PG_NC;
    for (int pb = 0; pb < K; pb += PG_KC) {
      const int kc = K - pb < PG_KC ? K - pb : PG_KC;
      pack(ctx, pb, kc, jc, nc, work);
      const int acc = accumulate || pb > 0;
      // The epilogue goes with the last block of depth, once the sums are whole.
      const int last = pb + kc >= K;
      const float *block = Ap + (size_t)Mp * pb;
      for (int i = m0; i < m1; i += PG_MR) {
        const int mr = m1 - i < PG_MR ? m1 - i : PG_MR;
        const float *a = block + (size_t)(i / PG_MR) * PG_MR * kc;
        for (int jp = 0; jp < nc; jp += PG_NR) {
          const int nr = nc - jp < PG_NR ? nc - jp : PG_NR;
          const size_t at = (size_t)i * ldc + jc + jp;
          const float *o = last && sum ? e->other + at : NULL;
          float *z = last && sum ? e->z + at : NULL;
#ifdef PG_X86
          if (wide && nr <= 8) {
            kernel_avx2_narrow(kc, a, work + (size_t)jp * kc, C + at, ldc, acc, last ? e : NULL, i, o, z, mr, nr);
            continue;
          }
          if (wide) {
            kernel_avx2(kc, a, work + (size_t)jp * kc, C + at, ldc, acc, last ? e : NULL, i, o, z, mr, nr);
            continue;
          }
#endif
          kernel_generic(kc, a, work + (size_t)jp * kc, C + at, ldc, acc, last ? e : NULL, i, o, z, mr, nr);
        }
      }
    }
  }
}
