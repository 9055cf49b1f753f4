// Scalar twins of the fast exp and erf-GELU (kernels/fast_math.h) and the dispatcher.
#include "kernels/fast_math.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu.h"
#include "kernels/fast_math_constants.h"

namespace musicgen::kernels {

using namespace fast_math;

float exp_scalar(float x) {
  if (!(x >= kExpLo)) return 0.0f;
  x = std::min(x, kExpHi);
  const float fx = std::nearbyint(x * kLog2e);
  float r = std::fma(fx, -kLn2Hi, x);
  r = std::fma(fx, -kLn2Lo, r);
  float p = kExpP0;
  p = std::fma(p, r, kExpP1);
  p = std::fma(p, r, kExpP2);
  p = std::fma(p, r, kExpP3);
  p = std::fma(p, r, kExpP4);
  p = std::fma(p, r, kExpP5);
  const float y = std::fma(p, r * r, r) + 1.0f;
  const int32_t bits = (static_cast<int32_t>(fx) + 127) << 23;
  float e;
  std::memcpy(&e, &bits, 4);
  return y * e;
}

void gelu_erf_scalar(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float t = std::clamp(x[i] * kInvSqrt2, -kErfClamp, kErfClamp);
    const float t2 = t * t;
    float p = std::fma(t2, kErfA13, kErfA11);
    p = std::fma(t2, p, kErfA9);
    p = std::fma(t2, p, kErfA7);
    p = std::fma(t2, p, kErfA5);
    p = std::fma(t2, p, kErfA3);
    p = std::fma(t2, p, kErfA1);
    p = t * p;
    float q = std::fma(t2, kErfB8, kErfB6);
    q = std::fma(t2, q, kErfB4);
    q = std::fma(t2, q, kErfB2);
    q = std::fma(t2, q, kErfB0);
    const float erf = p / q;
    x[i] = (0.5f * x[i]) * (1.0f + erf);
  }
}

void gelu_erf(float* x, int64_t n) {
  if (isa_at_least(Isa::kAvx2))
    gelu_erf_avx2(x, n);
  else
    gelu_erf_scalar(x, n);
}

}  // namespace musicgen::kernels
