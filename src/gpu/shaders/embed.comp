#version 450
// Decoder input of one position for every batch row.
// Dispatch: groupCountX = ceil(H / 256), groupCountY = B, Z = 1. Thread = one (b, h).
//   use_prefix (PARAMS[1] != 0): x = PREFIX[(b * prefix_len + s) * H + h] + POS[P * H + h]
//   else: acc = 0.0; for k = 0 .. K-1: acc = acc + E[(k * V1 + tok[b * K + k]) * H + h];
//         x = acc + POS[P * H + h]
// (plain adds in exactly this order; P = PARAMS[0], s = PARAMS[2]).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer TokBuf { int TOK[]; };
layout(std430, set = 0, binding = 1) readonly buffer EBuf { float EMB[]; };
layout(std430, set = 0, binding = 2) readonly buffer PosBuf { float POS[]; };
layout(std430, set = 0, binding = 3) readonly buffer ParBuf { uint PARAMS[]; };
layout(std430, set = 0, binding = 4) buffer XBuf { float X[]; };
layout(std430, set = 0, binding = 5) readonly buffer PreBuf { float PREFIX[]; };

layout(push_constant) uniform PC {
  uint B, K, V1, H, prefix_len;
} pc;

void main() {
  const uint h = gl_GlobalInvocationID.x, b = gl_WorkGroupID.y;
  if (h >= pc.H || b >= pc.B) return;
  const uint P = PARAMS[0];
  precise float x;
  if (PARAMS[1] != 0u) {
    const uint s = PARAMS[2];
    x = PREFIX[(b * pc.prefix_len + s) * pc.H + h] + POS[P * pc.H + h];
  } else {
    precise float acc = 0.0;
    for (uint k = 0u; k < pc.K; ++k) {
      const uint tok = uint(TOK[b * pc.K + k]);
      acc = acc + EMB[(k * pc.V1 + tok) * pc.H + h];
    }
    x = acc + POS[P * pc.H + h];
  }
  X[b * pc.H + h] = x;
}
