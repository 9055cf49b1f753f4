#version 450
// EnCodec's ELU (alpha 1): y = x > 0 ? x : expm1(x), the steps of nn::elu_scalar
// (src/nn/activation.cpp): x = n ln2 + r (ln2 split in hi + lo), expm1(r) = r + r^2 P(r) (Taylor
// to r^7, Horner), expm1(x) = 2^n expm1(r) + (2^n - 1) with 2^n from exponent bits; x clamped at
// -87; NaN passes through. The CPU's fused steps are unfused `precise` multiply-adds here (mad):
// the results are within an ulp or two of the CPU's (the n ln2hi and 2^n products are exact, so
// those two steps agree exactly); the emulated fma_rn of common.glsl would make it a bitwise twin
// at 4x the cost on lavapipe. Y may be the same buffer as X (each element is read, then written,
// by one invocation).
// Dispatch: (min(ceil(n / 256), 65535), 1, 1); the invocations stride over [0, n).
layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer XBuf { float X[]; };
layout(std430, set = 0, binding = 1) buffer YBuf { float Y[]; };

layout(push_constant) uniform PC {
  uint n, x_off, y_off;
} pc;

float mad(float a, float b, float c) {
  precise float r = a * b + c;
  return r;
}

float elu(float x) {
  if (x > 0.0) return x;
  if (isnan(x)) return x;
  const float xc = x < -87.0 ? -87.0 : x;
  precise float nx = xc * 1.442695022e+00;               // kLog2e
  const float n = roundEven(nx);                         // std::nearbyint (nearest even)
  float r = mad(-n, 6.931457520e-01, xc);                // kLn2Hi
  r = mad(-n, 1.428606765e-06, r);                       // kLn2Lo
  float p = mad(1.984127011e-04, r, 1.388888923e-03);    // 1/5040, 1/720
  p = mad(p, r, 8.333333768e-03);                        // 1/120
  p = mad(p, r, 4.166666791e-02);                        // 1/24
  p = mad(p, r, 1.666666716e-01);                        // 1/6
  p = mad(p, r, 0.5);
  precise float r2 = r * r;
  const float em1 = mad(r2, p, r);
  const float two_n = uintBitsToFloat(uint(int(n) + 127) << 23);
  precise float tm1 = two_n - 1.0;
  return mad(two_n, em1, tm1);
}

void main() {
  const uint stride = gl_NumWorkGroups.x * 256u;
  for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) Y[pc.y_off + i] = elu(X[pc.x_off + i]);
}
