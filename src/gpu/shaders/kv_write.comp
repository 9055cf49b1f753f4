#version 450
// Copies this step's K and V rows (from the fused q|k|v projection) into the caches at
// position P = PARAMS[0]:
//   KC[(b * cap + P) * H + h] = SRC[b * ld_src + k_off + h]
//   VC[(b * cap + P) * H + h] = SRC[b * ld_src + v_off + h]
// Default: float caches; thread = one (b, h).      Dispatch: groupCountX = ceil(H / 256).
// -DKV_F16: caches are uint[] of packed IEEE halves (element e in word e / 2, low half first;
//   H must be even); thread = one word (elements 2w, 2w + 1), converted by f32_to_f16
//   (round to nearest even, bit-exact twin of kernels/quant.cpp f32_to_f16).
//                                                  Dispatch: groupCountX = ceil(H / 512).
// groupCountY = B, Z = 1 in both.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer SrcBuf { float SRC[]; };
#ifdef KV_F16
layout(std430, set = 0, binding = 1) buffer KBuf { uint KC[]; };
layout(std430, set = 0, binding = 2) buffer VBuf { uint VC[]; };
#else
layout(std430, set = 0, binding = 1) buffer KBuf { float KC[]; };
layout(std430, set = 0, binding = 2) buffer VBuf { float VC[]; };
#endif
layout(std430, set = 0, binding = 3) readonly buffer ParBuf { uint PARAMS[]; };

layout(push_constant) uniform PC {
  uint B, H, cap, ld_src, k_off, v_off;
} pc;

void main() {
  const uint b = gl_WorkGroupID.y;
  if (b >= pc.B) return;
  const uint P = PARAMS[0];
  const uint src = b * pc.ld_src;
#ifdef KV_F16
  const uint w = gl_GlobalInvocationID.x;  // word within the row
  if (2u * w >= pc.H) return;
  const uint h = 2u * w;
  const uint dst = ((b * pc.cap + P) * pc.H >> 1) + w;
  KC[dst] = pack_f16x2(SRC[src + pc.k_off + h], SRC[src + pc.k_off + h + 1u]);
  VC[dst] = pack_f16x2(SRC[src + pc.v_off + h], SRC[src + pc.v_off + h + 1u]);
#else
  const uint h = gl_GlobalInvocationID.x;
  if (h >= pc.H) return;
  const uint dst = (b * pc.cap + P) * pc.H + h;
  KC[dst] = SRC[src + pc.k_off + h];
  VC[dst] = SRC[src + pc.v_off + h];
#endif
}
