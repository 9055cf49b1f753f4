#version 450
// Y = A + B elementwise over n floats (EnCodec's LSTM skip: LSTM(x) + x). Y may be A or B.
// Dispatch: (min(ceil(n / 256), 65535), 1, 1); the invocations stride over [0, n).
layout(local_size_x = 256, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer ABuf { float A[]; };
layout(std430, set = 0, binding = 1) readonly buffer BBuf { float B[]; };
layout(std430, set = 0, binding = 2) buffer YBuf { float Y[]; };

layout(push_constant) uniform PC {
  uint n;
} pc;

void main() {
  const uint stride = gl_NumWorkGroups.x * 256u;
  for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) {
    precise float s = A[i] + B[i];
    Y[i] = s;
  }
}
