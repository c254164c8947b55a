// Winograd F(4x4, 3x3) and F(2x2, 5x5) transforms (see winograd.h). The transforms run over blocks of tiles with
// the tile index innermost, so that each line of a transform is one vector operation over the
// block: the input is gathered into a [36][block] patch array first, the products are already
// laid out [point][o][tile]. A block may span several images (few-tiled ones are batched), and
// the gather and the scatter back walk it a tile row at a time: LeNet's conv2 (16 tiles an image,
// four images a block) ran 0.78-0.81x the time that way, against a block per image and a
// division and bounds checks per tile.
#include "winograd.h"

#include <string.h>

// Tiles transformed together.
#define WG_BLOCK 64

// Both variants evaluate at the points 0, 1, -1, 2, -2 and infinity, so they share the input
// transform B^T. Row i of G (6 x R) is scale_i * (point_i^0 .. point_i^(R-1)), the last row
// (infinity) picks the last tap: U = G g G^T.
static const double WG_POINT[5] = { 0, 1, -1, 2, -2 };
static const double WG_SCALE[5] = { 1.0 / 4, -1.0 / 6, -1.0 / 6, 1.0 / 24, 1.0 / 24 };

static double wg_g(int i, int j, int R) {
  if (i == 5) return j == R - 1 ? 1.0 : 0.0;
  double v = WG_SCALE[i];
  for (int k = 0; k < j; k++) v *= WG_POINT[i];
  return v;
}

size_t winograd_packed_floats(int O, int C) {
  return WG_POINTS * packed_a_floats(O, C);
}

// Filters transformed together.
#define WG_FILTERS 32

// U = G g G^T of each filter g (R x R) of w, F filters (o * C + c) in a row, into the 36 planes of
// U (plane point i*6+j, column o * C + c). Blocks of WG_FILTERS filters are gathered tap by tap, so
// that each line of the transform is one vector operation over the block (LeNet's conv2: 1,000
// 5x5 filters, transformed again after every training step, took 0.13 ms one filter at a time).
// Inlined with R a constant (3 or 5), so that the loops over taps unroll.
static inline __attribute__((always_inline)) void transform_filters(const float *w, size_t F, const int R, double G[6][5], float *U) {
  double g[25][WG_FILTERS], t[6][5][WG_FILTERS];  // the block's taps; G g
  for (size_t f0 = 0; f0 < F; f0 += WG_FILTERS) {
    const int nb = F - f0 < WG_FILTERS ? (int)(F - f0) : WG_FILTERS;
    for (int q = 0; q < nb; q++)
      for (int k = 0; k < R * R; k++) g[k][q] = w[(f0 + q) * R * R + k];
    for (int i = 0; i < 6; i++)
      for (int j = 0; j < R; j++)
        for (int q = 0; q < nb; q++) {
          double v = 0;
          for (int k = 0; k < R; k++) v += G[i][k] * g[k * R + j][q];
          t[i][j][q] = v;
        }
    for (int i = 0; i < 6; i++)
      for (int j = 0; j < 6; j++) {
        float *u = U + (size_t)(i * 6 + j) * F + f0;
        for (int q = 0; q < nb; q++) {
          double v = 0;
          for (int k = 0; k < R; k++) v += t[i][k][q] * G[j][k];
          u[q] = (float)v;
        }
      }
  }
}

// Built for AVX2 as well; products and sums rounded apart (no fused multiply-adds), so that both
// builds give the transformed weights the same bits.
WIDE_SIMD __attribute__((optimize("fp-contract=off")))
int winograd_pack_weights(const float *w, int O, int C, int R, float *out) {
  float *U = (float *)malloc(sizeof(float) * WG_POINTS * (size_t)O * C);
  if (!U) return 0;
  const size_t plane = (size_t)O * C;
  double G[6][5];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < R; j++) G[i][j] = wg_g(i, j, R);
  if (R == 3) transform_filters(w, plane, 3, G, U);
  else transform_filters(w, plane, 5, G, U);
  const size_t per = packed_a_floats(O, C);
  for (int k = 0; k < WG_POINTS; k++) pack_a(U + (size_t)k * plane, O, C, C, out + (size_t)k * per);
  free(U);
  return 1;
}

// B^T (6 x 6) applied to v0..v5, into r0..r5.
#define WG_BT(v0, v1, v2, v3, v4, v5, r0, r1, r2, r3, r4, r5) \
  do {                                                          \
    r0 = 4 * (v0) - 5 * (v2) + (v4);                            \
    r1 = -4 * ((v1) + (v2)) + (v3) + (v4);                      \
    r2 = 4 * ((v1) - (v2)) - (v3) + (v4);                       \
    r3 = -2 * ((v1) - (v3)) - (v2) + (v4);                      \
    r4 = 2 * ((v1) - (v3)) - (v2) + (v4);                       \
    r5 = 4 * (v1) - 5 * (v3) + (v5);                            \
  } while (0)

// V = B^T d B of nb tiles: d[r * 6 + s][q], out[(i * 6 + j) * stride + q].
WIDE_SIMD
static void transform_in(float d[WG_POINTS][WG_BLOCK], int nb, float *out, size_t stride) {
  float t[WG_POINTS][WG_BLOCK];
  for (int s = 0; s < 6; s++)
    for (int q = 0; q < nb; q++)
      WG_BT(d[s][q], d[6 + s][q], d[12 + s][q], d[18 + s][q], d[24 + s][q], d[30 + s][q],
            t[s][q], t[6 + s][q], t[12 + s][q], t[18 + s][q], t[24 + s][q], t[30 + s][q]);
  for (int i = 0; i < 6; i++) {
    const float *t0 = t[i * 6], *t1 = t[i * 6 + 1], *t2 = t[i * 6 + 2], *t3 = t[i * 6 + 3], *t4 = t[i * 6 + 4], *t5 = t[i * 6 + 5];
    float *o0 = out + (size_t)(i * 6) * stride, *o1 = o0 + stride, *o2 = o1 + stride, *o3 = o2 + stride, *o4 = o3 + stride, *o5 = o4 + stride;
    for (int q = 0; q < nb; q++) WG_BT(t0[q], t1[q], t2[q], t3[q], t4[q], t5[q], o0[q], o1[q], o2[q], o3[q], o4[q], o5[q]);
  }
}

// Where tile p of a block counted over the images lies (image n, tile row th, first column
// tw0), and how many tiles of its tile row, at most `left`, follow from there.
typedef struct {
  int n, th, tw0, run;
} TileRun;

static inline TileRun tile_run(const WgShape *s, int p, int left) {
  const int TW = s->TW, P = s->TH * TW, tw0 = p % TW;
  return (TileRun){ p / P, p % P / TW, tw0, TW - tw0 < left ? TW - tw0 : left };
}

// d[r * 6 + k][q] for the tiles [p0, p0 + nb) of channel c, counted over the images (image
// p / P, its tile p % P), a tile row at a time: the tile origins stepped (no division per tile),
// interior tiles copied without checks.
static inline __attribute__((always_inline)) void gather_tiles(const WgShape *s, const float *x, size_t imgStride, int c, int p0, int nb,
                                                               const int step, float d[WG_POINTS][WG_BLOCK]) {
  const int H = s->H, W = s->W;
  for (int q = 0; q < nb;) {
    const TileRun tr = tile_run(s, p0 + q, nb - q);
    const int n = tr.n, th = tr.th, tw0 = tr.tw0, run = tr.run;
    const float *xc = x + (size_t)n * imgStride + (size_t)c * H * W;
    const int ih0 = th * step - s->padH;
    for (int r = 0; r < 6; r++) {
      const int ih = ih0 + r;
      if (ih < 0 || ih >= H) {
        for (int k = 0; k < 6; k++) memset(&d[r * 6 + k][q], 0, sizeof(float) * run);
        continue;
      }
      const float *row = xc + (size_t)ih * W;
      int iw0 = tw0 * step - s->padW;
      for (int t = 0; t < run; t++, iw0 += step) {
        if (iw0 >= 0 && iw0 + 6 <= W) {
          const float *v = row + iw0;
          d[r * 6 + 0][q + t] = v[0]; d[r * 6 + 1][q + t] = v[1]; d[r * 6 + 2][q + t] = v[2];
          d[r * 6 + 3][q + t] = v[3]; d[r * 6 + 4][q + t] = v[4]; d[r * 6 + 5][q + t] = v[5];
        } else {
          for (int k = 0; k < 6; k++) {
            const int iw = iw0 + k;
            d[r * 6 + k][q + t] = iw >= 0 && iw < W ? row[iw] : 0.0f;
          }
        }
      }
    }
    q += run;
  }
}

void winograd_input(const WgShape *s, const float *x, size_t imgStride, int nimg, int c0, int c1, float *V) {
  const int P = nimg * s->TH * s->TW, step = 7 - s->R;
  const size_t stride = (size_t)s->C * s->ld;
  float d[WG_POINTS][WG_BLOCK];
  for (int c = c0; c < c1; c++)
    for (int p0 = 0; p0 < P; p0 += WG_BLOCK) {
      const int nb = P - p0 < WG_BLOCK ? P - p0 : WG_BLOCK;
      if (step == 2) gather_tiles(s, x, imgStride, c, p0, nb, 2, d);
      else gather_tiles(s, x, imgStride, c, p0, nb, 4, d);
      transform_in(d, nb, V + (size_t)c * s->ld + p0, stride);
    }
}

// A^T (4 x 6) applied to m0..m5, into r0..r3.
#define WG_AT(m0, m1, m2, m3, m4, m5, r0, r1, r2, r3)          \
  do {                                                          \
    const float a_ = (m1) + (m2), b_ = (m1) - (m2), c_ = (m3) + (m4), d_ = (m3) - (m4); \
    r0 = (m0) + a_ + c_;                                        \
    r1 = b_ + 2 * d_;                                           \
    r2 = a_ + 4 * c_;                                           \
    r3 = b_ + 8 * d_ + (m5);                                    \
  } while (0)

// A^T (2 x 6) of F(2x2, 5x5) applied to m0..m5, into r0, r1.
#define WG_AT2(m0, m1, m2, m3, m4, m5, r0, r1)                   \
  do {                                                          \
    const float a_ = (m1) + (m2), b_ = (m1) - (m2), c_ = (m3) + (m4), d_ = (m3) - (m4); \
    r0 = (m0) + a_ + c_;                                        \
    r1 = b_ + 2 * d_ + (m5);                                    \
  } while (0)

// Y = A^T M A of nb tiles of one output channel: M[(i * 6 + j) * stride + q] -> Y[i * step + j][q]
// (step 4 for F(4x4, 3x3), 2 for F(2x2, 5x5)), then the channel's scale, shift and ReLU.
WIDE_SIMD
static void transform_out(const float *M, size_t stride, int nb, int step, float Y[16][WG_BLOCK], float sc, float sh, int scaled, int relu, float slope) {
  float t[24][WG_BLOCK];
  for (int s = 0; s < 6; s++) {
    const float *m0 = M + (size_t)s * stride, *m1 = m0 + 6 * stride, *m2 = m1 + 6 * stride, *m3 = m2 + 6 * stride,
                *m4 = m3 + 6 * stride, *m5 = m4 + 6 * stride;
    if (step == 4)
      for (int q = 0; q < nb; q++) WG_AT(m0[q], m1[q], m2[q], m3[q], m4[q], m5[q], t[s][q], t[6 + s][q], t[12 + s][q], t[18 + s][q]);
    else
      for (int q = 0; q < nb; q++) WG_AT2(m0[q], m1[q], m2[q], m3[q], m4[q], m5[q], t[s][q], t[6 + s][q]);
  }
  for (int i = 0; i < step; i++) {
    if (step == 4)
      for (int q = 0; q < nb; q++)
        WG_AT(t[i * 6][q], t[i * 6 + 1][q], t[i * 6 + 2][q], t[i * 6 + 3][q], t[i * 6 + 4][q], t[i * 6 + 5][q],
              Y[i * 4][q], Y[i * 4 + 1][q], Y[i * 4 + 2][q], Y[i * 4 + 3][q]);
    else
      for (int q = 0; q < nb; q++)
        WG_AT2(t[i * 6][q], t[i * 6 + 1][q], t[i * 6 + 2][q], t[i * 6 + 3][q], t[i * 6 + 4][q], t[i * 6 + 5][q],
               Y[i * 2][q], Y[i * 2 + 1][q]);
  }
  for (int k = 0; k < step * step; k++) {
    float *r = Y[k];
    if (scaled) for (int q = 0; q < nb; q++) r[q] = sc * r[q] + sh;
    else for (int q = 0; q < nb; q++) r[q] += sh;
    if (relu) {
      if (slope == 0.0f) for (int q = 0; q < nb; q++) r[q] = r[q] > 0 ? r[q] : 0.0f;
      else for (int q = 0; q < nb; q++) r[q] = r[q] > 0 ? r[q] : r[q] * slope;
    }
  }
}

// Y[i * step + j][q] of the tiles [p0, p0 + nb) of output channel o, counted over the images (as
// gather_tiles), into y, a tile row at a time, whole tiles without checks; then, with a sum, z of
// each row segment written.
static inline __attribute__((always_inline)) void scatter_tiles(const WgShape *s, float Y[16][WG_BLOCK], int p0, int nb, const int step,
                                                                float *y, size_t imgStride, int o, const PgEpilogue *e) {
  const int OH = s->OH, OW = s->OW;
  for (int q = 0; q < nb;) {
    const TileRun tr = tile_run(s, p0 + q, nb - q);
    const int n = tr.n, th = tr.th, tw0 = tr.tw0, run = tr.run;
    const int oh0 = th * step, ow0 = tw0 * step;
    const size_t plane = (size_t)n * imgStride + (size_t)o * OH * OW;
    // Tiles of the run that lie wholly inside the output's columns.
    int whole = (OW - ow0) / step;
    if (whole > run) whole = run;
    int end = ow0 + run * step;
    if (end > OW) end = OW;
    for (int i = 0; i < step && oh0 + i < OH; i++) {
      const size_t at = plane + (size_t)(oh0 + i) * OW + ow0;
      float *dst = y + at;
      for (int t = 0; t < whole; t++)
        for (int j = 0; j < step; j++) dst[t * step + j] = Y[i * step + j][q + t];
      for (int t = whole; t < run; t++)
        for (int j = 0; j < step && ow0 + t * step + j < OW; j++) dst[t * step + j] = Y[i * step + j][q + t];
      if (e->z)
        for (int k = 0; k < end - ow0; k++) e->z[at + k] = pg_sum(e, dst[k], e->other[at + k]);
    }
    q += run;
  }
}

void winograd_output(const WgShape *s, const float *M, int nimg, size_t imgStride, int o0, int o1, float *y, const PgEpilogue *e) {
  const int P = nimg * s->TH * s->TW, step = 7 - s->R;
  const size_t stride = (size_t)s->O * s->ld;
  float Y[16][WG_BLOCK];
  for (int o = o0; o < o1; o++) {
    const float sc = e->scale ? e->scale[o] : 1.0f, sh = e->shift ? e->shift[o] : 0.0f;
    for (int p0 = 0; p0 < P; p0 += WG_BLOCK) {
      const int nb = P - p0 < WG_BLOCK ? P - p0 : WG_BLOCK;
      transform_out(M + (size_t)o * s->ld + p0, stride, nb, step, Y, sc, sh, e->scale != NULL, e->relu, e->slope);
      if (step == 2) scatter_tiles(s, Y, p0, nb, 2, y, imgStride, o, e);
      else scatter_tiles(s, Y, p0, nb, 4, y, imgStride, o, e);
    }
  }
}
