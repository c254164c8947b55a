// AVX2 helpers shared by the kernels' x86-64 builds (GCC or Clang), for functions compiled with
// target("avx2,fma").
#ifndef CAFFE_TS_SIMD_H
#define CAFFE_TS_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

// Of 16 consecutive floats (lo: the first 8, hi: the next 8), the even-indexed ones in order: a
// stride-2 row's samples, or the left column of its 2-wide windows.
__attribute__((target("avx2,fma"))) static inline __m256 even_lanes(__m256 lo, __m256 hi) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
}

// The lanes i of eight where 0 <= base + i < W: the mask of a load of r[base .. base + 8) that
// must not read outside [0, W).
__attribute__((target("avx2,fma"))) static inline __m256i lanes_inside(int base, int W) {
  const __m256i i = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(base));
  return _mm256_and_si256(_mm256_cmpgt_epi32(i, _mm256_set1_epi32(-1)), _mm256_cmpgt_epi32(_mm256_set1_epi32(W), i));
}

// The odd-indexed ones, in order.
__attribute__((target("avx2,fma"))) static inline __m256 odd_lanes(__m256 lo, __m256 hi) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
}
#endif

#endif
