#version 450
// Self-attention of one decoder step, split over the keys (flash-decoding): workgroup
// (split s, head, b) handles keys [s*chunk, min(P + 1, (s+1)*chunk)) of one query and writes
// its partial result to PART[((b*heads + head)*max_splits + s)*(D + 2) + ...]:
//   o[t] = sum_j e_j v_j[t]  (t < D),  PART[.. + D] = m (the chunk's max score),
//   PART[.. + D + 1] = sum_j e_j,  with e_j = exp(s_j - m), s_j = sum_t (q_t * scale) k_j[t].
// attn_combine.comp merges the splits. The new key and value (position P = PARAMS[0]) come from
// the fused q|k|v rows (rounded to half with -DKV_F16, exactly what the cache will hold), and
// split 0 also writes them into the caches for later steps: no separate kv_write dispatch.
// Caches [B][cap][H]: float, or with -DKV_F16 packed IEEE halves (two per uint, low first).
// Grid: (max_splits, heads, B); local size 64 (= chunk, the keys of a split).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 64, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer QkvBuf { float QKV[]; };
#ifdef KV_F16
layout(std430, set = 0, binding = 1) buffer KBuf { uint KC[]; };
layout(std430, set = 0, binding = 1) readonly buffer KBuf4 { uvec4 KC4[]; };  // 8 halves
layout(std430, set = 0, binding = 2) buffer VBuf { uint VC[]; };
#else
layout(std430, set = 0, binding = 1) buffer KBuf { float KC[]; };
layout(std430, set = 0, binding = 1) readonly buffer KBuf4 { vec4 KC4[]; };
layout(std430, set = 0, binding = 2) buffer VBuf { float VC[]; };
#endif
layout(std430, set = 0, binding = 3) buffer PartBuf { float PART[]; };
layout(std430, set = 0, binding = 4) readonly buffer ParBuf { uint PARAMS[]; };

layout(push_constant) uniform PC {
  uint H, D, ldq, q_off, k_off, v_off, cap, max_splits;
  float scale;
} pc;

const uint CHUNK = 64u;
shared float qs[128];
shared float kn[128];  // the new key / value of position P (as the cache holds them)
shared float vn[128];
shared float e[CHUNK];
shared float red[CHUNK];

#ifdef KV_F16
float cache_k(uint e_) { return f16_to_f32(half_bits(KC[e_ >> 1], e_)); }
float cache_v(uint e_) { return f16_to_f32(half_bits(VC[e_ >> 1], e_)); }
float as_cached(float x) { return f16_to_f32(f32_to_f16(x)); }
#else
float cache_k(uint e_) { return KC[e_]; }
float cache_v(uint e_) { return VC[e_]; }
float as_cached(float x) { return x; }
#endif

void main() {
  const uint split = gl_WorkGroupID.x, head = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint heads = gl_NumWorkGroups.y;
  const uint lid = gl_LocalInvocationID.x;
  const uint D = pc.D, P = PARAMS[0];
  const uint keys = P + 1u;
  const uint row = b * pc.ldq + head * D;
  for (uint t = lid; t < D; t += CHUNK) {
    qs[t] = QKV[row + pc.q_off + t] * pc.scale;
    kn[t] = as_cached(QKV[row + pc.k_off + t]);
    vn[t] = as_cached(QKV[row + pc.v_off + t]);
  }
  const uint cache_row = (b * pc.cap + P) * pc.H + head * D;
  if (split == 0u) {  // the cache entries of position P, for the steps after this one
#ifdef KV_F16
    for (uint w = lid; 2u * w < D; w += CHUNK) {
      const uint e0 = cache_row + 2u * w;
      KC[e0 >> 1] = pack_f16x2(QKV[row + pc.k_off + 2u * w], QKV[row + pc.k_off + 2u * w + 1u]);
      VC[e0 >> 1] = pack_f16x2(QKV[row + pc.v_off + 2u * w], QKV[row + pc.v_off + 2u * w + 1u]);
    }
#else
    for (uint t = lid; t < D; t += CHUNK) {
      KC[cache_row + t] = QKV[row + pc.k_off + t];
      VC[cache_row + t] = QKV[row + pc.v_off + t];
    }
#endif
  }
  barrier();
  const uint begin = split * CHUNK;
  if (begin >= keys) return;  // uniform per workgroup
  const uint n = min(CHUNK, keys - begin);
  const uint kvb = b * pc.cap * pc.H + head * D;

  float s = uintBitsToFloat(0xff800000u);  // -inf for threads past the chunk's keys
  if (lid < n) {
    const uint j = begin + lid;
    precise float acc = 0.0;
    if (j == P) {
      for (uint t = 0u; t < D; ++t) acc = acc + qs[t] * kn[t];
    } else {
      const uint kr = kvb + j * pc.H;
#ifdef KV_F16
      const bool vec = (kr & 7u) == 0u && (D & 7u) == 0u;  // 16-byte loads of 8 halves
      for (uint t = 0u; vec && t < D; t += 8u) {
        const uvec4 u = KC4[(kr + t) >> 3];
        const vec2 k0 = unpackHalf2x16(u.x), k1 = unpackHalf2x16(u.y);
        const vec2 k2 = unpackHalf2x16(u.z), k3 = unpackHalf2x16(u.w);
        acc = acc + qs[t] * k0.x;
        acc = acc + qs[t + 1u] * k0.y;
        acc = acc + qs[t + 2u] * k1.x;
        acc = acc + qs[t + 3u] * k1.y;
        acc = acc + qs[t + 4u] * k2.x;
        acc = acc + qs[t + 5u] * k2.y;
        acc = acc + qs[t + 6u] * k3.x;
        acc = acc + qs[t + 7u] * k3.y;
      }
#else
      const bool vec = (kr & 3u) == 0u && (D & 3u) == 0u;  // 16-byte loads
      for (uint t = 0u; vec && t < D; t += 4u) {
        const vec4 k4 = KC4[(kr + t) >> 2];
        acc = acc + qs[t] * k4.x;
        acc = acc + qs[t + 1u] * k4.y;
        acc = acc + qs[t + 2u] * k4.z;
        acc = acc + qs[t + 3u] * k4.w;
      }
#endif
      for (uint t = 0u; !vec && t < D; ++t) acc = acc + qs[t] * cache_k(kr + t);
    }
    s = acc;
  }
  red[lid] = s;
  barrier();
  for (uint h = CHUNK / 2u; h > 0u; h >>= 1) {
    if (lid < h) red[lid] = max(red[lid], red[lid + h]);
    barrier();
  }
  const float m = red[0];
  barrier();
  const float ej = lid < n ? exp(s - m) : 0.0;
  e[lid] = ej;
  red[lid] = ej;
  barrier();
  for (uint h = CHUNK / 2u; h > 0u; h >>= 1) {
    if (lid < h) {
      precise float r = red[lid] + red[lid + h];
      red[lid] = r;
    }
    barrier();
  }
  const uint part = ((b * heads + head) * pc.max_splits + split) * (D + 2u);
  for (uint t = lid; t < D; t += CHUNK) {
    precise float o = 0.0;
    for (uint j = 0u; j < n; ++j) {
      const uint key = begin + j;
      const float v = key == P ? vn[t] : cache_v(kvb + key * pc.H + t);
      o = o + e[j] * v;
    }
    PART[part + t] = o;
  }
  if (lid == 0u) {
    PART[part + D] = m;
    PART[part + D + 1u] = red[0];
  }
}
