// Native float32 kernels for caffe-ts: GEMM and batched 2-D convolution passes (OpenBLAS's sgemm
// for the weight gradient, the products by the weights on weights packed once per pass:
// packed_gemm.c), with the unfolding (im2col), folding (col2im) and reordering loops in C. Arrays are the
// callers' Float32Arrays (plain or over a SharedArrayBuffer), used in place.
//
// The convolution pass has the semantics of @caffe-ts/blob's Conv2dPass (conv-wasm.ts): per
// chunk of images, unfold colIn and gather gemmIn ([n][o][s] -> [o][n*s]); biasDiff += the row
// sums of gemmIn; weightDiff += gemmIn . im2col(colIn)^T (accumulates); gemmOut = W . im2col(colIn)
// (+ bias; overwrites); colOut = col2im(W^T . gemmIn) (overwrites). With T threads the images are
// split into T ranges; thread t > 0 accumulates its weight and bias gradients in scratch of its
// own, added to the caller's in thread order afterwards (the same sum for the same T).
//
// The inference calls (conv2dInfer, winogradInfer, depthwiseInfer, maxPool) have the semantics of
// @caffe-ts/blob's WasmInferConv: forwards with a per-channel epilogue and a folded sum, on
// weights packed once by the caller (packed_gemm.c, winograd.c).
#define NAPI_VERSION 8
#include <node_api.h>
#include <cblas.h>
#include <pthread.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "depthwise.h"
#include "lrn.h"
#include "packed_gemm.h"
#include "pool.h"
#include "sgd.h"
#include "winograd.h"

#include "simd.h"

// OpenBLAS's own controls (openblas_config.h declares them; repeated so any cblas.h will do).
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);

#define MAX_THREADS 64

// Most rows of A that a GEMM runs as matrix-vector products (see js_sgemm).
#define SGEMV_MAX_ROWS 4

typedef struct {
  int C, H, W, KH, KW, padH, padW, strideH, strideW, dilH, dilW, O, G, OH, OW;
} Geometry;

typedef struct {
  const float *colIn, *gemmIn, *weights, *bias;
  float *biasDiff, *weightDiff, *gemmOut, *colOut;
  // The weights packed for packed_gemm per group (W for gemmOut, W^T for colOut), or NULL: sgemm.
  const float *packedW, *packedWt;
} Pass;

// Per-thread scratch that grows and is kept (one set per calling JS thread: see Instance).
typedef struct {
  float *col; size_t colCap;
  float *buf; size_t bufCap;
  float *acc; size_t accCap;
  float *work; size_t workCap;  // packed_gemm's panels of B
} Scratch;

// Worker threads kept between calls (one pool per calling JS thread: see Instance). Starting a
// thread per call cost 70-120 us on the machines measured, more than a small product takes.
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  int size;  // worker threads started (they take parts 1..size)
  pthread_t threads[MAX_THREADS];
  atomic_uint gen;     // bumped for each job
  atomic_int pending;  // parts of the current job not yet done by the workers
  // open[t]: the generation of the job whose part t no one has taken yet, else 0. Worker t takes
  // it, or the caller once its own part is done: a worker that has not started by then (often one
  // the scheduler woke on the caller's core, where it waits for the caller's time slice) is not
  // waited for. Taking it by compare-and-swap on the generation keeps a late worker from taking
  // the next job's part before it has seen that job.
  atomic_uint open[MAX_THREADS];
  int stop, sleepers;  // under mu
  void *(*fn)(void *);
  char *parts;
  size_t partSize;
  int nparts;
} Pool;

typedef struct {
  Scratch slots[MAX_THREADS];
  Pool pool;
  float *packed; size_t packedCap;  // a training pass's packed weights (conv2d)
} Instance;

static _Thread_local Instance *current;  // the calling JS thread's instance (set by each call)

static int grow(float **p, size_t *cap, size_t n) {
  if (n <= *cap) return 1;
  float *q = (float *)realloc(*p, n * sizeof(float));
  if (!q) return 0;
  *p = q;
  *cap = n;
  return 1;
}

static void free_instance(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  Instance *in = (Instance *)data;
  Pool *p = &in->pool;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  atomic_fetch_add(&p->gen, 1);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->size; i++) pthread_join(p->threads[i], NULL);
  for (int i = 0; i < MAX_THREADS; i++) {
    free(in->slots[i].col); free(in->slots[i].buf); free(in->slots[i].acc); free(in->slots[i].work);
  }
  free(in->packed);
  free(in);
}

// The output range [lo, hi) whose input index o*stride + off lies in [0, size).
static void valid_range(int off, int stride, int size, int out, int *lo, int *hi) {
  int l = 0, h = out;
  if (off < 0) l = (-off + stride - 1) / stride;
  if (l > out) l = out;
  if (size - off <= 0) h = l;
  else {
    int u = (size - off + stride - 1) / stride;
    if (u < h) h = u;
    if (h < l) h = l;
  }
  *lo = l; *hi = h;
}

// Copies and adds of a row of n floats, 8 and 4 at a time in fixed-size steps the compiler turns
// into vector moves: rows are short (8 to 56 floats in the nets measured), and a call to memcpy
// per row cost more than the copy (LeNet conv2's unfolding: 2.5x faster this way).
static inline void copy_row(float *restrict d, const float *restrict s, int n) {
  int i = 0;
  // Loops of 8 and 4 rather than fixed-size memcpy: GCC expands a 32-byte memcpy as two 16-byte
  // moves even in the AVX2 clones, where the loop becomes one.
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) d[i + k] = s[i + k];
  if (i + 4 <= n) {
    for (int k = 0; k < 4; k++) d[i + k] = s[i + k];
    i += 4;
  }
  for (; i < n; i++) d[i] = s[i];
}

static inline void add_row(float *restrict d, const float *restrict s, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) d[i + k] += s[i + k];
  for (; i < n; i++) d[i] += s[i];
}

// a[k] = r[2k] for k < n: a stride-2 unfolding's row (SqueezeNet's and MobileNet's first
// layers), eight at a time with AVX2. Reads stay within r[0, 2n - 1].
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static int even_columns_avx2(const float *r, int n, float *a) {
  int k = 0;
  for (; k + 8 < n; k += 8) {
    const __m256 lo = _mm256_loadu_ps(r + 2 * k), hi = _mm256_loadu_ps(r + 2 * k + 8);
    _mm256_storeu_ps(a + k, even_lanes(lo, hi));
  }
  return k;
}
#endif

static void even_columns(const float *restrict r, int n, float *restrict a) {
  int k = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  if (packed_gemm_wide()) k = even_columns_avx2(r, n, a);
#endif
  for (; k < n; k++) a[k] = r[2 * k];
}

// The sum of a row of n floats in eight running sums (one vector), added pairwise at the end: a
// single running sum waits on each add in turn (a bias gradient's rows are long).
static inline float row_sum(const float *r, int n) {
  float a[8] = { 0 };
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) a[k] += r[i + k];
  float sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
  for (; i < n; i++) sum += r[i];
  return sum;
}

// Rows of stride 3 or more (CaffeNet's conv1: 4), gathered and added back one float at a time.
// Kept out of the AVX2 builds of the unfolding: built for AVX2, this loop made CaffeNet's conv1
// unfold 1.15-1.25x slower.
static __attribute__((noinline)) void gather_strided(float *restrict d, const float *restrict s, int n, int stride) {
  for (int i = 0; i < n; i++) d[i] = s[(size_t)i * stride];
}

static __attribute__((noinline)) void add_strided(float *restrict d, const float *restrict s, int n, int stride) {
  for (int i = 0; i < n; i++) d[(size_t)i * stride] += s[i];
}

// Walks the column matrix col[(c*KH + kh)*KW + kw][n*S + s] against images x[0..nb), channels
// [c0, c1): unfold (im2col) writes each column row from the image, zeros where the window falls
// outside; fold (col2im, all channels) zeroes the images, then adds every column entry where it
// came from.
//
// Rows are short (LeNet's conv2: 8 floats, 256k of them per batch of 64), so the loop over them
// is kept lean: the rows with no valid window (zeros) apart, pointers stepped rather than
// recomputed (LeNet conv2's backward: 0.92x the time). Inlined into unfold_columns and
// fold_columns, where `fold` is a constant; rows of stride 3 or more go to the baseline build's
// gather_strided / add_strided.
static inline __attribute__((always_inline)) void walk_columns(const Geometry *g, int nb, float *col, float *x, int fold, int c0, int c1) {
  const int OH = g->OH, OW = g->OW, W = g->W, S = OH * OW, N = nb * S, plane = g->H * g->W;
  const int sh = g->strideH, sw = g->strideW;
  if (fold) memset(x, 0, sizeof(float) * (size_t)nb * g->C * plane);
  for (int c = c0; c < c1; c++) {
    for (int kh = 0; kh < g->KH; kh++) {
      int hoff = kh * g->dilH - g->padH, hlo, hhi;
      valid_range(hoff, sh, g->H, OH, &hlo, &hhi);
      for (int kw = 0; kw < g->KW; kw++) {
        int woff = kw * g->dilW - g->padW, wlo, whi;
        valid_range(woff, sw, W, OW, &wlo, &whi);
        const int width = whi - wlo;
        float *row = col + (size_t)((c * g->KH + kh) * g->KW + kw) * N;
        for (int n = 0; n < nb; n++) {
          float *d = row + (size_t)n * S;
          if (hlo >= hhi || width <= 0) {
            if (!fold) memset(d, 0, sizeof(float) * S);
            continue;
          }
          // The window's first valid row, at its first valid column.
          float *img = x + ((size_t)n * g->C + c) * plane + (size_t)(hlo * sh + hoff) * W + wlo * sw + woff;
          float *dv = d + (size_t)hlo * OW + wlo;
          const size_t step = (size_t)sh * W;
          if (fold) {
            if (sw == 1) for (int oh = hlo; oh < hhi; oh++, dv += OW, img += step) add_row(img, dv, width);
            else for (int oh = hlo; oh < hhi; oh++, dv += OW, img += step) add_strided(img, dv, width, sw);
            continue;
          }
          if (hlo > 0) memset(d, 0, sizeof(float) * (size_t)hlo * OW);
          for (int oh = hlo; oh < hhi; oh++, dv += OW, img += step) {
            for (int i = -wlo; i < 0; i++) dv[i] = 0;
            if (sw == 1) copy_row(dv, img, width);
            else if (sw == 2) even_columns(img, width, dv);
            else gather_strided(dv, img, width, sw);
            for (int i = width; i < OW - wlo; i++) dv[i] = 0;
          }
          if (hhi < OH) memset(d + (size_t)hhi * OW, 0, sizeof(float) * (size_t)(OH - hhi) * OW);
        }
      }
    }
  }
}

// Unfolds channels [c0, c1) of images x[0..nb) into col (im2col), 8 floats a move in the AVX2
// build (the baseline build moves 4: LeNet conv2's backward pass, 0.98x the time).
WIDE_SIMD
static void unfold_columns(const Geometry *g, int nb, float *col, const float *x, int c0, int c1) {
  walk_columns(g, nb, col, (float *)x, 0, c0, c1);  // unfolding only reads x
}

// Folds col back into images x[0..nb) (col2im: x zeroed, then every column entry added in).
WIDE_SIMD
static void fold_columns(const Geometry *g, const float *col, int nb, float *x) {
  walk_columns(g, nb, (float *)col, x, 1, 0, g->C);  // folding only reads col
}

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

// Checks of a waiting thread before it sleeps: back-to-back parts (a layer's products) start
// without a wake-up, yet an idle worker soon leaves its core to the other threads.
#define POOL_SPIN 2000

typedef struct {
  Pool *pool;
  int index;
} WorkerArg;

// The start of part t of n items split into T parts (part t is [part_bound(n, t, T),
// part_bound(n, t + 1, T))): even shares, the larger ones last.
static inline int part_bound(int n, int t, int T) {
  return (int)((long long)n * t / T);
}

static void *pool_worker(void *arg) {
  Pool *p = ((WorkerArg *)arg)->pool;
  const int index = ((WorkerArg *)arg)->index;
  free(arg);
  unsigned seen = 0;
  for (;;) {
    unsigned g;
    int spins = 0;
    while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
      if (++spins < POOL_SPIN) { CPU_RELAX(); continue; }
      pthread_mutex_lock(&p->mu);
      if (atomic_load(&p->gen) == seen && !p->stop) {
        p->sleepers++;
        pthread_cond_wait(&p->wake, &p->mu);
        p->sleepers--;
      }
      pthread_mutex_unlock(&p->mu);
      spins = 0;
    }
    seen = g;
    pthread_mutex_lock(&p->mu);
    const int stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    if (stop) return NULL;
    unsigned job = g;
    if (index < p->nparts && atomic_compare_exchange_strong(&p->open[index], &job, 0)) {
      p->fn(p->parts + (size_t)index * p->partSize);
      if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
      }
    }
  }
}

// Runs fn on parts[0..T) (each `size` bytes): part 0 on this thread, the others on the calling
// JS thread's pool (started as needed; a part whose thread cannot start runs here), then waits.
static void run_parts(int T, void *(*fn)(void *), void *parts, size_t size) {
  char *base = (char *)parts;
  Pool *p = current ? &current->pool : NULL;
  int workers = T - 1;
  if (p) {
    while (p->size < workers) {
      WorkerArg *arg = (WorkerArg *)malloc(sizeof(WorkerArg));
      if (!arg) break;
      arg->pool = p;
      arg->index = p->size + 1;
      if (pthread_create(&p->threads[p->size], NULL, pool_worker, arg) != 0) { free(arg); break; }
      p->size++;
    }
    if (workers > p->size) workers = p->size;
  } else workers = 0;
  if (workers > 0) {
    p->fn = fn;
    p->parts = base;
    p->partSize = size;
    p->nparts = workers + 1;
    const unsigned job = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
    for (int t = 1; t <= workers; t++) atomic_store_explicit(&p->open[t], job, memory_order_relaxed);
    atomic_store_explicit(&p->pending, workers, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
  }
  fn(base);
  for (int t = workers + 1; t < T; t++) fn(base + (size_t)t * size);
  // The parts no worker has taken yet, run here.
  if (workers > 0) {
    const unsigned job = atomic_load_explicit(&p->gen, memory_order_relaxed);
    for (int t = 1; t <= workers; t++) {
      unsigned expected = job;
      if (atomic_compare_exchange_strong(&p->open[t], &expected, 0)) {
        fn(base + (size_t)t * size);
        atomic_fetch_sub(&p->pending, 1);
      }
    }
  }
  if (workers > 0) {
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
      if (++spins < POOL_SPIN) { CPU_RELAX(); continue; }
      pthread_mutex_lock(&p->mu);
      while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

// One GEMM split over T threads by rows of C (or by columns where C is wider than tall), each
// part one single-threaded sgemm on its block: OpenBLAS's own threads are never woken (they
// would spin after each call and take the cores from everything else).
typedef struct {
  int ta, tb, M, N, K;
  float alpha, beta;
  const float *A, *B;
  float *C;
  int lda, ldb, ldc;
} GemmPart;

static void *gemm_part(void *arg) {
  GemmPart *q = (GemmPart *)arg;
  if (q->M > 0 && q->N > 0)
    cblas_sgemm(CblasRowMajor, q->ta ? CblasTrans : CblasNoTrans, q->tb ? CblasTrans : CblasNoTrans, q->M, q->N, q->K,
                q->alpha, q->A, q->lda, q->B, q->ldb, q->beta, q->C, q->ldc);
  return NULL;
}

static void par_sgemm(int T, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
  GemmPart parts[MAX_THREADS];
  const int byRows = M >= N;
  const int extent = byRows ? M : N;
  if (T > extent / 8) T = extent / 8;  // at least 8 rows or columns each
  if (T < 1) T = 1;
  for (int t = 0; t < T; t++) {
    // Blocks of whole 8-row (or 8-column) strips, the last one taking the rest.
    int strips = (extent + 7) / 8;
    int s0 = part_bound(strips, t, T), s1 = part_bound(strips, t + 1, T);
    int i0 = s0 * 8, i1 = s1 * 8 < extent ? s1 * 8 : extent;
    GemmPart *q = &parts[t];
    *q = (GemmPart){ ta, tb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc };
    if (byRows) {
      q->M = i1 - i0;
      q->A = ta ? A + i0 : A + (size_t)i0 * lda;
      q->C = C + (size_t)i0 * ldc;
    } else {
      q->N = i1 - i0;
      q->B = tb ? B + (size_t)i0 * ldb : B + i0;
      q->C = C + i0;
    }
  }
  run_parts(T, gemm_part, parts, sizeof(GemmPart));
}

// y = alpha op(B)^T x + beta y for one row x of A (a GEMM's few-row case), split over T threads by
// blocks of y. op(B) is K x N: B is N x K (tb) or K x N.
typedef struct {
  int tb, N, K;
  float alpha, beta;
  const float *B, *x;
  float *y;
  int ldb;
} GemvPart;

static void *gemv_part(void *arg) {
  GemvPart *q = (GemvPart *)arg;
  if (q->N <= 0) return NULL;
  if (q->tb) cblas_sgemv(CblasRowMajor, CblasNoTrans, q->N, q->K, q->alpha, q->B, q->ldb, q->x, 1, q->beta, q->y, 1);
  else cblas_sgemv(CblasRowMajor, CblasTrans, q->K, q->N, q->alpha, q->B, q->ldb, q->x, 1, q->beta, q->y, 1);
  return NULL;
}

static void par_sgemv(int T, int tb, int N, int K, float alpha, const float *B, int ldb, const float *x, float beta, float *y) {
  GemvPart parts[MAX_THREADS];
  // At least 64 outputs per thread: below that a thread costs more than it saves.
  if (T > N / 64) T = N / 64;
  if (T < 1) T = 1;
  for (int t = 0; t < T; t++) {
    int n0 = part_bound(N, t, T), n1 = part_bound(N, t + 1, T);
    parts[t] = (GemvPart){ tb, n1 - n0, K, alpha, beta, tb ? B + (size_t)n0 * ldb : B + n0, x, y + n0, ldb };
  }
  run_parts(T, gemv_part, parts, sizeof(GemvPart));
}

// Whether an image is its own column matrix: 1x1, stride 1, no padding.
static int unfolds_to_itself(const Geometry *g) {
  return g->KH == 1 && g->KW == 1 && g->padH == 0 && g->padW == 0 && g->strideH == 1 && g->strideW == 1;
}

typedef struct {
  const Geometry *g;
  const Pass *p;
  Scratch *scratch;
  int n0, n1, chunk;
  int gemmThreads;  // threads per product (more than one where the images are fewer than threads)
  float *weightDiff, *biasDiff;  // this thread's accumulators
  int failed;
} Job;

// ---- Direct small convolutions (training passes) ----
// A convolution of few taps (LeNet's conv1: 1 x 5 x 5 over 28 x 28) spends more on unfolding,
// packing and reordering than on its products, whose depth is the tap count. Stride 1, undilated,
// one group, at most DIRECT_MAX_TAPS taps, kernels at most DIRECT_MAX_KW wide, and no bottom
// gradient: the forward sums taps straight from a zero-padded copy of each image (4 output
// channels by 24 positions per step, 16 or 8 at a row's end), the weight gradient sums dy times
// the shifted image (2 output channels by 5 taps per step, in 8 lanes per tap summed at the end).
// AVX2/FMA only.
#define DIRECT_MAX_TAPS 75
#define DIRECT_MAX_KW 10
#define DIRECT_SLACK 8  // floats past a padded image that a vector may read

static int direct_applies(const Geometry *g, const Pass *p) {
  return packed_gemm_wide() && !p->colOut && p->colIn && (p->gemmOut || p->weightDiff) && g->G == 1 &&
         g->strideH == 1 && g->strideW == 1 && g->dilH == 1 && g->dilW == 1 && g->KW <= DIRECT_MAX_KW &&
         g->C * g->KH * g->KW <= DIRECT_MAX_TAPS && g->OW >= 8;
}

// Image n of x into pad (row stride Wp = W + 2 padW, Hp = H + 2 padH rows per channel), zeros
// around it and DIRECT_SLACK zeros after it.
static void direct_pad(const Geometry *g, const float *x, float *pad) {
  const int Wp = g->W + 2 * g->padW, Hp = g->H + 2 * g->padH;
  memset(pad, 0, sizeof(float) * ((size_t)g->C * Hp * Wp + DIRECT_SLACK));
  for (int c = 0; c < g->C; c++)
    for (int h = 0; h < g->H; h++)
      copy_row(pad + ((size_t)c * Hp + h + g->padH) * Wp + g->padW, x + ((size_t)c * g->H + h) * g->W, g->W);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_DIRECT 1
// Lanes [0, n) on.
__attribute__((target("avx2,fma"))) static inline __m256i direct_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// y = bias + sum over taps of w * x for one image: wr is the weights as [O / 4][tap][4] (missing
// channels zero), pad the padded image.
__attribute__((target("avx2,fma"))) static void direct_forward(const Geometry *g, const float *pad, const float *wr, const float *bias, float *y) {
  const int Wp = g->W + 2 * g->padW, Hp = g->H + 2 * g->padH, OW = g->OW, S = g->OH * OW;
  const int taps = g->C * g->KH * g->KW;
  // Steps of 24 outputs, then of 16 (the last masked), then of 8: a remainder of 1-8 after the
  // 24s is taken as 16 + 9-16 instead (CIFAR-10's rows of 32: 16 + 16, not 24 + 8).
  const int OW24 = OW % 24 && OW % 24 <= 8 && OW >= 24 ? OW / 24 * 24 - 24 : OW / 24 * 24;
  for (int ob = 0; ob < g->O; ob += 4) {
    const int no = g->O - ob < 4 ? g->O - ob : 4;
    const float *wb = wr + (size_t)ob * taps;
    __m256 b[4];
    for (int i = 0; i < 4; i++) b[i] = _mm256_set1_ps(bias && i < no ? bias[ob + i] : 0.0f);
    for (int oh = 0; oh < g->OH; oh++) {
      int ow = 0;
      for (; ow + 24 <= OW24; ow += 24) {
        __m256 a00 = b[0], a01 = b[0], a02 = b[0], a10 = b[1], a11 = b[1], a12 = b[1];
        __m256 a20 = b[2], a21 = b[2], a22 = b[2], a30 = b[3], a31 = b[3], a32 = b[3];
        const float *w = wb;
        for (int c = 0; c < g->C; c++)
          for (int kh = 0; kh < g->KH; kh++) {
            const float *r = pad + ((size_t)c * Hp + oh + kh) * Wp + ow;
            for (int kw = 0; kw < g->KW; kw++, w += 4) {
              const __m256 x0 = _mm256_loadu_ps(r + kw), x1 = _mm256_loadu_ps(r + kw + 8), x2 = _mm256_loadu_ps(r + kw + 16);
              __m256 v = _mm256_broadcast_ss(w);
              a00 = _mm256_fmadd_ps(v, x0, a00); a01 = _mm256_fmadd_ps(v, x1, a01); a02 = _mm256_fmadd_ps(v, x2, a02);
              v = _mm256_broadcast_ss(w + 1);
              a10 = _mm256_fmadd_ps(v, x0, a10); a11 = _mm256_fmadd_ps(v, x1, a11); a12 = _mm256_fmadd_ps(v, x2, a12);
              v = _mm256_broadcast_ss(w + 2);
              a20 = _mm256_fmadd_ps(v, x0, a20); a21 = _mm256_fmadd_ps(v, x1, a21); a22 = _mm256_fmadd_ps(v, x2, a22);
              v = _mm256_broadcast_ss(w + 3);
              a30 = _mm256_fmadd_ps(v, x0, a30); a31 = _mm256_fmadd_ps(v, x1, a31); a32 = _mm256_fmadd_ps(v, x2, a32);
            }
          }
        float *o = y + (size_t)ob * S + (size_t)oh * OW + ow;
        const __m256 rows[4][3] = { { a00, a01, a02 }, { a10, a11, a12 }, { a20, a21, a22 }, { a30, a31, a32 } };
        for (int i = 0; i < no; i++, o += S) {
          _mm256_storeu_ps(o, rows[i][0]); _mm256_storeu_ps(o + 8, rows[i][1]); _mm256_storeu_ps(o + 16, rows[i][2]);
        }
      }
      // Rows of 9-16 outputs left: 16 at a time, the second vector's lanes past the row masked at
      // the store (8 sums in flight: the 8-wide step below waits on its 4 multiply-adds' latency).
      for (; OW - ow > 8; ow += 16) {
        __m256 a00 = b[0], a01 = b[0], a10 = b[1], a11 = b[1], a20 = b[2], a21 = b[2], a30 = b[3], a31 = b[3];
        const float *w = wb;
        for (int c = 0; c < g->C; c++)
          for (int kh = 0; kh < g->KH; kh++) {
            const float *r = pad + ((size_t)c * Hp + oh + kh) * Wp + ow;
            for (int kw = 0; kw < g->KW; kw++, w += 4) {
              const __m256 x0 = _mm256_loadu_ps(r + kw), x1 = _mm256_loadu_ps(r + kw + 8);
              __m256 v = _mm256_broadcast_ss(w);
              a00 = _mm256_fmadd_ps(v, x0, a00); a01 = _mm256_fmadd_ps(v, x1, a01);
              v = _mm256_broadcast_ss(w + 1);
              a10 = _mm256_fmadd_ps(v, x0, a10); a11 = _mm256_fmadd_ps(v, x1, a11);
              v = _mm256_broadcast_ss(w + 2);
              a20 = _mm256_fmadd_ps(v, x0, a20); a21 = _mm256_fmadd_ps(v, x1, a21);
              v = _mm256_broadcast_ss(w + 3);
              a30 = _mm256_fmadd_ps(v, x0, a30); a31 = _mm256_fmadd_ps(v, x1, a31);
            }
          }
        const __m256i mask = direct_mask(OW - ow - 8);
        float *o = y + (size_t)ob * S + (size_t)oh * OW + ow;
        const __m256 rows[4][2] = { { a00, a01 }, { a10, a11 }, { a20, a21 }, { a30, a31 } };
        for (int i = 0; i < no; i++, o += S) {
          _mm256_storeu_ps(o, rows[i][0]);
          _mm256_maskstore_ps(o + 8, mask, rows[i][1]);
        }
      }
      for (; ow < OW; ow += 8) {
        const int n = OW - ow < 8 ? OW - ow : 8;
        __m256 a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3];
        const float *w = wb;
        for (int c = 0; c < g->C; c++)
          for (int kh = 0; kh < g->KH; kh++) {
            const float *r = pad + ((size_t)c * Hp + oh + kh) * Wp + ow;
            for (int kw = 0; kw < g->KW; kw++, w += 4) {
              const __m256 x0 = _mm256_loadu_ps(r + kw);
              a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w), x0, a0);
              a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 1), x0, a1);
              a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 2), x0, a2);
              a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 3), x0, a3);
            }
          }
        const __m256i mask = direct_mask(n);
        float *o = y + (size_t)ob * S + (size_t)oh * OW + ow;
        const __m256 rows[4] = { a0, a1, a2, a3 };
        for (int i = 0; i < no; i++, o += S) _mm256_maskstore_ps(o, mask, rows[i]);
      }
    }
  }
}

// Lanes of the weight gradient for one image: L[o][c][kh][kw][8] += dy[o] times the image shifted
// by (kh, kw), over positions (O rounded up to 2 channels, kw up to 2 chunks of 5). zero: a row of
// OW zeros standing in for the channel past an odd O.
__attribute__((target("avx2,fma"))) static void direct_weight_lanes(const Geometry *g, const float *pad, const float *dy, const float *zero, float *L) {
  const int Wp = g->W + 2 * g->padW, Hp = g->H + 2 * g->padH, OW = g->OW, S = g->OH * OW;
  const size_t perO = (size_t)g->C * g->KH * 10 * 8;
  const __m256i tail = direct_mask(OW % 8);
  for (int c = 0; c < g->C; c++)
    for (int kh = 0; kh < g->KH; kh++)
      for (int kw0 = 0; kw0 < g->KW; kw0 += 5)
        for (int o = 0; o < g->O; o += 2) {
          float *l0 = L + (size_t)o * perO + ((size_t)(c * g->KH + kh) * 10 + kw0) * 8, *l1 = l0 + perO;
          __m256 a00 = _mm256_loadu_ps(l0), a01 = _mm256_loadu_ps(l0 + 8), a02 = _mm256_loadu_ps(l0 + 16), a03 = _mm256_loadu_ps(l0 + 24), a04 = _mm256_loadu_ps(l0 + 32);
          __m256 a10 = _mm256_loadu_ps(l1), a11 = _mm256_loadu_ps(l1 + 8), a12 = _mm256_loadu_ps(l1 + 16), a13 = _mm256_loadu_ps(l1 + 24), a14 = _mm256_loadu_ps(l1 + 32);
          const float *d0 = dy + (size_t)o * S, *d1 = o + 1 < g->O ? d0 + S : zero;
          for (int oh = 0; oh < g->OH; oh++) {
            const float *r = pad + ((size_t)c * Hp + oh + kh) * Wp + kw0;
            const float *e0 = d0 + (size_t)oh * OW, *e1 = d1 == zero ? zero : d1 + (size_t)oh * OW;
            // Whole vectors with plain loads; the row's cut end masked (lanes past it read as 0,
            // so a value beyond the window never reaches the sums).
#define DIRECT_LANES(LOAD)                                                   \
  do {                                                                       \
    const __m256 y0 = LOAD(e0 + ow), y1 = LOAD(e1 + ow);                     \
    __m256 x = LOAD(r + ow);                                                 \
    a00 = _mm256_fmadd_ps(y0, x, a00); a10 = _mm256_fmadd_ps(y1, x, a10);   \
    x = LOAD(r + ow + 1);                                                    \
    a01 = _mm256_fmadd_ps(y0, x, a01); a11 = _mm256_fmadd_ps(y1, x, a11);   \
    x = LOAD(r + ow + 2);                                                    \
    a02 = _mm256_fmadd_ps(y0, x, a02); a12 = _mm256_fmadd_ps(y1, x, a12);   \
    x = LOAD(r + ow + 3);                                                    \
    a03 = _mm256_fmadd_ps(y0, x, a03); a13 = _mm256_fmadd_ps(y1, x, a13);   \
    x = LOAD(r + ow + 4);                                                    \
    a04 = _mm256_fmadd_ps(y0, x, a04); a14 = _mm256_fmadd_ps(y1, x, a14);   \
  } while (0)
            int ow = 0;
            for (; ow + 8 <= OW; ow += 8) DIRECT_LANES(_mm256_loadu_ps);
            if (ow < OW) {
#define DIRECT_MASKED(p) _mm256_maskload_ps((p), tail)
              DIRECT_LANES(DIRECT_MASKED);
#undef DIRECT_MASKED
            }
#undef DIRECT_LANES
          }
          _mm256_storeu_ps(l0, a00); _mm256_storeu_ps(l0 + 8, a01); _mm256_storeu_ps(l0 + 16, a02); _mm256_storeu_ps(l0 + 24, a03); _mm256_storeu_ps(l0 + 32, a04);
          _mm256_storeu_ps(l1, a10); _mm256_storeu_ps(l1 + 8, a11); _mm256_storeu_ps(l1 + 16, a12); _mm256_storeu_ps(l1 + 24, a13); _mm256_storeu_ps(l1 + 32, a14);
        }
}

// The sum of a vector's eight lanes.
__attribute__((target("avx2,fma"))) static inline float lane_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// dW[o][c][kh][kw] += sum over nb images of dy[o] times the window's shifted image, for 5-wide
// kernels (DIRECT_SUM_KW): 2 output channels by the 5 taps of a kernel row in registers, over
// every image of the block, 8 positions a step, then summed into dW. `x`: the images (padded
// where the layer pads), Hp rows of Wp per channel, imgX floats apart; dy imgY apart.
__attribute__((target("avx2,fma"))) static void direct_weight_sums(const Geometry *g, const float *x, int Hp, int Wp, size_t imgX,
                                                                   const float *dy, size_t imgY, int nb, float *dW) {
  const int OW = g->OW, S = g->OH * OW, taps = g->C * g->KH * 5;
  const __m256i tail = direct_mask(OW % 8);
  for (int o = 0; o < g->O; o += 2) {
    // An odd last channel runs paired with itself; the second sums are dropped.
    const int pair = o + 1 < g->O;
    for (int c = 0; c < g->C; c++)
      for (int kh = 0; kh < g->KH; kh++) {
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a04 = a00;
        __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00, a14 = a00;
        for (int n = 0; n < nb; n++) {
          const float *d0 = dy + (size_t)n * imgY + (size_t)o * S, *d1 = pair ? d0 + S : d0;
          const float *r = x + (size_t)n * imgX + ((size_t)c * Hp + kh) * Wp;
          for (int oh = 0; oh < g->OH; oh++, r += Wp, d0 += OW, d1 += OW) {
#define SUM_LANES(LOAD, ow)                                                  \
  do {                                                                       \
    const __m256 y0 = LOAD(d0 + (ow)), y1 = LOAD(d1 + (ow));                 \
    __m256 v = LOAD(r + (ow));                                               \
    KEEP(v); a00 = _mm256_fmadd_ps(y0, v, a00); a10 = _mm256_fmadd_ps(y1, v, a10); \
    v = LOAD(r + (ow) + 1);                                                  \
    KEEP(v); a01 = _mm256_fmadd_ps(y0, v, a01); a11 = _mm256_fmadd_ps(y1, v, a11); \
    v = LOAD(r + (ow) + 2);                                                  \
    KEEP(v); a02 = _mm256_fmadd_ps(y0, v, a02); a12 = _mm256_fmadd_ps(y1, v, a12); \
    v = LOAD(r + (ow) + 3);                                                  \
    KEEP(v); a03 = _mm256_fmadd_ps(y0, v, a03); a13 = _mm256_fmadd_ps(y1, v, a13); \
    v = LOAD(r + (ow) + 4);                                                  \
    KEEP(v); a04 = _mm256_fmadd_ps(y0, v, a04); a14 = _mm256_fmadd_ps(y1, v, a14); \
  } while (0)
// Each shifted row is loaded once into a register: left to itself, GCC folds the load into both
// multiply-adds, and the loop issues 12 loads per 10 multiply-adds.
#define KEEP(v) __asm__("" : "+x"(v))
            int ow = 0;
            for (; ow + 8 <= OW; ow += 8) SUM_LANES(_mm256_loadu_ps, ow);
            if (ow < OW) {
              // The row's cut end masked: lanes past it read as 0 (and nothing past the image).
#define SUM_MASKED(q) _mm256_maskload_ps((q), tail)
              SUM_LANES(SUM_MASKED, ow);
#undef SUM_MASKED
            }
#undef SUM_LANES
#undef KEEP
          }
        }
        float *w0 = dW + (size_t)o * taps + (size_t)(c * g->KH + kh) * 5;
        w0[0] += lane_sum(a00); w0[1] += lane_sum(a01); w0[2] += lane_sum(a02); w0[3] += lane_sum(a03); w0[4] += lane_sum(a04);
        if (pair) {
          float *w1 = w0 + taps;
          w1[0] += lane_sum(a10); w1[1] += lane_sum(a11); w1[2] += lane_sum(a12); w1[3] += lane_sum(a13); w1[4] += lane_sum(a14);
        }
      }
  }
}
#endif

// The direct passes over this job's images; returns 0 where scratch cannot be allocated.
static int run_direct(Job *job) {
#ifdef HAVE_DIRECT
  const Geometry *g = job->g;
  const Pass *p = job->p;
  Scratch *s = job->scratch;
  const int Wp = g->W + 2 * g->padW, Hp = g->H + 2 * g->padH, S = g->OH * g->OW, taps = g->C * g->KH * g->KW;
  const size_t imgIn = (size_t)g->C * g->H * g->W, imgOut = (size_t)g->O * S;
  const int O2 = (g->O + 1) / 2 * 2, O4 = (g->O + 3) / 4 * 4;
  const size_t perO = (size_t)g->C * g->KH * 10 * 8;
  const size_t lanes = p->weightDiff ? (size_t)O2 * perO + g->OW + 8 : 0;  // the lanes, then a zero row
  const size_t wr = p->gemmOut ? (size_t)O4 * taps : 0;
  if (!grow(&s->col, &s->colCap, (size_t)g->C * Hp * Wp + DIRECT_SLACK) || !grow(&s->work, &s->workCap, lanes + wr + 1)) return 0;
  float *L = s->work, *zero = s->work + (size_t)O2 * perO, *W4 = s->work + lanes;
  if (lanes) memset(L, 0, sizeof(float) * lanes);
  if (wr) {
    // [O / 4][tap][4], missing channels zero.
    for (int ob = 0; ob < O4; ob += 4)
      for (int t = 0; t < taps; t++)
        for (int i = 0; i < 4; i++) W4[(size_t)ob * taps + (size_t)t * 4 + i] = ob + i < g->O ? p->weights[(size_t)(ob + i) * taps + t] : 0.0f;
  }
  for (int n = job->n0; n < job->n1; n++) {
    direct_pad(g, p->colIn + (size_t)n * imgIn, s->col);
    if (p->gemmOut) direct_forward(g, s->col, W4, p->bias, p->gemmOut + (size_t)n * imgOut);
    if (p->gemmIn) {
      const float *dy = p->gemmIn + (size_t)n * imgOut;
      if (job->biasDiff)
        for (int o = 0; o < g->O; o++) job->biasDiff[o] += row_sum(dy + (size_t)o * S, S);
      if (p->weightDiff) direct_weight_lanes(g, s->col, dy, zero, L);
    }
  }
  if (p->weightDiff && job->n1 > job->n0) {
    for (int o = 0; o < g->O; o++)
      for (int c = 0; c < g->C; c++)
        for (int kh = 0; kh < g->KH; kh++)
          for (int kw = 0; kw < g->KW; kw++) {
            const float *l = L + (size_t)o * perO + ((size_t)(c * g->KH + kh) * 10 + kw) * 8;
            job->weightDiff[(size_t)o * taps + (c * g->KH + kh) * g->KW + kw] += ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
          }
  }
  return 1;
#else
  (void)job;
  return 0;
#endif
}

// Weight gradients of 5-wide kernels over rows of at least 16 outputs (CIFAR-10 quick's conv2,
// GoogLeNet's 5x5 layers at 28x28) by direct_weight_sums, where run_direct does not take the pass
// (more taps than its lanes hold, or a bottom gradient too): stride 1, undilated, one group.
// Unfolded and multiplied by sgemm, a third of such a weight gradient goes to the unfolding:
// CIFAR-10's conv2 backward pass takes 0.84-0.86x the time this way, GoogLeNet's 16 -> 32 at
// 28x28 0.88x. Over rows of one vector (8 outputs: LeNet's conv2, CIFAR-10's conv3) the loop
// over rows costs what the unfolding saved (0.96-1.06x), and over 7 it lost (1.13x).
#define DIRECT_SUM_KW 5
#define DIRECT_SUM_MIN_OW 16
// Images summed per block: a channel's planes of the block stay in the L1 cache across its rows
// of taps.
#define DIRECT_SUM_BLOCK 16

static int direct_sums_apply(const Geometry *g, const Pass *p) {
#ifdef HAVE_DIRECT
  return packed_gemm_wide() && p->weightDiff && p->colIn && p->gemmIn && g->G == 1 && g->KW == DIRECT_SUM_KW &&
         g->strideH == 1 && g->strideW == 1 && g->dilH == 1 && g->dilW == 1 && g->OW >= DIRECT_SUM_MIN_OW;
#else
  (void)g; (void)p;
  return 0;
#endif
}

// This job's weight and bias gradients by direct sums; returns 0 where scratch cannot be allocated.
static int run_direct_sums(Job *job) {
#ifdef HAVE_DIRECT
  const Geometry *g = job->g;
  const Pass *p = job->p;
  Scratch *s = job->scratch;
  const int S = g->OH * g->OW, Hp = g->H + 2 * g->padH, Wp = g->W + 2 * g->padW;
  const size_t imgIn = (size_t)g->C * g->H * g->W, imgOut = (size_t)g->O * S;
  // Padded layers sum over padded copies (direct_pad); unpadded ones read the images in place, as
  // a 5-wide window's taps never pass a row's end.
  const int padded = g->padH || g->padW;
  const size_t padImg = (size_t)g->C * Hp * Wp + DIRECT_SLACK;
  if (padded && !grow(&s->col, &s->colCap, padImg * DIRECT_SUM_BLOCK)) return 0;
  for (int n0 = job->n0; n0 < job->n1; n0 += DIRECT_SUM_BLOCK) {
    const int nb = job->n1 - n0 < DIRECT_SUM_BLOCK ? job->n1 - n0 : DIRECT_SUM_BLOCK;
    const float *dy = p->gemmIn + (size_t)n0 * imgOut;
    if (job->biasDiff)
      for (int n = 0; n < nb; n++)
        for (int o = 0; o < g->O; o++) job->biasDiff[o] += row_sum(dy + (size_t)n * imgOut + (size_t)o * S, S);
    if (padded) {
      for (int n = 0; n < nb; n++) direct_pad(g, p->colIn + (size_t)(n0 + n) * imgIn, s->col + (size_t)n * padImg);
      direct_weight_sums(g, s->col, Hp, Wp, padImg, dy, imgOut, nb, job->weightDiff);
    } else direct_weight_sums(g, p->colIn + (size_t)n0 * imgIn, g->H, g->W, imgIn, dy, imgOut, nb, job->weightDiff);
  }
  return 1;
#else
  (void)job;
  return 0;
#endif
}

// The weight gradient without unfolding (stride 1, one group, rows of whole vectors: LeNet's
// conv2, CIFAR-10 quick's conv3): dW += dy . cols^T as packed_gemm_ex of the output gradient
// (packed as its left matrix) and cols^T, whose panels (16 taps x the chunk's positions) are
// packed straight from the images. Eight positions of a row are consecutive input floats for
// any tap, so each tap is one load (masked at a padded edge) and 8 x 8 transposes turn them into
// the panels' rows. The columns were written whole, then read back by sgemm's own packing
// (LeNet conv2's backward pass: 15 % and 6 % of its time).
static int implicit_taps_apply(const Geometry *g) {
#ifdef HAVE_DIRECT
  return packed_gemm_wide() && g->G == 1 && g->strideH == 1 && g->strideW == 1 && g->dilH == 1 && g->dilW == 1 && g->OW % 8 == 0;
#else
  (void)g;
  return 0;
#endif
}

typedef struct {
  const Geometry *g;
  const float *x;  // the chunk's first image
} TapPack;

#ifdef HAVE_DIRECT
// Transposes the 8 x 8 block r in place (r[i][j] becomes r[j][i]).
__attribute__((target("avx2,fma"))) static inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20); r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20); r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31); r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31); r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Rows [pb, pb + kc) (positions of the chunk) x columns [jc, jc + nc) (taps) of cols^T, packed
// (PgPackB). kc and pb are multiples of 8 (PG_KC is; a chunk holds whole rows of OW % 8 == 0).
__attribute__((target("avx2,fma"))) static void pack_taps(const void *ctx, int pb, int kc, int jc, int nc, float *out) {
  const TapPack *q = (const TapPack *)ctx;
  const Geometry *g = q->g;
  const int H = g->H, W = g->W, OW = g->OW, S = g->OH * OW, area = g->KH * g->KW;
  const size_t img = (size_t)g->C * H * W;
  // Each column's tap: its channel plane's offset and its kernel row and column; unpadded, the
  // offset of its first input from the output position's (every load then in place).
  int plane[PG_NC], dh[PG_NC], dw[PG_NC], at[PG_NC];
  const int unpadded = g->padH == 0 && g->padW == 0;
  for (int j = 0; j < nc; j++) {
    const int t = jc + j, c = t / area, r = t % area;
    plane[j] = c * H * W;
    dh[j] = r / g->KW - g->padH;
    dw[j] = r % g->KW - g->padW;
    at[j] = plane[j] + dh[j] * W + dw[j];
  }
  for (int k = 0; k < kc; k += 8) {
    const int pos = pb + k, n = pos / S, s = pos % S, oh = s / OW, ow0 = s % OW;
    const float *x = q->x + (size_t)n * img;
    for (int jp = 0; jp < nc; jp += PG_NR) {
      __m256 v[PG_NR];
      if (unpadded && jp + PG_NR <= nc) {
        const float *o = x + (size_t)oh * W + ow0;
        for (int j = 0; j < PG_NR; j++) v[j] = _mm256_loadu_ps(o + at[jp + j]);
      } else {
        // Padded (rows outside the plane zero, columns masked), or the last panel's missing taps.
        for (int j = 0; j < PG_NR; j++) {
          const int col = jp + j;
          v[j] = _mm256_setzero_ps();
          if (col >= nc) continue;
          const int ih = oh + dh[col], iw = ow0 + dw[col];
          if (ih < 0 || ih >= H) continue;
          const float *r = x + plane[col] + (size_t)ih * W;
          v[j] = iw >= 0 && iw + 8 <= W ? _mm256_loadu_ps(r + iw) : _mm256_maskload_ps(r + iw, lanes_inside(iw, W));
        }
      }
      transpose8(v);
      transpose8(v + 8);
      float *panel = out + (size_t)jp * kc + (size_t)k * PG_NR;
      for (int i = 0; i < 8; i++) {
        _mm256_storeu_ps(panel + (size_t)i * PG_NR, v[i]);
        _mm256_storeu_ps(panel + (size_t)i * PG_NR + 8, v[8 + i]);
      }
    }
  }
}
#endif

// C (overwritten) = W_g . B (forward: m x N) or W_g^T . B (bottom gradient: K x N) for group gi,
// W_g the group's m x K weights, B row-major with N columns: on the weights packed for this pass
// (packed: per group, W_g or W_g^T), else sgemm.
static void weights_product(const Job *job, int gi, int transposed, const float *packed, const float *B, int N, float *C) {
  const Geometry *g = job->g;
  const int m = g->O / g->G, K = g->C / g->G * g->KH * g->KW;
  const int rows = transposed ? K : m, depth = transposed ? m : K;
  if (packed)
    packed_gemm(packed + gi * packed_a_floats(rows, depth), rows, depth, B, N, C, N, 0, rows, 0, N, NULL, job->scratch->work);
  else
    par_sgemm(job->gemmThreads, transposed, 0, rows, N, depth, 1.0f, job->p->weights + (size_t)gi * m * K, K, B, N, 0.0f, C, N);
}

// The pass through the column matrix: per chunk of images, unfolding (for the forward and the
// weight gradient, where this job computes it), the products, folding.
static void run_columns(Job *job) {
  const Geometry *g = job->g;
  const Pass *p = job->p;
  Scratch *s = job->scratch;
  const int S = g->OH * g->OW, Cg = g->C / g->G, m = g->O / g->G, K = Cg * g->KH * g->KW;
  const size_t imgIn = (size_t)g->C * g->H * g->W, imgOut = (size_t)g->O * S;
  const int is1x1 = unfolds_to_itself(g);
  // The weight gradient from the images themselves where it can (implicit_taps_apply).
  // (Not with a forward in the same pass, whose columns share the buffer where dy is packed.)
  const int implicit = job->weightDiff && job->gemmThreads == 1 && p->colIn && !p->gemmOut && implicit_taps_apply(g);
  const int unfold = p->colIn && (p->gemmOut || (job->weightDiff && !implicit));
  for (int n0 = job->n0; n0 < job->n1; n0 += job->chunk) {
    const int nb = n0 + job->chunk <= job->n1 ? job->chunk : job->n1 - n0;
    const int N = nb * S;
    // One image needs no reordering: its [o][s] plane is the GEMM side's [o][n*s].
    const int direct = nb == 1;
    const float *col = NULL;
    if (unfold) {
      if (direct && is1x1) col = p->colIn + (size_t)n0 * imgIn;
      else {
        if (!grow(&s->col, &s->colCap, (size_t)g->C * g->KH * g->KW * N)) { job->failed = 1; return; }
        unfold_columns(g, nb, s->col, p->colIn + (size_t)n0 * imgIn, 0, g->C);
        col = s->col;
      }
    }
    const float *dy = NULL;
    if (p->gemmIn) {
      const float *src = p->gemmIn + (size_t)n0 * imgOut;
      if (direct) dy = src;
      else {
        if (!grow(&s->buf, &s->bufCap, (size_t)g->O * N)) { job->failed = 1; return; }
        for (int n = 0; n < nb; n++)
          for (int o = 0; o < g->O; o++) copy_row(s->buf + (size_t)o * N + (size_t)n * S, src + (size_t)n * imgOut + (size_t)o * S, S);
        dy = s->buf;
      }
    }
    if (job->biasDiff)
      for (int o = 0; o < g->O; o++) job->biasDiff[o] += row_sum(dy + (size_t)o * N, N);
    if (job->weightDiff && implicit) {
#ifdef HAVE_DIRECT
      // dy packed into the column buffer, free until the bottom gradient's product below.
      if (!grow(&s->col, &s->colCap, packed_a_floats(m, N)) || !grow(&s->work, &s->workCap, (size_t)PG_KC * PG_NC)) { job->failed = 1; return; }
      pack_a(dy, m, N, N, s->col);
      const TapPack taps = { g, p->colIn + (size_t)n0 * imgIn };
      packed_gemm_ex(s->col, m, N, pack_taps, &taps, job->weightDiff, K, 0, m, 0, K, NULL, s->work, 1);
#endif
    } else if (job->weightDiff) {
      for (int gi = 0; gi < g->G; gi++)
        par_sgemm(job->gemmThreads, 0, 1, m, K, N, 1.0f, dy + (size_t)gi * m * N, N,
                  col + (size_t)gi * K * N, N, 1.0f, job->weightDiff + (size_t)gi * m * K, K);
    }
    if (p->gemmOut) {
      float *dst = p->gemmOut + (size_t)n0 * imgOut;
      float *out = dst;
      if (!direct) {
        if (!grow(&s->buf, &s->bufCap, (size_t)g->O * N)) { job->failed = 1; return; }
        out = s->buf;
      }
      for (int gi = 0; gi < g->G; gi++)
        weights_product(job, gi, 0, p->packedW, col + (size_t)gi * K * N, N, out + (size_t)gi * m * N);
      for (int n = 0; n < nb; n++)
        for (int o = 0; o < g->O; o++) {
          float *d = dst + (size_t)n * imgOut + (size_t)o * S;
          const float *r = out + (size_t)o * N + (size_t)n * S;
          const float b = p->bias ? p->bias[o] : 0.0f;
          if (direct) { if (p->bias) for (int i = 0; i < S; i++) d[i] += b; }
          else for (int i = 0; i < S; i++) d[i] = r[i] + b;
        }
    }
    if (p->colOut) {
      float *x = p->colOut + (size_t)n0 * imgIn;
      // A 1x1 stride-1 unpadded image's columns are the image itself.
      float *c = NULL;
      if (direct && is1x1) c = x;
      else {
        if (!grow(&s->col, &s->colCap, (size_t)g->C * g->KH * g->KW * N)) { job->failed = 1; return; }
        c = s->col;
      }
      for (int gi = 0; gi < g->G; gi++)
        weights_product(job, gi, 1, p->packedWt, dy + (size_t)gi * m * N, N, c + (size_t)gi * K * N);
      if (c != x) fold_columns(g, c, nb, x);
    }
  }
}

static void run_range(Job *job) {
  if (job->gemmThreads == 1 && direct_applies(job->g, job->p)) {
    if (!run_direct(job)) job->failed = 1;
    return;
  }
  if (job->gemmThreads == 1 && direct_sums_apply(job->g, job->p)) {
    if (!run_direct_sums(job)) {
      job->failed = 1;
      return;
    }
    if (!job->p->gemmOut && !job->p->colOut) return;
    // The bottom gradient (or forward) through the columns, without unfolding for the weights.
    Job rest = *job;
    rest.weightDiff = rest.biasDiff = NULL;
    run_columns(&rest);
    job->failed |= rest.failed;
    return;
  }
  run_columns(job);
}

static void *run_thread(void *arg) {
  run_range((Job *)arg);
  return NULL;
}

// ---- Inference forwards with a fused per-channel epilogue ----
// y = act(scale[o] * conv(x, w)[o] + shift[o]) per output channel o (scale 1 and shift 0 where
// absent), then, with a sum, z = act2(c0 * first + c1 * second) of y and `other` (the
// WasmInferConv.conv2d contract of @caffe-ts/blob: a following BatchNorm/Scale/ReLU and Eltwise
// SUM folded in by Net's inference fusion). The epilogue runs on each block right after its
// product, while the block is still in cache.

typedef struct {
  Geometry g;
  const float *x, *w, *scale, *shift, *other;
  const float *packed;  // the weights as pack_weights left them (per group), or NULL: sgemm
  float *y, *z;
  int relu, sumRelu, convFirst;
  float slope, c0, c1, sumSlope;
  // Floats from one image to the next in x and in y (other, z), where they are not the
  // geometry's own (a group of a grouped convolution run as a convolution of its own); 0: C·H·W
  // and O·OH·OW.
  size_t xStride, yStride;
} Infer;

typedef struct {
  const Infer *c;
  Scratch *scratch;    // image ranges: this thread's column buffer
  const float *col;    // blocks: the columns of image n0 (shared)
  int n0, n1;          // images
  int o0, o1, j0, j1;  // blocks: output channels [o0, o1) x positions [j0, j1) of image n0
  int u0, u1;          // unfolding: channels [u0, u1) of image n0
  int failed;
} InferPart;



// The unfolded columns of one image, packed block by block straight from the image (PgPackB):
// row k = (c * KH + kh) * KW + kw of the column matrix, columns the output positions. Each block's
// rows are built in a row of nc floats (in cache), then dealt into the panels as pack_b does, so
// that the image's columns are never written whole (ResNet-50's conv1: 7.4 MB) and read back.
typedef struct {
  const Geometry *g;
  const float *x;  // the image's first channel of the group
} ImagePack;

WIDE_SIMD
static void pack_image(const void *ctx, int pb, int kc, int jc, int nc, float *out) {
  const ImagePack *q = (const ImagePack *)ctx;
  const Geometry *g = q->g;
  const int OW = g->OW, W = g->W, area = g->KH * g->KW, sh = g->strideH, sw = g->strideW;
  const int full = nc / PG_NR * PG_NR, rest = nc - full;
  float row[PG_NC];
  for (int k = 0; k < kc; k++) {
    const int t = pb + k, c = t / area, kh = t % area / g->KW, kw = t % g->KW;
    const int hoff = kh * g->dilH - g->padH, woff = kw * g->dilW - g->padW;
    int wlo, whi;
    valid_range(woff, sw, W, OW, &wlo, &whi);
    const float *plane = q->x + (size_t)c * g->H * W;
    // The positions [jc, jc + nc), output row by output row.
    for (int j = jc; j < jc + nc;) {
      const int oh = j / OW, a = j - oh * OW, b = (oh + 1) * OW < jc + nc ? OW : jc + nc - oh * OW;
      float *d = row + (j - jc) - a;  // d[ow] for ow in [a, b)
      const int ih = oh * sh + hoff;
      if (ih < 0 || ih >= g->H || wlo >= whi) {
        memset(d + a, 0, sizeof(float) * (size_t)(b - a));
      } else {
        const int lo = a > wlo ? a : wlo, hi = b < whi ? b : whi;
        for (int ow = a; ow < lo && ow < b; ow++) d[ow] = 0;
        if (lo < hi) {
          const float *src = plane + (size_t)ih * W + lo * sw + woff;
          if (sw == 1) copy_row(d + lo, src, hi - lo);
          else if (sw == 2) even_columns(src, hi - lo, d + lo);
          else gather_strided(d + lo, src, hi - lo, sw);
        }
        for (int ow = hi > a ? hi : a; ow < b; ow++) d[ow] = 0;
      }
      j += b - a;
    }
    float *pk = out + (size_t)k * PG_NR;
    for (int jp = 0; jp < full; jp += PG_NR) memcpy(pk + (size_t)jp * kc, row + jp, sizeof(float) * PG_NR);
    if (rest) {
      memcpy(pk + (size_t)full * kc, row + full, sizeof(float) * rest);
      memset(pk + (size_t)full * kc + rest, 0, sizeof(float) * (PG_NR - rest));
    }
  }
}

// Floats of output a tile of infer_block covers: its product's result is still in the cache
// (256 KiB) when the epilogue reads it back.
#define INFER_TILE_FLOATS 65536

static void infer_tile(const Infer *c, int n, const float *col, int o0, int o1, int j0, int j1);
static void infer_epilogue(const Infer *c, size_t img, int o0, int o1, int j0, int j1);

// The product, epilogue and sum of output channels [o0, o1) x positions [j0, j1) of image n: on
// the packed weights where there are any and more than a few positions (`work`: PG_KC * PG_NC
// floats of this thread's own), else with sgemm in tiles of positions.
static void infer_block(const Infer *c, int n, const float *col, int o0, int o1, int j0, int j1, float *work) {
  if (o1 <= o0 || j1 <= j0) return;
  const Geometry *g = &c->g;
  if (c->packed && (j1 - j0 > SGEMV_MAX_ROWS || !col)) {
    const int S = g->OH * g->OW, m = g->O / g->G, K = (g->C / g->G) * g->KH * g->KW;
    const size_t img = (size_t)n * g->O * S, per = packed_a_floats(m, K);
    for (int gi = o0 / m; gi * m < o1; gi++) {
      const int a = gi * m > o0 ? gi * m : o0, b = (gi + 1) * m < o1 ? (gi + 1) * m : o1;
      const size_t at = img + (size_t)gi * m * S;
      const PgEpilogue e = {
        c->scale ? c->scale + gi * m : NULL, c->shift ? c->shift + gi * m : NULL, c->relu, c->slope,
        c->z ? c->other + at : NULL, c->z ? c->z + at : NULL, c->convFirst, c->sumRelu, c->c0, c->c1, c->sumSlope,
      };
      if (col) packed_gemm(c->packed + gi * per, m, K, col + (size_t)gi * K * S, S, c->y + at, S, a - gi * m, b - gi * m, j0, j1, &e, work);
      else {
        // No columns: the group's image channels packed block by block (pack_image).
        const ImagePack q = { g, c->x + (size_t)n * g->C * g->H * g->W + (size_t)gi * (g->C / g->G) * g->H * g->W };
        packed_gemm_ex(c->packed + gi * per, m, K, pack_image, &q, c->y + at, S, a - gi * m, b - gi * m, j0, j1, &e, work, 0);
      }
    }
    return;
  }
  int tile = INFER_TILE_FLOATS / (o1 - o0);
  tile = tile < 64 ? 64 : tile & ~15;
  for (int j = j0; j < j1; j += tile) infer_tile(c, n, col, o0, o1, j, j + tile < j1 ? j + tile : j1);
}

static void infer_tile(const Infer *c, int n, const float *col, int o0, int o1, int j0, int j1) {
  const Geometry *g = &c->g;
  const int S = g->OH * g->OW, m = g->O / g->G, K = (g->C / g->G) * g->KH * g->KW, w = j1 - j0;
  const size_t img = (size_t)n * g->O * S;
  float *y = c->y + img;
  for (int gi = o0 / m; gi * m < o1; gi++) {
    const int a = gi * m > o0 ? gi * m : o0, b = (gi + 1) * m < o1 ? (gi + 1) * m : o1;
    const float *A = c->w + (size_t)a * K, *B = col + (size_t)gi * K * S;
    if (w <= SGEMV_MAX_ROWS) {
      // A few positions (a 1x1 plane: a classifier as a convolution): matrix-vector products,
      // which stream the weights once instead of packing them.
      for (int j = j0; j < j1; j++) cblas_sgemv(CblasRowMajor, CblasNoTrans, b - a, K, 1.0f, A, K, B + j, S, 0.0f, y + (size_t)a * S + j, S);
    } else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b - a, w, K, 1.0f, A, K, B + j0, S, 0.0f, y + (size_t)a * S + j0, S);
  }
  infer_epilogue(c, img, o0, o1, j0, j1);
}

// The epilogue and sum of output channels [o0, o1) x positions [j0, j1) of the image at `img`.
WIDE_SIMD
static void infer_epilogue(const Infer *c, size_t img, int o0, int o1, int j0, int j1) {
  const int S = c->g.OH * c->g.OW, w = j1 - j0;
  float *y = c->y + img;
  for (int o = o0; o < o1; o++) {
    float *r = y + (size_t)o * S + j0;
    const float sh = c->shift ? c->shift[o] : 0.0f;
    if (c->scale) {
      const float sc = c->scale[o];
      for (int j = 0; j < w; j++) r[j] = sc * r[j] + sh;
    } else if (c->shift) for (int j = 0; j < w; j++) r[j] += sh;
    if (c->relu) {
      const float slope = c->slope;
      if (slope == 0.0f) for (int j = 0; j < w; j++) r[j] = r[j] > 0 ? r[j] : 0.0f;
      else for (int j = 0; j < w; j++) r[j] = pg_act(r[j], 1, slope);
    }
    if (c->z) {
      const float *q = c->other + img + (size_t)o * S + j0;
      float *zr = c->z + img + (size_t)o * S + j0;
      const float *f = c->convFirst ? r : q, *s = c->convFirst ? q : r;
      const float c0 = c->c0, c1 = c->c1;
      for (int j = 0; j < w; j++) {
        const float p0 = c0 * f[j], p1 = c1 * s[j];
        zr[j] = p0 + p1;
      }
      if (c->sumRelu) for (int j = 0; j < w; j++) zr[j] = pg_act(zr[j], 1, c->sumSlope);
    }
  }
}

// Whether a forward packs its columns from the image block by block (pack_image) instead of
// unfolding the whole image first: strided windows wider than 1x1 on packed weights, over more
// positions than the matrix-vector products take. Two builds alternating, one thread: ResNet-50's
// 7x7 stem 0.68-0.75x the time, CaffeNet's 11x11 stride 4 0.78-0.97x, MobileNet v2's and
// SqueezeNet's 3x3 stems 0.87-0.96x; at stride 1 (rows of 28-55 positions cut into blocks)
// 1.0-1.1x, and over 1x1 windows (stride 2, 256 channels) 1.1x: those keep the unfolding.
static int packs_image(const Infer *c) {
  const Geometry *g = &c->g;
  return c->packed && (g->strideH > 1 || g->strideW > 1) && g->KH * g->KW > 1 && g->OH * g->OW > SGEMV_MAX_ROWS;
}

// Image ranges: each thread unfolds and multiplies whole images with its own column buffer.
static void *infer_images(void *arg) {
  InferPart *q = (InferPart *)arg;
  const Infer *c = q->c;
  const Geometry *g = &c->g;
  const size_t imgIn = (size_t)g->C * g->H * g->W;
  const int S = g->OH * g->OW;
  for (int n = q->n0; n < q->n1; n++) {
    const float *x = c->x + (size_t)n * imgIn, *col = x;
    if (packs_image(c)) col = NULL;
    else if (!unfolds_to_itself(g)) {
      Scratch *s = q->scratch;
      if (!grow(&s->col, &s->colCap, (size_t)g->C * g->KH * g->KW * S)) { q->failed = 1; return NULL; }
      unfold_columns(g, 1, s->col, x, 0, g->C);
      col = s->col;
    }
    float *work = NULL;
    if (c->packed) {
      if (!grow(&q->scratch->buf, &q->scratch->bufCap, (size_t)PG_KC * PG_NC)) { q->failed = 1; return NULL; }
      work = q->scratch->buf;
    }
    infer_block(c, n, col, 0, g->O, 0, S, work);
  }
  return NULL;
}

static void *infer_unfold(void *arg) {
  InferPart *q = (InferPart *)arg;
  const Geometry *g = &q->c->g;
  unfold_columns(g, 1, (float *)q->col, q->c->x + (size_t)q->n0 * g->C * g->H * g->W, q->u0, q->u1);
  return NULL;
}

static void *infer_blocks(void *arg) {
  InferPart *q = (InferPart *)arg;
  infer_block(q->c, q->n0, q->col, q->o0, q->o1, q->j0, q->j1, q->scratch ? q->scratch->buf : NULL);
  return NULL;
}

// Depthwise forward (group = channels = outputs). 3x3 with stride 1 or 2 runs on AVX2 machines
// over each plane in place (depthwise.c), elsewhere over a zero-padded copy of each channel
// (depthwise_flat, depthwise_rows); other shapes build each output row tap by tap, a scaled row
// of the input added to it, then the shift and ReLU. The scale multiplies the taps (the
// WasmInferConv.depthwise contract).
typedef struct {
  const Infer *c;
  int n, c0, c1;
  float *pad;  // this thread's padded plane(s) and flat result (DepthLayout)
} DepthPart;

#if defined(__x86_64__) && defined(__GNUC__)
// split_columns eight pairs at a time; returns the pairs done.
__attribute__((target("avx2,fma"))) static int split_columns_avx2(const float *r, int n, float *a, float *b) {
  int k = 0;
  for (; 2 * k + 16 <= n; k += 8) {
    const __m256 lo = _mm256_loadu_ps(r + 2 * k), hi = _mm256_loadu_ps(r + 2 * k + 8);
    _mm256_storeu_ps(a + k, even_lanes(lo, hi));
    _mm256_storeu_ps(b + k, odd_lanes(lo, hi));
  }
  return k;
}
#endif

// The even columns of r[0, n) to a, the odd ones to b (a[k] = r[2k], b[k] = r[2k + 1]).
static void split_columns(const float *restrict r, int n, float *restrict a, float *restrict b) {
  int k = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  if (packed_gemm_wide()) k = split_columns_avx2(r, n, a, b);
#endif
  for (; 2 * k + 1 < n; k++) { a[k] = r[2 * k]; b[k] = r[2 * k + 1]; }
  if (2 * k < n) a[k] = r[2 * k];
}

// The padded copies' layouts. A small plane (the padded plane of at most DW_FLAT_FLOATS) is kept
// flat: its rows back to back with no slack between them (stride L, the padded width), so that
// an output row's nine taps and the next row's follow on without a break. For stride 2 its rows
// are made even (a zero column added where the padded width is odd), so that the flat plane's
// even and odd positions are its even and odd columns: one split of the whole plane gives both
// (rows of L = half the width), where splitting it row by row cost more than the convolution
// (MobileNet v2's 14x14 stride-2 layer: 190 of 260 us). A wide plane is run row by row (each
// row long enough for whole vectors), over rows of L floats with slack, for stride 2 split into
// even and odd columns (two planes of L-float rows): copying and splitting a whole wide plane
// first left the cache (MobileNet v2's 112x112 stride-2 layer: 1.66x the time).
#define DW_FLAT_FLOATS 4096

typedef struct {
  int flat;           // whether the plane is run flat (depthwise_flat), else row by row (depthwise_rows)
  int L;              // row stride: see above
  size_t padded;      // floats of the padded plane(s) (the part depthwise_part clears)
  size_t half;        // flat, stride 2: floats of each of the even and odd planes
  size_t out;         // flat: floats of the flat result, OH rows of L (stride 1) or 2L (stride 2), then slack
} DepthLayout;

static DepthLayout depthwise_layout(const Geometry *g) {
  DepthLayout d;
  const int Hp = g->H + 2 * g->padH, Wp = g->W + 2 * g->padW;
  d.flat = (size_t)Hp * Wp <= DW_FLAT_FLOATS;
  d.half = d.out = 0;
  if (!d.flat) {
    d.L = g->strideW == 1 ? Wp + 8 : Wp / 2 + 9;
    d.padded = (size_t)Hp * d.L * (g->strideW == 1 ? 1 : 2);
  } else if (g->strideW == 1) {
    // The last flat position reads 2 rows and 2 columns on.
    d.L = Wp;
    d.padded = (size_t)Hp * Wp + 8;
    d.out = (size_t)g->OH * d.L + 8;
  } else {
    // Output row oh reads padded rows 2oh to 2oh + 2 and, past its end, the next row's first
    // columns: two rows of slack.
    d.L = (Wp + 1) / 2;
    d.padded = (size_t)(Hp + 2) * 2 * d.L;
    d.half = (size_t)(Hp + 2) * d.L + 8;
    d.out = (size_t)g->OH * 2 * d.L + 8;
  }
  return d;
}

static size_t depthwise_pad_floats(const Geometry *g) {
  const DepthLayout d = depthwise_layout(g);
  return d.padded + 2 * d.half + d.out;
}

// Whether depthwise_flat or depthwise_rows runs a layer: 3x3, undilated, stride 1 or 2 both ways.
static int depthwise_padded_applies(const Geometry *g) {
  return g->KH == 3 && g->KW == 3 && g->dilH == 1 && g->dilW == 1 && (g->strideH == 1 || g->strideH == 2) && g->strideW == g->strideH;
}

// The nine taps of a 3x3 depthwise output plus the shift, over rows a, b, c of a padded copy:
// stride 1 reads columns j .. j + 2 of each row; stride 2 reads the rows' even (a, b, c) and odd
// (ao, bo, co) columns j, j and j + 1. Both layouts (depthwise_flat, depthwise_rows) sum in this
// order, so their results are the same bits.
static inline float dw_taps_s1(const float *t, const float *a, const float *b, const float *c, int j, float sh) {
  return t[0] * a[j] + t[1] * a[j + 1] + t[2] * a[j + 2] + t[3] * b[j] + t[4] * b[j + 1] + t[5] * b[j + 2] +
         t[6] * c[j] + t[7] * c[j + 1] + t[8] * c[j + 2] + sh;
}

static inline float dw_taps_s2(const float *t, const float *a, const float *ao, const float *b, const float *bo, const float *c,
                               const float *co, int j, float sh) {
  return t[0] * a[j] + t[1] * ao[j] + t[2] * a[j + 1] + t[3] * b[j] + t[4] * bo[j] + t[5] * b[j + 1] +
         t[6] * c[j] + t[7] * co[j] + t[8] * c[j + 1] + sh;
}

// Caffe's ReLU of slope `slope` over v[0, n) in place.
static inline void dw_relu(float *v, int n, float slope) {
  if (slope == 0.0f) for (int j = 0; j < n; j++) v[j] = v[j] > 0 ? v[j] : 0.0f;
  else for (int j = 0; j < n; j++) v[j] = v[j] > 0 ? v[j] : v[j] * slope;
}

// A 3x3 depthwise channel over its flat zero-padded copy (a small plane: DepthLayout). Every flat
// position j (output row j / stride, column j % stride) sums the nine taps in one pass over the
// whole plane: the positions past an output row's end are computed and dropped, which on 7- to 28-wide
// planes costs far less than the short rows' scalar tails did (MobileNet v2's 14x14 depthwise
// layers ran at 3.6 ns per output row by row, a third of the 112x112 layer's pace). `pad` must
// hold zeros outside the image's place (depthwise_part clears it once per call: every channel
// writes the same places).
WIDE_SIMD
static void depthwise_flat(const Geometry *g, const float *x, const float *tap, float sh, int relu, float slope, float *y, float *pad) {
  const int H = g->H, W = g->W, OH = g->OH, OW = g->OW;
  const DepthLayout d = depthwise_layout(g);
  const int L = d.L, stride = g->strideW == 1 ? L : 2 * L;
  float *restrict flat = pad + d.padded + 2 * d.half;
  const int N = OH * stride;
  float t[9];
  for (int i = 0; i < 9; i++) t[i] = tap[i];
  // The padded plane's rows are `stride` floats either way (for stride 2, 2L: the padded width
  // made even).
  for (int h = 0; h < H; h++) copy_row(pad + (size_t)(h + g->padH) * stride + g->padW, x + (size_t)h * W, W);
  if (g->strideW == 1) {
    const float *restrict a = pad, *restrict b = pad + L, *restrict c = pad + 2 * L;
    for (int j = 0; j < N; j++) flat[j] = dw_taps_s1(t, a, b, c, j, sh);
  } else {
    // e and o: the padded plane's even and odd columns, rows of L; padded row r at r * L.
    float *e = pad + d.padded, *o = e + d.half;
    split_columns(pad, (int)d.padded, e, o);
    const float *restrict e0 = e, *restrict o0 = o, *restrict e1 = e + L, *restrict o1 = o + L, *restrict e2 = e + 2 * L, *restrict o2 = o + 2 * L;
    for (int j = 0; j < N; j++) flat[j] = dw_taps_s2(t, e0, o0, e1, o1, e2, o2, j, sh);
  }
  // The activation over the whole flat result too, then the rows out.
  if (relu) dw_relu(flat, N, slope);
  for (int oh = 0; oh < OH; oh++) copy_row(y + (size_t)oh * OW, flat + (size_t)oh * stride, OW);
}

// A 3x3 depthwise channel over its zero-padded copy (a wide plane: DepthLayout): every output is
// the nine taps summed without bounds checks, a row at a time (stride 2: the padded rows split
// into their even and odd columns, so that each tap reads contiguous values). `pad` must hold
// zeros outside the image's place (depthwise_part clears it once per call: every channel writes
// the same places).
WIDE_SIMD
static void depthwise_rows(const Geometry *g, const float *x, const float *tap, float sh, int relu, float slope, float *y, float *pad) {
  const int H = g->H, W = g->W, OH = g->OH, OW = g->OW, s = g->strideW;
  const int Hp = H + 2 * g->padH;
  const int L = depthwise_layout(g).L;
  float *E = pad, *O = pad + (size_t)Hp * L;
  for (int h = 0; h < H; h++) {
    const float *r = x + (size_t)h * W;
    const int ph = h + g->padH;
    if (s == 1) copy_row(E + (size_t)ph * L + g->padW, r, W);
    else {
      // Input column w lands at padded column w + padW: even ones in E, odd ones in O. With an
      // odd padW the even input columns are the odd padded ones.
      float *e = E + (size_t)ph * L, *o = O + (size_t)ph * L;
      if (g->padW & 1) split_columns(r, W, o + (g->padW >> 1), e + ((g->padW + 1) >> 1));
      else split_columns(r, W, e + (g->padW >> 1), o + (g->padW >> 1));
    }
  }
  float t[9];
  for (int i = 0; i < 9; i++) t[i] = tap[i];
  for (int oh = 0; oh < OH; oh++) {
    float *restrict out = y + (size_t)oh * OW;
    const size_t r0 = (size_t)(oh * g->strideH) * L, r1 = r0 + L, r2 = r1 + L;
    if (s == 1) {
      const float *restrict a = E + r0, *restrict b = E + r1, *restrict c = E + r2;
      for (int ow = 0; ow < OW; ow++) out[ow] = dw_taps_s1(t, a, b, c, ow, sh);
    } else {
      const float *restrict ae = E + r0, *restrict ao = O + r0, *restrict be = E + r1, *restrict bo = O + r1, *restrict ce = E + r2,
                            *restrict co = O + r2;
      for (int ow = 0; ow < OW; ow++) out[ow] = dw_taps_s2(t, ae, ao, be, bo, ce, co, ow, sh);
    }
    if (relu) dw_relu(out, OW, slope);
  }
}

WIDE_SIMD
static void *depthwise_part(void *arg) {
  DepthPart *q = (DepthPart *)arg;
  const Infer *c = q->c;
  const Geometry *g = &c->g;
  const int OH = g->OH, OW = g->OW, H = g->H, W = g->W, taps = g->KH * g->KW;
  float tap[taps > 0 ? taps : 1];
  int lo[g->KW > 0 ? g->KW : 1], hi[g->KW > 0 ? g->KW : 1];
  for (int kw = 0; kw < g->KW; kw++) valid_range(kw * g->dilW - g->padW, g->strideW, W, OW, &lo[kw], &hi[kw]);
  const int fast3x3 = g->KH == 3 && g->KW == 3 && g->dilH == 1 && g->dilW == 1;
  // The padded copy's zeros, once: each channel then writes the image's places only.
  const int flat = depthwise_layout(g).flat;
  const int wide = depthwise3x3_wide_applies(g->KH, g->KW, g->strideH, g->strideW, g->dilH, g->dilW);
  if (q->pad) memset(q->pad, 0, sizeof(float) * (wide ? (size_t)W : depthwise_layout(g).padded));
  for (int ch = q->c0; ch < q->c1; ch++) {
    const float *x = c->x + ((size_t)q->n * g->C + ch) * H * W;
    float *y = c->y + ((size_t)q->n * g->O + ch) * OH * OW;
    const float sc = c->scale ? c->scale[ch] : 1.0f, sh = c->shift ? c->shift[ch] : 0.0f;
    for (int t = 0; t < taps; t++) tap[t] = c->scale ? c->w[(size_t)ch * taps + t] * sc : c->w[(size_t)ch * taps + t];
    if (wide && q->pad) {
      depthwise3x3_wide(x, H, W, g->padH, g->padW, g->strideW, OH, OW, tap, sh, c->relu, c->slope, y, q->pad);
      continue;
    }
    if (q->pad) {
      if (flat) depthwise_flat(g, x, tap, sh, c->relu, c->slope, y, q->pad);
      else depthwise_rows(g, x, tap, sh, c->relu, c->slope, y, q->pad);
      continue;
    }
    for (int oh = 0; oh < OH; oh++) {
      float *r = y + (size_t)oh * OW;
      const int ih0 = oh * g->strideH - g->padH;
      if (fast3x3 && ih0 >= 0 && ih0 + 2 < H) {
        // Rows whose window lies inside the image: the nine taps summed in registers over the
        // positions where every tap is inside too, the edges below.
        const float *x0 = x + (size_t)ih0 * W, *x1 = x0 + W, *x2 = x1 + W;
        const int sw = g->strideW, a = lo[2] > lo[0] ? lo[2] : lo[0], b = hi[2] < hi[0] ? hi[2] : hi[0];
        float *restrict ro = r;
        const float t0 = tap[0], t1 = tap[1], t2 = tap[2], t3 = tap[3], t4 = tap[4], t5 = tap[5], t6 = tap[6], t7 = tap[7], t8 = tap[8];
#define DW_SUM(i) (t0 * x0[i] + t1 * x0[(i) + 1] + t2 * x0[(i) + 2] + t3 * x1[i] + t4 * x1[(i) + 1] + \
                   t5 * x1[(i) + 2] + t6 * x2[i] + t7 * x2[(i) + 1] + t8 * x2[(i) + 2])
        if (sw == 1) {
          const float *restrict y0 = x0 - g->padW, *restrict y1 = x1 - g->padW, *restrict y2 = x2 - g->padW;
          for (int ow = a; ow < b; ow++)
            ro[ow] = t0 * y0[ow] + t1 * y0[ow + 1] + t2 * y0[ow + 2] + t3 * y1[ow] + t4 * y1[ow + 1] + t5 * y1[ow + 2] +
                     t6 * y2[ow] + t7 * y2[ow + 1] + t8 * y2[ow + 2];
        } else if (sw == 2) for (int ow = a; ow < b; ow++) ro[ow] = DW_SUM(2 * ow - g->padW);
        else for (int ow = a; ow < b; ow++) ro[ow] = DW_SUM(ow * sw - g->padW);
#undef DW_SUM
        for (int ow = 0; ow < OW; ow++) {
          if (ow == a && b > a) { ow = b - 1; continue; }
          float v = 0;
          for (int kh = 0; kh < 3; kh++) {
            const float *xr = x + (size_t)(ih0 + kh) * W;
            for (int kw = 0; kw < 3; kw++) {
              const int iw = ow * sw - g->padW + kw;
              if (iw >= 0 && iw < W) v += tap[kh * 3 + kw] * xr[iw];
            }
          }
          ro[ow] = v;
        }
      } else {
      memset(r, 0, sizeof(float) * OW);
      for (int kh = 0; kh < g->KH; kh++) {
        const int ih = oh * g->strideH + kh * g->dilH - g->padH;
        if (ih < 0 || ih >= H) continue;
        const float *xr = x + (size_t)ih * W;
        for (int kw = 0; kw < g->KW; kw++) {
          const int off = kw * g->dilW - g->padW, a = lo[kw], b = hi[kw];
          const float t = tap[kh * g->KW + kw];
          float *restrict ro = r;
          if (g->strideW == 1) {
            const float *restrict xs = xr + off;
            for (int ow = a; ow < b; ow++) ro[ow] += t * xs[ow];
          } else {
            const int sw = g->strideW;
            for (int ow = a; ow < b; ow++) ro[ow] += t * xr[ow * sw + off];
          }
        }
      }
      }
      if (c->relu) {
        const float slope = c->slope;
        for (int ow = 0; ow < OW; ow++) r[ow] = pg_act(r[ow] + sh, 1, slope);
      } else for (int ow = 0; ow < OW; ow++) r[ow] += sh;
    }
  }
  return NULL;
}

// Winograd forward (F(4x4, 3x3) or F(2x2, 5x5)). With as many images as threads, each thread
// takes whole images, several at a time where their tiles are few (WG_BATCH_TILES), so that the
// 36 products are wide enough. An image left over (a batch of one on two threads) runs in three
// phases: the input transform split by channels, the 36 products by points, the output transform
// by output channels.
typedef struct {
  const WgShape *s;
  const float *x, *U;
  float *V, *M, *y, *work;
  const PgEpilogue *e;
  int a0, a1;
} WgPart;

static void *wg_input_part(void *arg) {
  WgPart *q = (WgPart *)arg;
  winograd_input(q->s, q->x, 0, 1, q->a0, q->a1, q->V);
  return NULL;
}

static void *wg_product_part(void *arg) {
  WgPart *q = (WgPart *)arg;
  const WgShape *s = q->s;
  const int P = s->TH * s->TW;
  const size_t per = packed_a_floats(s->O, s->C);
  for (int k = q->a0; k < q->a1; k++)
    packed_gemm(q->U + k * per, s->O, s->C, q->V + (size_t)k * s->C * P, P, q->M + (size_t)k * s->O * P, P, 0, s->O, 0, P, NULL, q->work);
  return NULL;
}

static void *wg_output_part(void *arg) {
  WgPart *q = (WgPart *)arg;
  winograd_output(q->s, q->M, 1, 0, q->a0, q->a1, q->y, q->e);
  return NULL;
}

// Tiles a thread's products cover at least, where images are few-tiled (LeNet's conv2: 16 per
// image, four images at a time): fewer leave the products narrow, more spill the transformed
// tiles and products out of the cache.
#define WG_BATCH_TILES 64

typedef struct {
  const Infer *c;
  const float *U;
  const WgShape *s;
  Scratch *scratch;
  int n0, n1, batch;
  int failed;
} WgImages;

// The images [n0, n1) on this thread, `batch` at a time: their tiles side by side in V and M.
static void *wg_images(void *arg) {
  WgImages *q = (WgImages *)arg;
  const Infer *c = q->c;
  const Geometry *g = &c->g;
  WgShape s = *q->s;
  const int P = s.TH * s.TW;
  s.ld = q->batch * P;
  Scratch *sc = q->scratch;
  if (!grow(&sc->col, &sc->colCap, (size_t)WG_POINTS * s.C * s.ld) || !grow(&sc->acc, &sc->accCap, (size_t)WG_POINTS * s.O * s.ld) ||
      !grow(&sc->buf, &sc->bufCap, (size_t)PG_KC * PG_NC)) {
    q->failed = 1;
    return NULL;
  }
  const size_t imgIn = c->xStride ? c->xStride : (size_t)g->C * g->H * g->W, imgOut = c->yStride ? c->yStride : (size_t)g->O * g->OH * g->OW;
  const size_t per = packed_a_floats(s.O, s.C);
  for (int n = q->n0; n < q->n1; n += q->batch) {
    const int nb = q->n1 - n < q->batch ? q->n1 - n : q->batch;
    // The batch's tiles side by side, so that each transform runs over up to WG_BLOCK of them.
    winograd_input(&s, c->x + (size_t)n * imgIn, imgIn, nb, 0, s.C, sc->col);
    for (int k = 0; k < WG_POINTS; k++)
      packed_gemm(q->U + k * per, s.O, s.C, sc->col + (size_t)k * s.C * s.ld, s.ld, sc->acc + (size_t)k * s.O * s.ld, s.ld,
                  0, s.O, 0, nb * P, NULL, sc->buf);
    const size_t at = (size_t)n * imgOut;
    const PgEpilogue e = {
      c->scale, c->shift, c->relu, c->slope, c->z ? c->other + at : NULL, c->z ? c->z + at : NULL,
      c->convFirst, c->sumRelu, c->c0, c->c1, c->sumSlope,
    };
    winograd_output(&s, sc->acc, nb, imgOut, 0, s.O, c->y + at, &e);
  }
  return NULL;
}

static int run_winograd(Instance *in, const Infer *c, const float *U, int num, int T) {
  const Geometry *g = &c->g;
  const int step = 7 - g->KH;
  WgShape s = { g->C, g->H, g->W, g->padH, g->padW, g->O, g->OH, g->OW, (g->OH + step - 1) / step, (g->OW + step - 1) / step, g->KH, 0 };
  const int P = s.TH * s.TW;
  s.ld = P;
  const int whole = T > 1 ? num - num % T : num;
  if (whole > 0) {
    const int W = T > 1 ? T : 1, per = whole / W;
    int batch = (WG_BATCH_TILES + P - 1) / P;
    if (batch > per) batch = per;
    if (batch < 1) batch = 1;
    WgImages parts[MAX_THREADS];
    for (int t = 0; t < W; t++)
      parts[t] = (WgImages){ c, U, &s, &in->slots[t], part_bound(whole, t, W), part_bound(whole, t + 1, W), batch, 0 };
    run_parts(W, wg_images, parts, sizeof(WgImages));
    for (int t = 0; t < W; t++) if (parts[t].failed) return 0;
    if (whole == num) return 1;
  }
  Scratch *s0 = &in->slots[0];
  if (!grow(&s0->col, &s0->colCap, (size_t)WG_POINTS * s.C * P) || !grow(&s0->acc, &s0->accCap, (size_t)WG_POINTS * s.O * P)) return 0;
  for (int t = 0; t < T; t++)
    if (!grow(&in->slots[t].buf, &in->slots[t].bufCap, (size_t)PG_KC * PG_NC)) return 0;
  WgPart parts[MAX_THREADS];
  const size_t imgIn = c->xStride ? c->xStride : (size_t)g->C * g->H * g->W, imgOut = c->yStride ? c->yStride : (size_t)g->O * g->OH * g->OW;
  for (int n = whole; n < num; n++) {
    const PgEpilogue e = {
      c->scale, c->shift, c->relu, c->slope, c->z ? c->other + n * imgOut : NULL, c->z ? c->z + n * imgOut : NULL,
      c->convFirst, c->sumRelu, c->c0, c->c1, c->sumSlope,
    };
    const int tc = T < s.C ? T : s.C, tp = T < WG_POINTS ? T : WG_POINTS, to = T < s.O ? T : s.O;
    for (int t = 0; t < T; t++)
      parts[t] = (WgPart){ &s, c->x + n * imgIn, U, s0->col, s0->acc, c->y + n * imgOut, in->slots[t].buf, &e, 0, 0 };
    for (int t = 0; t < tc; t++) { parts[t].a0 = part_bound(s.C, t, tc); parts[t].a1 = part_bound(s.C, t + 1, tc); }
    run_parts(tc, wg_input_part, parts, sizeof(WgPart));
    for (int t = 0; t < tp; t++) { parts[t].a0 = WG_POINTS * t / tp; parts[t].a1 = WG_POINTS * (t + 1) / tp; }
    run_parts(tp, wg_product_part, parts, sizeof(WgPart));
    for (int t = 0; t < to; t++) { parts[t].a0 = part_bound(s.O, t, to); parts[t].a1 = part_bound(s.O, t + 1, to); }
    run_parts(to, wg_output_part, parts, sizeof(WgPart));
  }
  return 1;
}

// Runs the forward over num images on T threads: whole images per thread while there are at
// least T left, then each remaining image split into blocks (by output channels in 8-row strips
// where they outnumber the positions, else by 16-column strips of positions), its unfolding split
// by channels. Returns 0 where a column buffer cannot be allocated.
static int run_infer(Instance *in, const Infer *c, int num, int T) {
  const Geometry *g = &c->g;
  const int S = g->OH * g->OW;
  InferPart parts[MAX_THREADS];
  const int whole = T > 1 ? num - num % T : num;
  if (whole > 0) {
    const int P = T > 1 ? T : 1;
    for (int t = 0; t < P; t++)
      parts[t] = (InferPart){ .c = c, .scratch = &in->slots[t], .n0 = part_bound(whole, t, P), .n1 = part_bound(whole, t + 1, P) };
    run_parts(P, infer_images, parts, sizeof(InferPart));
    for (int t = 0; t < P; t++) if (parts[t].failed) return 0;
  }
  // Packed weights split by rows only in whole panels, which groups would not keep aligned.
  const int byRows = g->O >= S && (!c->packed || g->G == 1);
  const int unit = byRows ? (c->packed ? 2 * PG_MR : 8) : 16, extent = byRows ? g->O : S, strips = (extent + unit - 1) / unit;
  if (c->packed)
    for (int t = 0; t < T; t++)
      if (!grow(&in->slots[t].buf, &in->slots[t].bufCap, (size_t)PG_KC * PG_NC)) return 0;
  int B = T < strips ? T : strips;
  if (B < 1) B = 1;
  for (int n = whole; n < num; n++) {
    const float *col = c->x + (size_t)n * g->C * g->H * g->W;
    if (packs_image(c)) col = NULL;
    else if (!unfolds_to_itself(g)) {
      Scratch *s = &in->slots[0];
      if (!grow(&s->col, &s->colCap, (size_t)g->C * g->KH * g->KW * S)) return 0;
      const int U = T < g->C ? T : g->C;
      for (int t = 0; t < U; t++)
        parts[t] = (InferPart){ .c = c, .col = s->col, .n0 = n, .u0 = (int)((long long)g->C * t / U), .u1 = (int)((long long)g->C * (t + 1) / U) };
      run_parts(U, infer_unfold, parts, sizeof(InferPart));
      col = s->col;
    }
    for (int t = 0; t < B; t++) {
      const int s0 = part_bound(strips, t, B) * unit, s1r = part_bound(strips, t + 1, B) * unit;
      const int s1 = s1r < extent ? s1r : extent;
      parts[t] = (InferPart){ .c = c, .scratch = &in->slots[t], .col = col, .n0 = n, .o0 = byRows ? s0 : 0, .o1 = byRows ? s1 : g->O, .j0 = byRows ? 0 : s0, .j1 = byRows ? S : s1 };
    }
    run_parts(B, infer_blocks, parts, sizeof(InferPart));
  }
  return 1;
}

// ---- N-API plumbing ----

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, "CAFFE_TS_NATIVE", msg);
  return NULL;
}

// A thread count asked for, kept within [1, MAX_THREADS] and to at most one thread per item.
static int thread_count(int T, long items) {
  if (T > MAX_THREADS) T = MAX_THREADS;
  if (T > items) T = (int)items;
  return T < 1 ? 1 : T;
}

// The call's first n arguments into a; 0, with "<what>: expected <n> arguments" thrown, where
// fewer came.
static int call_args(napi_env env, napi_callback_info info, size_t n, napi_value *a, const char *what) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  if (argc >= n) return 1;
  char msg[128];
  snprintf(msg, sizeof msg, "%s: expected %zu arguments", what, n);
  throw_error(env, msg);
  return 0;
}

// A Float32Array's data pointer and length, or NULL for null/undefined (*ok = 0 on a wrong type).
static float *f32(napi_env env, napi_value v, size_t *len, int *ok) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  *len = 0;
  if (t == napi_null || t == napi_undefined) return NULL;
  bool isTa = false;
  napi_is_typedarray(env, v, &isTa);
  if (!isTa) { *ok = 0; return NULL; }
  napi_typedarray_type type;
  void *data = NULL;
  napi_get_typedarray_info(env, v, &type, len, &data, NULL, NULL);
  if (type != napi_float32_array) { *ok = 0; return NULL; }
  return (float *)data;
}

// An Int32Array argument (null or undefined: *out NULL, returns 1); returns 0 for anything else.
static int i32arr(napi_env env, napi_value v, size_t *len, int *ok, int **out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  *len = 0;
  *out = NULL;
  if (t == napi_null || t == napi_undefined) return 1;
  bool isTa = false;
  napi_is_typedarray(env, v, &isTa);
  napi_typedarray_type type = napi_float32_array;
  void *data = NULL;
  if (isTa) napi_get_typedarray_info(env, v, &type, len, &data, NULL, NULL);
  if (!isTa || type != napi_int32_array) { *ok = 0; return 0; }
  *out = (int *)data;
  return 1;
}

static int i32arg(napi_env env, napi_value v, int *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static Instance *instance(napi_env env) {
  Instance *in = NULL;
  napi_get_instance_data(env, (void **)&in);
  return in;
}

// Throws "<fn>: <msg>"; returns 0 for the caller to pass on.
static int fail_arg(napi_env env, const char *fn, const char *msg) {
  char text[256];
  snprintf(text, sizeof text, "%s: %s", fn, msg);
  napi_throw_error(env, "CAFFE_TS_NATIVE", text);
  return 0;
}

// fail_arg for a binding's return.
static napi_value arg_error(napi_env env, const char *fn, const char *msg) {
  fail_arg(env, fn, msg);
  return NULL;
}

// A geometry Int32Array[15] into g; 0 (thrown) where v is not one.
static int geometry_arg(napi_env env, napi_value v, const char *fn, Geometry *g) {
  bool isTa = false;
  napi_is_typedarray(env, v, &isTa);
  napi_typedarray_type type = napi_int8_array;
  size_t len = 0;
  void *data = NULL;
  if (isTa) napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL);
  if (!isTa || type != napi_int32_array || len < 15) return fail_arg(env, fn, "geometry must be an Int32Array of 15");
  memcpy(g, data, sizeof(Geometry));
  return 1;
}

// The arguments the inference calls share: geometry, num, threads, x, weights, scale, shift,
// relu (a ReLU slope or NaN for none), y; with `sum`, then other, z, convFirst, c0, c1, sumRelu
// (other and z null without a sum). Fills c (the weights into c->w), *num and *T (clamped to
// [1, MAX_THREADS]); 0 (thrown) where an argument has the wrong type.
static int infer_args(napi_env env, napi_value *a, const char *fn, int sum, Infer *c, int *num, int *T) {
  memset(c, 0, sizeof *c);
  if (!geometry_arg(env, a[0], fn, &c->g)) return 0;
  double relu, c0 = 1, c1 = 1, sumRelu = NAN;
  bool convFirst = true;
  if (!i32arg(env, a[1], num) || !i32arg(env, a[2], T) || napi_get_value_double(env, a[7], &relu) != napi_ok ||
      (sum && (napi_get_value_double(env, a[12], &c0) != napi_ok || napi_get_value_double(env, a[13], &c1) != napi_ok ||
               napi_get_value_double(env, a[14], &sumRelu) != napi_ok || napi_get_value_bool(env, a[11], &convFirst) != napi_ok)))
    return fail_arg(env, fn, "num and threads must be integers, relu, c0, c1, sumRelu numbers, convFirst a boolean");
  int ok = 1;
  size_t l;
  c->x = f32(env, a[3], &l, &ok);
  c->w = f32(env, a[4], &l, &ok);
  c->scale = f32(env, a[5], &l, &ok);
  c->shift = f32(env, a[6], &l, &ok);
  c->y = f32(env, a[8], &l, &ok);
  if (sum) {
    c->other = f32(env, a[9], &l, &ok);
    c->z = f32(env, a[10], &l, &ok);
  }
  if (!ok || !c->x || !c->w || !c->y || (!c->z != !c->other))
    return fail_arg(env, fn, "x, weights, y must be Float32Arrays, scale, shift, other, z Float32Arrays or null");
  if (*num < 0) return fail_arg(env, fn, "num must not be negative");
  c->relu = relu == relu;
  c->slope = c->relu ? (float)relu : 0.0f;
  c->sumRelu = sumRelu == sumRelu;
  c->sumSlope = c->sumRelu ? (float)sumRelu : 0.0f;
  c->convFirst = convFirst;
  c->c0 = (float)c0;
  c->c1 = (float)c1;
  if (*T < 1) *T = 1;
  if (*T > MAX_THREADS) *T = MAX_THREADS;
  return 1;
}

// sgemm(transA, transB, M, N, K, alpha, A, B, beta, C, threads): row-major C = alpha op(A) op(B) + beta C.
static napi_value js_sgemm(napi_env env, napi_callback_info info) {
  current = instance(env);
  napi_value a[11];
  if (!call_args(env, info, 11, a, "sgemm")) return NULL;
  bool ta = false, tb = false;
  napi_get_value_bool(env, a[0], &ta);
  napi_get_value_bool(env, a[1], &tb);
  int M, N, K, T;
  double alpha, beta;
  if (!i32arg(env, a[2], &M) || !i32arg(env, a[3], &N) || !i32arg(env, a[4], &K) || !i32arg(env, a[10], &T) ||
      napi_get_value_double(env, a[5], &alpha) != napi_ok || napi_get_value_double(env, a[8], &beta) != napi_ok)
    return throw_error(env, "sgemm: M, N, K, threads must be integers and alpha, beta numbers");
  int ok = 1;
  size_t la, lb, lc;
  float *A = f32(env, a[6], &la, &ok), *B = f32(env, a[7], &lb, &ok), *C = f32(env, a[9], &lc, &ok);
  if (!ok || !A || !B || !C) return throw_error(env, "sgemm: A, B and C must be Float32Arrays");
  if (M < 0 || N < 0 || K < 0 || la < (size_t)M * K || lb < (size_t)K * N || lc < (size_t)M * N)
    return throw_error(env, "sgemm: an array is shorter than its matrix");
  if (M == 0 || N == 0) return NULL;
  T = thread_count(T, MAX_THREADS);
  openblas_set_num_threads(1);
  if (M <= SGEMV_MAX_ROWS && !ta) {
    // A few rows (an InnerProduct at small batch): each row is a matrix-vector product, which
    // streams op(B) once instead of packing all of it (the weights) for a GEMM.
    // C[i, :] = alpha op(B)^T A[i, :] + beta C[i, :]; op(B) is K x N.
    for (int i = 0; i < M; i++) par_sgemv(T, tb, N, K, (float)alpha, B, tb ? K : N, A + (size_t)i * K, (float)beta, C + (size_t)i * N);
    return NULL;
  }
  par_sgemm(T, ta, tb, M, N, K, (float)alpha, A, ta ? M : K, B, tb ? K : N, (float)beta, C, N);
  return NULL;
}

// conv2d(geometry Int32Array[15], num, chunk, threads, colIn, gemmIn, weights, bias, biasDiff,
// weightDiff, gemmOut, colOut). The caller (conv2d.ts) has checked shapes and lengths.
static napi_value js_conv2d(napi_env env, napi_callback_info info) {
  napi_value a[12];
  if (!call_args(env, info, 12, a, "conv2d")) return NULL;
  Geometry g;
  if (!geometry_arg(env, a[0], "conv2d", &g)) return NULL;
  int num, chunk, T;
  if (!i32arg(env, a[1], &num) || !i32arg(env, a[2], &chunk) || !i32arg(env, a[3], &T))
    return throw_error(env, "conv2d: num, chunk and threads must be integers");
  int ok = 1;
  size_t l;
  Pass p;
  p.colIn = f32(env, a[4], &l, &ok);
  p.gemmIn = f32(env, a[5], &l, &ok);
  p.weights = f32(env, a[6], &l, &ok);
  p.bias = f32(env, a[7], &l, &ok);
  p.biasDiff = f32(env, a[8], &l, &ok);
  p.weightDiff = f32(env, a[9], &l, &ok);
  p.gemmOut = f32(env, a[10], &l, &ok);
  p.colOut = f32(env, a[11], &l, &ok);
  if (!ok || !p.weights) return throw_error(env, "conv2d: the pass's arrays must be Float32Arrays or null");
  if (num < 1 || chunk < 1) return throw_error(env, "conv2d: num and chunk must be positive");
  Instance *in = current = instance(env);
  T = thread_count(T, MAX_THREADS);
  // Threads split the images; where there are fewer images than threads (a batch of one at
  // inference), one range of images runs and each product is split instead.
  int gemmThreads = 1;
  if (T > num) {
    gemmThreads = T;
    T = 1;
  }
  const int wlen = g.O * (g.C / g.G) * g.KH * g.KW;
  // One thread per product: the weights packed once for all the pass's products (the products
  // split over threads stay with sgemm).
  p.packedW = p.packedWt = NULL;
  if (gemmThreads == 1 && (p.gemmOut || p.colOut)) {
    const int m = g.O / g.G, K = wlen / g.O;
    const size_t fw = p.gemmOut ? (size_t)g.G * packed_a_floats(m, K) : 0, bw = p.colOut ? (size_t)g.G * packed_a_floats(K, m) : 0;
    float *wt = NULL;
    if (grow(&in->packed, &in->packedCap, fw + bw) && (!bw || (wt = (float *)malloc(sizeof(float) * (size_t)m * K)))) {
      for (int gi = 0; gi < g.G; gi++) {
        const float *wg = p.weights + (size_t)gi * m * K;
        if (fw) pack_a(wg, m, K, K, in->packed + gi * packed_a_floats(m, K));
        if (bw) {
          for (int o = 0; o < m; o++)
            for (int k = 0; k < K; k++) wt[(size_t)k * m + o] = wg[(size_t)o * K + k];
          pack_a(wt, K, m, m, in->packed + fw + gi * packed_a_floats(K, m));
        }
      }
      free(wt);
      if (fw) p.packedW = in->packed;
      if (bw) p.packedWt = in->packed + fw;
    }
    for (int t = 0; t < T && (p.packedW || p.packedWt); t++)
      if (!grow(&in->slots[t].work, &in->slots[t].workCap, (size_t)PG_KC * PG_NC)) p.packedW = p.packedWt = NULL;
  }
  Job jobs[MAX_THREADS];
  for (int t = 0; t < T; t++) {
    Job *j = &jobs[t];
    j->g = &g; j->p = &p; j->scratch = &in->slots[t]; j->chunk = chunk; j->failed = 0; j->gemmThreads = gemmThreads;
    j->n0 = part_bound(num, t, T);
    j->n1 = part_bound(num, t + 1, T);
    j->weightDiff = p.weightDiff;
    j->biasDiff = p.biasDiff;
    if (t > 0) {
      // Threads past the first sum into scratch: [weightDiff | biasDiff].
      Scratch *s = &in->slots[t];
      size_t need = (p.weightDiff ? wlen : 0) + (p.biasDiff ? g.O : 0);
      if (need) {
        if (!grow(&s->acc, &s->accCap, need)) return throw_error(env, "conv2d: out of memory");
        memset(s->acc, 0, need * sizeof(float));
        j->weightDiff = p.weightDiff ? s->acc : NULL;
        j->biasDiff = p.biasDiff ? s->acc + (p.weightDiff ? wlen : 0) : NULL;
      }
    }
  }
  openblas_set_num_threads(1);
  run_parts(T, run_thread, jobs, sizeof(Job));
  int failed = 0;
  for (int t = 0; t < T; t++) failed |= jobs[t].failed;
  if (failed) return throw_error(env, "conv2d: out of memory for the column buffers");
  for (int t = 1; t < T; t++) {
    if (p.weightDiff) for (int i = 0; i < wlen; i++) p.weightDiff[i] += jobs[t].weightDiff[i];
    if (p.biasDiff) for (int o = 0; o < g.O; o++) p.biasDiff[o] += jobs[t].biasDiff[o];
  }
  return NULL;
}

// conv2dInfer(geometry Int32Array[15], num, threads, x, weights, scale, shift, relu, y, other, z,
// convFirst, c0, c1, sumRelu, packed): relu and sumRelu a ReLU slope or NaN for none; other and z
// null without a sum; packed the weights as packWeights left them, or null (sgemm). The caller
// (infer.ts) has checked shapes and lengths.
static napi_value js_conv2d_infer(napi_env env, napi_callback_info info) {
  napi_value a[16];
  if (!call_args(env, info, 16, a, "conv2dInfer")) return NULL;
  Infer c;
  int num, T, ok = 1;
  if (!infer_args(env, a, "conv2dInfer", 1, &c, &num, &T)) return NULL;
  size_t l;
  c.packed = f32(env, a[15], &l, &ok);
  if (!ok) return throw_error(env, "conv2dInfer: packed must be a Float32Array or null");
  Instance *in = current = instance(env);
  openblas_set_num_threads(1);
  if (!run_infer(in, &c, num, T)) return throw_error(env, "conv2dInfer: out of memory for the column buffers");
  return NULL;
}

// depthwiseInfer(geometry Int32Array[15], num, threads, x, weights, scale, shift, relu, y): relu
// a ReLU slope or NaN for none. The caller (infer.ts) has checked shapes and lengths.
static napi_value js_depthwise_infer(napi_env env, napi_callback_info info) {
  napi_value a[9];
  if (!call_args(env, info, 9, a, "depthwiseInfer")) return NULL;
  Infer c;
  int num, T;
  if (!infer_args(env, a, "depthwiseInfer", 0, &c, &num, &T)) return NULL;
  if (c.g.G != c.g.C || c.g.O != c.g.C) return throw_error(env, "depthwiseInfer: group, channels and outputs must be equal");
  Instance *in = current = instance(env);
  if (T > c.g.C) T = c.g.C;
  DepthPart parts[MAX_THREADS];
  // Each thread's padded copies, or for the AVX2 kernel (which reads each plane in place) a row
  // of zeros.
  const int padded = depthwise_padded_applies(&c.g);
  const size_t padFloats = depthwise3x3_wide_applies(c.g.KH, c.g.KW, c.g.strideH, c.g.strideW, c.g.dilH, c.g.dilW)
                               ? (size_t)c.g.W : depthwise_pad_floats(&c.g);
  for (int t = 0; padded && t < T; t++)
    if (!grow(&in->slots[t].col, &in->slots[t].colCap, padFloats)) return throw_error(env, "depthwiseInfer: out of memory");
  for (int n = 0; n < num; n++) {
    for (int t = 0; t < T; t++)
      parts[t] = (DepthPart){ &c, n, part_bound(c.g.C, t, T), part_bound(c.g.C, t + 1, T), padded ? in->slots[t].col : NULL };
    run_parts(T, depthwise_part, parts, sizeof(DepthPart));
  }
  return NULL;
}

// packWeights(weights, O, K, G, out): packs each group's m = O/G rows of K weights into out
// (G * packed_a_floats(m, K) floats, group after group) for conv2dInfer; returns the floats.
static napi_value js_pack_weights(napi_env env, napi_callback_info info) {
  napi_value a[5];
  if (!call_args(env, info, 5, a, "packWeights")) return NULL;
  int O, K, G;
  if (!i32arg(env, a[1], &O) || !i32arg(env, a[2], &K) || !i32arg(env, a[3], &G) || O < 1 || K < 1 || G < 1 || O % G)
    return throw_error(env, "packWeights: O, K, G must be positive integers, O a multiple of G");
  int ok = 1;
  size_t lw, lo;
  const float *w = f32(env, a[0], &lw, &ok);
  float *out = f32(env, a[4], &lo, &ok);
  const int m = O / G;
  const size_t per = packed_a_floats(m, K);
  if (!ok || !w || !out || lw < (size_t)O * K || lo < per * G) return throw_error(env, "packWeights: weights needs O*K floats and out the packed size");
  for (int gi = 0; gi < G; gi++) pack_a(w + (size_t)gi * m * K, m, K, K, out + gi * per);
  napi_value v;
  napi_create_double(env, (double)(per * G), &v);
  return v;
}

// packedFloats(O, K, G): the floats packWeights writes.
static napi_value js_packed_floats(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  int O, K, G;
  if (argc < 3 || !i32arg(env, a[0], &O) || !i32arg(env, a[1], &K) || !i32arg(env, a[2], &G) || O < 1 || K < 1 || G < 1 || O % G)
    return throw_error(env, "packedFloats: O, K, G must be positive integers, O a multiple of G");
  napi_value v;
  napi_create_double(env, (double)(packed_a_floats(O / G, K) * G), &v);
  return v;
}

// winogradInfer(geometry Int32Array[15], num, threads, x, transformed, scale, shift, relu, y, other,
// z, convFirst, c0, c1, sumRelu): conv2dInfer's contract for a 3x3 or 5x5, stride-1, undilated
// convolution, on weights packWinograd transformed (per group). The caller (infer.ts) has checked
// shapes and lengths.
static napi_value js_winograd_infer(napi_env env, napi_callback_info info) {
  napi_value a[15];
  if (!call_args(env, info, 15, a, "winogradInfer")) return NULL;
  Infer c;
  int num, T, ok = 1;
  if (!infer_args(env, a, "winogradInfer", 1, &c, &num, &T)) return NULL;
  const Geometry *g = &c.g;
  if ((g->KH != 3 && g->KH != 5) || g->KW != g->KH || g->strideH != 1 || g->strideW != 1 || g->dilH != 1 || g->dilW != 1)
    return throw_error(env, "winogradInfer: the convolution must be 3x3 or 5x5, stride 1, undilated");
  const int G = g->G, Cg = g->C / G, m = g->O / G;
  size_t lu;
  const float *U = f32(env, a[4], &lu, &ok);
  const size_t per = winograd_packed_floats(m, Cg);
  if (lu < (size_t)G * per) return throw_error(env, "winogradInfer: the transformed weights are shorter than packWinograd writes");
  Instance *in = current = instance(env);
  // Each group as a convolution of its own, over its share of the channels of every image.
  const size_t S = (size_t)g->OH * g->OW;
  for (int gi = 0; gi < G; gi++) {
    Infer cg = c;
    cg.g.C = Cg;
    cg.g.O = m;
    cg.g.G = 1;
    cg.x = c.x + (size_t)gi * Cg * g->H * g->W;
    cg.y = c.y + (size_t)gi * m * S;
    cg.scale = c.scale ? c.scale + (size_t)gi * m : NULL;
    cg.shift = c.shift ? c.shift + (size_t)gi * m : NULL;
    cg.other = c.other ? c.other + (size_t)gi * m * S : NULL;
    cg.z = c.z ? c.z + (size_t)gi * m * S : NULL;
    cg.xStride = (size_t)g->C * g->H * g->W;
    cg.yStride = (size_t)g->O * S;
    if (!run_winograd(in, &cg, U + gi * per, num, T)) return throw_error(env, "winogradInfer: out of memory for the transformed tiles");
  }
  return NULL;
}

// packWinograd(weights, O, C, out, R, G): the weights of O x (C / G) R x R filters (R 3 or 5) in G
// groups, each group's transformed and packed for winogradInfer one after the other; returns the
// floats written. winogradFloats(O, C): how many that is for one group of O x C.
static napi_value js_pack_winograd(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value a[6];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  int O, C, R, G;
  if (argc < 6 || !i32arg(env, a[1], &O) || !i32arg(env, a[2], &C) || !i32arg(env, a[4], &R) || !i32arg(env, a[5], &G) ||
      O < 1 || C < 1 || (R != 3 && R != 5) || G < 1 || O % G || C % G)
    return throw_error(env, "packWinograd: O and C must be positive multiples of G, and R 3 or 5");
  int ok = 1;
  size_t lw, lo;
  const float *w = f32(env, a[0], &lw, &ok);
  float *out = f32(env, a[3], &lo, &ok);
  const int m = O / G, Cg = C / G;
  const size_t per = winograd_packed_floats(m, Cg), need = (size_t)G * per;
  if (!ok || !w || !out || lw < (size_t)O * Cg * R * R || lo < need)
    return throw_error(env, "packWinograd: weights needs O*(C/G)*R*R floats and out G*winogradFloats(O/G, C/G)");
  for (int gi = 0; gi < G; gi++)
    if (!winograd_pack_weights(w + (size_t)gi * m * Cg * R * R, m, Cg, R, out + gi * per)) return throw_error(env, "packWinograd: out of memory");
  napi_value v;
  napi_create_double(env, (double)need, &v);
  return v;
}

static napi_value js_winograd_floats(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  int O, C;
  if (argc < 2 || !i32arg(env, a[0], &O) || !i32arg(env, a[1], &C) || O < 1 || C < 1)
    return throw_error(env, "winogradFloats: O and C must be positive integers");
  napi_value v;
  napi_create_double(env, (double)winograd_packed_floats(O, C), &v);
  return v;
}

// maxPool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y, threads[, argmax]): MAX pooling
// of planes split over the threads; values only, or with argmax (an Int32Array as long as y) the
// training forward (maxpool_argmax_part). The caller has checked lengths and windows.
static napi_value js_max_pool(napi_env env, napi_callback_info info) {
  size_t argc = 15;
  napi_value a[15];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  if (argc < 14) return throw_error(env, "maxPool: expected 14 or 15 arguments");
  int v[11], T;
  for (int i = 0; i < 11; i++)
    if (!i32arg(env, a[i], &v[i])) return throw_error(env, "maxPool: the sizes must be integers");
  if (!i32arg(env, a[13], &T)) return throw_error(env, "maxPool: threads must be an integer");
  int ok = 1;
  size_t lx, ly, li = 0;
  const float *x = f32(env, a[11], &lx, &ok);
  float *y = f32(env, a[12], &ly, &ok);
  int *idx = NULL;
  if (argc > 14 && !i32arr(env, a[14], &li, &ok, &idx)) return throw_error(env, "maxPool: argmax must be an Int32Array or null");
  const int planes = v[0];
  if (!ok || !x || !y || planes < 0 || v[1] < 1 || v[2] < 1 || v[3] < 1 || v[4] < 1 || lx < (size_t)planes * v[1] * v[2] || ly < (size_t)planes * v[3] * v[4])
    return throw_error(env, "maxPool: x and y must be Float32Arrays of planes * H * W and planes * PH * PW");
  if (idx && li < (size_t)planes * v[3] * v[4]) return throw_error(env, "maxPool: argmax must be an Int32Array of planes * PH * PW");
  Instance *in = current = instance(env);
  T = thread_count(T, planes);
  if (idx) {
    ArgmaxPart parts[MAX_THREADS];
    for (int t = 0; t < T; t++)
      parts[t] = (ArgmaxPart){ x, y, idx, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10],
                               part_bound(planes, t, T), part_bound(planes, t + 1, T) };
    run_parts(T, maxpool_argmax_part, parts, sizeof(ArgmaxPart));
    return NULL;
  }
  PoolPart parts[MAX_THREADS];
  for (int t = 0; t < T; t++) {
    Scratch *s = &in->slots[t];
    if (!grow(&s->buf, &s->bufCap, maxpool_row_floats(v[2], v[4], v[6], v[8], v[10]))) return throw_error(env, "maxPool: out of memory");
    parts[t] = (PoolPart){ x, y, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10],
                           part_bound(planes, t, T), part_bound(planes, t + 1, T), s->buf };
  }
  run_parts(T, maxpool_part, parts, sizeof(PoolPart));
  return NULL;
}

// aveGlobal(planes, size, divisor, x, y, threads): global AVE pooling with WasmInfer.aveGlobal's
// contract (each plane's sum in order, then divided), planes split over the threads.
static napi_value js_ave_global(napi_env env, napi_callback_info info) {
  napi_value a[6];
  if (!call_args(env, info, 6, a, "aveGlobal")) return NULL;
  int planes, S, T;
  double div;
  if (!i32arg(env, a[0], &planes) || !i32arg(env, a[1], &S) || !i32arg(env, a[5], &T) || napi_get_value_double(env, a[2], &div) != napi_ok)
    return throw_error(env, "aveGlobal: planes, size and threads must be integers, divisor a number");
  if (planes < 1 || S < 1) return throw_error(env, "aveGlobal: planes and size must be positive");
  int ok = 1;
  size_t lx, ly;
  const float *x = f32(env, a[3], &lx, &ok);
  float *y = f32(env, a[4], &ly, &ok);
  if (!ok || !x || !y || lx < (size_t)planes * S || ly < (size_t)planes) return throw_error(env, "aveGlobal: x and y must be Float32Arrays of planes * size and planes");
  current = instance(env);
  T = thread_count(T, planes);
  AvePart parts[MAX_THREADS];
  for (int t = 0; t < T; t++)
    parts[t] = (AvePart){ x, y, S, (float)div, part_bound(planes, t, T), part_bound(planes, t + 1, T) };
  run_parts(T, ave_global_part, parts, sizeof(AvePart));
  return NULL;
}

// sgdStep(w, g, h, rate, momentum, decay, threads): SGDSolver's fused step of a float32 param
// (WasmTrain.sgdStep's contract: the same bits), the elements split over the threads. Returns
// whether every new weight is finite. The caller (conv2d.ts) has checked the lengths.
static napi_value js_sgd_step(napi_env env, napi_callback_info info) {
  napi_value a[7];
  if (!call_args(env, info, 7, a, "sgdStep")) return NULL;
  double rate, momentum, decay;
  int T;
  if (napi_get_value_double(env, a[3], &rate) != napi_ok || napi_get_value_double(env, a[4], &momentum) != napi_ok ||
      napi_get_value_double(env, a[5], &decay) != napi_ok || !i32arg(env, a[6], &T))
    return throw_error(env, "sgdStep: rate, momentum and decay must be numbers, threads an integer");
  int ok = 1;
  size_t lw, lg, lh;
  float *w = f32(env, a[0], &lw, &ok), *g = f32(env, a[1], &lg, &ok), *h = f32(env, a[2], &lh, &ok);
  if (!ok || !w || !g || !h || lg != lw || lh != lw) return throw_error(env, "sgdStep: w, g and h must be Float32Arrays of one length");
  if (lw > INT_MAX) return throw_error(env, "sgdStep: at most 2^31 - 1 elements");
  current = instance(env);
  T = thread_count(T, (long)lw);
  SgdPart parts[MAX_THREADS];
  for (int t = 0; t < T; t++)
    parts[t] = (SgdPart){ w, g, h, decay, rate, momentum, decay != 0, part_bound((int)lw, t, T), part_bound((int)lw, t + 1, T), 0 };
  run_parts(T, sgd_step_part, parts, sizeof(SgdPart));
  int bad = 0;
  for (int t = 0; t < T; t++) bad |= parts[t].bad;
  napi_value out;
  napi_get_boolean(env, !bad, &out);
  return out;
}

// lrnAcross(x, s, y, num, C, P, size, k, alphaOverSize, beta, threads): LRN across channels with
// WasmInfer.lrnAcross's contract (beta 0.75, 0.5 or 1; size odd), s null or written; planes
// split over the threads.
static napi_value js_lrn_across(napi_env env, napi_callback_info info) {
  napi_value a[11];
  if (!call_args(env, info, 11, a, "lrnAcross")) return NULL;
  int num, C, P, size, T;
  double k, an, beta;
  if (!i32arg(env, a[3], &num) || !i32arg(env, a[4], &C) || !i32arg(env, a[5], &P) || !i32arg(env, a[6], &size) || !i32arg(env, a[10], &T) ||
      napi_get_value_double(env, a[7], &k) != napi_ok || napi_get_value_double(env, a[8], &an) != napi_ok || napi_get_value_double(env, a[9], &beta) != napi_ok)
    return throw_error(env, "lrnAcross: num, C, P, size and threads must be integers, k, alphaOverSize and beta numbers");
  const int mode = beta == 0.75 ? 0 : beta == 0.5 ? 1 : beta == 1 ? 2 : -1;
  if (mode < 0) return throw_error(env, "lrnAcross: beta must be 0.75, 0.5 or 1");
  if (num < 0 || C < 0 || P < 0 || size < 1 || size % 2 == 0) return throw_error(env, "lrnAcross: num, C and P must be non-negative and size a positive odd integer");
  int ok = 1;
  size_t lx, ls = 0, ly;
  const float *x = f32(env, a[0], &lx, &ok);
  float *sv = f32(env, a[1], &ls, &ok), *y = f32(env, a[2], &ly, &ok);
  const size_t n = (size_t)num * C * P;
  if (!ok || !x || !y || lx < n || ly < n || (sv && ls < n)) return throw_error(env, "lrnAcross: x, y (and s unless null) must be Float32Arrays of num * C * P");
  const int planes = num * C;
  if (planes == 0 || P == 0) return NULL;
  Instance *in = current = instance(env);
  T = thread_count(T, planes);
  LrnPart parts[MAX_THREADS];
  for (int t = 0; t < T; t++) {
    Scratch *sc = &in->slots[t];
    if (!grow(&sc->buf, &sc->bufCap, (size_t)P)) return throw_error(env, "lrnAcross: out of memory");
    parts[t] = (LrnPart){ x, sv, y, C, P, (size - 1) / 2, mode, (float)k, (float)an,
                          part_bound(planes, t, T), part_bound(planes, t + 1, T), sc->buf };
  }
  run_parts(T, lrn_part, parts, sizeof(LrnPart));
  return NULL;
}

// avePool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y, threads) and
// aveUnpool(planes, ..., padW, dy, dx, threads): training AVE pooling and its gradient (see
// pool.h), planes split over the threads. Every window must hold a cell of the plane.
static napi_value ave_pool_call(napi_env env, napi_callback_info info, int backward) {
  const char *fn = backward ? "aveUnpool" : "avePool";
  napi_value a[14];
  if (!call_args(env, info, 14, a, fn)) return NULL;
  int v[11], T;
  for (int i = 0; i < 11; i++)
    if (!i32arg(env, a[i], &v[i])) return arg_error(env, fn, "the sizes must be integers");
  if (!i32arg(env, a[13], &T)) return arg_error(env, fn, "threads must be an integer");
  const int planes = v[0], H = v[1], W = v[2], PH = v[3], PW = v[4], KH = v[5], KW = v[6], SH = v[7], SW = v[8], padH = v[9], padW = v[10];
  if (planes < 0 || H < 1 || W < 1 || PH < 1 || PW < 1 || KH < 1 || KW < 1 || SH < 1 || SW < 1 || padH < 0 || padW < 0)
    return arg_error(env, fn, "planes and the pads must be non-negative, the other sizes positive");
  for (int o = 0; o < PH; o++)
    if (o * SH - padH >= H || o * SH - padH + KH <= 0) return arg_error(env, fn, "a window holds no row of the plane");
  for (int o = 0; o < PW; o++)
    if (o * SW - padW >= W || o * SW - padW + KW <= 0) return arg_error(env, fn, "a window holds no column of the plane");
  int ok = 1;
  size_t lin, lout;
  const float *in = f32(env, a[11], &lin, &ok);
  float *out = f32(env, a[12], &lout, &ok);
  const size_t inPlane = (size_t)H * W, outPlane = (size_t)PH * PW;
  if (!ok || !in || !out || lin < planes * (backward ? outPlane : inPlane) || lout < planes * (backward ? inPlane : outPlane))
    return arg_error(env, fn, backward ? "dy and dx must be Float32Arrays of planes * PH * PW and planes * H * W" : "x and y must be Float32Arrays of planes * H * W and planes * PH * PW");
  Instance *inst = current = instance(env);
  T = thread_count(T, planes);
  AvePoolPart parts[MAX_THREADS];
  for (int t = 0; t < T; t++) {
    Scratch *sc = &inst->slots[t];
    const size_t floats = backward ? (size_t)W : ave_pool_row_floats(W, PH, PW, KH, KW, SW, padW);
    if (!grow(&sc->buf, &sc->bufCap, floats)) return throw_error(env, backward ? "aveUnpool: out of memory" : "avePool: out of memory");
    parts[t] = (AvePoolPart){ in, out, H, W, PH, PW, KH, KW, SH, SW, padH, padW, part_bound(planes, t, T), part_bound(planes, t + 1, T), sc->buf };
  }
  run_parts(T, backward ? ave_unpool_part : ave_pool_part, parts, sizeof(AvePoolPart));
  return NULL;
}

static napi_value js_ave_pool(napi_env env, napi_callback_info info) {
  return ave_pool_call(env, info, 0);
}

static napi_value js_ave_unpool(napi_env env, napi_callback_info info) {
  return ave_pool_call(env, info, 1);
}

// maxUnpool(dy, argmax, planes, inPlane, outPlane, dx, threads): the MAX pooling gradient,
// overwriting dx (max_unpool_part), planes split over the threads.
static napi_value js_max_unpool(napi_env env, napi_callback_info info) {
  napi_value a[7];
  if (!call_args(env, info, 7, a, "maxUnpool")) return NULL;
  int planes, inPlane, outPlane, T;
  if (!i32arg(env, a[2], &planes) || !i32arg(env, a[3], &inPlane) || !i32arg(env, a[4], &outPlane) || !i32arg(env, a[6], &T))
    return throw_error(env, "maxUnpool: the sizes and threads must be integers");
  int ok = 1;
  size_t ldy, li = 0, ldx;
  const float *dy = f32(env, a[0], &ldy, &ok);
  int *idx = NULL;
  if (!i32arr(env, a[1], &li, &ok, &idx)) return throw_error(env, "maxUnpool: argmax must be an Int32Array");
  float *dx = f32(env, a[5], &ldx, &ok);
  if (!ok || !dy || !idx || !dx || planes < 0 || inPlane < 1 || outPlane < 1 ||
      ldy < (size_t)planes * outPlane || li < (size_t)planes * outPlane || ldx < (size_t)planes * inPlane)
    return throw_error(env, "maxUnpool: dy, argmax (Int32Array) and dx must hold planes * outPlane, planes * outPlane and planes * inPlane values");
  current = instance(env);
  T = thread_count(T, planes);
  UnpoolPart parts[MAX_THREADS];
  for (int t = 0; t < T; t++)
    parts[t] = (UnpoolPart){ dy, idx, dx, inPlane, outPlane, part_bound(planes, t, T), part_bound(planes, t + 1, T) };
  run_parts(T, max_unpool_part, parts, sizeof(UnpoolPart));
  return NULL;
}

// release(): frees the calling JS thread's column and gradient buffers (they grow to the largest
// pass and stay); returns the bytes freed. The next pass allocates again.
static napi_value js_release(napi_env env, napi_callback_info info) {
  (void)info;
  Instance *in = instance(env);
  double bytes = 0;
  for (int i = 0; i < MAX_THREADS; i++) {
    Scratch *s = &in->slots[i];
    bytes += (double)(s->colCap + s->bufCap + s->accCap + s->workCap) * sizeof(float);
    free(s->col); free(s->buf); free(s->acc); free(s->work);
    s->col = s->buf = s->acc = s->work = NULL;
    s->colCap = s->bufCap = s->accCap = s->workCap = 0;
  }
  bytes += (double)in->packedCap * sizeof(float);
  free(in->packed);
  in->packed = NULL;
  in->packedCap = 0;
  napi_value v;
  napi_create_double(env, bytes, &v);
  return v;
}

// allowWide(allowed): allows (the default) or forbids the kernels' AVX2 branches, so that tests
// reach the portable ones on an AVX2 machine; returns whether those branches run now.
static napi_value js_allow_wide(napi_env env, napi_callback_info info) {
  napi_value a[1];
  if (!call_args(env, info, 1, a, "allowWide")) return NULL;
  bool allowed = true;
  if (napi_get_value_bool(env, a[0], &allowed) != napi_ok) return throw_error(env, "allowWide: allowed must be a boolean");
  napi_value v;
  napi_get_boolean(env, packed_gemm_allow_wide(allowed), &v);
  return v;
}

static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj, v;
  napi_create_object(env, &obj);
  const char *cfg = openblas_get_config();
  napi_create_string_utf8(env, cfg ? cfg : "", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "config", v);
  const char *core = openblas_get_corename();
  napi_create_string_utf8(env, core ? core : "", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "core", v);
  napi_create_int32(env, openblas_get_num_threads(), &v);
  napi_set_named_property(env, obj, "maxThreads", v);
  return obj;
}

NAPI_MODULE_INIT() {
  Instance *in = (Instance *)calloc(1, sizeof(Instance));
  if (in) {
    pthread_mutex_init(&in->pool.mu, NULL);
    pthread_cond_init(&in->pool.wake, NULL);
    pthread_cond_init(&in->pool.done, NULL);
  }
  if (!in || napi_set_instance_data(env, in, free_instance, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "caffe_native: cannot allocate its instance data");
    return NULL;
  }
  napi_property_descriptor props[] = {
    { "sgemm", NULL, js_sgemm, NULL, NULL, NULL, napi_default, NULL },
    { "conv2d", NULL, js_conv2d, NULL, NULL, NULL, napi_default, NULL },
    { "conv2dInfer", NULL, js_conv2d_infer, NULL, NULL, NULL, napi_default, NULL },
    { "depthwiseInfer", NULL, js_depthwise_infer, NULL, NULL, NULL, napi_default, NULL },
    { "packWeights", NULL, js_pack_weights, NULL, NULL, NULL, napi_default, NULL },
    { "packedFloats", NULL, js_packed_floats, NULL, NULL, NULL, napi_default, NULL },
    { "winogradInfer", NULL, js_winograd_infer, NULL, NULL, NULL, napi_default, NULL },
    { "maxPool", NULL, js_max_pool, NULL, NULL, NULL, napi_default, NULL },
    { "lrnAcross", NULL, js_lrn_across, NULL, NULL, NULL, napi_default, NULL },
    { "aveGlobal", NULL, js_ave_global, NULL, NULL, NULL, napi_default, NULL },
    { "avePool", NULL, js_ave_pool, NULL, NULL, NULL, napi_default, NULL },
    { "aveUnpool", NULL, js_ave_unpool, NULL, NULL, NULL, napi_default, NULL },
    { "sgdStep", NULL, js_sgd_step, NULL, NULL, NULL, napi_default, NULL },
    { "maxUnpool", NULL, js_max_unpool, NULL, NULL, NULL, napi_default, NULL },
    { "packWinograd", NULL, js_pack_winograd, NULL, NULL, NULL, napi_default, NULL },
    { "winogradFloats", NULL, js_winograd_floats, NULL, NULL, NULL, napi_default, NULL },
    { "info", NULL, js_info, NULL, NULL, NULL, napi_default, NULL },
    { "release", NULL, js_release, NULL, NULL, NULL, napi_default, NULL },
    { "allowWide", NULL, js_allow_wide, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
