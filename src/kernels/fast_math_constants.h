// Constants shared by the scalar and AVX2 forms of kernels/fast_math.h.
#pragma once

namespace musicgen::kernels::fast_math {

// exp: x = n ln2 + r, |r| <= ln2 / 2, e^r by Cephes' expf polynomial, times 2^n.
constexpr float kExpLo = -87.0f;  // below: 0 (keeps 2^n normal)
constexpr float kExpHi = 88.0f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kExpP0 = 1.9875691500e-4f;
constexpr float kExpP1 = 1.3981999507e-3f;
constexpr float kExpP2 = 8.3334519073e-3f;
constexpr float kExpP3 = 4.1665795894e-2f;
constexpr float kExpP4 = 1.6666665459e-1f;
constexpr float kExpP5 = 5.0000001201e-1f;

// erf(x) = x p(x^2) / q(x^2) on [-4, 4] (clamped outside): Eigen's generic_fast_erf_float.
constexpr float kErfClamp = 4.0f;
constexpr float kErfA1 = -1.60960333262415e-02f;
constexpr float kErfA3 = -2.95459980854025e-03f;
constexpr float kErfA5 = -7.34990630326855e-04f;
constexpr float kErfA7 = -5.69250639462346e-05f;
constexpr float kErfA9 = -2.10102402082508e-06f;
constexpr float kErfA11 = 2.77068142495902e-08f;
constexpr float kErfA13 = -2.72614225801306e-10f;
constexpr float kErfB0 = -1.42647390514189e-02f;
constexpr float kErfB2 = -7.37332916720468e-03f;
constexpr float kErfB4 = -1.68282697438203e-03f;
constexpr float kErfB6 = -2.13374055278905e-04f;
constexpr float kErfB8 = -1.45660718464996e-05f;
constexpr float kInvSqrt2 = 0.70710678118654752f;

}  // namespace musicgen::kernels::fast_math
