// A 3x3 depthwise channel (stride 1 or 2, undilated, any padding) read from its NCHW plane in
// place: eight outputs a vector, narrow planes at stride 1 in strips of eight columns swept down
// the plane, others two output rows at a time sharing their input rows, the padding as masked
// loads (no padded copy of the plane and no copy of the result). AVX2 builds only: the caller
// keeps its own loops for other machines.
#ifndef CAFFE_TS_DEPTHWISE_H
#define CAFFE_TS_DEPTHWISE_H

// Whether depthwise3x3_wide runs a layer of this shape on this machine.
int depthwise3x3_wide_applies(int KH, int KW, int strideH, int strideW, int dilH, int dilW);

// y[oh][ow] = act(sum of tap[kh][kw] * x[oh*s - padH + kh][ow*s - padW + kw] (zero outside the
// H x W plane) + shift), act a ReLU of slope `slope` where relu is set. x is one H x W plane, y
// one OH x OW plane; tap holds the nine weights (any scale already folded in); zeros holds W
// zeros (read in place of the rows above and below the plane).
void depthwise3x3_wide(const float *x, int H, int W, int padH, int padW, int stride, int OH, int OW, const float *tap,
                       float shift, int relu, float slope, float *y, const float *zeros);

#endif
