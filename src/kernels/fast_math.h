// Vectorisable float32 exp and erf-GELU: polynomial/rational approximations evaluated with the
// same sequence of fused multiply-adds in the scalar twin and the AVX2 variant, so both give
// bitwise equal results. Accuracy: exp within 2 ulp on [-87, 88] (0 below -87); erf within
// about 1e-7 absolute (Eigen's/XLA's rational approximation, clamped to [-4, 4]).
#pragma once

#include <cstdint>

namespace musicgen::kernels {

float exp_scalar(float x);

// Exact-form GELU 0.5 x (1 + erf(x / sqrt 2)), in place, with the approximation above.
void gelu_erf(float* x, int64_t n);
void gelu_erf_scalar(float* x, int64_t n);
void gelu_erf_avx2(float* x, int64_t n);

}  // namespace musicgen::kernels
