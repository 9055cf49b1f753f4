#version 450
// LSTM recurrence, part 2 of time step t of one layer (PyTorch semantics: gates i, f, g, o; zero
// initial h and c): for hidden unit j of item b, the recurrent product of gate row r = q H + j is
// hg = (P[b][0][r] + P[b][1][r] + ...) (S partials of codec_lstm_gates.comp, ascending from 0.0;
// 0 at t = 0) + BHH[r], and pre = hg + XP[b][t][r] (XP = x_t W_ih^T + b_ih for every step,
// computed before; the CPU's order). sigmoid(v) = 1 / (1 + exp(-v)), tanh(v) = sign(v) (1 - 2 /
// (exp(2|v|) + 1)), exp = exp_cephes (common.glsl); c = f c + i g (C [B][H], rw; not read at
// t = 0); h = o tanh(c), written to OUT [B][T][H] row t.
// Dispatch: (ceil(H / 256), B, 1).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer PBuf { float P[]; };
layout(std430, set = 0, binding = 1) readonly buffer XPBuf { float XP[]; };
layout(std430, set = 0, binding = 2) readonly buffer BBuf { float BHH[]; };
layout(std430, set = 0, binding = 3) buffer CBuf { float C[]; };
layout(std430, set = 0, binding = 4) buffer OBuf { float OUT[]; };

layout(push_constant) uniform PC {
  uint H, T, t, S;
} pc;

float sigmoid(float v) {
  precise float d = 1.0 + exp_cephes(-v);
  precise float s = 1.0 / d;
  return s;
}
float tanh_exp(float v) {
  precise float e = exp_cephes(2.0 * abs(v)) + 1.0;
  precise float r = 1.0 - 2.0 / e;
  return v < 0.0 ? -r : r;
}

void main() {
  const uint j = gl_GlobalInvocationID.x, b = gl_WorkGroupID.y;
  const uint H = pc.H, G = 4u * H;
  if (j >= H) return;
  const uint xp = (b * pc.T + pc.t) * G;
  float pre[4];
  for (uint q = 0u; q < 4u; ++q) {
    const uint r = q * H + j;
    precise float acc = 0.0;
    if (pc.t > 0u)
      for (uint s = 0u; s < pc.S; ++s) acc = acc + P[(b * pc.S + s) * G + r];
    precise float hg = acc + BHH[r];
    precise float v = hg + XP[xp + r];
    pre[q] = v;
  }
  const float ig = sigmoid(pre[0]);
  const float fg = sigmoid(pre[1]);
  const float gg = tanh_exp(pre[2]);
  const float og = sigmoid(pre[3]);
  const float c_old = pc.t > 0u ? C[b * H + j] : 0.0;
  precise float c = fg * c_old + ig * gg;
  precise float h = og * tanh_exp(c);
  C[b * H + j] = c;
  OUT[(b * pc.T + pc.t) * H + j] = h;
}
