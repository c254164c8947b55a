// MAX pooling kernels (see pool.h).
#include "pool.h"

#include <float.h>
#include <string.h>

#include "packed_gemm.h"

#include "simd.h"

// One output row of whole 2x2 stride-2 windows, values only: eight windows per step, the two
// rows' maximum first, then that of each even and odd column (max_ps(v, m) keeps m where v is
// NaN, so NaN is never taken, as in the general loop).
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static void max_2x2_row_avx2(const float *r0, const float *r1, int PW, float *y) {
  int pw = 0;
  const __m256 lowest = _mm256_set1_ps(-FLT_MAX);
  for (; pw + 8 <= PW; pw += 8) {
    const __m256 a = _mm256_max_ps(_mm256_loadu_ps(r1 + 2 * pw), _mm256_max_ps(_mm256_loadu_ps(r0 + 2 * pw), lowest));
    const __m256 b = _mm256_max_ps(_mm256_loadu_ps(r1 + 2 * pw + 8), _mm256_max_ps(_mm256_loadu_ps(r0 + 2 * pw + 8), lowest));
    const __m256 even = even_lanes(a, b);
    const __m256 odd = odd_lanes(a, b);
    _mm256_storeu_ps(y + pw, _mm256_max_ps(odd, even));
  }
  for (; pw < PW; pw++) {
    float v = -FLT_MAX;
    v = r0[2 * pw] > v ? r0[2 * pw] : v;
    v = r0[2 * pw + 1] > v ? r0[2 * pw + 1] : v;
    v = r1[2 * pw] > v ? r1[2 * pw] : v;
    v = r1[2 * pw + 1] > v ? r1[2 * pw + 1] : v;
    y[pw] = v;
  }
}
#define HAVE_MAX_AVX2 1
#endif

// Floats of maxpool_part's row buffer for a plane W wide: the windows' span in padded columns,
// and slack for a vector read past it.
size_t maxpool_row_floats(int W, int PW, int KW, int SW, int padW) {
  const int span = (PW - 1) * SW + KW;
  return (size_t)(span > W + padW ? span : W + padW) + 24;
}

#ifdef HAVE_MAX_AVX2
// Columns of 3-wide, stride-2 windows over a row of maxima mp (NaN-free): eight windows per step,
// from the even and odd columns and the even ones one further.
__attribute__((target("avx2,fma"))) static int max_cols_3s2_avx2(const float *mp, int PW, float *y) {
  int pw = 0;
  for (; pw + 8 <= PW; pw += 8) {
    const float *b = mp + 2 * pw;
    const __m256 a0 = _mm256_loadu_ps(b), a1 = _mm256_loadu_ps(b + 8), c0 = _mm256_loadu_ps(b + 2), c1 = _mm256_loadu_ps(b + 10);
    const __m256 even = even_lanes(a0, a1);
    const __m256 odd = odd_lanes(a0, a1);
    const __m256 next = even_lanes(c0, c1);
    _mm256_storeu_ps(y + pw, _mm256_max_ps(_mm256_max_ps(even, odd), next));
  }
  return pw;
}
#endif

WIDE_SIMD
void *maxpool_part(void *arg) {
  PoolPart *q = (PoolPart *)arg;
#ifdef HAVE_MAX_AVX2
  const int wide = packed_gemm_wide();
  // LeNet's pooling (every 2x2 window whole): eight windows per step.
  if (wide && q->KH == 2 && q->KW == 2 && q->SH == 2 && q->SW == 2 && q->PADH == 0 && q->PADW == 0 &&
      2 * q->PH <= q->H && 2 * q->PW <= q->W) {
    for (int p = q->p0; p < q->p1; p++) {
      const float *x = q->x + (size_t)p * q->H * q->W;
      float *y = q->y + (size_t)p * q->PH * q->PW;
      for (int ph = 0; ph < q->PH; ph++) max_2x2_row_avx2(x + (size_t)2 * ph * q->W, x + (size_t)(2 * ph + 1) * q->W, q->PW, y + (size_t)ph * q->PW);
    }
    return NULL;
  }
#endif
  // The rows of each output row's windows reduced into mp (at padded columns: -FLT_MAX around
  // the plane, which never wins, so the windows need no clipping), then its columns.
  float *mp = q->row, *m = mp + q->PADW;
  const size_t floats = maxpool_row_floats(q->W, q->PW, q->KW, q->SW, q->PADW);
  for (size_t i = 0; i < floats; i++) mp[i] = -FLT_MAX;
  for (int p = q->p0; p < q->p1; p++) {
    const float *x = q->x + (size_t)p * q->H * q->W;
    float *y = q->y + (size_t)p * q->PH * q->PW;
    for (int ph = 0; ph < q->PH; ph++) {
      int h0 = ph * q->SH - q->PADH, h1 = h0 + q->KH;
      if (h0 < 0) h0 = 0;
      if (h1 > q->H) h1 = q->H;
      for (int w = 0; w < q->W; w++) m[w] = -FLT_MAX;
      for (int h = h0; h < h1; h++) {
        const float *r = x + (size_t)h * q->W;
        for (int w = 0; w < q->W; w++) m[w] = r[w] > m[w] ? r[w] : m[w];
      }
      float *yr = y + (size_t)ph * q->PW;
      int pw = 0;
#ifdef HAVE_MAX_AVX2
      if (wide && q->KW == 3 && q->SW == 2) pw = max_cols_3s2_avx2(mp, q->PW, yr);
#endif
      if (q->SW == 1) {
        for (; pw < q->PW; pw++) {
          float v = mp[pw];
          for (int k = 1; k < q->KW; k++) v = mp[pw + k] > v ? mp[pw + k] : v;
          yr[pw] = v;
        }
      } else {
        for (; pw < q->PW; pw++) {
          const float *c = mp + (size_t)pw * q->SW;
          float v = c[0];
          for (int k = 1; k < q->KW; k++) v = c[k] > v ? c[k] : v;
          yr[pw] = v;
        }
      }
    }
  }
  return NULL;
}

// MAX pooling for training: values and the argmax (the index in its plane of the value taken),
// as @caffe-ts/layers' MaxPool loop: each window starts at its first element and a later one is
// taken only where larger, so the first maximum in row-major order wins (and a NaN first element
// stays). Windows must be non-empty.

// One output row of whole 2x2 stride-2 windows (rows r0 and r1 of the plane, r0 starting at
// plane index `at`): four values compared in the general loop's order, as selects (a branch per
// compare mispredicts half the time on real activations).
static void argmax_2x2_row(const float *r0, const float *r1, int at, int W, int PW, float *y, int *ix, int pw) {
  for (; pw < PW; pw++) {
    const int i0 = at + 2 * pw;
    float best = r0[2 * pw];
    int i = i0;
    float v = r0[2 * pw + 1];
    int gt = v > best;
    best = gt ? v : best; i = gt ? i0 + 1 : i;
    v = r1[2 * pw]; gt = v > best;
    best = gt ? v : best; i = gt ? i0 + W : i;
    v = r1[2 * pw + 1]; gt = v > best;
    best = gt ? v : best; i = gt ? i0 + W + 1 : i;
    y[pw] = best;
    ix[pw] = i;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// Eight windows per step: the even and odd columns of 16 values split apart, then the same
// compares as argmax_2x2_row (greater-than is false for NaN, as there).
__attribute__((target("avx2,fma"))) static void argmax_2x2_row_avx2(const float *r0, const float *r1, int at, int W, int PW, float *y, int *ix) {
  int pw = 0;
  const __m256i step = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  for (; pw + 8 <= PW; pw += 8) {
    const __m256 a0 = _mm256_loadu_ps(r0 + 2 * pw), a1 = _mm256_loadu_ps(r0 + 2 * pw + 8);
    const __m256 b0 = _mm256_loadu_ps(r1 + 2 * pw), b1 = _mm256_loadu_ps(r1 + 2 * pw + 8);
    const __m256 e0 = even_lanes(a0, a1);
    const __m256 o0 = odd_lanes(a0, a1);
    const __m256 e1 = even_lanes(b0, b1);
    const __m256 o1 = odd_lanes(b0, b1);
    const __m256i i0 = _mm256_add_epi32(_mm256_set1_epi32(at + 2 * pw), step);
    __m256 best = e0;
    __m256i i = i0;
    __m256 gt = _mm256_cmp_ps(o0, best, _CMP_GT_OQ);
    best = _mm256_blendv_ps(best, o0, gt);
    i = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(i), _mm256_castsi256_ps(_mm256_add_epi32(i0, _mm256_set1_epi32(1))), gt));
    gt = _mm256_cmp_ps(e1, best, _CMP_GT_OQ);
    best = _mm256_blendv_ps(best, e1, gt);
    i = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(i), _mm256_castsi256_ps(_mm256_add_epi32(i0, _mm256_set1_epi32(W))), gt));
    gt = _mm256_cmp_ps(o1, best, _CMP_GT_OQ);
    best = _mm256_blendv_ps(best, o1, gt);
    i = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(i), _mm256_castsi256_ps(_mm256_add_epi32(i0, _mm256_set1_epi32(W + 1))), gt));
    _mm256_storeu_ps(y + pw, best);
    _mm256_storeu_si256((__m256i *)(ix + pw), i);
  }
  argmax_2x2_row(r0, r1, at, W, PW, y, ix, pw);
}

// The compare of one tap for eight windows: v and its plane indices i taken where v > best.
__attribute__((target("avx2,fma"))) static inline void argmax_take(__m256 v, __m256i i, __m256 *best, __m256i *at) {
  const __m256 gt = _mm256_cmp_ps(v, *best, _CMP_GT_OQ);
  *best = _mm256_blendv_ps(*best, v, gt);
  *at = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(*at), _mm256_castsi256_ps(i), gt));
}

// Output columns [0, PWw) of one output row of 3-wide, stride-2 windows whose rows h0 .. h0 + KH
// and columns all lie in the plane (PWw >= 8): eight windows per step, their taps in the general
// loop's order (row by row, left to right), the last step overlapping the one before where PWw is
// not a multiple of 8. Each row's taps come from the even and odd columns of 16 values and the
// even ones of the 16 from two further on, the last of those masked off: nothing past the last
// window's last tap is read.
__attribute__((target("avx2,fma"))) static void argmax_3s2_row_avx2(const float *x, int W, int h0, int KH, int PWw, float *y, int *ix) {
  const __m256i step = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i seven = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0);
  const __m256i one = _mm256_set1_epi32(1), two = _mm256_set1_epi32(2);
  for (int pw = 0;; pw += 8) {
    if (pw + 8 > PWw) pw = PWw - 8;
    const int w0 = 2 * pw;
    __m256 best = _mm256_setzero_ps();
    __m256i at = _mm256_setzero_si256();
    for (int kh = 0; kh < KH; kh++) {
      const int h = h0 + kh;
      const float *r = x + (size_t)h * W + w0;
      const __m256 a0 = _mm256_loadu_ps(r), a1 = _mm256_loadu_ps(r + 8);
      const __m256 c0 = _mm256_loadu_ps(r + 2), c1 = _mm256_maskload_ps(r + 10, seven);
      const __m256i i0 = _mm256_add_epi32(_mm256_set1_epi32(h * W + w0), step);
      const __m256 left = even_lanes(a0, a1);
      if (kh == 0) {
        // The window's first element, taken whatever it is (a NaN there stays).
        best = left;
        at = i0;
      } else argmax_take(left, i0, &best, &at);
      argmax_take(odd_lanes(a0, a1), _mm256_add_epi32(i0, one), &best, &at);
      argmax_take(even_lanes(c0, c1), _mm256_add_epi32(i0, two), &best, &at);
    }
    _mm256_storeu_ps(y + pw, best);
    _mm256_storeu_si256((__m256i *)(ix + pw), at);
    if (pw + 8 >= PWw) break;
  }
}
#define HAVE_ARGMAX_AVX2 1
#endif

void *maxpool_argmax_part(void *arg) {
  const ArgmaxPart *q = (const ArgmaxPart *)arg;
  const int W = q->W;
  const int whole2x2 = q->KH == 2 && q->KW == 2 && q->SH == 2 && q->SW == 2 && q->PADH == 0 && q->PADW == 0 &&
                       2 * q->PH <= q->H && 2 * q->PW <= W;
#ifdef HAVE_ARGMAX_AVX2
  const int wide = packed_gemm_wide();
#endif
  for (int p = q->p0; p < q->p1; p++) {
    const float *x = q->x + (size_t)p * q->H * W;
    float *y = q->y + (size_t)p * q->PH * q->PW;
    int *ix = q->idx + (size_t)p * q->PH * q->PW;
    if (whole2x2) {
      // LeNet's pooling: every window whole.
      for (int ph = 0; ph < q->PH; ph++) {
        const float *r0 = x + (size_t)2 * ph * W;
#ifdef HAVE_ARGMAX_AVX2
        if (wide) { argmax_2x2_row_avx2(r0, r0 + W, 2 * ph * W, W, q->PW, y + (size_t)ph * q->PW, ix + (size_t)ph * q->PW); continue; }
#endif
        argmax_2x2_row(r0, r0 + W, 2 * ph * W, W, q->PW, y + (size_t)ph * q->PW, ix + (size_t)ph * q->PW, 0);
      }
      continue;
    }
    for (int ph = 0; ph < q->PH; ph++) {
      int h0 = ph * q->SH - q->PADH, h1 = h0 + q->KH;
      int pw = 0;
#ifdef HAVE_ARGMAX_AVX2
      // CIFAR-10's and CaffeNet's pooling (3-wide windows at stride 2, unpadded): the output
      // columns whose windows lie in the plane, eight at a time, where the row's do too.
      if (wide && q->KW == 3 && q->SW == 2 && q->PADW == 0 && h0 >= 0 && h1 <= q->H && W >= 3) {
        int whole = (W - 3) / 2 + 1;
        if (whole > q->PW) whole = q->PW;
        if (whole >= 8) {
          argmax_3s2_row_avx2(x, W, h0, q->KH, whole, y + (size_t)ph * q->PW, ix + (size_t)ph * q->PW);
          pw = whole;
        }
      }
#endif
      if (h1 > q->H) h1 = q->H;
      if (h0 < 0) h0 = 0;
      for (; pw < q->PW; pw++) {
        int w0 = pw * q->SW - q->PADW, w1 = w0 + q->KW;
        if (w1 > W) w1 = W;
        if (w0 < 0) w0 = 0;
        int at = h0 * W + w0;
        float best = x[at];
        for (int h = h0; h < h1; h++)
          for (int w = w0; w < w1; w++) {
            const float v = x[h * W + w];
            const int gt = v > best;
            best = gt ? v : best;
            at = gt ? h * W + w : at;
          }
        y[(size_t)ph * q->PW + pw] = best;
        ix[(size_t)ph * q->PW + pw] = at;
      }
    }
  }
  return NULL;
}

// The MAX pooling gradient: dx zeroed, then dx[argmax] += dy per output, plane by plane (an
// argmax outside its plane is skipped).

void *max_unpool_part(void *arg) {
  const UnpoolPart *q = (const UnpoolPart *)arg;
  for (int p = q->p0; p < q->p1; p++) {
    float *dx = q->dx + (size_t)p * q->inPlane;
    const float *dy = q->dy + (size_t)p * q->outPlane;
    const int *ix = q->idx + (size_t)p * q->outPlane;
    // Plane by plane, so that the sums land in the plane just cleared (still in cache).
    memset(dx, 0, sizeof(float) * (size_t)q->inPlane);
    for (int o = 0; o < q->outPlane; o++)
      if ((unsigned)ix[o] < (unsigned)q->inPlane) dx[ix[o]] += dy[o];
  }
  return NULL;
}

// Eight planes at a time, each its own running sum (the sums of one plane stay in order), so
// that the additions overlap instead of waiting on one another.
void *ave_global_part(void *arg) {
  const AvePart *a = (const AvePart *)arg;
  const int S = a->S;
  int p = a->p0;
  for (; p + 8 <= a->p1; p += 8) {
    float acc[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    const float *x = a->x + (size_t)p * S;
    for (int t = 0; t < S; t++)
      for (int k = 0; k < 8; k++) acc[k] += x[(size_t)k * S + t];
    for (int k = 0; k < 8; k++) a->y[p + k] = acc[k] / a->div;
  }
  for (; p < a->p1; p++) {
    float acc = 0;
    const float *x = a->x + (size_t)p * S;
    for (int t = 0; t < S; t++) acc += x[t];
    a->y[p] = acc / a->div;
  }
  return NULL;
}

// A window's rows (or columns) along one axis: [lo, hi) inside the plane and its extent with the
// padding (Caffe's pool_size factor).
typedef struct {
  int lo, hi, size;
} Span;

static Span pool_span(int o, int K, int S, int pad, int n) {
  int start = o * S - pad, end = start + K;
  if (end > n + pad) end = n + pad;
  Span s = { start < 0 ? 0 : start, end < n ? end : n, end - start };
  return s;
}

// Floats of one bordered row: the windows' span past padW zeros, and a vector's reach past it.
static size_t ave_border_floats(int W, int PW, int KW, int SW, int padW) {
  const size_t span = (size_t)(PW + 8) * SW + KW + 8;
  return span > (size_t)W + padW ? span : (size_t)W + padW;
}

// Floats of an AvePoolPart's row buffer (forward): KH rows bordered with zeros, a row of sums and
// the plane's divisors (the same for every plane).
size_t ave_pool_row_floats(int W, int PH, int PW, int KH, int KW, int SW, int padW) {
  return (size_t)KH * ave_border_floats(W, PW, KW, SW, padW) + ((size_t)PW + 8) + ((size_t)PH * PW + 8);
}

#ifdef HAVE_ARGMAX_AVX2
// One output row of windows at column stride 1 or 2 over rows bordered with zeros (each row a
// copy of the plane's row at padW, zeros around and past it): eight windows a step, each lane's
// taps added from 0 row by row, left to right. Zeros add nothing (a float32 sum from +0 is never
// -0), so each sum is the scalar loop's over the cells in the plane, the same bits.
__attribute__((target("avx2,fma"))) static void ave_row_avx2(const float *rows, size_t stride, int nrows, int PW, int KW, int SW,
                                                              const float *div, float *out) {
  for (int pw = 0; pw < PW; pw += 8) {
    __m256 sum = _mm256_setzero_ps();
    for (int h = 0; h < nrows; h++) {
      const float *r = rows + (size_t)h * stride + (size_t)pw * SW;
      for (int kw = 0; kw < KW; kw++) {
        const __m256 v = SW == 1 ? _mm256_loadu_ps(r + kw) : even_lanes(_mm256_loadu_ps(r + kw), _mm256_loadu_ps(r + kw + 8));
        sum = _mm256_add_ps(sum, v);
      }
    }
    _mm256_storeu_ps(out + pw, _mm256_div_ps(sum, _mm256_loadu_ps(div + pw)));
  }
}
#endif

WIDE_SIMD
void *ave_pool_part(void *arg) {
  const AvePoolPart *q = (const AvePoolPart *)arg;
  const int H = q->H, W = q->W, PW = q->PW;
#ifdef HAVE_ARGMAX_AVX2
  if (packed_gemm_wide() && (q->SW == 1 || q->SW == 2)) {
    const size_t stride = ave_border_floats(W, PW, q->KW, q->SW, q->PADW);
    float *rows = q->row, *sums = rows + (size_t)q->KH * stride, *div = sums + PW + 8;
    memset(rows, 0, sizeof(float) * (size_t)q->KH * stride);
    for (int ph = 0; ph < q->PH; ph++) {
      const int rs = pool_span(ph, q->KH, q->SH, q->PADH, H).size;
      for (int pw = 0; pw < PW; pw++) div[(size_t)ph * PW + pw] = (float)(rs * pool_span(pw, q->KW, q->SW, q->PADW, W).size);
    }
    for (int p = q->p0; p < q->p1; p++) {
      const float *x = q->in + (size_t)p * H * W;
      float *y = q->out + (size_t)p * q->PH * PW;
      for (int ph = 0; ph < q->PH; ph++) {
        const Span r = pool_span(ph, q->KH, q->SH, q->PADH, H);
        for (int h = r.lo; h < r.hi; h++) memcpy(rows + (size_t)(h - r.lo) * stride + q->PADW, x + (size_t)h * W, sizeof(float) * W);
        ave_row_avx2(rows, stride, r.hi - r.lo, PW, q->KW, q->SW, div + (size_t)ph * PW, sums);
        memcpy(y + (size_t)ph * PW, sums, sizeof(float) * PW);
      }
    }
    return NULL;
  }
#endif
  for (int p = q->p0; p < q->p1; p++) {
    const float *x = q->in + (size_t)p * H * W;
    float *y = q->out + (size_t)p * q->PH * PW;
    for (int ph = 0; ph < q->PH; ph++) {
      const Span r = pool_span(ph, q->KH, q->SH, q->PADH, H);
      for (int pw = 0; pw < PW; pw++) {
        const Span c = pool_span(pw, q->KW, q->SW, q->PADW, W);
        float sum = 0.0f;
        for (int h = r.lo; h < r.hi; h++)
          for (int w = c.lo; w < c.hi; w++) sum += x[(size_t)h * W + w];
        y[(size_t)ph * PW + pw] = sum / (float)(r.size * c.size);
      }
    }
  }
  return NULL;
}

WIDE_SIMD
void *ave_unpool_part(void *arg) {
  const AvePoolPart *q = (const AvePoolPart *)arg;
  const int H = q->H, W = q->W, PW = q->PW;
  float *T = q->row;
  for (int p = q->p0; p < q->p1; p++) {
    const float *dy = q->in + (size_t)p * q->PH * PW;
    float *dx = q->out + (size_t)p * H * W;
    memset(dx, 0, sizeof(float) * (size_t)H * W);
    for (int ph = 0; ph < q->PH; ph++) {
      const Span r = pool_span(ph, q->KH, q->SH, q->PADH, H);
      for (int w = 0; w < W; w++) T[w] = 0.0f;
      for (int pw = 0; pw < PW; pw++) {
        const Span c = pool_span(pw, q->KW, q->SW, q->PADW, W);
        const float g = dy[(size_t)ph * PW + pw] / (float)(r.size * c.size);
        for (int w = c.lo; w < c.hi; w++) T[w] += g;
      }
      for (int h = r.lo; h < r.hi; h++) {
        float *d = dx + (size_t)h * W;
        for (int w = 0; w < W; w++) d[w] += T[w];
      }
    }
  }
  return NULL;
}
