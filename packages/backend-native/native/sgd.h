// SGDSolver's fused step of a float32 param, for the addon's thread parts.
#ifndef CAFFE_TS_SGD_H
#define CAFFE_TS_SGD_H

// Elements [i0, i1) of w, g, h: g = f32(g + decay w) where hasDecay, h = f32(rate g + momentum h),
// g = h, w = f32(w - h), each in float64 and rounded to float32 where the solver's JavaScript
// template stores (the WebAssembly sgd_step's arithmetic: the same bits). `bad` is set to 1 where
// a new weight is not finite.
typedef struct {
  float *w, *g, *h;
  double decay, rate, momentum;
  int hasDecay;
  long i0, i1;
  int bad;
} SgdPart;

void *sgd_step_part(void *arg);

#endif
