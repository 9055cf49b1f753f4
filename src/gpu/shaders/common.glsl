// Shared helpers for the musicgen.cpp Vulkan compute shaders (core GLSL 450 only).
// Include with:  #extension GL_GOOGLE_include_directive : require
//                #include "common.glsl"
#ifndef MUSICGEN_COMMON_GLSL
#define MUSICGEN_COMMON_GLSL

// ---- Correctly rounded fused multiply-add from float operations only -----------------------------
// GLSL fma() need not be fused (Mesa lavapipe computes it as a separate multiply and add), so the
// erf-GELU below uses this emulation, which returns the correctly rounded a * b + c (IEEE fma) on
// any device whose float add/sub/mul are correctly rounded (Vulkan requires it) provided nothing
// overflows and the partial products stay normal (true for the GELU polynomial; tiny products
// whose rounding errors underflow are far below half an ulp of c there).
// Boldo & Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms using
// rounding to odd", IEEE Trans. Computers 57(4), 2008: (uh, ul) = a * b exactly (Dekker),
// (th, tl) = c + uh exactly (Knuth's TwoSum), v = RO(tl + ul) (round to odd), z = RN(th + v).
// Every intermediate is `precise` (SPIR-V NoContraction; Mesa marks it exact): no contraction
// into hardware fma and no algebraic simplification.
void mg_split(float a, out float hi, out float lo) {  // Veltkamp: hi has 12 significant bits
  precise float t = 4097.0 * a;
  precise float h = t - (t - a);
  precise float l = a - h;
  hi = h;
  lo = l;
}
void mg_two_prod(float a, float b, out float p, out float e) {  // p + e == a * b exactly
  float ah, al, bh, bl;
  mg_split(a, ah, al);
  mg_split(b, bh, bl);
  precise float pp = a * b;
  precise float ee = ((ah * bh - pp) + ah * bl + al * bh) + al * bl;
  p = pp;
  e = ee;
}
void mg_two_sum(float a, float b, out float s, out float e) {  // s + e == a + b exactly
  precise float ss = a + b;
  precise float bb = ss - a;
  precise float ee = (a - (ss - bb)) + (b - bb);
  s = ss;
  e = ee;
}
float mg_add_round_odd(float a, float b) {  // a + b rounded to odd
  float s, e;
  mg_two_sum(a, b, s, e);
  uint bits = floatBitsToUint(s);
  if (e != 0.0 && (bits & 1u) == 0u) {
    // s is the even neighbour of the exact sum s + e: step one ulp towards e.
    bits = ((s > 0.0) == (e > 0.0)) ? bits + 1u : bits - 1u;
  }
  return uintBitsToFloat(bits);
}
float fma_rn(float a, float b, float c) {
  float uh, ul, th, tl;
  mg_two_prod(a, b, uh, ul);
  mg_two_sum(c, uh, th, tl);
  const float v = mg_add_round_odd(tl, ul);
  precise float z = th + v;
  return z;
}

// ---- Exact erf-GELU, the twin of gelu_erf_scalar (src/kernels/fast_math.cpp) -----------------
// erf(t) = t p(t^2) / q(t^2) on t = clamp(x / sqrt2, -4, 4) (Eigen's generic_fast_erf_float),
// Horner steps as (emulated, correctly rounded) fma in the same order as the CPU code;
// gelu = (0.5 x) (1 + erf). Bitwise equal to gelu_erf_scalar where float division is correctly
// rounded (lavapipe; GPUs may use their Vulkan-permitted 2.5-ulp division).
const float kErfClamp = 4.0;
const float kErfA1 = -1.60960333262415e-02;
const float kErfA3 = -2.95459980854025e-03;
const float kErfA5 = -7.34990630326855e-04;
const float kErfA7 = -5.69250639462346e-05;
const float kErfA9 = -2.10102402082508e-06;
const float kErfA11 = 2.77068142495902e-08;
const float kErfA13 = -2.72614225801306e-10;
const float kErfB0 = -1.42647390514189e-02;
const float kErfB2 = -7.37332916720468e-03;
const float kErfB4 = -1.68282697438203e-03;
const float kErfB6 = -2.13374055278905e-04;
const float kErfB8 = -1.45660718464996e-05;
const float kInvSqrt2 = 0.70710678118654752;

float gelu_erf(float x) {
  precise float t = clamp(x * kInvSqrt2, -kErfClamp, kErfClamp);
  precise float t2 = t * t;
  float p = fma_rn(t2, kErfA13, kErfA11);
  p = fma_rn(t2, p, kErfA9);
  p = fma_rn(t2, p, kErfA7);
  p = fma_rn(t2, p, kErfA5);
  p = fma_rn(t2, p, kErfA3);
  p = fma_rn(t2, p, kErfA1);
  precise float tp = t * p;
  float q = fma_rn(t2, kErfB8, kErfB6);
  q = fma_rn(t2, q, kErfB4);
  q = fma_rn(t2, q, kErfB2);
  q = fma_rn(t2, q, kErfB0);
  precise float erf = tp / q;
  precise float g = (0.5 * x) * (1.0 + erf);
  return g;
}

// ---- exp: twin of exp_scalar (src/kernels/fast_math.cpp), Cephes' expf polynomial ---------------
// x = n ln2 + r, e^r by the polynomial (emulated correctly rounded fma), times 2^n; 0 below -87,
// x clamped to 88. Bitwise equal to exp_scalar on any device (only add/mul/fma/roundEven).
// Used by attention.comp when compiled with -DEXP_CEPHES (default there: GLSL exp()).
float exp_cephes(float x) {
  if (!(x >= -87.0)) return 0.0;
  x = min(x, 88.0);
  precise float fx = roundEven(x * 1.44269504088896341);
  float r = fma_rn(fx, -0.693359375, x);
  r = fma_rn(fx, 2.12194440e-4, r);  // fx * -kLn2Lo with kLn2Lo = -2.12194440e-4
  float p = 1.9875691500e-4;
  p = fma_rn(p, r, 1.3981999507e-3);
  p = fma_rn(p, r, 8.3334519073e-3);
  p = fma_rn(p, r, 4.1665795894e-2);
  p = fma_rn(p, r, 1.6666665459e-1);
  p = fma_rn(p, r, 5.0000001201e-1);
  precise float r2 = r * r;
  precise float y = fma_rn(p, r2, r) + 1.0;
  const float e = uintBitsToFloat(uint(int(fx) + 127) << 23);
  precise float z = y * e;
  return z;
}

// ---- 16-bit float decoding -------------------------------------------------------------------
// Element e of a packed array of 16-bit values lives in word e >> 1, low half first.
uint half_bits(uint word, uint e) { return (e & 1u) != 0u ? (word >> 16) : (word & 0xffffu); }

// IEEE half (low 16 bits of h) -> float, exact.
float f16_to_f32(uint h) { return unpackHalf2x16(h & 0xffffu).x; }
// bf16 (low 16 bits of h) -> float, exact.
float bf16_to_f32(uint h) { return uintBitsToFloat((h & 0xffffu) << 16); }
// Both halves of a word.
vec2 f16x2_to_f32(uint w) { return unpackHalf2x16(w); }
vec2 bf16x2_to_f32(uint w) { return vec2(uintBitsToFloat(w << 16), uintBitsToFloat(w & 0xffff0000u)); }

// ---- float -> IEEE half, round to nearest even: bit-exact twin of f32_to_f16 (kernels/quant.cpp)
// Integer arithmetic only (plus one exact scaling), so every device gives the same bits
// (packHalf2x16 leaves the rounding mode to the implementation).
uint f32_to_f16(float f) {
  uint x = floatBitsToUint(f);
  const uint sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u);  // inf, nan
  if (x >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (x < 0x38800000u) {                        // below 2^-14: subnormal (or zero) in f16
    precise float a = abs(f) * 16777216.0;      // units of 2^-24, exact (f32 subnormals -> 0)
    return sign | uint(roundEven(a));
  }
  uint h = ((((x >> 23) - 127u + 15u) << 10) | ((x & 0x7fffffu) >> 13));
  const uint rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0u)) ++h;  // a carry bumps the exponent
  return sign | h;
}
uint pack_f16x2(float lo, float hi) { return f32_to_f16(lo) | (f32_to_f16(hi) << 16); }

// ---- int8 / nibble decoding --------------------------------------------------------------------
// Signed byte i (0..3) of a word, as float.
float i8_of(uint w, int i) { return float(bitfieldExtract(int(w), 8 * i, 8)); }
// Unsigned nibble i (0..7) of a word, as float.
float u4_of(uint w, int i) { return float(bitfieldExtract(w, 4 * i, 4)); }

#endif  // MUSICGEN_COMMON_GLSL
