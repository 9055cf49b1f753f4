// AVX2+FMA+F16C variants of the reduced-precision products (quant.h). Compiled with
// -mavx2 -mfma -mf16c; only called when the CPU has them. Each mirrors its scalar twin in
// quant.cpp operation for operation (same lanes, same reduction order).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/tensor.h"
#include "kernels/quant.h"

namespace musicgen::kernels {
namespace {

constexpr int kRowsPerPass = 4;  // activation rows sharing one load of a weight block

inline float hsum(__m256 v) {
  // (l0+l4)+(l1+l5) + (l2+l6)+(l3+l7), as hsum8 in the scalar twin.
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s01 = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  const __m128 s23 = _mm_add_ss(_mm_shuffle_ps(s, s, 2), _mm_shuffle_ps(s, s, 3));
  return _mm_cvtss_f32(_mm_add_ss(s01, s23));
}

inline void store_outputs(const float* r, int rows, int64_t i0, int64_t j, const float* bias,
                          float* y, int64_t ldy) {
  for (int t = 0; t < rows; ++t) y[(i0 + t) * ldy + j] = bias != nullptr ? r[t] + bias[j] : r[t];
}

// ---- bf16 -----------------------------------------------------------------------------------

template <int R>
void bf16_row(const float* x, int64_t ldx, const uint16_t* w, int64_t k, float* out) {
  const int64_t k8 = k & ~int64_t{7};
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k8; p += 8) {
    const __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + p))), 16));
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + p), wv, acc[r]);
  }
  for (int r = 0; r < R; ++r) {
    float tail = 0.0f;
    for (int64_t p = k8; p < k; ++p) tail = std::fma(x[r * ldx + p], bf16_to_f32(w[p]), tail);
    out[r] = hsum(acc[r]) + tail;
  }
}

// ---- q8 -------------------------------------------------------------------------------------

template <int R>
void q8_row(const QActs& x, int64_t i0, const int8_t* wq, const uint16_t* ws, float* out) {
  const int64_t kp = x.kp, nb = kp / kQBlock, nbp = x.nbp;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  const int8_t* xq[R];
  const float* xd[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    xq[r] = x.q.data() + (i0 + r) * kp;
    xd[r] = x.d.data() + (i0 + r) * nbp;
  }
  alignas(32) float dd[R][8];
  for (int64_t g = 0; g < nb; g += 8) {
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + g)));
    for (int r = 0; r < R; ++r) _mm256_store_ps(dd[r], _mm256_mul_ps(dw, _mm256_loadu_ps(xd[r] + g)));
    const int64_t ge = std::min(nb, g + 8);
    for (int64_t b = g; b < ge; ++b) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + b * kQBlock));
      const __m256i aw = _mm256_sign_epi8(wv, wv);  // |w|: q is never -128
      for (int r = 0; r < R; ++r) {
        const __m256i xv =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[r] + b * kQBlock));
        const __m256i p =
            _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv)), ones);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&dd[r][b - g]), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

// ---- q4 -------------------------------------------------------------------------------------

template <int R>
void q4_row(const QActs& x, int64_t i0, const uint8_t* wq, const uint16_t* ws, float* out) {
  const int64_t kp = x.kp, nb = kp / kQBlock, nbp = x.nbp;
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256 acc[R], mins[R];
  const int8_t* xq[R];
  const float* xd[R];
  const float* xs[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    mins[r] = _mm256_setzero_ps();
    xq[r] = x.q.data() + (i0 + r) * kp;
    xd[r] = x.d.data() + (i0 + r) * nbp;
    xs[r] = x.s.data() + (i0 + r) * nbp;
  }
  alignas(32) float dd[R][8];
  for (int64_t g = 0; g < nb; g += 8) {
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + g)));
    const __m256 mw =
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + nbp + g)));
    for (int r = 0; r < R; ++r) {
      _mm256_store_ps(dd[r], _mm256_mul_ps(dw, _mm256_loadu_ps(xd[r] + g)));
      mins[r] = _mm256_fmadd_ps(mw, _mm256_loadu_ps(xs[r] + g), mins[r]);
    }
    const int64_t ge = std::min(nb, g + 8);
    for (int64_t b = g; b < ge; ++b) {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wq + b * (kQBlock / 2)));
      const __m256i wv = _mm256_and_si256(
          _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1), low4);
      for (int r = 0; r < R; ++r) {
        const __m256i xv =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[r] + b * kQBlock));
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), ones);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&dd[r][b - g]), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]) + hsum(mins[r]);
}

// Runs `row<R>` for each weight row in [n_begin, n_end) and each pass of up to 4 activation rows.
template <template <int> class Fn, typename... Args>
void for_rows(int64_t m, int64_t n_begin, int64_t n_end, const float* bias, float* y, int64_t ldy,
              Args&&... args) {
  float r[kRowsPerPass];
  for (int64_t j = n_begin; j < n_end; ++j)
    for (int64_t i0 = 0; i0 < m; i0 += kRowsPerPass) {
      const int rows = static_cast<int>(std::min<int64_t>(kRowsPerPass, m - i0));
      switch (rows) {
        case 1: Fn<1>::run(j, i0, r, args...); break;
        case 2: Fn<2>::run(j, i0, r, args...); break;
        case 3: Fn<3>::run(j, i0, r, args...); break;
        default: Fn<4>::run(j, i0, r, args...); break;
      }
      store_outputs(r, rows, i0, j, bias, y, ldy);
    }
}

template <int R>
struct Bf16Fn {
  static void run(int64_t j, int64_t i0, float* out, const float* x, int64_t ldx, const QMatrix& w) {
    bf16_row<R>(x + i0 * ldx, ldx, reinterpret_cast<const uint16_t*>(w.data) + j * w.k, w.k, out);
  }
};
template <int R>
struct Q8Fn {
  static void run(int64_t j, int64_t i0, float* out, const QActs& x, const QMatrix& w) {
    q8_row<R>(x, i0, reinterpret_cast<const int8_t*>(w.data) + j * x.kp, w.scales + j * x.nbp, out);
  }
};
template <int R>
struct Q4Fn {
  static void run(int64_t j, int64_t i0, float* out, const QActs& x, const QMatrix& w) {
    q4_row<R>(x, i0, w.data + j * x.kp / 2, w.scales + j * 2 * x.nbp, out);
  }
};

}  // namespace

void qmatmul_bf16_avx2(const float* x, int64_t ldx, int64_t m, const QMatrix& w,
                       const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  for_rows<Bf16Fn>(m, n_begin, n_end, bias, y, ldy, x, ldx, w);
}

void qmatmul_q8_avx2(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                     int64_t n_begin, int64_t n_end) {
  for_rows<Q8Fn>(x.m, n_begin, n_end, bias, y, ldy, x, w);
}

void qmatmul_q4_avx2(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                     int64_t n_begin, int64_t n_end) {
  for_rows<Q4Fn>(x.m, n_begin, n_end, bias, y, ldy, x, w);
}

void convert_f32_to_f16_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = static_cast<uint16_t>(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

void quantize_acts_avx2(const float* x, int64_t ldx, int64_t m, int64_t k, QActs* out) {
  out->m = m;
  out->k = k;
  out->kp = q_padded_k(k);
  out->nbp = q_scale_stride(k);
  out->q.resize(static_cast<size_t>(m * out->kp));
  out->d.assign(static_cast<size_t>(m * out->nbp), 0.0f);
  out->s.assign(static_cast<size_t>(m * out->nbp), 0.0f);
  const int64_t nb = q_blocks(k);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  alignas(32) float tmp[kQBlock];
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t p0 = b * kQBlock;
      const float* src = xr + p0;
      if (p0 + kQBlock > k) {  // partial last block: zero padding
        std::fill_n(tmp, kQBlock, 0.0f);
        std::copy(xr + p0, xr + k, tmp);
        src = tmp;
      }
      __m256 v[4];
      for (int t = 0; t < 4; ++t) v[t] = _mm256_loadu_ps(src + 8 * t);
      __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
      __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
      h = _mm_max_ps(h, _mm_movehl_ps(h, h));
      h = _mm_max_ss(h, _mm_movehdup_ps(h));
      const float amax = _mm_cvtss_f32(h);
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      const __m256 idv = _mm256_set1_ps(id);
      __m256i q[4];
      for (int t = 0; t < 4; ++t) q[t] = _mm256_cvtps_epi32(_mm256_mul_ps(v[t], idv));
      // Sum of the 32 integers (exact) for the q4 min term.
      const __m256i s4 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
      const int32_t sum = _mm_cvtsi128_si32(s);
      const __m256i p16a = _mm256_packs_epi32(q[0], q[1]);
      const __m256i p16b = _mm256_packs_epi32(q[2], q[3]);
      const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b), perm);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out->q.data() + i * out->kp + p0), p8);
      out->d[i * out->nbp + b] = d;
      out->s[i * out->nbp + b] = d * static_cast<float>(sum);
    }
  }
}

}  // namespace musicgen::kernels
