#include "nn/activation.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/thread_pool.h"
#include "kernels/cpu.h"

namespace musicgen::nn {
namespace {

// expm1(x) for x <= 0: x = n·ln2 + r with |r| <= ln2/2, expm1(x) = 2ⁿ·expm1(r) + (2ⁿ − 1), and
// expm1(r) = r + r²·P(r) (Taylor to r⁷; truncation < 2e-8 relative). x is clamped at −87 where
// expm1 is −1 in float and 2ⁿ stays a normal number.
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693145751953125f;       // ln 2 with the low mantissa bits cleared
constexpr float kLn2Lo = 1.42860682030941723e-6f;  // ln 2 − kLn2Hi
constexpr float kC2 = 1.0f / 2, kC3 = 1.0f / 6, kC4 = 1.0f / 24, kC5 = 1.0f / 120, kC6 = 1.0f / 720,
                kC7 = 1.0f / 5040;
constexpr float kMin = -87.0f;

inline float elu_one(float x) {
  if (x > 0.0f) return x;
  if (std::isnan(x)) return x;
  const float xc = x < kMin ? kMin : x;
  const float n = std::nearbyint(xc * kLog2e);
  float r = std::fma(-n, kLn2Hi, xc);
  r = std::fma(-n, kLn2Lo, r);
  float p = std::fma(kC7, r, kC6);
  p = std::fma(p, r, kC5);
  p = std::fma(p, r, kC4);
  p = std::fma(p, r, kC3);
  p = std::fma(p, r, kC2);
  const float r2 = r * r;
  const float em1 = std::fma(r2, p, r);
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  return std::fma(two_n, em1, two_n - 1.0f);
}

}  // namespace

void elu_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = elu_one(x[i]);
}

__attribute__((target("avx2,fma"))) void elu_avx2(const float* x, float* y, int64_t n) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  const __m256 lo = _mm256_set1_ps(kMin), log2e = _mm256_set1_ps(kLog2e);
  const __m256 ln2_hi = _mm256_set1_ps(kLn2Hi), ln2_lo = _mm256_set1_ps(kLn2Lo);
  const __m256 c2 = _mm256_set1_ps(kC2), c3 = _mm256_set1_ps(kC3), c4 = _mm256_set1_ps(kC4),
               c5 = _mm256_set1_ps(kC5), c6 = _mm256_set1_ps(kC6), c7 = _mm256_set1_ps(kC7);
  const __m256i bias = _mm256_set1_epi32(127);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 xc = _mm256_max_ps(v, lo);  // NaN lanes are taken from v below
    const __m256 nf =
        _mm256_round_ps(_mm256_mul_ps(xc, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(nf, ln2_hi, xc);
    r = _mm256_fnmadd_ps(nf, ln2_lo, r);
    __m256 p = _mm256_fmadd_ps(c7, r, c6);
    p = _mm256_fmadd_ps(p, r, c5);
    p = _mm256_fmadd_ps(p, r, c4);
    p = _mm256_fmadd_ps(p, r, c3);
    p = _mm256_fmadd_ps(p, r, c2);
    const __m256 em1 = _mm256_fmadd_ps(_mm256_mul_ps(r, r), p, r);
    const __m256 two_n =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nf), bias), 23));
    const __m256 neg = _mm256_fmadd_ps(two_n, em1, _mm256_sub_ps(two_n, one));
    // x > 0 or NaN → x, else expm1(x).
    const __m256 keep =
        _mm256_or_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(neg, v, keep));
  }
  for (; i < n; ++i) y[i] = elu_one(x[i]);
}

void elu(const float* x, float* y, int64_t n) {
  if (kernels::isa_at_least(kernels::Isa::kAvx2))
    elu_avx2(x, y, n);
  else
    elu_scalar(x, y, n);
}

void elu_inplace(float* x, int64_t n, ThreadPool* pool) {
  constexpr int64_t kChunk = 1 << 14;
  if (pool == nullptr || pool->size() == 1 || n < 2 * kChunk) {
    elu(x, x, n);
    return;
  }
  pool->parallel_for(
      n, [&](int64_t b, int64_t e) { elu(x + b, x + b, e - b); }, kChunk);
}

}  // namespace musicgen::nn
