// AVX2 variant of layer_norm (kernels/ops.h), bitwise equal to layer_norm_scalar: the same double
// partial sums (four 4-lane accumulators = the twin's 16 interleaved sums), the same reduction
// tree, the same float arithmetic per element (no contraction: -ffp-contract=off).
#include <immintrin.h>

#include <cmath>

#include "kernels/ops.h"

namespace musicgen::kernels {
namespace {

// (c0 + c2) + (c1 + c3) with c = (A0 + A2) + (A1 + A3): the twin's reduce16.
inline double reduce(const __m256d* a) {
  const __m256d c = _mm256_add_pd(_mm256_add_pd(a[0], a[2]), _mm256_add_pd(a[1], a[3]));
  const __m128d d = _mm_add_pd(_mm256_castpd256_pd128(c), _mm256_extractf128_pd(c, 1));
  return _mm_cvtsd_f64(_mm_add_sd(d, _mm_unpackhi_pd(d, d)));
}

inline __m256d widen(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }

void row_stats(const float* x, int64_t n, float eps, float* mean_out, float* inv_out) {
  const int64_t n16 = n & ~int64_t{15};
  __m256d a[4];
  for (auto& v : a) v = _mm256_setzero_pd();
  for (int64_t i = 0; i < n16; i += 16)
    for (int r = 0; r < 4; ++r) a[r] = _mm256_add_pd(a[r], widen(x + i + 4 * r));
  double tail = 0.0;
  for (int64_t i = n16; i < n; ++i) tail += static_cast<double>(x[i]);
  const double mean = (reduce(a) + tail) / static_cast<double>(n);
  const __m256d mv = _mm256_set1_pd(mean);
  for (auto& v : a) v = _mm256_setzero_pd();
  for (int64_t i = 0; i < n16; i += 16)
    for (int r = 0; r < 4; ++r) {
      const __m256d d = _mm256_sub_pd(widen(x + i + 4 * r), mv);
      a[r] = _mm256_add_pd(a[r], _mm256_mul_pd(d, d));
    }
  tail = 0.0;
  for (int64_t i = n16; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    tail += d * d;
  }
  const double var = (reduce(a) + tail) / static_cast<double>(n);
  *mean_out = static_cast<float>(mean);
  *inv_out = static_cast<float>(1.0 / std::sqrt(var + eps));
}

}  // namespace

void layer_norm_avx2(const float* x, const float* gamma, const float* beta, float* y,
                     int64_t rows, int64_t n, float eps) {
  const int64_t n8 = n & ~int64_t{7};
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    float m = 0.0f, inv = 0.0f;
    row_stats(xr, n, eps, &m, &inv);
    const __m256 mv = _mm256_set1_ps(m), iv = _mm256_set1_ps(inv);
    int64_t i = 0;
    for (; i < n8; i += 8) {
      const __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), mv), iv);
      _mm256_storeu_ps(yr + i, _mm256_add_ps(_mm256_mul_ps(t, _mm256_loadu_ps(gamma + i)),
                                             _mm256_loadu_ps(beta + i)));
    }
    for (; i < n; ++i) yr[i] = (xr[i] - m) * inv * gamma[i] + beta[i];
  }
}

}  // namespace musicgen::kernels
