// MAX pooling kernels for the addon's thread parts (each function takes its part struct through a
// void pointer, as run_parts calls them): inference values, training values with the argmax, and
// the gradient scattered back. Planes [p0, p1) of each part.
#ifndef CAFFE_TS_POOL_H
#define CAFFE_TS_POOL_H

#include <stddef.h>

// Values only (Caffe's windows: start o * stride - pad, clipped to the plane, each non-empty;
// the largest value from -FLT_MAX, NaN never taken).
typedef struct {
  const float *x;
  float *y;
  int H, W, PH, PW, KH, KW, SH, SW, PADH, PADW;
  int p0, p1;
  float *row;  // maxpool_row_floats of this thread's own
} PoolPart;

// Floats of a PoolPart's row buffer for a plane W wide.
size_t maxpool_row_floats(int W, int PW, int KW, int SW, int padW);

void *maxpool_part(void *arg);

// Training: values and the argmax (the index in its plane of the value taken), each window from
// its first element, a later one taken only where larger.
typedef struct {
  const float *x;
  float *y;
  int *idx;
  int H, W, PH, PW, KH, KW, SH, SW, PADH, PADW;
  int p0, p1;
} ArgmaxPart;

void *maxpool_argmax_part(void *arg);

// The gradient: dx zeroed, then dx[argmax] += dy per output (an argmax outside its plane skipped).
typedef struct {
  const float *dy;
  const int *idx;
  float *dx;
  int inPlane, outPlane, p0, p1;
} UnpoolPart;

void *max_unpool_part(void *arg);

// Global AVE pooling (one window per plane): y[p] = (the plane's S values summed in order from 0)
// / div, each sum in float32, as the WebAssembly kernel's (the same bits). Planes [p0, p1).
typedef struct {
  const float *x;
  float *y;
  int S;
  float div;
  int p0, p1;
} AvePart;

void *ave_global_part(void *arg);

#endif
