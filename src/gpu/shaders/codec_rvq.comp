#version 450
// Residual vector quantizer decode: Z[b, t, d] = sum over q = 0..nq-1 (ascending, from 0.0) of
// CB[q][CODES[b][q][t]][d]. CODES int [B][nq][T] (already validated), CB float [Q][V][D],
// Z float [B][T][D] (time-major).
// Dispatch: (min(ceil(T * D / 256), 65535), B, 1); the invocations stride over T * D.
layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer CBuf { int CODES[]; };
layout(std430, set = 0, binding = 1) readonly buffer EBuf { float CB[]; };
layout(std430, set = 0, binding = 2) buffer ZBuf { float Z[]; };

layout(push_constant) uniform PC {
  uint nq, T, D, V;
} pc;

void main() {
  const uint b = gl_WorkGroupID.y;
  const uint n = pc.T * pc.D;
  const uint stride = gl_NumWorkGroups.x * 256u;
  for (uint i = gl_GlobalInvocationID.x; i < n; i += stride) {
    const uint t = i / pc.D, d = i % pc.D;
    precise float acc = 0.0;
    for (uint q = 0u; q < pc.nq; ++q) {
      const uint code = uint(CODES[(b * pc.nq + q) * pc.T + t]);
      acc = acc + CB[(q * pc.V + code) * pc.D + d];
    }
    Z[b * n + i] = acc;
  }
}
