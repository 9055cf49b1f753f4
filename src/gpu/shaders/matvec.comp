#version 450
// y = x . W^T (+ bias) (-> gelu) (+ y_old): one weight matrix times up to m activation rows.
// Compile once per weight type with exactly one of -DW_F32, -DW_F16, -DW_BF16, -DW_Q8, -DW_Q4.
//
// Dispatch: groupCountX = ceil(n / 4), Y = Z = 1. 256 threads = 4 output columns x 64 lanes.
//
// Fixed reduction order (a function of k only; not of m, the workgroup or the buffer alignment):
//   the row W(j, .) is cut into chunks of E consecutive elements (E = 4 f32, 8 f16/bf16, 16 q8,
//   32 q4); chunk c covers p in [E c, E c + E) ∩ [0, k). Lane L (0..63) accumulates, for each
//   activation row i separately, acc = acc + x[p] * W(j, p) over the chunks c = L, L + 64,
//   L + 128, ... in increasing order, within a chunk over p increasing, starting from acc = 0.0.
//   The 64 lane sums are then combined in shared memory by the tree
//   s[L] = s[L] + s[L + h] for h = 32, 16, 8, 4, 2, 1 (L < h); the sum is s[0].
//   Every multiply and add is rounded separately (all arithmetic is `precise`, i.e. SPIR-V
//   NoContraction: no device fuses it into an fma; a C++ twin uses plain a + b * c with
//   -ffp-contract=off). Weight values: f32 as stored; f16/bf16 exact conversion; q8 d * q;
//   q4 (d * q) + m.
// Epilogue (per element): r = sum; if (flags & 1) r = r + bias[j]; if (flags & 4) r = gelu_erf(r);
//   if (flags & 2) r = y_old + r; Y = r.
// Rows are processed in chunks of 8 (each weight is read once per chunk of 8 rows).
// X must not alias Y.
// -DLN_FUSED: the rows of X are first layer-normalised (bindings 5 GAMMA, 6 BETA, push constant
//   eps after nbp), with exactly layernorm.comp's arithmetic (the same 256-thread reductions and
//   element expression), so the result is bitwise the unfused layernorm + matvec pair; it saves
//   a dispatch and a barrier. Every workgroup recomputes each row's statistics: for small m.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#if defined(W_F32)
#define E 4u
#elif defined(W_F16) || defined(W_BF16)
#define E 8u
#elif defined(W_Q8)
#define E 16u
#elif defined(W_Q4)
#define E 32u
#else
#error "define one of W_F32, W_F16, W_BF16, W_Q8, W_Q4"
#endif

layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer XBuf { float X[]; };
layout(std430, set = 0, binding = 0) readonly buffer XBuf4 { vec4 X4[]; };  // alias: 16-byte loads
layout(std430, set = 0, binding = 1) readonly buffer WBuf { uint W[]; };
layout(std430, set = 0, binding = 1) readonly buffer WBuf4 { uvec4 W4[]; };  // alias: 16-byte loads
layout(std430, set = 0, binding = 2) readonly buffer SBuf { uint S[]; };
layout(std430, set = 0, binding = 3) readonly buffer BBuf { float BIAS[]; };
layout(std430, set = 0, binding = 4) buffer YBuf { float Y[]; };

#ifdef LN_FUSED
layout(std430, set = 0, binding = 5) readonly buffer GBuf { float GAMMA[]; };
layout(std430, set = 0, binding = 6) readonly buffer BtBuf { float BETA[]; };
layout(push_constant) uniform PC {
  uint m, n, k, x_off, ldx, y_off, ldy, flags, kp, nbp;
  float eps;
} pc;
#else
layout(push_constant) uniform PC {
  uint m, n, k, x_off, ldx, y_off, ldy, flags, kp, nbp;
} pc;
#endif

const uint ROWS = 8u;
shared float red[ROWS * 256u];
#ifdef LN_FUSED
shared float ln_mean[ROWS], ln_rstd[ROWS];
uint g_i0 = 0u;  // first row of the current chunk

float ln_tree_sum(float v, uint lid) {  // layernorm.comp's tree_sum, on red[0 .. 255]
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
  barrier();
  return total;
}

// Mean and 1/sqrt(var + eps) of rows i0 .. i0 + rows - 1, as layernorm.comp computes them.
void ln_stats(uint i0, uint rows, uint lid) {
  for (uint r = 0u; r < rows; ++r) {
    const uint xb = pc.x_off + (i0 + r) * pc.ldx;
    precise float s = 0.0;
    for (uint i = lid; i < pc.k; i += 256u) s = s + X[xb + i];
    precise float mean = ln_tree_sum(s, lid) / float(pc.k);
    precise float v = 0.0;
    for (uint i = lid; i < pc.k; i += 256u) {
      precise float d = X[xb + i] - mean;
      v = v + d * d;
    }
    precise float var = ln_tree_sum(v, lid) / float(pc.k);
    precise float rstd = inversesqrt(var + pc.eps);
    if (lid == 0u) {
      ln_mean[r] = mean;
      ln_rstd[r] = rstd;
    }
  }
  barrier();
}
#endif

// Rarely taken paths (unaligned data, row tails) are written as loops guarded by the condition
// (`for (...; !fast && ...; ...)`) rather than as ifs: the same on GPUs, but lavapipe (which runs
// both sides of an if under a lane mask) then skips them when no lane needs them.

// x[i][p0 .. p0 + 3] for p0 a multiple of 4; elements at or past k read as 0 (never used).
vec4 load_x4(uint i, uint p0, bool xal) {
  const uint base = pc.x_off + i * pc.ldx + p0;
  const bool fast = xal && p0 + 4u <= pc.k;
  vec4 v = vec4(0.0);
  if (fast) v = X4[base >> 2];
  for (uint l = 0u; !fast && l < 4u; ++l)
    if (p0 + l < pc.k) v[l] = X[base + l];
#ifdef LN_FUSED
  const float mean = ln_mean[i - g_i0], rstd = ln_rstd[i - g_i0];
  for (uint l = 0u; l < 4u; ++l)
    if (p0 + l < pc.k) {
      precise float y = ((v[l] - mean) * rstd) * GAMMA[p0 + l] + BETA[p0 + l];
      v[l] = y;
    }
#endif
  return v;
}

// acc + x[i][p0 .. p0 + 3] . w, element by element in increasing p; elements at or past k skipped.
float add4(float acc, uint i, uint p0, vec4 w, bool xal) {
  const vec4 x = load_x4(i, p0, xal);
  precise float a = acc;
  if (p0 + 4u <= pc.k) {
    a = a + x.x * w.x;
    a = a + x.y * w.y;
    a = a + x.z * w.z;
    a = a + x.w * w.w;
  } else {
    if (p0 < pc.k) a = a + x.x * w.x;
    if (p0 + 1u < pc.k) a = a + x.y * w.y;
    if (p0 + 2u < pc.k) a = a + x.z * w.z;
  }
  return a;
}

// The row accumulators are separate scalars (a0 .. a7) and every loop over rows or weight groups
// is unrolled by hand: no private arrays with dynamic indices. NR (a constant: 1, 4 or 8) is the
// most rows the enclosing chunk loop handles.
#define ACCUM4(W, P0, NR)                                                      \
  {                                                                            \
    const vec4 w_ = (W);                                                       \
    const uint p_ = (P0);                                                      \
    a0 = add4(a0, i0, p_, w_, xal);                                            \
    if ((NR) > 1u && rows > 1u) a1 = add4(a1, i0 + 1u, p_, w_, xal);           \
    if ((NR) > 2u && rows > 2u) a2 = add4(a2, i0 + 2u, p_, w_, xal);           \
    if ((NR) > 3u && rows > 3u) a3 = add4(a3, i0 + 3u, p_, w_, xal);           \
    if ((NR) > 4u && rows > 4u) a4 = add4(a4, i0 + 4u, p_, w_, xal);           \
    if ((NR) > 5u && rows > 5u) a5 = add4(a5, i0 + 5u, p_, w_, xal);           \
    if ((NR) > 6u && rows > 6u) a6 = add4(a6, i0 + 6u, p_, w_, xal);           \
    if ((NR) > 7u && rows > 7u) a7 = add4(a7, i0 + 7u, p_, w_, xal);           \
  }

// One chunk c (elements p0 = c E .. p0 + E - 1) of weight row j, into rows i0 .. i0 + rows - 1.
#if defined(W_F32)
#define CHUNK_BODY(NR)                                                         \
  {                                                                            \
    const uint p0 = c * E;                                                     \
    const uint wb = j * pc.k + p0; /* word index of the chunk */               \
    const bool fast = p0 + E <= pc.k && (wb & 3u) == 0u;                       \
    vec4 w = vec4(0.0);                                                        \
    if (fast) w = uintBitsToFloat(W4[wb >> 2]);                                \
    for (uint l = 0u; !fast && l < 4u; ++l)                                    \
      if (p0 + l < pc.k) w[l] = uintBitsToFloat(W[wb + l]);                    \
    ACCUM4(w, p0, NR);                                                         \
  }
#elif defined(W_F16) || defined(W_BF16)
#if defined(W_F16)
#define CVT2(U) f16x2_to_f32(U)
#else
#define CVT2(U) bf16x2_to_f32(U)
#endif
// Rows starting mid-word (k odd) and the row's tail gather the 8 halves one by one.
#define CHUNK_BODY(NR)                                                         \
  {                                                                            \
    const uint p0 = c * E;                                                     \
    const uint hb = j * pc.k + p0; /* half index of the chunk */               \
    const bool fast = p0 + E <= pc.k && (hb & 7u) == 0u;                       \
    uvec4 u = uvec4(0u);                                                       \
    if (fast) u = W4[hb >> 3];                                                 \
    for (uint l = 0u; !fast && l < 8u; ++l)                                    \
      if (p0 + l < pc.k) u[l >> 1] |= half_bits(W[(hb + l) >> 1], hb + l) << (16u * (l & 1u)); \
    ACCUM4(vec4(CVT2(u.x), CVT2(u.y)), p0, NR);                                \
    if (p0 + 4u < pc.k) ACCUM4(vec4(CVT2(u.z), CVT2(u.w)), p0 + 4u, NR);       \
  }
#elif defined(W_Q8)
// Row j: bytes [j kp, (j + 1) kp), 16-byte aligned (kp is a multiple of 32); a chunk is half a
// block. Elements 4g .. 4g + 3 of the chunk are the 4 signed bytes of word g.
#define Q8_GROUP(WORD, G, NR)                                                  \
  if (p0 + 4u * (G) < pc.k) {                                                  \
    const uint wd_ = (WORD);                                                   \
    precise vec4 w_ = vec4(d * i8_of(wd_, 0), d * i8_of(wd_, 1),               \
                           d * i8_of(wd_, 2), d * i8_of(wd_, 3));              \
    ACCUM4(w_, p0 + 4u * (G), NR);                                             \
  }
#define CHUNK_BODY(NR)                                                         \
  {                                                                            \
    const uint p0 = c * E;                                                     \
    const uvec4 u = W4[(j * pc.kp >> 4) + c];                                  \
    const uint sh = j * pc.nbp + (c >> 1); /* half index of the block scale */ \
    const float d = f16_to_f32(half_bits(S[sh >> 1], sh));                     \
    Q8_GROUP(u.x, 0u, NR);                                                     \
    Q8_GROUP(u.y, 1u, NR);                                                     \
    Q8_GROUP(u.z, 2u, NR);                                                     \
    Q8_GROUP(u.w, 3u, NR);                                                     \
  }
#elif defined(W_Q4)
// Row j: bytes [j kp / 2, (j + 1) kp / 2); a chunk is one block = 16 bytes = one uvec4. Byte t
// holds element t (low nibble) and t + 16 (high nibble), so elements 4g .. 4g + 3 are nibbles
// SH, SH + 2, SH + 4, SH + 6 of word g & 3 with SH = 0 for g < 4 (low) and 1 for g >= 4 (high).
#define Q4_GROUP(WORD, SH, G, NR)                                              \
  if (p0 + 4u * (G) < pc.k) {                                                  \
    const uint wd_ = (WORD);                                                   \
    precise vec4 w_ = vec4(d * u4_of(wd_, (SH)) + mn, d * u4_of(wd_, (SH) + 2) + mn, \
                           d * u4_of(wd_, (SH) + 4) + mn, d * u4_of(wd_, (SH) + 6) + mn); \
    ACCUM4(w_, p0 + 4u * (G), NR);                                             \
  }
#define CHUNK_BODY(NR)                                                         \
  {                                                                            \
    const uint p0 = c * E;                                                     \
    const uvec4 u = W4[(j * pc.kp >> 5) + c];                                  \
    const uint sd = j * 2u * pc.nbp + c, sm = sd + pc.nbp; /* d and m */       \
    const float d = f16_to_f32(half_bits(S[sd >> 1], sd));                     \
    const float mn = f16_to_f32(half_bits(S[sm >> 1], sm));                    \
    Q4_GROUP(u.x, 0, 0u, NR);                                                  \
    Q4_GROUP(u.y, 0, 1u, NR);                                                  \
    Q4_GROUP(u.z, 0, 2u, NR);                                                  \
    Q4_GROUP(u.w, 0, 3u, NR);                                                  \
    Q4_GROUP(u.x, 1, 4u, NR);                                                  \
    Q4_GROUP(u.y, 1, 5u, NR);                                                  \
    Q4_GROUP(u.z, 1, 6u, NR);                                                  \
    Q4_GROUP(u.w, 1, 7u, NR);                                                  \
  }
#endif

void main() {
  const uint lid = gl_LocalInvocationID.x;
  const uint col = lid >> 6, lane = lid & 63u;
  const uint j = gl_WorkGroupID.x * 4u + col;
  const bool jvalid = j < pc.n;
  const uint nchunks = jvalid ? (pc.k + E - 1u) / E : 0u;
  const bool xal = (pc.x_off & 3u) == 0u && (pc.ldx & 3u) == 0u;

  for (uint i0 = 0u; i0 < pc.m; i0 += ROWS) {
    const uint rows = min(ROWS, pc.m - i0);
#ifdef LN_FUSED
    g_i0 = i0;
    ln_stats(i0, rows, lid);
#endif
    float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0;
    // Three copies of the chunk loop, for 1, 2..4 and 5..8 rows; exactly one runs. The same
    // arithmetic for a given row whichever copy runs.
    for (uint c = lane; rows == 1u && c < nchunks; c += 64u) CHUNK_BODY(1u)
    for (uint c = lane; rows >= 2u && rows <= 4u && c < nchunks; c += 64u) CHUNK_BODY(4u)
    for (uint c = lane; rows >= 5u && c < nchunks; c += 64u) CHUNK_BODY(8u)

    red[lid] = a0;
    if (rows > 1u) red[256u + lid] = a1;
    if (rows > 2u) red[512u + lid] = a2;
    if (rows > 3u) red[768u + lid] = a3;
    if (rows > 4u) red[1024u + lid] = a4;
    if (rows > 5u) red[1280u + lid] = a5;
    if (rows > 6u) red[1536u + lid] = a6;
    if (rows > 7u) red[1792u + lid] = a7;
    barrier();
    for (uint h = 32u; h > 0u; h >>= 1) {
      for (uint r = 0u; lane < h && r < rows; ++r) {
        precise float s = red[r * 256u + lid] + red[r * 256u + lid + h];
        red[r * 256u + lid] = s;
      }
      barrier();
    }

    if (jvalid && lane < rows) {
      precise float r = red[lane * 256u + col * 64u];
      if ((pc.flags & 1u) != 0u) r = r + BIAS[j];
      if ((pc.flags & 4u) != 0u) r = gelu_erf(r);
      const uint yi = pc.y_off + (i0 + lane) * pc.ldy + j;
      if ((pc.flags & 2u) != 0u) r = Y[yi] + r;
      Y[yi] = r;
    }
    barrier();  // red is rewritten by the next row chunk
  }
}
