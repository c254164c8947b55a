// Local Response Normalization across channels at inference, for the addon's thread parts.
#ifndef CAFFE_TS_LRN_H
#define CAFFE_TS_LRN_H

// Planes [p0, p1) of x (num * C planes of P floats, plane n * C + c): q = the squares of x summed
// over channels c - pre .. c + pre (clipped to the image's channels, in order, in float32),
// s = k + an * q, y = x / s^beta for beta 0.75 (mode 0: sqrt(s) * sqrt(sqrt(s))), 0.5 (mode 1:
// sqrt(s)) or 1 (mode 2: s). Each step rounds to float32 as the WebAssembly kernel's does, so the
// results are the same bits. s may be NULL (not written).
typedef struct {
  const float *x;
  float *s, *y;
  int C, P, pre, mode;
  float k, an;
  int p0, p1;
  float *q;  // P floats of this thread's own
} LrnPart;

void *lrn_part(void *arg);

#endif
