#version 450
// Single-query attention, one 256-thread workgroup per (head, batch row).
// Dispatch: groupCountX = heads, groupCountY = B, Z = 1 (heads is read from gl_NumWorkGroups.x).
// Default: float K/V caches. -DKV_F16: K/V are uint[] of packed IEEE halves (element e in word
// e / 2, low half first). Cross-attention always uses the float variant.
// Optional -DEXP_CEPHES: exp_cephes (common.glsl, bitwise twin of kernels::exp_scalar) instead of
// GLSL exp() (whose precision Vulkan leaves at 3 + 2|x| ulp, implementation-specific).
//
// keys = causal ? PARAMS[0] + 1 : nkeys, clamped to scr_stride. With q_t = Q[q_off + b ldq +
// head D + t], K(j, t) = KC[b kv_batchstride + j kv_rowstride + head D + t] (same for V):
//   qs_t = q_t * scale
//   s_j  = over t = 0 .. D-1 increasing: s = s + qs_t * K(j, t) from 0.0;
//          then s_j = s_j + BIAS[b nkeys + j] if has_bias
//   mx   = max_j s_j (tree max);  e_j = exp(s_j - mx)   [exp_cephes with -DEXP_CEPHES]
//   sum  = thread T (0..255) adds e_j for j = T, T + 256, ... increasing from 0.0, then the tree
//          r[T] = r[T] + r[T + h], h = 128, ..., 1;  inv = 1.0 / sum;  p_j = e_j * inv
//   out  = G key groups (G = the largest power of two with G D <= 256): group g accumulates
//          o_g,t = o_g,t + p_j * V(j, t) over j = g, g + G, g + 2G, ... increasing from 0.0;
//          out_t = (((o_0,t + o_1,t) + o_2,t) + ...) + o_G-1,t
//   OUT[out_off + b ldo + head D + t] = out_t.
// All arithmetic is `precise` (NoContraction): each multiply and add rounded separately.
// Zeros are written when keys == 0 or (has_bias and every BIAS of the row's keys <= -3.0e38).
// SCR [B * heads][scr_stride] holds e_j (row b * heads + head); every SCR element is written and
// read back by the same thread (j mod 256), so no cross-thread buffer visibility is needed.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer QBuf { float Q[]; };
#ifdef KV_F16
layout(std430, set = 0, binding = 1) readonly buffer KBuf { uint KC[]; };
layout(std430, set = 0, binding = 1) readonly buffer KBuf4 { uvec4 KC4[]; };  // alias
layout(std430, set = 0, binding = 2) readonly buffer VBuf { uint VC[]; };
#else
layout(std430, set = 0, binding = 1) readonly buffer KBuf { float KC[]; };
layout(std430, set = 0, binding = 1) readonly buffer KBuf4 { vec4 KC4[]; };  // alias
layout(std430, set = 0, binding = 2) readonly buffer VBuf { float VC[]; };
#endif
layout(std430, set = 0, binding = 3) readonly buffer BiasBuf { float BIAS[]; };
layout(std430, set = 0, binding = 4) buffer ScrBuf { float SCR[]; };
layout(std430, set = 0, binding = 5) buffer OutBuf { float OUT[]; };
layout(std430, set = 0, binding = 6) readonly buffer ParBuf { uint PARAMS[]; };

layout(push_constant) uniform PC {
  uint H, D, q_off, ldq, kv_rowstride, kv_batchstride, causal, nkeys, has_bias;
  float scale;
  uint out_off, ldo, scr_stride;
} pc;

const float kMasked = -3.0e38;

shared float qs[128];
shared float red[256];
shared float redb[256];
shared float tile[256];

#ifdef KV_F16
float load_k(uint e) { return f16_to_f32(half_bits(KC[e >> 1], e)); }
float load_v(uint e) { return f16_to_f32(half_bits(VC[e >> 1], e)); }
#else
float load_k(uint e) { return KC[e]; }
float load_v(uint e) { return VC[e]; }
#endif

void main() {
  const uint head = gl_WorkGroupID.x, b = gl_WorkGroupID.y, heads = gl_NumWorkGroups.x;
  const uint lid = gl_LocalInvocationID.x;
  const uint D = pc.D;
  uint keys = pc.causal != 0u ? PARAMS[0] + 1u : pc.nkeys;
  keys = min(keys, pc.scr_stride);
  const uint scr = (b * heads + head) * pc.scr_stride;
  const uint kvb = b * pc.kv_batchstride + head * D;

  if (lid < D) {
    precise float q = Q[pc.q_off + b * pc.ldq + head * D + lid] * pc.scale;
    qs[lid] = q;
  }
  barrier();

  // ---- scores --------------------------------------------------------------------------------
#ifdef KV_F16
  const bool kal = (kvb & 7u) == 0u && (pc.kv_rowstride & 7u) == 0u && (D & 7u) == 0u;
#else
  const bool kal = (kvb & 3u) == 0u && (pc.kv_rowstride & 3u) == 0u && (D & 3u) == 0u;
#endif
  float mx = uintBitsToFloat(0xff800000u);  // -inf
  float bmx = mx;
  for (uint j = lid; j < keys; j += 256u) {
    const uint kr = kvb + j * pc.kv_rowstride;
    precise float s = 0.0;
    if (kal) {
#ifdef KV_F16
      for (uint t = 0u; t < D; t += 8u) {
        const uvec4 u = KC4[(kr + t) >> 3];
        const vec2 a = unpackHalf2x16(u.x), c = unpackHalf2x16(u.y);
        const vec2 d = unpackHalf2x16(u.z), e = unpackHalf2x16(u.w);
        s = s + qs[t] * a.x;
        s = s + qs[t + 1u] * a.y;
        s = s + qs[t + 2u] * c.x;
        s = s + qs[t + 3u] * c.y;
        s = s + qs[t + 4u] * d.x;
        s = s + qs[t + 5u] * d.y;
        s = s + qs[t + 6u] * e.x;
        s = s + qs[t + 7u] * e.y;
      }
#else
      for (uint t = 0u; t < D; t += 4u) {
        const vec4 kv = KC4[(kr + t) >> 2];
        s = s + qs[t] * kv.x;
        s = s + qs[t + 1u] * kv.y;
        s = s + qs[t + 2u] * kv.z;
        s = s + qs[t + 3u] * kv.w;
      }
#endif
    } else {
      for (uint t = 0u; t < D; ++t) s = s + qs[t] * load_k(kr + t);
    }
    if (pc.has_bias != 0u) {
      const float bj = BIAS[b * pc.nkeys + j];
      s = s + bj;
      bmx = max(bmx, bj);
    }
    SCR[scr + j] = s;
    mx = max(mx, s);
  }

  // ---- max (and the largest bias, for the all-masked test) -----------------------------------
  red[lid] = mx;
  redb[lid] = bmx;
  barrier();
  for (uint h = 128u; h > 0u; h >>= 1) {
    if (lid < h) {
      red[lid] = max(red[lid], red[lid + h]);
      redb[lid] = max(redb[lid], redb[lid + h]);
    }
    barrier();
  }
  mx = red[0];
  bmx = redb[0];
  const bool all_masked = keys == 0u || (pc.has_bias != 0u && bmx <= kMasked);
  uint G = 1u;  // key groups of the weighted sum: largest power of two with G D <= 256
  while (G < 256u && 2u * G * D <= 256u) G *= 2u;
  if (all_masked) {  // uniform: every thread read the same shared values
    if (lid < D) OUT[pc.out_off + b * pc.ldo + head * D + lid] = 0.0;
    return;
  }
  barrier();  // everyone has read red[0] before it is reused

  // ---- exp and sum ---------------------------------------------------------------------------
  precise float sum = 0.0;
  for (uint j = lid; j < keys; j += 256u) {
#ifdef EXP_CEPHES
    precise float e = exp_cephes(SCR[scr + j] - mx);
#else
    precise float e = exp(SCR[scr + j] - mx);
#endif
    SCR[scr + j] = e;
    sum = sum + e;
  }
  red[lid] = sum;
  barrier();
  for (uint h = 128u; h > 0u; h >>= 1) {
    if (lid < h) {
      precise float r = red[lid] + red[lid + h];
      red[lid] = r;
    }
    barrier();
  }
  precise float inv = 1.0 / red[0];

  // ---- weighted sum of V ---------------------------------------------------------------------
  // Thread (g, t) = (lid / D, lid % D) for lid < G D. Keys go through shared memory in tiles of
  // 256; tile entry lid is written by thread lid, which also wrote SCR at that key.
  const bool in_range = lid < G * D;
  const uint g = lid / D, t = lid - g * D;
  precise float o = 0.0;
  for (uint j0 = 0u; j0 < keys; j0 += 256u) {
    barrier();  // previous tile consumed (and red[0] read, first time round)
    if (j0 + lid < keys) {
      precise float p = SCR[scr + j0 + lid] * inv;
      tile[lid] = p;
    }
    barrier();
    const uint jn = min(256u, keys - j0);
    if (in_range) {
      const uint vb = kvb + t;
      for (uint jj = g; jj < jn; jj += G) o = o + tile[jj] * load_v(vb + (j0 + jj) * pc.kv_rowstride);
    }
  }
  barrier();
  tile[lid] = o;
  barrier();
  if (lid < D) {
    precise float r = tile[lid];
    for (uint gg = 1u; gg < G; ++gg) r = r + tile[gg * D + lid];
    OUT[pc.out_off + b * pc.ldo + head * D + lid] = r;
  }
}
