// AVX-512 level of the exact-f16 matmul (matmul.h): half weights converted 16 at a time by one
// zmm vcvtph2ps. Compiled with per-file flags (the rest of the binary stays baseline); called only
// when kernels::detect_isa() reports AVX-512.
//
// Bitwise equal to matmul_nt_f16_avx2 and therefore to matmul_nt_avx2 on the float32 matrix:
// each zmm holds two weight rows side by side (row j in lanes 0-7, row j+1 in lanes 8-15) against
// the activation chunk broadcast to both halves, so every output keeps the AVX2 kernel's 8 lanes,
// FMA chain per lane and horizontal sum. The AVX2 f16 kernel is conversion-bound (one 8-wide
// conversion per 8 weights next to only two FMAs); this one measured 1.33x of it with the weights
// in cache on Zen 4. float32 weights keep the AVX2 kernel at this level: the same layout for them
// needs an insert per 16 weights and measured 0.8x (docs/PERFORMANCE.md).
#include <immintrin.h>

// GCC 12's AVX-512 headers seed some intrinsics with _mm512_undefined_*(), which -Wall reports as
// 'may be used uninitialized' (a known false positive of the headers, not of this code).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/matmul.h"

namespace musicgen::kernels {
namespace {

inline float hsum(__m256 v) {
  // Same reduction order as the scalar twin and the AVX2 kernel: (l0+l4)+(l1+l5) + (l2+l6)+(l3+l7).
  const __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  const __m128 s = _mm_add_ps(lo, hi);
  const __m128 s01 = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  const __m128 s23 = _mm_add_ss(_mm_shuffle_ps(s, s, 2), _mm_shuffle_ps(s, s, 3));
  return _mm_cvtss_f32(_mm_add_ss(s01, s23));
}

// Two weight rows' chunks of 8 at p: row 0 in lanes 0-7, row 1 in lanes 8-15.
inline __m512 wload2(const uint16_t* r0, const uint16_t* r1, int64_t p) {
  const __m256i h = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + p))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + p)), 1);
  return _mm512_cvtph_ps(h);
}
inline __m256 wload(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The k % 8 tail, as in matmul_avx2.cpp: an explicit FMA chain, so no contraction choice differs.
inline float finish(__m256 acc, const float* ar, const float* wr, int64_t p, int64_t k) {
  float tail = 0.0f;
  for (; p < k; ++p) tail = std::fma(ar[p], wr[p], tail);  // explicit: same in every file
  return hsum(acc) + tail;
}
inline float finish(__m256 acc, const float* ar, const uint16_t* wr, int64_t p, int64_t k) {
  float tmp[8];
  const int64_t n = k - p;
  for (int64_t q = 0; q < n; ++q) tmp[q] = _cvtsh_ss(wr[p + q]);
  return finish(acc, ar + p, tmp, 0, n);
}

constexpr int64_t kPrefetchRows = 16;  // two tiles of 8 weight rows ahead, into L2 (quant_avx2.cpp)

// NP pairs of weight rows (2 * NP rows from w0, stride k) x R activation rows.
template <int NP, int R, typename W>
void tile(const float* a, int64_t lda, const W* w0, int64_t k, float* c, int64_t ldc) {
  const int64_t k8 = k & ~int64_t{7};
  __m512 acc[NP][R];
  for (int q = 0; q < NP; ++q)
    for (int r = 0; r < R; ++r) acc[q][r] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k8; p += 8) {
    if ((p & 15) == 0)
      for (int q = 0; q < 2 * NP; ++q)
        _mm_prefetch(reinterpret_cast<const char*>(w0 + (q + kPrefetchRows) * k + p), _MM_HINT_T1);
    __m512 x[R];
    for (int r = 0; r < R; ++r) x[r] = _mm512_broadcast_f32x8(_mm256_loadu_ps(a + r * lda + p));
    for (int q = 0; q < NP; ++q) {
      const __m512 wv = wload2(w0 + (2 * q) * k, w0 + (2 * q + 1) * k, p);
      for (int r = 0; r < R; ++r) acc[q][r] = _mm512_fmadd_ps(x[r], wv, acc[q][r]);
    }
  }
  for (int q = 0; q < NP; ++q)
    for (int r = 0; r < R; ++r) {
      const float* ar = a + r * lda;
      c[r * ldc + 2 * q] = finish(_mm512_castps512_ps256(acc[q][r]), ar, w0 + (2 * q) * k, k8, k);
      c[r * ldc + 2 * q + 1] =
          finish(_mm512_extractf32x8_ps(acc[q][r], 1), ar, w0 + (2 * q + 1) * k, k8, k);
    }
}

// One weight row x one activation row, as the AVX2 kernel's tail.
template <typename W>
float single(const float* a0, const W* w0, int64_t k) {
  const int64_t k8 = k & ~int64_t{7};
  __m256 c00 = _mm256_setzero_ps();
  for (int64_t p = 0; p < k8; p += 8) c00 = _mm256_fmadd_ps(_mm256_loadu_ps(a0 + p), wload(w0 + p), c00);
  return finish(c00, a0, w0, k8, k);
}

template <typename W>
void block(const float* a, int64_t lda, const W* w, float* c, int64_t ldc, int64_t i_begin,
           int64_t m, int64_t k, int64_t n_begin, int64_t n_end) {
  auto run = [&](auto np_tag, int64_t j) {
    constexpr int NP = decltype(np_tag)::value;
    int64_t i = i_begin;
    for (; i + 2 <= m; i += 2) tile<NP, 2>(a + i * lda, lda, w + j * k, k, c + i * ldc + j, ldc);
    for (; i < m; ++i) tile<NP, 1>(a + i * lda, lda, w + j * k, k, c + i * ldc + j, ldc);
  };
  int64_t j = n_begin;
  for (; j + 8 <= n_end; j += 8) run(std::integral_constant<int, 4>{}, j);
  for (; j + 2 <= n_end; j += 2) run(std::integral_constant<int, 1>{}, j);
  for (; j < n_end; ++j)
    for (int64_t i = i_begin; i < m; ++i) c[i * ldc + j] = single(a + i * lda, w + j * k, k);
}

template <typename W>
void matmul_avx512(const float* a, int64_t lda, const W* w, const float* bias, float* c,
                   int64_t ldc, int64_t m, int64_t k, int64_t n_begin, int64_t n_end) {
  // Activation rows in blocks that stay in cache while the weight slice streams by (as AVX2).
  const int64_t rows = k > 0 ? std::max<int64_t>(2, (96 * 1024) / (k * 4)) & ~int64_t{1} : m;
  for (int64_t i0 = 0; i0 < m; i0 += rows)
    block(a, lda, w, c, ldc, i0, std::min(m, i0 + rows), k, n_begin, n_end);
  if (bias != nullptr)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t jj = n_begin; jj < n_end; ++jj) c[i * ldc + jj] += bias[jj];
}

}  // namespace

void matmul_nt_f16_avx512(const float* a, int64_t lda, const uint16_t* w, const float* bias,
                          float* c, int64_t ldc, int64_t m, int64_t /*n*/, int64_t k,
                          int64_t n_begin, int64_t n_end) {
  matmul_avx512(a, lda, w, bias, c, ldc, m, k, n_begin, n_end);
}

}  // namespace musicgen::kernels
