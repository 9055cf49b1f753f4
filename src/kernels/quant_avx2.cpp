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

// A tile is WR weight rows x R activation rows: WR * R independent accumulator chains hide the
// latency of the fused multiply-adds (one chain per output; each output's arithmetic is the same
// whatever tile computes it, so tails and thread splits do not change results).
constexpr int kMaxActRows = 4;

inline float hsum(__m256 v) {
  // (l0+l4)+(l1+l5) + (l2+l6)+(l3+l7), as hsum8 in the scalar twin.
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s01 = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  const __m128 s23 = _mm_add_ss(_mm_shuffle_ps(s, s, 2), _mm_shuffle_ps(s, s, 3));
  return _mm_cvtss_f32(_mm_add_ss(s01, s23));
}

// The rows two tiles further on (2 WR rows) are prefetched while this tile runs: a tile
// reads WR short row streams at once, too short for the hardware prefetcher to train on, and the
// products are otherwise stalled on memory far below the machine's bandwidth
// (docs/PERFORMANCE.md). Prefetches never fault, so running past the matrix is harmless.
// Measured with bench/kernel_bench (2 threads, musicgen-small layer shapes, q8): no prefetch
// 6.7-7.1 GB/s, one tile ahead 8.8-12.6, two tiles ahead 11.7-13.1, a fixed 8 KiB ahead
// 10.4-12.0 (docs/PERFORMANCE.md). Into L2 (prefetcht1), not L1: on the 2-core Zen 4 one thread's
// q8 product went from 12.1 to 21.8 GB/s, two threads' from 22.4 to 30.6-35 (kernel_bench,
// 2026-12-04): an L1 prefetch competes with the tile's own loads for the few L1 miss buffers,
// while L2 keeps many more lines in flight.
constexpr int64_t kPrefetchTiles = 2;
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }

// ---- bf16 -----------------------------------------------------------------------------------

template <int WR, int R>
void bf16_tile(const float* x, int64_t ldx, const uint16_t* w, int64_t k, float* out) {
  const int64_t k8 = k & ~int64_t{7};
  __m256 acc[WR][R];
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < R; ++r) acc[c][r] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k8; p += 8) {
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * ldx + p);
    if ((p & 31) == 0)
      for (int c = 0; c < WR; ++c) prefetch(w + (c + kPrefetchTiles * WR) * k + p);
    for (int c = 0; c < WR; ++c) {
      const __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(
          _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + c * k + p))),
          16));
      for (int r = 0; r < R; ++r) acc[c][r] = _mm256_fmadd_ps(xv[r], wv, acc[c][r]);
    }
  }
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < R; ++r) {
      float tail = 0.0f;
      for (int64_t p = k8; p < k; ++p) tail = std::fma(x[r * ldx + p], bf16_to_f32(w[c * k + p]), tail);
      out[c * kMaxActRows + r] = hsum(acc[c][r]) + tail;
    }
}

// ---- q8 -------------------------------------------------------------------------------------

template <int WR, int R>
void q8_tile(const QActs& x, int64_t i0, const int8_t* wq, const uint16_t* ws, float* out) {
  const int64_t kp = x.kp, nb = kp / kQBlock, nbp = x.nbp;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[WR][R];
  const int8_t* xq[R];
  const float* xd[R];
  for (int r = 0; r < R; ++r) {
    xq[r] = x.q.data() + (i0 + r) * kp;
    xd[r] = x.d.data() + (i0 + r) * nbp;
  }
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < R; ++r) acc[c][r] = _mm256_setzero_ps();
  alignas(32) float dd[WR][R][8];
  for (int64_t g = 0; g < nb; g += 8) {
    for (int c = 0; c < WR; ++c) {
      const __m256 dw =
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + c * nbp + g)));
      for (int r = 0; r < R; ++r)
        _mm256_store_ps(dd[c][r], _mm256_mul_ps(dw, _mm256_loadu_ps(xd[r] + g)));
    }
    const int64_t ge = std::min(nb, g + 8);
    for (int64_t b = g; b < ge; ++b) {
      __m256i xv[R];
      for (int r = 0; r < R; ++r)
        xv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[r] + b * kQBlock));
      if ((b & 1) == 0)
        for (int c = 0; c < WR; ++c) prefetch(wq + (c + kPrefetchTiles * WR) * kp + b * kQBlock);
      for (int c = 0; c < WR; ++c) {
        const __m256i wv =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + c * kp + b * kQBlock));
        const __m256i aw = _mm256_sign_epi8(wv, wv);  // |w|: q is never -128
        for (int r = 0; r < R; ++r) {
          const __m256i p =
              _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[r], wv)), ones);
          acc[c][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&dd[c][r][b - g]),
                                      acc[c][r]);
        }
      }
    }
  }
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < R; ++r) out[c * kMaxActRows + r] = hsum(acc[c][r]);
}

// ---- q4 -------------------------------------------------------------------------------------

template <int WR, int R>
void q4_tile(const QActs& x, int64_t i0, const uint8_t* wq, const uint16_t* ws, float* out) {
  const int64_t kp = x.kp, nb = kp / kQBlock, nbp = x.nbp;
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256 acc[WR][R], mins[WR][R];
  const int8_t* xq[R];  // the pair order (QActs::qp): pair b / 2 at xq + b * 32
  const float* xd[R];
  const float* xs[R];
  for (int r = 0; r < R; ++r) {
    xq[r] = x.qp.data() + (i0 + r) * x.kpp;
    xd[r] = x.d.data() + (i0 + r) * nbp;
    xs[r] = x.s.data() + (i0 + r) * nbp;
  }
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < R; ++r) acc[c][r] = mins[c][r] = _mm256_setzero_ps();
  alignas(32) float dd[WR][R][8];
  for (int64_t g = 0; g < nb; g += 8) {
    for (int c = 0; c < WR; ++c) {
      const uint16_t* wsc = ws + c * 2 * nbp;
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wsc + g)));
      const __m256 mw =
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wsc + nbp + g)));
      for (int r = 0; r < R; ++r) {
        _mm256_store_ps(dd[c][r], _mm256_mul_ps(dw, _mm256_loadu_ps(xd[r] + g)));
        mins[c][r] = _mm256_fmadd_ps(mw, _mm256_loadu_ps(xs[r] + g), mins[c][r]);
      }
    }
    const int64_t ge = std::min(nb, g + 8);
    for (int64_t b = g; b < ge; b += 2) {  // block pairs, as the scalar twin (quant.h)
      const bool whole = b + 1 < nb;  // else block b + 1 is padding: zero weights and activations
      __m256i xa[R], xh[R];  // elements 0-15 of blocks b and b + 1; elements 16-31 of both
      for (int r = 0; r < R; ++r) {
        xa[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[r] + b * kQBlock));
        xh[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[r] + b * kQBlock + kQBlock));
      }
      if ((b & 3) == 0)  // one 64-byte line of each row per two pairs
        for (int c = 0; c < WR; ++c) prefetch(wq + (c + kPrefetchTiles * WR) * (kp / 2) + b * (kQBlock / 2));
      const int i = static_cast<int>(b - g);  // the pair's scales: lanes i and i + 1 of dd
      const __m256i pick = _mm256_setr_epi32(i, i, i, i, i + 1, i + 1, i + 1, i + 1);
      for (int c = 0; c < WR; ++c) {
        const uint8_t* src = wq + c * (kp / 2) + b * (kQBlock / 2);
        const __m256i both =
            whole ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src))
                  : _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
        const __m256i wl = _mm256_and_si256(both, low4);
        const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(both, 4), low4);
        for (int r = 0; r < R; ++r) {
          // Each 16-bit sum is at most 2 * 15 * 127 per product pair: the two add exactly.
          const __m256i p = _mm256_madd_epi16(
              _mm256_add_epi16(_mm256_maddubs_epi16(wl, xa[r]), _mm256_maddubs_epi16(wh, xh[r])),
              ones);
          const __m256 d = _mm256_permutevar8x32_ps(_mm256_load_ps(dd[c][r]), pick);
          acc[c][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc[c][r]);
        }
      }
    }
  }
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < R; ++r) out[c * kMaxActRows + r] = hsum(acc[c][r]) + hsum(mins[c][r]);
}

// Weight rows [n_begin, n_end) in blocks of 4 (one tile of 4 rows for up to 2 activation rows,
// else two tiles of 2), each block against every pass of up to 4 activation rows; tail weight
// rows one at a time.
template <template <int, int> class Fn, typename... Args>
void for_tiles(int64_t m, int64_t n_begin, int64_t n_end, const float* bias, float* y, int64_t ldy,
               Args&&... args) {
  float r[4 * kMaxActRows];
  auto store = [&](int64_t j, int wr, int64_t i0, int rows) {
    for (int c = 0; c < wr; ++c)
      for (int t = 0; t < rows; ++t) {
        const float v = r[c * kMaxActRows + t];
        y[(i0 + t) * ldy + j + c] = bias != nullptr ? v + bias[j + c] : v;
      }
  };
  // Blocks of 4 weight rows outside, activation rows inside: a block is read from memory once
  // and stays in L1 while every group of up to 4 activation rows (batched requests) passes.
  auto rows_at = [&](int64_t i0) { return static_cast<int>(std::min<int64_t>(kMaxActRows, m - i0)); };
  int64_t j = n_begin;
  for (; j + 4 <= n_end; j += 4)
    for (int64_t i0 = 0; i0 < m; i0 += kMaxActRows) {
      const int rows = rows_at(i0);
      switch (rows) {  // 4 weight rows x up to 2 activation rows, else two tiles of 2 x 4
        case 1: Fn<4, 1>::run(j, i0, r, args...); break;
        case 2: Fn<4, 2>::run(j, i0, r, args...); break;
        case 3:
          Fn<2, 3>::run(j, i0, r, args...);
          Fn<2, 3>::run(j + 2, i0, r + 2 * kMaxActRows, args...);
          break;
        default:
          Fn<2, 4>::run(j, i0, r, args...);
          Fn<2, 4>::run(j + 2, i0, r + 2 * kMaxActRows, args...);
          break;
      }
      store(j, 4, i0, rows);
    }
  for (; j < n_end; ++j)
    for (int64_t i0 = 0; i0 < m; i0 += kMaxActRows) {
      const int rows = rows_at(i0);
      switch (rows) {
        case 1: Fn<1, 1>::run(j, i0, r, args...); break;
        case 2: Fn<1, 2>::run(j, i0, r, args...); break;
        case 3: Fn<1, 3>::run(j, i0, r, args...); break;
        default: Fn<1, 4>::run(j, i0, r, args...); break;
      }
      store(j, 1, i0, rows);
    }
}

template <int WR, int R>
struct Bf16Fn {
  static void run(int64_t j, int64_t i0, float* out, const float* x, int64_t ldx, const QMatrix& w) {
    bf16_tile<WR, R>(x + i0 * ldx, ldx, reinterpret_cast<const uint16_t*>(w.data) + j * w.k, w.k, out);
  }
};
template <int WR, int R>
struct Q8Fn {
  static void run(int64_t j, int64_t i0, float* out, const QActs& x, const QMatrix& w) {
    q8_tile<WR, R>(x, i0, reinterpret_cast<const int8_t*>(w.data) + j * x.kp, w.scales + j * x.nbp,
                   out);
  }
};
template <int WR, int R>
struct Q4Fn {
  static void run(int64_t j, int64_t i0, float* out, const QActs& x, const QMatrix& w) {
    q4_tile<WR, R>(x, i0, w.data + j * x.kp / 2, w.scales + j * 2 * x.nbp, out);
  }
};

}  // namespace

void qmatmul_bf16_avx2(const float* x, int64_t ldx, int64_t m, const QMatrix& w,
                       const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  for_tiles<Bf16Fn>(m, n_begin, n_end, bias, y, ldy, x, ldx, w);
}

void qmatmul_q8_avx2(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                     int64_t n_begin, int64_t n_end) {
  for_tiles<Q8Fn>(x.m, n_begin, n_end, bias, y, ldy, x, w);
}

void qmatmul_q4_avx2(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                     int64_t n_begin, int64_t n_end) {
  for_tiles<Q4Fn>(x.m, n_begin, n_end, bias, y, ldy, x, w);
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
  out->c.resize(static_cast<size_t>(m * out->kp / 4));
  out->kpp = q_paired_k(out->kp);
  out->qp.resize(static_cast<size_t>(m * out->kpp));
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
      // -128 x the sum of each four consecutive values (QActs::c): maddubs(1, q) sums pairs into
      // int16, madd(-128) pairs of those into int32.
      const __m256i c4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), p8),
                                           _mm256_set1_epi16(-128));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out->c.data() + i * (out->kp / 4) + p0 / 4), c4);
      // The pair order (QActs::qp): this block's halves at offsets 0 and 32 of its pair, + 16 for
      // the pair's second block; a last block without a partner leaves that partner zero.
      int8_t* pair = out->qp.data() + i * out->kpp + (b / 2) * 2 * kQBlock + (b % 2) * (kQBlock / 2);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(pair), _mm256_castsi256_si128(p8));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(pair + kQBlock), _mm256_extracti128_si256(p8, 1));
      if (b % 2 == 0 && b + 1 == nb) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(pair + kQBlock / 2), _mm_setzero_si128());
        _mm_storeu_si128(reinterpret_cast<__m128i*>(pair + kQBlock + kQBlock / 2), _mm_setzero_si128());
      }
      out->d[i * out->nbp + b] = d;
      out->s[i * out->nbp + b] = d * static_cast<float>(sum);
    }
  }
}

}  // namespace musicgen::kernels
