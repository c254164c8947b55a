// Winograd F(4x4, 3x3) and F(2x2, 5x5) for inference forwards of 3x3 and 5x5, stride-1,
// undilated, ungrouped convolutions: the input in 6x6 tiles (at a step of 4 or 2) transformed
// (V = B^T d B), 36 products of the transformed weights (packed once per version) by V, and each
// 6x6 product transformed back (Y = A^T M A) into a 4x4 or 2x2 output tile, with the epilogue.
// Per output and input channel: 36 / 16 multiplies against 9, or 36 / 4 against 25.
#ifndef CAFFE_TS_WINOGRAD_H
#define CAFFE_TS_WINOGRAD_H

#include <stddef.h>

#include "packed_gemm.h"

// Points of a transformed tile, and the output tile's side.
#define WG_POINTS 36

// Floats of the transformed, packed weights of O x C filters (3x3 or 5x5).
size_t winograd_packed_floats(int O, int C);

// U = G g G^T of each filter g of w [O][C][R][R] (R 3 or 5), packed per point for packed_gemm
// into out (winograd_packed_floats(O, C)). Returns 0 where its scratch cannot be allocated.
int winograd_pack_weights(const float *w, int O, int C, int R, float *out);

// Geometry of one call: the input image [C][H][W], its padding, the kernel's side R (3 or 5: output
// tiles of 4x4 or 2x2), and the output [O][OH][OW] in TH x TW tiles (P = TH * TW per image). V and
// M hold `ld` tiles per row (P, or more where several images share the products: the caller
// offsets V and M to an image's first tile).
typedef struct {
  int C, H, W, padH, padW, O, OH, OW, TH, TW, R, ld;
} WgShape;

// V[point][c][p] of channels [c0, c1) of the nimg images from x (imgStride floats apart), their
// tiles side by side (V: WG_POINTS * C * ld floats, ld >= nimg * TH * TW).
void winograd_input(const WgShape *s, const float *x, size_t imgStride, int nimg, int c0, int c1, float *V);

// Output channels [o0, o1) of the nimg images of y ([O][OH][OW] each, imgStride floats apart) from
// the products M[point][o][p] (their tiles side by side), with the epilogue (rows are output
// channels; the sum's other and z laid out as y).
void winograd_output(const WgShape *s, const float *M, int nimg, size_t imgStride, int o0, int o1, float *y, const PgEpilogue *e);

#endif
