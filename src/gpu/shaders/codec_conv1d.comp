#version 450
// 1-D convolution as nn::Conv1d computes it (src/nn/conv.cpp), time-major activations:
// X [B][lin][cin] (item b at x_off + b * x_bstride), W [kernel][cin][coutp] (W[j][ci][co] is
// PyTorch's weight[co][ci][j]), output rows [o0, o0 + nout) of the convolution, row o of item b
// written at Y[y_off + b * y_bstride + (o - o0) * cout + co].
// W's last dimension is padded to a multiple of 4 (zeros): an invocation computes 4 consecutive
// output channels of one row (the x loads shared), each with its own accumulator.
// Padded row p = o * stride + j * dilation reads input row reflect(p) (nn::reflect_source_row,
// HF EncodecConv1d._pad1d, zeros for the short-input workaround); pad_left/pad_right are
// nn::conv1d_paddings(lin, (kernel - 1) * dilation + 1, stride), computed by the host.
// Sum: acc = 0; acc = acc + x * w over j ascending, ci ascending (the CPU's chain order, unfused);
// then acc = acc + BIAS[co] (flags & 1); then y = RES[res_off + b * res_bstride + (o - o0) * cout
// + co] + acc (flags & 2, the residual block's skip). RES and BIAS are read only when flagged.
// Dispatch: (min(ceil(nout * ceil(cout / 4) / 256), 65535), B, 1); invocations stride over
// nout * ceil(cout / 4).
layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer XBuf { float X[]; };
layout(std430, set = 0, binding = 1) readonly buffer WBuf { float W[]; };
layout(std430, set = 0, binding = 2) readonly buffer BiasBuf { float BIAS[]; };
layout(std430, set = 0, binding = 3) buffer YBuf { float Y[]; };
layout(std430, set = 0, binding = 4) readonly buffer RBuf { float RES[]; };

layout(push_constant) uniform PC {
  uint cin, cout, kernel, stride, dilation, lin, pad_left, pad_right;
  uint x_off, x_bstride, y_off, y_bstride, o0, nout, res_off, res_bstride, flags;
} pc;

// nn::reflect_source_row: the input row of padded row p, or -1 for a zero row.
int reflect_source_row(int p, int length, int pl, int pr) {
  const int max_pad = max(pl, pr);
  const int extended = length <= max_pad ? max_pad + 1 : length;
  int j = p - pl;
  if (j < 0)
    j = -j;
  else if (j >= extended)
    j = 2 * (extended - 1) - j;
  return j < length ? j : -1;
}

void main() {
  const uint b = gl_WorkGroupID.y;
  const uint cq = (pc.cout + 3u) / 4u, coutp = 4u * cq;
  const uint n = pc.nout * cq;
  const uint stride = gl_NumWorkGroups.x * 256u;
  const uint xb = pc.x_off + b * pc.x_bstride;
  for (uint i = gl_GlobalInvocationID.x; i < n; i += stride) {
    const uint ol = i / cq, co0 = 4u * (i % cq);
    const uint o = pc.o0 + ol;
    precise vec4 acc = vec4(0.0);
    for (uint j = 0u; j < pc.kernel; ++j) {
      const int src = reflect_source_row(int(o * pc.stride + j * pc.dilation), int(pc.lin),
                                         int(pc.pad_left), int(pc.pad_right));
      if (src < 0) continue;  // a zero row adds 0 * w
      const uint xr = xb + uint(src) * pc.cin;
      uint wr = j * pc.cin * coutp + co0;
      for (uint ci = 0u; ci < pc.cin; ++ci, wr += coutp) {
        const float xv = X[xr + ci];
        acc = acc + xv * vec4(W[wr], W[wr + 1u], W[wr + 2u], W[wr + 3u]);
      }
    }
    const uint yr = pc.y_off + b * pc.y_bstride + ol * pc.cout;
    const uint rr = pc.res_off + b * pc.res_bstride + ol * pc.cout;
    for (uint q = 0u; q < 4u && co0 + q < pc.cout; ++q) {
      precise float v = acc[q];
      if ((pc.flags & 1u) != 0u) v = v + BIAS[co0 + q];
      if ((pc.flags & 2u) != 0u) v = RES[rr + co0 + q] + v;
      Y[yr + co0 + q] = v;
    }
  }
}
