#version 450
// LayerNorm over rows of n floats: y = (x - mean) * inversesqrt(var + eps) * gamma + beta.
// Dispatch: groupCountX = rows (one 256-thread workgroup per row), Y = Z = 1.
//
// Fixed order (a function of n only): thread T (0..255) sums x[T], x[T + 256], ... in increasing
// order from 0.0 (plain adds); the 256 partials are combined by the tree
// s[T] = s[T] + s[T + h], h = 128, 64, ..., 1; mean = s[0] / float(n).
// Second pass the same way over d * d with d = x - mean, as acc = acc + d * d (unfused);
// var = s[0] / float(n) (population variance); rstd = inversesqrt(var + eps);
// y = ((x - mean) * rstd) * gamma + beta (two multiplies and an add, left to right).
// All arithmetic is `precise` (NoContraction): every operation rounded separately, never fused.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer XBuf { float X[]; };
layout(std430, set = 0, binding = 1) readonly buffer GBuf { float GAMMA[]; };
layout(std430, set = 0, binding = 2) readonly buffer BBuf { float BETA[]; };
layout(std430, set = 0, binding = 3) buffer YBuf { float Y[]; };

layout(push_constant) uniform PC {
  uint rows, n, x_off, ldx, y_off, ldy;
  float eps;
} pc;

shared float red[256];

float tree_sum(float v, uint lid) {
  red[lid] = v;
  barrier();
  for (uint h = 128u; h > 0u; h >>= 1) {
    if (lid < h) {
      precise float s = red[lid] + red[lid + h];
      red[lid] = s;
    }
    barrier();
  }
  const float total = red[0];
  barrier();  // red is reused
  return total;
}

void main() {
  const uint row = gl_WorkGroupID.x;
  if (row >= pc.rows) return;  // uniform per workgroup
  const uint lid = gl_LocalInvocationID.x;
  const uint xb = pc.x_off + row * pc.ldx, yb = pc.y_off + row * pc.ldy;

  precise float s = 0.0;
  for (uint i = lid; i < pc.n; i += 256u) s = s + X[xb + i];
  precise float mean = tree_sum(s, lid) / float(pc.n);

  precise float v = 0.0;
  for (uint i = lid; i < pc.n; i += 256u) {
    precise float d = X[xb + i] - mean;
    v = v + d * d;
  }
  precise float var = tree_sum(v, lid) / float(pc.n);
  precise float rstd = inversesqrt(var + pc.eps);

  for (uint i = lid; i < pc.n; i += 256u) {
    precise float y = ((X[xb + i] - mean) * rstd) * GAMMA[i] + BETA[i];
    Y[yb + i] = y;
  }
}
