#version 450
// Transposed 1-D convolution as nn::ConvTranspose1d computes it (src/nn/conv.cpp), trimmed to
// length lin * stride: X [B][lin][cin] (item b at x_off + b * x_bstride), W [kernel][cin][coutp]
// (W[j][ci][co] is PyTorch's weight[ci][co][j]), Y [B][nout][cout] (item b at y_off +
// b * y_bstride). Output row o is raw row p = o + pad_left (pad_left = padding_total -
// padding_total / 2, padding_total = kernel - stride); it receives tap j = p - t * stride of every
// input step t with 0 <= j < kernel.
// W's last dimension is padded to a multiple of 4 (zeros): an invocation computes 4 consecutive
// output channels of one row, each with its own accumulator.
// Sum: per step t ascending, s = 0; s = s + x * w over ci ascending (the CPU's product, unfused);
// acc = acc + s from acc = 0 (the overlap-add); then acc = acc + BIAS[co] (flags & 1).
// Dispatch: (min(ceil(nout * ceil(cout / 4) / 256), 65535), B, 1); invocations stride over
// nout * ceil(cout / 4).
layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer XBuf { float X[]; };
layout(std430, set = 0, binding = 1) readonly buffer WBuf { float W[]; };
layout(std430, set = 0, binding = 2) readonly buffer BiasBuf { float BIAS[]; };
layout(std430, set = 0, binding = 3) buffer YBuf { float Y[]; };

layout(push_constant) uniform PC {
  uint cin, cout, kernel, stride, lin, pad_left, x_off, x_bstride, y_off, y_bstride, nout, flags;
} pc;

void main() {
  const uint b = gl_WorkGroupID.y;
  const uint cq = (pc.cout + 3u) / 4u, coutp = 4u * cq;
  const uint n = pc.nout * cq;
  const uint gstride = gl_NumWorkGroups.x * 256u;
  const uint xb = pc.x_off + b * pc.x_bstride;
  for (uint i = gl_GlobalInvocationID.x; i < n; i += gstride) {
    const uint o = i / cq, co0 = 4u * (i % cq);
    const uint p = o + pc.pad_left;
    const uint tf = p + 1u >= pc.kernel ? (p + 1u - pc.kernel + pc.stride - 1u) / pc.stride : 0u;
    const uint tl = min(pc.lin - 1u, p / pc.stride);
    precise vec4 acc = vec4(0.0);
    for (uint t = tf; t <= tl; ++t) {
      const uint j = p - t * pc.stride;
      const uint xr = xb + t * pc.cin;
      uint wr = j * pc.cin * coutp + co0;
      precise vec4 s = vec4(0.0);
      for (uint ci = 0u; ci < pc.cin; ++ci, wr += coutp) {
        const float xv = X[xr + ci];
        s = s + xv * vec4(W[wr], W[wr + 1u], W[wr + 2u], W[wr + 3u]);
      }
      acc = acc + s;
    }
    const uint yr = pc.y_off + b * pc.y_bstride + o * pc.cout;
    for (uint q = 0u; q < 4u && co0 + q < pc.cout; ++q) {
      precise float v = acc[q];
      if ((pc.flags & 1u) != 0u) v = v + BIAS[co0 + q];
      Y[yr + co0 + q] = v;
    }
  }
}
