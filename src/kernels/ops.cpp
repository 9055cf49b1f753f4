#include "kernels/ops.h"

#include <cmath>
#include <limits>

#include "kernels/cpu.h"

namespace musicgen::kernels {

namespace {

// The sum of the 16 partial sums, in the order the AVX2 twin's reduction gives:
// c_j = (s_j + s_j+8) + (s_j+4 + s_j+12), then (c0 + c2) + (c1 + c3).
inline double reduce16(const double* s) {
  double c[4];
  for (int j = 0; j < 4; ++j) c[j] = (s[j] + s[j + 8]) + (s[j + 4] + s[j + 12]);
  return (c[0] + c[2]) + (c[1] + c[3]);
}

// One row's float mean and 1 / sqrt(var + eps).
void row_stats(const float* x, int64_t n, float eps, float* mean_out, float* inv_out) {
  // Double sums in 16 interleaved partial sums (element i of the first n16 in sum i mod 16),
  // the rest in one more, in order: the AVX2 twin's four 4-lane accumulators.
  const int64_t n16 = n & ~int64_t{15};
  double s[16] = {};
  double tail = 0.0;
  for (int64_t i = 0; i < n16; ++i) s[i & 15] += static_cast<double>(x[i]);
  for (int64_t i = n16; i < n; ++i) tail += static_cast<double>(x[i]);
  const double mean = (reduce16(s) + tail) / static_cast<double>(n);
  for (double& v : s) v = 0.0;
  tail = 0.0;
  for (int64_t i = 0; i < n16; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    s[i & 15] += d * d;
  }
  for (int64_t i = n16; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    tail += d * d;
  }
  const double var = (reduce16(s) + tail) / static_cast<double>(n);
  *mean_out = static_cast<float>(mean);
  *inv_out = static_cast<float>(1.0 / std::sqrt(var + eps));
}

}  // namespace

void layer_norm_scalar(const float* x, const float* gamma, const float* beta, float* y,
                       int64_t rows, int64_t n, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    float m = 0.0f, inv = 0.0f;
    row_stats(xr, n, eps, &m, &inv);
    for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - m) * inv * gamma[i] + beta[i];
  }
}

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                int64_t n, float eps) {
  if (isa_at_least(Isa::kAvx2))
    layer_norm_avx2(x, gamma, beta, y, rows, n, eps);
  else
    layer_norm_scalar(x, gamma, beta, y, rows, n, eps);
}

void rms_norm(const float* x, const float* gamma, float* y, int64_t rows, int64_t n, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
    for (int64_t i = 0; i < n; ++i) yr[i] = gamma[i] * (xr[i] * inv);
  }
}

void softmax(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::fmax(mx, x[i]);
  if (std::isinf(mx) && mx < 0) {
    for (int64_t i = 0; i < n; ++i) x[i] = 1.0f / static_cast<float>(n);
    return;
  }
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void gelu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void relu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void elu(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : std::expm1(x[i]);
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace musicgen::kernels
