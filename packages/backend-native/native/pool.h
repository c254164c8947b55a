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

// AVE pooling for training, with the WebAssembly training kernels' arithmetic (the same bits):
// Caffe's windows (start o * stride - pad, end at most the plane's size + pad; pool_size counts
// the padding, the sum only the cells in the plane, each window holding at least one).
// - forward: each window's cells summed in row-major order from 0 in float32, then divided by its
//   pool_size;
// - backward: dx overwritten. Per output row y, the row T(c) of the terms dy / pool_size of the
//   windows holding column c (summed in x order from 0), then T added to every row the windows
//   of y cover (y in order, from 0).
// Planes [p0, p1); `row` this thread's own: ave_pool_row_floats (forward) or W floats (backward).
typedef struct {
  const float *in;
  float *out;
  int H, W, PH, PW, KH, KW, SH, SW, PADH, PADW;
  int p0, p1;
  float *row;
} AvePoolPart;

size_t ave_pool_row_floats(int W, int PH, int PW, int KH, int KW, int SW, int padW);
void *ave_pool_part(void *arg);
void *ave_unpool_part(void *arg);

#endif
