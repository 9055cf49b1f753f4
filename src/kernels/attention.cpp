// Scalar twins of the single-query attention kernels (kernels/attention.h) and the dispatcher.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu.h"
#include "kernels/fast_math.h"

namespace musicgen::kernels {
namespace {

inline float hsum8(const float* a) {
  return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}
// A score's eight lanes, summed in adjacent pairs (the order the AVX2 kernel's 8-key reduction
// gives).
inline float hsum_pairs(const float* a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return f16_to_f32(p[i]); }
inline float load(const int8_t* p, int64_t i) { return static_cast<float>(p[i]); }

// ks, vs: per-row scales of the q8 cache (nullptr for float and half rows).
template <typename T>
void attend_generic(const float* q, const T* k, const T* v, int64_t keys, int64_t d, float scale,
                    const float* bias, float* scratch, float* out, const float* ks = nullptr,
                    const float* vs = nullptr) {
  std::vector<float> qs(d);
  for (int64_t t = 0; t < d; ++t) qs[t] = q[t] * scale;
  const int64_t d8 = d & ~int64_t{7};
  float mx = -INFINITY;
  if constexpr (std::is_same_v<T, int8_t>) {
    // The q8 cache: the scaled query quantized like a cached row (int8 qi, scale sq), each
    // score an exact integer dot product times sq * ks_j.
    std::vector<int8_t> qi(d);
    float sq = 0.0f;
    quantize_kv_row(qs.data(), d, qi.data(), &sq);
    for (int64_t j = 0; j < keys; ++j) {
      const int8_t* kj = k + j * d;
      int32_t dot = 0;
      for (int64_t t = 0; t < d; ++t) dot += int32_t{qi[t]} * int32_t{kj[t]};
      float s = static_cast<float>(dot) * (sq * ks[j]);
      if (bias != nullptr) s += bias[j];
      scratch[j] = s;
      mx = std::max(mx, s);
    }
  } else {
    for (int64_t j = 0; j < keys; ++j) {
      const T* kj = k + j * d;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t t = 0;
      for (; t < d8; t += 8)
        for (int l = 0; l < 8; ++l) acc[l] = std::fma(qs[t + l], load(kj, t + l), acc[l]);
      float tail = 0.0f;
      for (; t < d; ++t) tail = std::fma(qs[t], load(kj, t), tail);
      float s = hsum_pairs(acc) + tail;
      if (ks != nullptr) s *= ks[j];
      if (bias != nullptr) s += bias[j];
      scratch[j] = s;
      mx = std::max(mx, s);
    }
  }
  const int64_t keys8 = keys & ~int64_t{7};
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j < keys8; j += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += scratch[j + l] = exp_scalar(scratch[j + l] - mx);
  float tail = 0.0f;
  for (; j < keys; ++j) tail += scratch[j] = exp_scalar(scratch[j] - mx);
  const float inv = 1.0f / (hsum8(lanes) + tail);
  std::fill_n(out, d, 0.0f);
  for (int64_t jj = 0; jj < keys; ++jj) {
    float p = scratch[jj] * inv;
    if (vs != nullptr) p *= vs[jj];
    const T* vj = v + jj * d;
    for (int64_t t = 0; t < d; ++t) out[t] = std::fma(p, load(vj, t), out[t]);
  }
}

}  // namespace

void attend_scalar(const float* q, const float* k, const float* v, int64_t keys, int64_t d,
                   float scale, const float* bias, float* scratch, float* out) {
  attend_generic(q, k, v, keys, d, scale, bias, scratch, out);
}

void attend_f16_scalar(const float* q, const uint16_t* k, const uint16_t* v, int64_t keys,
                       int64_t d, float scale, const float* bias, float* scratch, float* out) {
  attend_generic(q, k, v, keys, d, scale, bias, scratch, out);
}

void attend_q8_scalar(const float* q, const int8_t* k, const float* ks, const int8_t* v,
                      const float* vs, int64_t keys, int64_t d, float scale, const float* bias,
                      float* scratch, float* out) {
  attend_generic(q, k, v, keys, d, scale, bias, scratch, out, ks, vs);
}

void attend_q8(const float* q, const int8_t* k, const float* ks, const int8_t* v, const float* vs,
               int64_t keys, int64_t d, float scale, const float* bias, float* scratch,
               float* out) {
  if (isa_at_least(Isa::kAvx2))
    attend_q8_avx2(q, k, ks, v, vs, keys, d, scale, bias, scratch, out);
  else
    attend_q8_scalar(q, k, ks, v, vs, keys, d, scale, bias, scratch, out);
}

void quantize_kv_row(const float* x, int64_t d, int8_t* q, float* scale) {
  float amax = 0.0f;
  for (int64_t t = 0; t < d; ++t) amax = std::max(amax, std::fabs(x[t]));
  const float s = amax / 127.0f;
  const float inv = s != 0.0f ? 1.0f / s : 0.0f;
  for (int64_t t = 0; t < d; ++t) {
    const long r = std::lrint(x[t] * inv);  // to nearest even in the default rounding mode
    q[t] = static_cast<int8_t>(std::clamp<long>(r, -127, 127));
  }
  *scale = s;
}

void attend(const float* q, const float* k, const float* v, int64_t keys, int64_t d, float scale,
            const float* bias, float* scratch, float* out) {
  if (isa_at_least(Isa::kAvx2))
    attend_avx2(q, k, v, keys, d, scale, bias, scratch, out);
  else
    attend_scalar(q, k, v, keys, d, scale, bias, scratch, out);
}

void attend_f16(const float* q, const uint16_t* k, const uint16_t* v, int64_t keys, int64_t d,
                float scale, const float* bias, float* scratch, float* out) {
  if (isa_at_least(Isa::kAvx2))
    attend_f16_avx2(q, k, v, keys, d, scale, bias, scratch, out);
  else
    attend_f16_scalar(q, k, v, keys, d, scale, bias, scratch, out);
}

}  // namespace musicgen::kernels
