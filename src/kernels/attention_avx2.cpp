// AVX2+FMA+F16C variants of the attention kernels (kernels/attention.h) and of the erf-GELU
// (kernels/fast_math.h). Operation order mirrors the scalar twins exactly.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/fast_math.h"
#include "kernels/fast_math_avx2.h"
#include "kernels/prefetch.h"

namespace musicgen::kernels {
namespace {

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s01 = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  const __m128 s23 = _mm_add_ss(_mm_shuffle_ps(s, s, 2), _mm_shuffle_ps(s, s, 3));
  return _mm_cvtss_f32(_mm_add_ss(s01, s23));
}

inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load8(const int8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return _cvtsh_ss(*p); }
inline float load1(const int8_t* p) { return static_cast<float>(*p); }

// hsum_pairs: ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)), the order the scalar twin uses, and the
// order hsum8_keys gives each of eight accumulators at once.
inline float hsum_pairs(__m256 v) {
  const __m256 h = _mm256_hadd_ps(v, v);   // [l0+l1, l2+l3, .., .. | l4+l5, l6+l7, .., ..]
  const __m256 h2 = _mm256_hadd_ps(h, h);  // [(l0+l1)+(l2+l3), .. | (l4+l5)+(l6+l7), ..]
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h2), _mm256_extractf128_ps(h2, 1)));
}

// The eight sums of eight accumulators (a[r] -> lane r), each in hsum_pairs order.
inline __m256 hsum8_keys(const __m256* a) {
  const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);
  // q0 = [keys 0-3: lanes 0-3 sums | keys 0-3: lanes 4-7 sums], q1 likewise for keys 4-7.
  return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
}

// The four sums of four accumulators (a[r] -> lane r of the result), each in hsum_pairs order.
inline __m128 hsum4_keys(const __m256* a) {
  const __m256 q = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  // q = [keys 0-3: lanes 0-3 sums | keys 0-3: lanes 4-7 sums]
  return _mm_add_ps(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1));
}

// Software prefetch. A decoder cache holds each (stream, head) in its own block of `capacity`
// rows of which the first `keys` are read: every call reads two short streams (K, then V) that the
// hardware prefetcher meets cold, so without help the kernel waits on memory latency (measured
// 2.2x slower than one contiguous stream, bench/attention_bench --capacity). The score loop asks
// for the K rows kPrefetchKeys ahead and for the V rows of the keys it scores (read after the
// softmax). Hints only: no result changes.
constexpr int64_t kPrefetchKeys = 16;
// Rows [j, j + n) of a K or V block of `keys` rows of width d, clipped to the block.
template <typename T>
inline void prefetch_rows(const T* rows, int64_t d, int64_t j, int64_t n, int64_t keys) {
  if (j >= keys) return;
  prefetch(rows + j * d, std::min(n, keys - j) * d * static_cast<int64_t>(sizeof(T)));
}

// Keys whose scores are computed together: independent dot products in flight, reduced in one
// transposition. Half rows take 8 (their conversions leave room for the loads of eight rows; the
// int8 rows' integer scores, scores_q8, take 8 too); float rows take 4 (eight interleaved rows
// measured 10-15% slower from memory, bench/attention_bench).
template <typename T>
constexpr int keys_per_pass() {
  return std::is_same_v<T, float> ? 4 : 8;
}

// out[0, 8 NV) = sum_j (p_j * inv [* vs_j]) v_j[0, 8 NV), keys in order (v: rows of stride d).
template <int NV, typename T>
void weighted_sum(const T* v, int64_t d, int64_t keys, const float* p, float inv, const float* vs,
                  float* out) {
  __m256 o[NV];
  for (int r = 0; r < NV; ++r) o[r] = _mm256_setzero_ps();
  for (int64_t j = 0; j < keys; ++j) {
    float pj = p[j] * inv;
    if (vs != nullptr) pj *= vs[j];
    const __m256 pv = _mm256_set1_ps(pj);
    const T* vj = v + j * d;
    for (int r = 0; r < NV; ++r) o[r] = _mm256_fmadd_ps(pv, load8(vj + 8 * r), o[r]);
  }
  for (int r = 0; r < NV; ++r) _mm256_storeu_ps(out + 8 * r, o[r]);
}

// Scores over the q8 cache (the scalar twin's form): the scaled query quantized like a cached row
// (qi, sq), then per key the exact integer dot product sum_t qi_t k_jt, times sq * ks_j, plus the
// bias. 32 values per step: maddubs(|qi|, k with qi's sign) then madd into int32 lanes (a pair
// is at most 2 x 127 x 127, no saturation); eight keys share one transposed hadd reduction. Integer
// sums do not depend on their order, so the results are bitwise the twin's.
void scores_q8(const float* qs, const int8_t* k, const float* ks, const int8_t* v, int64_t keys,
               int64_t d, const float* bias, float* scratch) {
  thread_local std::vector<int8_t> buf;  // the quantized query and its magnitudes
  buf.resize(static_cast<size_t>(2 * d));
  int8_t* qi = buf.data();
  int8_t* qa = qi + d;
  float sq = 0.0f;
  quantize_kv_row(qs, d, qi, &sq);
  for (int64_t t = 0; t < d; ++t) qa[t] = static_cast<int8_t>(qi[t] < 0 ? -qi[t] : qi[t]);
  const int64_t d32 = d & ~int64_t{31};
  const __m256i ones = _mm256_set1_epi16(1);
  auto dot32 = [&](const int8_t* kj, int64_t t) {
    const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qi + t));
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + t));
    const __m256i kv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kj + t));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(av, _mm256_sign_epi8(kv, qv)), ones);
  };
  auto tail_dot = [&](const int8_t* kj) {
    int32_t s = 0;
    for (int64_t t = d32; t < d; ++t) s += int32_t{qi[t]} * int32_t{kj[t]};
    return s;
  };
  const __m256 sqv = _mm256_set1_ps(sq);
  prefetch_rows(k, d, 0, kPrefetchKeys, keys);
  int64_t j0 = 0;
  for (; j0 + 8 <= keys; j0 += 8) {
    prefetch_rows(k, d, j0 + kPrefetchKeys, 8, keys);
    prefetch_rows(v, d, j0, 8, keys);
    __m256i acc[8];
    for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_si256();
    const int8_t* kj = k + j0 * d;
    for (int64_t t = 0; t < d32; t += 32)
      for (int r = 0; r < 8; ++r) acc[r] = _mm256_add_epi32(acc[r], dot32(kj + r * d, t));
    const __m256i h01 = _mm256_hadd_epi32(acc[0], acc[1]), h23 = _mm256_hadd_epi32(acc[2], acc[3]);
    const __m256i h45 = _mm256_hadd_epi32(acc[4], acc[5]), h67 = _mm256_hadd_epi32(acc[6], acc[7]);
    const __m256i q0 = _mm256_hadd_epi32(h01, h23), q1 = _mm256_hadd_epi32(h45, h67);
    __m256i dots = _mm256_add_epi32(_mm256_permute2x128_si256(q0, q1, 0x20),
                                    _mm256_permute2x128_si256(q0, q1, 0x31));
    if (d32 < d) {
      alignas(32) int32_t tails[8];
      for (int r = 0; r < 8; ++r) tails[r] = tail_dot(kj + r * d);
      dots = _mm256_add_epi32(dots, _mm256_load_si256(reinterpret_cast<const __m256i*>(tails)));
    }
    __m256 sv = _mm256_mul_ps(_mm256_cvtepi32_ps(dots), _mm256_mul_ps(sqv, _mm256_loadu_ps(ks + j0)));
    if (bias != nullptr) sv = _mm256_add_ps(sv, _mm256_loadu_ps(bias + j0));
    _mm256_storeu_ps(scratch + j0, sv);
  }
  for (int64_t j = j0; j < keys; ++j) {
    const int8_t* kj = k + j * d;
    __m256i acc = _mm256_setzero_si256();
    for (int64_t t = 0; t < d32; t += 32) acc = _mm256_add_epi32(acc, dot32(kj, t));
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    const int32_t dot = _mm_cvtsi128_si32(h) + tail_dot(kj);
    float s = static_cast<float>(dot) * (sq * ks[j]);
    if (bias != nullptr) s += bias[j];
    scratch[j] = s;
  }
}

// ks, vs: per-row scales of the q8 cache (nullptr for float and half rows).
template <typename T>
void attend_generic(const float* q, const T* k, const T* v, int64_t keys, int64_t d, float scale,
                    const float* bias, float* scratch, float* out, const float* ks = nullptr,
                    const float* vs = nullptr) {
  // The scaled query, in the thread's buffer (one call per head and position: a heap allocation
  // each was 0.3% of a step).
  thread_local std::vector<float> qs_buf;
  qs_buf.resize(static_cast<size_t>(d));
  float* qs = qs_buf.data();
  for (int64_t t = 0; t < d; ++t) qs[t] = q[t] * scale;
  const int64_t d8 = d & ~int64_t{7};
  if constexpr (std::is_same_v<T, int8_t>) {
    scores_q8(qs, k, ks, v, keys, d, bias, scratch);
  } else {
    // Scores, kKeys keys at a time; each key's sum is the scalar twin's chain, reduced in
    // hsum_pairs order.
    constexpr int kKeys = keys_per_pass<T>();
    int64_t j0 = 0;
    prefetch_rows(k, d, 0, kPrefetchKeys, keys);
    if (d8 == d)
      for (; j0 + kKeys <= keys; j0 += kKeys) {
        prefetch_rows(k, d, j0 + kPrefetchKeys, kKeys, keys);
        prefetch_rows(v, d, j0, kKeys, keys);
        __m256 acc[kKeys];
        for (int r = 0; r < kKeys; ++r) acc[r] = _mm256_setzero_ps();
        const T* kj = k + j0 * d;
        for (int64_t t = 0; t < d8; t += 8) {
          const __m256 qv = _mm256_loadu_ps(qs + t);
          for (int r = 0; r < kKeys; ++r) acc[r] = _mm256_fmadd_ps(qv, load8(kj + r * d + t), acc[r]);
        }
        if constexpr (kKeys == 8) {
          __m256 sv = hsum8_keys(acc);
          if (ks != nullptr) sv = _mm256_mul_ps(sv, _mm256_loadu_ps(ks + j0));
          if (bias != nullptr) sv = _mm256_add_ps(sv, _mm256_loadu_ps(bias + j0));
          _mm256_storeu_ps(scratch + j0, sv);
        } else {
          __m128 sv = hsum4_keys(acc);
          if (ks != nullptr) sv = _mm_mul_ps(sv, _mm_loadu_ps(ks + j0));
          if (bias != nullptr) sv = _mm_add_ps(sv, _mm_loadu_ps(bias + j0));
          _mm_storeu_ps(scratch + j0, sv);
        }
      }
    for (int64_t j = j0; j < keys; ++j) {  // the rest one key at a time, in the same order
      const T* kj = k + j * d;
      __m256 acc = _mm256_setzero_ps();
      for (int64_t t = 0; t < d8; t += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(qs + t), load8(kj + t), acc);
      float tail = 0.0f;
      for (int64_t t = d8; t < d; ++t) tail = std::fma(qs[t], load1(kj + t), tail);
      float s = hsum_pairs(acc) + tail;
      if (ks != nullptr) s *= ks[j];
      if (bias != nullptr) s += bias[j];
      scratch[j] = s;
    }
  }
  float mx = -INFINITY;
  for (int64_t j = 0; j < keys; ++j) mx = std::max(mx, scratch[j]);
  const int64_t keys8 = keys & ~int64_t{7};
  const __m256 mxv = _mm256_set1_ps(mx);
  __m256 lanes = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j < keys8; j += 8) {
    const __m256 e = avx2::exp(_mm256_sub_ps(_mm256_loadu_ps(scratch + j), mxv));
    _mm256_storeu_ps(scratch + j, e);
    lanes = _mm256_add_ps(lanes, e);
  }
  float tail = 0.0f;
  for (; j < keys; ++j) tail += scratch[j] = exp_scalar(scratch[j] - mx);
  const float inv = 1.0f / (hsum(lanes) + tail);
  // out = sum_j p_j v_j, 64 outputs (8 registers) at a time, keys in order. A whole chunk has
  // a fixed register count, so the accumulators stay in registers.
  for (int64_t t0 = 0; t0 < d8; t0 += 64) {
    const int nv = static_cast<int>(std::min<int64_t>(64, d8 - t0) / 8);
    if (nv == 8)
      weighted_sum<8>(v + t0, d, keys, scratch, inv, vs, out + t0);
    else
      for (int r = 0; r < nv; ++r) weighted_sum<1>(v + t0 + 8 * r, d, keys, scratch, inv, vs, out + t0 + 8 * r);
  }
  for (int64_t t = d8; t < d; ++t) {
    float o = 0.0f;
    for (int64_t jj = 0; jj < keys; ++jj) {
      float pj = scratch[jj] * inv;
      if (vs != nullptr) pj *= vs[jj];
      o = std::fma(pj, load1(v + jj * d + t), o);
    }
    out[t] = o;
  }
}

}  // namespace

void attend_avx2(const float* q, const float* k, const float* v, int64_t keys, int64_t d,
                 float scale, const float* bias, float* scratch, float* out) {
  attend_generic(q, k, v, keys, d, scale, bias, scratch, out);
}

void attend_f16_avx2(const float* q, const uint16_t* k, const uint16_t* v, int64_t keys, int64_t d,
                     float scale, const float* bias, float* scratch, float* out) {
  attend_generic(q, k, v, keys, d, scale, bias, scratch, out);
}

void attend_q8_avx2(const float* q, const int8_t* k, const float* ks, const int8_t* v,
                    const float* vs, int64_t keys, int64_t d, float scale, const float* bias,
                    float* scratch, float* out) {
  attend_generic(q, k, v, keys, d, scale, bias, scratch, out, ks, vs);
}

void gelu_erf_avx2(float* x, int64_t n) {
  using namespace fast_math;
  const int64_t n8 = n & ~int64_t{7};
  for (int64_t i = 0; i < n8; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 t = _mm256_max_ps(
        _mm256_min_ps(_mm256_mul_ps(xv, _mm256_set1_ps(kInvSqrt2)), _mm256_set1_ps(kErfClamp)),
        _mm256_set1_ps(-kErfClamp));
    const __m256 t2 = _mm256_mul_ps(t, t);
    __m256 p = _mm256_fmadd_ps(t2, _mm256_set1_ps(kErfA13), _mm256_set1_ps(kErfA11));
    p = _mm256_fmadd_ps(t2, p, _mm256_set1_ps(kErfA9));
    p = _mm256_fmadd_ps(t2, p, _mm256_set1_ps(kErfA7));
    p = _mm256_fmadd_ps(t2, p, _mm256_set1_ps(kErfA5));
    p = _mm256_fmadd_ps(t2, p, _mm256_set1_ps(kErfA3));
    p = _mm256_fmadd_ps(t2, p, _mm256_set1_ps(kErfA1));
    p = _mm256_mul_ps(t, p);
    __m256 q = _mm256_fmadd_ps(t2, _mm256_set1_ps(kErfB8), _mm256_set1_ps(kErfB6));
    q = _mm256_fmadd_ps(t2, q, _mm256_set1_ps(kErfB4));
    q = _mm256_fmadd_ps(t2, q, _mm256_set1_ps(kErfB2));
    q = _mm256_fmadd_ps(t2, q, _mm256_set1_ps(kErfB0));
    const __m256 erf = _mm256_div_ps(p, q);
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), xv),
                                          _mm256_add_ps(_mm256_set1_ps(1.0f), erf)));
  }
  gelu_erf_scalar(x + n8, n - n8);
}

}  // namespace musicgen::kernels
