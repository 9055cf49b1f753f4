#version 450
// Merges the splits of attn_split.comp for each (head, b): with M = max_i m_i and
// w_i = exp(m_i - M), out[t] = (sum_i w_i o_i[t]) / (sum_i w_i s_i), splits i in order.
// Grid: (heads, B); local size 128 (thread t < D).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 128, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer PartBuf { float PART[]; };
layout(std430, set = 0, binding = 1) buffer OutBuf { float OUT[]; };
layout(std430, set = 0, binding = 2) readonly buffer ParBuf { uint PARAMS[]; };

layout(push_constant) uniform PC {
  uint D, max_splits, out_off, ldo;
} pc;

void main() {
  const uint head = gl_WorkGroupID.x, b = gl_WorkGroupID.y, heads = gl_NumWorkGroups.x;
  const uint t = gl_LocalInvocationID.x;
  const uint D = pc.D;
  if (t >= D) return;
  const uint keys = PARAMS[0] + 1u;
  const uint splits = min(pc.max_splits, (keys + 63u) / 64u);
  const uint base = (b * heads + head) * pc.max_splits * (D + 2u);
  float M = uintBitsToFloat(0xff800000u);
  for (uint i = 0u; i < splits; ++i) M = max(M, PART[base + i * (D + 2u) + D]);
  precise float num = 0.0, den = 0.0;
  for (uint i = 0u; i < splits; ++i) {
    const uint p = base + i * (D + 2u);
    const float w = exp(PART[p + D] - M);
    num = num + w * PART[p + t];
    den = den + w * PART[p + D + 1u];
  }
  OUT[pc.out_off + b * pc.ldo + head * D + t] = num / den;
}
