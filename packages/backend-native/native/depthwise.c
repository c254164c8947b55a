// 3x3 depthwise kernels over NCHW planes in place (see depthwise.h).
#include "depthwise.h"

#include "packed_gemm.h"
#include "simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define DW_AVX2 __attribute__((target("avx2,fma")))

// The loads of one vector of outputs: plain where every column read lies inside the plane, else
// masked (a lane outside reads nothing and gives zero, so `r + base` may point before the row
// or past the plane). A vector's masks are made once for all its rows.
typedef struct {
  int inside;
  __m256i m[3];  // stride 1: columns base + j + i (j = 0, 1, 2); stride 2: base + i and base + 8 + i
} Masks;

DW_AVX2 static inline Masks masks_for(int base, int W, const int inside, const int stride) {
  Masks k;
  k.inside = inside;
  if (!inside)
    for (int j = 0; j < (stride == 1 ? 3 : 2); j++) k.m[j] = lanes_inside(stride == 1 ? base + j : base + 8 * j, W);
  return k;
}

DW_AVX2 static inline __m256 load_cols(const float *r, int base, const Masks *k, int j) {
  return k->inside ? _mm256_loadu_ps(r + base) : _mm256_maskload_ps(r + base, k->m[j]);
}

// One input row's values under a kernel row's three taps for eight outputs from the one whose
// window starts at column `base`. Stride 1: columns base + i + j (j the tap). Stride 2: columns
// base + 2i + j, from sixteen consecutive values split into even and odd lanes; the third tap's
// are the even lanes one on, the last of them the seventeenth value.
DW_AVX2 static inline void taps_s1(const float *r, int base, const Masks *k, __m256 *a0, __m256 *a1, __m256 *a2) {
  *a0 = load_cols(r, base, k, 0);
  *a1 = load_cols(r, base + 1, k, 1);
  *a2 = load_cols(r, base + 2, k, 2);
}

DW_AVX2 static inline void taps_s2(const float *r, int base, int W, const Masks *k, __m256 *a0, __m256 *a1, __m256 *a2) {
  const __m256 lo = load_cols(r, base, k, 0), hi = load_cols(r, base + 8, k, 1);
  const float last = k->inside || (base + 16 >= 0 && base + 16 < W) ? r[base + 16] : 0.0f;
  *a0 = even_lanes(lo, hi);
  *a1 = odd_lanes(lo, hi);
  *a2 = _mm256_blend_ps(_mm256_permutevar8x32_ps(*a0, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7)), _mm256_set1_ps(last), 0x80);
}

// The shift, then the ReLU of slope `slope` (v > 0 ? v : v * slope, NaN giving 0 at slope 0, as
// the other kernels), stored to the first n of eight lanes (a tail in pieces of 4, 2 and 1:
// masked stores are slow on AMD cores).
DW_AVX2 static inline void store_out(float *y, __m256 v, __m256 sh, int relu, float slope, int n) {
  v = _mm256_add_ps(v, sh);
  if (relu) {
    if (slope == 0.0f) v = _mm256_max_ps(v, _mm256_setzero_ps());
    else v = _mm256_blendv_ps(_mm256_mul_ps(v, _mm256_set1_ps(slope)), v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
  }
  if (n >= 8) {
    _mm256_storeu_ps(y, v);
    return;
  }
  __m128 h = _mm256_castps256_ps128(v);
  if (n >= 4) {
    _mm_storeu_ps(y, h);
    h = _mm256_extractf128_ps(v, 1);
    y += 4;
    n -= 4;
  }
  if (n >= 2) {
    _mm_storel_pi((__m64 *)y, h);
    h = _mm_movehl_ps(h, h);
    y += 2;
    n -= 2;
  }
  if (n) _mm_store_ss(y, h);
}

// Eight outputs of rows oh and oh + 1 (acc0, acc1) from input rows r[0 .. 2 + stride] (rows
// outside the plane point at zeros): row k under kernel row k for oh (k <= 2) and under kernel
// row k - stride for oh + 1. `inside`: no column outside the plane (plain loads). Both are
// constants where this is inlined.
DW_AVX2 static inline void dw_vector(const float *const *r, int base, int W, const int inside, const int stride, const __m256 *t,
                                     __m256 *acc0, __m256 *acc1) {
  // Each kernel row's three taps summed apart, then the rows: chains of 3 multiply-adds and 2 adds
  // instead of 9 multiply-adds.
  __m256 p0[3], p1[3], a0, a1, a2;
  const Masks m = masks_for(base, W, inside, stride);
  for (int k = 0; k <= 2 + stride; k++) {
    if (stride == 1) taps_s1(r[k], base, &m, &a0, &a1, &a2);
    else taps_s2(r[k], base, W, &m, &a0, &a1, &a2);
    if (k <= 2) p0[k] = _mm256_fmadd_ps(t[3 * k + 2], a2, _mm256_fmadd_ps(t[3 * k + 1], a1, _mm256_mul_ps(t[3 * k], a0)));
    if (k >= stride) {
      const int j = k - stride;
      p1[j] = _mm256_fmadd_ps(t[3 * j + 2], a2, _mm256_fmadd_ps(t[3 * j + 1], a1, _mm256_mul_ps(t[3 * j], a0)));
    }
  }
  *acc0 = _mm256_add_ps(_mm256_add_ps(p0[0], p0[1]), p0[2]);
  *acc1 = _mm256_add_ps(_mm256_add_ps(p1[0], p1[1]), p1[2]);
}

// The first n (8 where inside: a constant) of the eight outputs from column ow0 of row y0 and
// of the next, y1 (NULL: none), stored.
DW_AVX2 static inline void dw_out(const float *const *r, int ow0, int padW, int W, int n, const int inside, const int stride,
                                  const __m256 *t, __m256 sh, int relu, float slope, float *y0, float *y1) {
  __m256 acc0, acc1;
  dw_vector(r, ow0 * stride - padW, W, inside, stride, t, &acc0, &acc1);
  store_out(y0 + ow0, acc0, sh, relu, slope, n);
  if (y1) store_out(y1 + ow0, acc1, sh, relu, slope, n);
}

// Output rows two at a time; in each, the vectors whose columns all lie inside the plane run
// without masks, the edge ones (first, last) with. `stride` is a constant in each caller's copy.
__attribute__((target("avx2,fma"), always_inline)) static inline void dw3x3_rows(const float *x, int H, int W, int padH, int padW, const int stride, int OH, int OW,
                                      const float *tap, float shift, int relu, float slope, float *y, const float *zeros) {
  __m256 t[9];
  for (int i = 0; i < 9; i++) t[i] = _mm256_set1_ps(tap[i]);
  const __m256 sh = _mm256_set1_ps(shift);
  // The last input column a vector reads: base + 9 at stride 1, base + 16 at stride 2.
  const int reach = stride == 1 ? 9 : 16;
  for (int oh = 0; oh < OH; oh += 2) {
    const int two = oh + 1 < OH, ih0 = oh * stride - padH;
    const float *r[5];
    for (int k = 0; k < 5; k++) {
      const int ih = ih0 + k;
      r[k] = ih >= 0 && ih < H ? x + (size_t)ih * W : zeros;
    }
    float *y0 = y + (size_t)oh * OW, *y1 = two ? y0 + OW : NULL;
    int ow0 = 0;
    for (; ow0 < OW && !(ow0 * stride - padW >= 0 && ow0 * stride - padW + reach < W); ow0 += 8)
      dw_out(r, ow0, padW, W, OW - ow0, 0, stride, t, sh, relu, slope, y0, y1);
    for (; ow0 + 8 <= OW && ow0 * stride - padW + reach < W; ow0 += 8) dw_out(r, ow0, padW, W, 8, 1, stride, t, sh, relu, slope, y0, y1);
    for (; ow0 < OW; ow0 += 8) dw_out(r, ow0, padW, W, OW - ow0, 0, stride, t, sh, relu, slope, y0, y1);
  }
}

// Stride 1 over planes narrower than this: strips of columns (dw3x3_cols_s1); wider ones two
// output rows at a time (dw3x3_rows). A narrow plane stays in the first-level cache while a strip
// sweeps down it; a wide one does not, and there the rows kernel reads each input row once for
// all its vectors (one thread, planes of 112: the strips took 1.2x its time, 56: about the same).
#define DW_COLS_MAX_W 56

// A channel's taps and shift as vectors and its ReLU slope, for dw3x3_cols_s1.
typedef struct {
  __m256 t[9], sh;
  float slope;
  __m256i m[3];  // the edge strips' loads: columns b + j + i inside the plane (j = 0, 1, 2)
} ColsTaps;

// One input row r of a strip (its columns from b) under the three kernel rows: s0 starts output
// row r + padH, s1 goes to the one before, s2 finishes the one before that. Each kernel row's
// taps are summed apart (a multiply and two multiply-adds) and only then added to the running
// sums, so that one row hands the next a single add.
__attribute__((target("avx2,fma"), always_inline)) static inline void cols_row(const float *row, const ColsTaps *k, const int inside, __m256 *s0,
                                                                         __m256 *s1, __m256 *s2) {
  __m256 a0, a1, a2;
  if (inside) {
    a0 = _mm256_loadu_ps(row);
    a1 = _mm256_loadu_ps(row + 1);
    a2 = _mm256_loadu_ps(row + 2);
  } else {
    a0 = _mm256_maskload_ps(row, k->m[0]);
    a1 = _mm256_maskload_ps(row + 1, k->m[1]);
    a2 = _mm256_maskload_ps(row + 2, k->m[2]);
  }
  *s0 = _mm256_fmadd_ps(k->t[2], a2, _mm256_fmadd_ps(k->t[1], a1, _mm256_mul_ps(k->t[0], a0)));
  *s1 = _mm256_fmadd_ps(k->t[5], a2, _mm256_fmadd_ps(k->t[4], a1, _mm256_mul_ps(k->t[3], a0)));
  *s2 = _mm256_fmadd_ps(k->t[8], a2, _mm256_fmadd_ps(k->t[7], a1, _mm256_mul_ps(k->t[6], a0)));
}

// A strip: output columns [ow0, ow0 + n) of every output row, swept down the input rows from
// -padH; input row r finishes output row r + padH - 2. `inside` (no column read outside the
// plane: plain loads), `n8` (n == 8: whole stores) and `act` (0: no ReLU, 1: ReLU, 2: leaky) are
// constants where inlined; rows outside the plane add nothing, so each loop below is free of
// per-row tests.
__attribute__((target("avx2,fma"), always_inline)) static inline void cols_strip(const float *x, int H, int W, int padH, int OH, int OW, int ow0, int b,
                                                                           int n, const ColsTaps *k, float *y, const int inside, const int n8,
                                                                           const int act) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 part = zero, full = zero, s0, s1, s2;
  const int last = OH + 1 - padH;
  int r = -padH;
  // The first two rows finish no output row.
  for (; r < 2 - padH && r <= last; r++) {
    if (r >= 0 && r < H) cols_row(x + (size_t)r * W + b, k, inside, &s0, &s1, &s2);
    else s0 = s1 = s2 = zero;
    full = _mm256_add_ps(part, s1);
    part = s0;
  }
#define COLS_FINISH()                                                                    \
  do {                                                                                   \
    float *out = y + (size_t)(r + padH - 2) * OW + ow0;                                  \
    store_out(out, _mm256_add_ps(full, s2), k->sh, act != 0, act == 2 ? k->slope : 0.0f, n8 ? 8 : n); \
    full = _mm256_add_ps(part, s1);                                                      \
    part = s0;                                                                           \
  } while (0)
  // Padding rows above the plane (pad 3 and more), the plane's rows, the padding rows below.
  for (; r < 0 && r <= last; r++) {
    s0 = s1 = s2 = zero;
    COLS_FINISH();
  }
  for (; r < H && r <= last; r++) {
    cols_row(x + (size_t)r * W + b, k, inside, &s0, &s1, &s2);
    COLS_FINISH();
  }
  for (; r <= last; r++) {
    s0 = s1 = s2 = zero;
    COLS_FINISH();
  }
#undef COLS_FINISH
}

__attribute__((target("avx2,fma"), always_inline)) static inline void cols_s1_act(const float *x, int H, int W, int padH, int padW, int OH, int OW,
                                                                            ColsTaps *k, float *y, const int act) {
  for (int ow0 = 0; ow0 < OW; ow0 += 8) {
    const int n = OW - ow0 < 8 ? OW - ow0 : 8, b = ow0 - padW;
    // A vector of outputs reads input columns b to b + 9.
    if (n == 8 && b >= 0 && b + 10 <= W) {
      cols_strip(x, H, W, padH, OH, OW, ow0, b, 8, k, y, 1, 1, act);
      continue;
    }
    for (int j = 0; j < 3; j++) k->m[j] = lanes_inside(b + j, W);
    if (n == 8) cols_strip(x, H, W, padH, OH, OW, ow0, b, 8, k, y, 0, 1, act);
    else cols_strip(x, H, W, padH, OH, OW, ow0, b, n, k, y, 0, 0, act);
  }
}

// Stride 1 in strips of eight output columns, each swept down the plane: every input row is
// loaded once per strip (at its three column offsets) and serves the three output rows it lies
// under, where the rows kernel loads it for each pair of output rows. Two builds alternating,
// one thread: 0.62-0.72x the time of the flat kernel this replaced (each plane run as one long
// row) on MobileNet v2's 28- and 14-wide planes, 0.72-0.77x on its 7-wide ones.
DW_AVX2 static void dw3x3_cols_s1(const float *x, int H, int W, int padH, int padW, int OH, int OW, const float *tap,
                                  float shift, int relu, float slope, float *y) {
  ColsTaps k;
  for (int i = 0; i < 9; i++) k.t[i] = _mm256_set1_ps(tap[i]);
  k.sh = _mm256_set1_ps(shift);
  k.slope = slope;
  if (!relu) cols_s1_act(x, H, W, padH, padW, OH, OW, &k, y, 0);
  else if (slope == 0.0f) cols_s1_act(x, H, W, padH, padW, OH, OW, &k, y, 1);
  else cols_s1_act(x, H, W, padH, padW, OH, OW, &k, y, 2);
}

// The AVX2 entry: a copy of the rows kernel per stride (a constant in each).
DW_AVX2 static void dw3x3(const float *x, int H, int W, int padH, int padW, int stride, int OH, int OW, const float *tap,
                          float shift, int relu, float slope, float *y, const float *zeros) {
  if (stride == 1 && W < DW_COLS_MAX_W) dw3x3_cols_s1(x, H, W, padH, padW, OH, OW, tap, shift, relu, slope, y);
  else if (stride == 1) dw3x3_rows(x, H, W, padH, padW, 1, OH, OW, tap, shift, relu, slope, y, zeros);
  else dw3x3_rows(x, H, W, padH, padW, 2, OH, OW, tap, shift, relu, slope, y, zeros);
}
#endif

int depthwise3x3_wide_applies(int KH, int KW, int strideH, int strideW, int dilH, int dilW) {
#if defined(__x86_64__) && defined(__GNUC__)
  return KH == 3 && KW == 3 && dilH == 1 && dilW == 1 && strideH == strideW && (strideH == 1 || strideH == 2) && packed_gemm_wide();
#else
  return 0;
#endif
}

void depthwise3x3_wide(const float *x, int H, int W, int padH, int padW, int stride, int OH, int OW, const float *tap,
                       float shift, int relu, float slope, float *y, const float *zeros) {
#if defined(__x86_64__) && defined(__GNUC__)
  dw3x3(x, H, W, padH, padW, stride, OH, OW, tap, shift, relu, slope, y, zeros);
#endif
}
