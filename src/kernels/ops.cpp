#include "kernels/ops.h"

#include <cmath>
#include <limits>

namespace musicgen::kernels {

namespace {

// R rows at once: each row's arithmetic is exactly the one-row loop's (the same double sums in
// the same order), but the R independent chains of dependent additions overlap, where one row
// waits on the add latency at every element (a decoder step normalises 2 rows 73 times).
template <int R>
void layer_norm_rows(const float* x, const float* gamma, const float* beta, float* y, int64_t n,
                     float eps) {
  double mean[R], var[R];
  for (int j = 0; j < R; ++j) mean[j] = var[j] = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < R; ++j) mean[j] += x[j * n + i];
  for (int j = 0; j < R; ++j) mean[j] /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < R; ++j) {
      const double d = x[j * n + i] - mean[j];
      var[j] += d * d;
    }
  for (int j = 0; j < R; ++j) {
    var[j] /= static_cast<double>(n);
    const float inv = static_cast<float>(1.0 / std::sqrt(var[j] + eps));
    const float m = static_cast<float>(mean[j]);
    const float* xr = x + j * n;
    float* yr = y + j * n;
    for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - m) * inv * gamma[i] + beta[i];
  }
}

}  // namespace

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                int64_t n, float eps) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) layer_norm_rows<4>(x + r * n, gamma, beta, y + r * n, n, eps);
  switch (rows - r) {
    case 3: layer_norm_rows<3>(x + r * n, gamma, beta, y + r * n, n, eps); break;
    case 2: layer_norm_rows<2>(x + r * n, gamma, beta, y + r * n, n, eps); break;
    case 1: layer_norm_rows<1>(x + r * n, gamma, beta, y + r * n, n, eps); break;
    default: break;
  }
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
