#version 450
// LSTM recurrence, part 1 of a time step t > 0 of one layer: the recurrent gate products
// h_{t-1} W_hh^T in K-slices, for every batch item. WT [H][4H] is W_hh transposed (WT[i][r] =
// W_hh[r][i], so consecutive invocations read consecutive words), OUT [B][T][H] the layer's
// hidden states (row t - 1 is h_{t-1}), P [B][S][4H] the partial sums: P[b][s][r] = sum over
// i = s * slice .. min(H, (s + 1) * slice) - 1 ascending, from 0.0, of WT[i][r] * h_{t-1}[i]
// (unfused). codec_lstm_cell.comp adds the S partials and applies the gates. No barriers and no
// shared memory (cheap on lavapipe; every GPU spreads the 4H x S x B invocations).
// Dispatch: (ceil(4H / 256), S, B).
layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer WBuf { float WT[]; };
layout(std430, set = 0, binding = 1) readonly buffer OBuf { float OUT[]; };
layout(std430, set = 0, binding = 2) buffer PBuf { float P[]; };

layout(push_constant) uniform PC {
  uint H, T, t, S, slice;
} pc;

void main() {
  const uint r = gl_GlobalInvocationID.x, s = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint G = 4u * pc.H;
  if (r >= G) return;
  const uint i0 = s * pc.slice, i1 = min(pc.H, i0 + pc.slice);
  const uint hb = (b * pc.T + pc.t - 1u) * pc.H;
  precise float acc = 0.0;
  for (uint i = i0; i < i1; ++i) acc = acc + WT[i * G + r] * OUT[hb + i];
  P[(b * pc.S + s) * G + r] = acc;
}
