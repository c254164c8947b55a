// Local Response Normalization across channels (see lrn.h). Plane by plane: the window's squares
// summed into a plane-sized buffer that stays in the cache, then s and y over the plane; the
// loops are plain so that the AVX2 clone vectorizes them (each element's arithmetic is the same
// in every lane and in the scalar tail).
#include "lrn.h"

#include <math.h>

#include "packed_gemm.h"  // WIDE_SIMD

WIDE_SIMD
void *lrn_part(void *arg) {
  const LrnPart *a = (const LrnPart *)arg;
  const int C = a->C, P = a->P;
  float *restrict q = a->q;
  for (int plane = a->p0; plane < a->p1; plane++) {
    const int n = plane / C, c = plane % C;
    const int c0 = c - a->pre > 0 ? c - a->pre : 0, c1 = c + a->pre < C - 1 ? c + a->pre : C - 1;
    const float *restrict first = a->x + ((size_t)n * C + c0) * P;
    for (int i = 0; i < P; i++) q[i] = first[i] * first[i];
    for (int cc = c0 + 1; cc <= c1; cc++) {
      const float *restrict r = a->x + ((size_t)n * C + cc) * P;
      for (int i = 0; i < P; i++) q[i] = q[i] + r[i] * r[i];
    }
    const size_t at = (size_t)plane * P;
    const float *restrict x = a->x + at;
    float *restrict y = a->y + at;
    const float k = a->k, an = a->an;
    if (a->s) {
      float *restrict s = a->s + at;
      for (int i = 0; i < P; i++) s[i] = k + an * q[i];
    }
    // s again from q rather than read back: the same float32 steps give the same value.
    if (a->mode == 0) {
      for (int i = 0; i < P; i++) {
        const float sv = k + an * q[i], r = sqrtf(sv);
        y[i] = x[i] / (r * sqrtf(r));
      }
    } else if (a->mode == 1) {
      for (int i = 0; i < P; i++) y[i] = x[i] / sqrtf(k + an * q[i]);
    } else {
      for (int i = 0; i < P; i++) y[i] = x[i] / (k + an * q[i]);
    }
  }
  return NULL;
}
