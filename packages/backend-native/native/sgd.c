// SGDSolver's fused step (see sgd.h).
#include "sgd.h"

#include <stdint.h>
#include <string.h>

#include "packed_gemm.h"

// One element's step; hasDecay a constant where it is inlined, so that each loop is branch-free.
static inline __attribute__((always_inline, optimize("fp-contract=off"))) uint32_t sgd_element(float *restrict w, float *restrict g, float *restrict h, long i,
                                                                  double decay, int hasDecay, double rate, double mom) {
  const float gi = hasDecay ? (float)((double)g[i] + decay * (double)w[i]) : g[i];
  const float hi = (float)(rate * (double)gi + mom * (double)h[i]);
  const float wi = (float)((double)w[i] - (double)hi);
  h[i] = hi;
  g[i] = hi;
  w[i] = wi;
  uint32_t u;
  memcpy(&u, &wi, sizeof u);
  return (u & 0x7f800000u) == 0x7f800000u;  // infinite or NaN
}

// Products and sums rounded apart (no fused multiply-adds, which would round rate g + momentum h
// once): the template's float64 steps exactly, in both builds.
WIDE_SIMD __attribute__((optimize("fp-contract=off")))
void *sgd_step_part(void *arg) {
  SgdPart *q = (SgdPart *)arg;
  uint32_t bad = 0;
  if (q->hasDecay)
    for (long i = q->i0; i < q->i1; i++) bad |= sgd_element(q->w, q->g, q->h, i, q->decay, 1, q->rate, q->momentum);
  else
    for (long i = q->i0; i < q->i1; i++) bad |= sgd_element(q->w, q->g, q->h, i, 0.0, 0, q->rate, q->momentum);
  q->bad = bad != 0;
  return NULL;
}
