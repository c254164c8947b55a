// SGDSolver's fused step (see sgd.h).
#include "sgd.h"

#include <stdint.h>
#include <string.h>

#include "packed_gemm.h"

// Products and sums rounded apart (no fused multiply-adds, which would round rate g + momentum h
// once): the template's float64 steps exactly, in both builds.
WIDE_SIMD __attribute__((optimize("fp-contract=off")))
void *sgd_step_part(void *arg) {
  SgdPart *q = (SgdPart *)arg;
  float *restrict w = q->w, *restrict g = q->g, *restrict h = q->h;
  const double decay = q->decay, rate = q->rate, mom = q->momentum;
  uint32_t bad = 0;
  if (q->hasDecay) {
    for (long i = q->i0; i < q->i1; i++) {
      const float gi = (float)((double)g[i] + decay * (double)w[i]);
      const float hi = (float)(rate * (double)gi + mom * (double)h[i]);
      const float wi = (float)((double)w[i] - (double)hi);
      h[i] = hi;
      g[i] = hi;
      w[i] = wi;
      uint32_t u;
      memcpy(&u, &wi, sizeof u);
      bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
  } else {
    for (long i = q->i0; i < q->i1; i++) {
      const float hi = (float)(rate * (double)g[i] + mom * (double)h[i]);
      const float wi = (float)((double)w[i] - (double)hi);
      h[i] = hi;
      g[i] = hi;
      w[i] = wi;
      uint32_t u;
      memcpy(&u, &wi, sizeof u);
      bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
  }
  q->bad = bad != 0;
  return NULL;
}
