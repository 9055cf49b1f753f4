// Row-wise and element-wise float32 operations: scalar code whose simple loops the compiler
// vectorises, except layer_norm, which has an AVX2 variant (ops_avx2.cpp). Shapes are given as
// row count and row width.
#pragma once

#include <cstdint>

namespace musicgen::kernels {

// y = (x - mean) / sqrt(var + eps) * gamma + beta, per row of width n (biased variance).
// Mean and variance are double sums in a fixed order (16 interleaved partial sums, reduced in a
// fixed tree); the AVX2 variant and the scalar twin are bitwise equal, rows are independent.
void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                int64_t n, float eps);
void layer_norm_scalar(const float* x, const float* gamma, const float* beta, float* y,
                       int64_t rows, int64_t n, float eps);
void layer_norm_avx2(const float* x, const float* gamma, const float* beta, float* y,
                     int64_t rows, int64_t n, float eps);
// T5 RMS norm: y = gamma * x / sqrt(mean(x^2) + eps), per row.
void rms_norm(const float* x, const float* gamma, float* y, int64_t rows, int64_t n, float eps);
// In-place softmax over a row of n values. -inf entries become 0; a row of all -inf stays finite
// (becomes uniform), matching PyTorch's behaviour with finfo.min masks.
void softmax(float* x, int64_t n);
// Exact (erf) GELU, in place.
void gelu(float* x, int64_t n);
void relu(float* x, int64_t n);
// ELU with alpha 1, out of place (y may equal x).
void elu(const float* x, float* y, int64_t n);
// y += x
void add(float* y, const float* x, int64_t n);

}  // namespace musicgen::kernels
