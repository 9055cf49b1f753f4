// AVX2+FMA matmul. Compiled with -mavx2 -mfma; only called when the CPU has them.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/matmul.h"

namespace musicgen::kernels {
namespace {

inline float hsum(__m256 v) {
  // Same reduction order as the scalar twin: (l0+l4)+(l1+l5) + (l2+l6)+(l3+l7).
  const __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  const __m128 s = _mm_add_ps(lo, hi);                 // [0+4, 1+5, 2+6, 3+7]
  const __m128 s01 = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));  // (0+4)+(1+5)
  const __m128 s23 = _mm_add_ss(_mm_shuffle_ps(s, s, 2), _mm_shuffle_ps(s, s, 3));
  return _mm_cvtss_f32(_mm_add_ss(s01, s23));
}

// Weights as float32, or as IEEE half converted exactly to float32 on load: the same values in
// the same order, so both instantiations give bitwise equal results.
inline __m256 wload(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 wload(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline float finish(__m256 acc, const float* ar, const float* wr, int64_t p, int64_t k) {
  float tail = 0.0f;
  for (; p < k; ++p) tail = std::fma(ar[p], wr[p], tail);  // explicit: same in every file
  return hsum(acc) + tail;
}
// The tail (k % 8 weights) converted first, then the float32 code above: the same expression, so
// the compiler makes the same FMA-contraction choice for both weight types.
inline float finish(__m256 acc, const float* ar, const uint16_t* wr, int64_t p, int64_t k) {
  float tmp[8];
  const int64_t n = k - p;
  for (int64_t q = 0; q < n; ++q) tmp[q] = _cvtsh_ss(wr[p + q]);
  return finish(acc, ar + p, tmp, 0, n);
}

}  // namespace

namespace {
// Weight rows prefetched into L2 ahead of the 4-row tile being read: two tiles, as in
// quant_avx2.cpp.
constexpr int64_t kPrefetchRows = 8;

// Rows [i_begin, i_end) of A against weight rows [n_begin, n_end).
template <typename W>
void block(const float* a, int64_t lda, const W* w, float* c, int64_t ldc, int64_t i_begin,
           int64_t m, int64_t k, int64_t n_begin, int64_t n_end) {
  const int64_t k8 = k & ~int64_t{7};
  int64_t j = n_begin;
  // 4 weight rows at a time; 2 activation rows share each weight load.
  for (; j + 4 <= n_end; j += 4) {
    const W* w0 = w + (j + 0) * k;
    const W* w1 = w + (j + 1) * k;
    const W* w2 = w + (j + 2) * k;
    const W* w3 = w + (j + 3) * k;
    int64_t i = i_begin;
    for (; i + 2 <= m; i += 2) {
      const float* a0 = a + i * lda;
      const float* a1 = a0 + lda;
      __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c02 = _mm256_setzero_ps(),
             c03 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps(),
             c12 = _mm256_setzero_ps(), c13 = _mm256_setzero_ps();
      for (int64_t p = 0; p < k8; p += 8) {
        if ((p & 15) == 0) {  // a cache line of each row kPrefetchRows further on
          _mm_prefetch(reinterpret_cast<const char*>(w0 + kPrefetchRows * k + p), _MM_HINT_T1);
          _mm_prefetch(reinterpret_cast<const char*>(w1 + kPrefetchRows * k + p), _MM_HINT_T1);
          _mm_prefetch(reinterpret_cast<const char*>(w2 + kPrefetchRows * k + p), _MM_HINT_T1);
          _mm_prefetch(reinterpret_cast<const char*>(w3 + kPrefetchRows * k + p), _MM_HINT_T1);
        }
        const __m256 x0 = _mm256_loadu_ps(a0 + p);
        const __m256 x1 = _mm256_loadu_ps(a1 + p);
        __m256 wv = wload(w0 + p);
        c00 = _mm256_fmadd_ps(x0, wv, c00);
        c10 = _mm256_fmadd_ps(x1, wv, c10);
        wv = wload(w1 + p);
        c01 = _mm256_fmadd_ps(x0, wv, c01);
        c11 = _mm256_fmadd_ps(x1, wv, c11);
        wv = wload(w2 + p);
        c02 = _mm256_fmadd_ps(x0, wv, c02);
        c12 = _mm256_fmadd_ps(x1, wv, c12);
        wv = wload(w3 + p);
        c03 = _mm256_fmadd_ps(x0, wv, c03);
        c13 = _mm256_fmadd_ps(x1, wv, c13);
      }
      float* r0 = c + i * ldc + j;
      float* r1 = r0 + ldc;
      r0[0] = finish(c00, a0, w0, k8, k);
      r0[1] = finish(c01, a0, w1, k8, k);
      r0[2] = finish(c02, a0, w2, k8, k);
      r0[3] = finish(c03, a0, w3, k8, k);
      r1[0] = finish(c10, a1, w0, k8, k);
      r1[1] = finish(c11, a1, w1, k8, k);
      r1[2] = finish(c12, a1, w2, k8, k);
      r1[3] = finish(c13, a1, w3, k8, k);
    }
    for (; i < m; ++i) {
      const float* a0 = a + i * lda;
      __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c02 = _mm256_setzero_ps(),
             c03 = _mm256_setzero_ps();
      for (int64_t p = 0; p < k8; p += 8) {
        const __m256 x0 = _mm256_loadu_ps(a0 + p);
        c00 = _mm256_fmadd_ps(x0, wload(w0 + p), c00);
        c01 = _mm256_fmadd_ps(x0, wload(w1 + p), c01);
        c02 = _mm256_fmadd_ps(x0, wload(w2 + p), c02);
        c03 = _mm256_fmadd_ps(x0, wload(w3 + p), c03);
      }
      float* r0 = c + i * ldc + j;
      r0[0] = finish(c00, a0, w0, k8, k);
      r0[1] = finish(c01, a0, w1, k8, k);
      r0[2] = finish(c02, a0, w2, k8, k);
      r0[3] = finish(c03, a0, w3, k8, k);
    }
  }
  for (; j < n_end; ++j) {
    const W* w0 = w + j * k;
    for (int64_t i = i_begin; i < m; ++i) {
      const float* a0 = a + i * lda;
      __m256 c00 = _mm256_setzero_ps();
      for (int64_t p = 0; p < k8; p += 8)
        c00 = _mm256_fmadd_ps(_mm256_loadu_ps(a0 + p), wload(w0 + p), c00);
      c[i * ldc + j] = finish(c00, a0, w0, k8, k);
    }
  }
}

template <typename W>
void matmul_avx2(const float* a, int64_t lda, const W* w, const float* bias, float* c,
                 int64_t ldc, int64_t m, int64_t k, int64_t n_begin, int64_t n_end) {
  // Blocks of activation rows small enough to stay in cache while the weight slice streams by.
  const int64_t rows = k > 0 ? std::max<int64_t>(2, (96 * 1024) / (k * 4)) & ~int64_t{1} : m;
  for (int64_t i0 = 0; i0 < m; i0 += rows)
    block(a, lda, w, c, ldc, i0, std::min(m, i0 + rows), k, n_begin, n_end);
  if (bias != nullptr)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t jj = n_begin; jj < n_end; ++jj) c[i * ldc + jj] += bias[jj];
}

}  // namespace

void matmul_nt_avx2(const float* a, int64_t lda, const float* w, const float* bias, float* c,
                    int64_t ldc, int64_t m, int64_t /*n*/, int64_t k, int64_t n_begin,
                    int64_t n_end) {
  matmul_avx2(a, lda, w, bias, c, ldc, m, k, n_begin, n_end);
}

void matmul_nt_f16_avx2(const float* a, int64_t lda, const uint16_t* w, const float* bias,
                        float* c, int64_t ldc, int64_t m, int64_t /*n*/, int64_t k,
                        int64_t n_begin, int64_t n_end) {
  matmul_avx2(a, lda, w, bias, c, ldc, m, k, n_begin, n_end);
}

}  // namespace musicgen::kernels
