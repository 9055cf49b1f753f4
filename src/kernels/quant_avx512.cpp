// AVX-512 level of the q8 and q4 products (quant.h): the AVX2 tiles with VNNI's vpdpbusd, which
// forms each int32 lane's sum of four u8 x s8 products in one instruction where AVX2 needs
// maddubs + madd (exactly the same sums: no saturation is reachable, |q| <= 127; q8 reads its
// weights offset to unsigned, q4 its activations in the pair order, see the tiles). 256-bit
// registers (AVX512VL): on Zen 4, which runs a zmm instruction as two halves, 512-bit variants
// (two activation rows per zmm, +128 offset trick, vpermps for the scales) measured 0.86-0.95x
// of AVX2 while this one gives 1.25x (docs/PERFORMANCE.md). Compiled with per-file flags and
// -ffp-contract=off; called only when kernels::detect_isa() reports AVX-512 with VNNI.
//
// Bitwise equal to the scalar twins in quant.cpp: same lanes, same FMA chains, same reduction.
#include <immintrin.h>

// GCC 12's AVX-512 headers seed some intrinsics with _mm512_undefined_*(), which -Wall reports as
// 'may be used uninitialized' (a known false positive of the headers, not of this code).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cmath>

#include "core/tensor.h"
#include "kernels/quant.h"

namespace musicgen::kernels {
namespace {

inline float hsum(__m256 v) {
  // (l0+l4)+(l1+l5) + (l2+l6)+(l3+l7), as hsum8 in the scalar twin.
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s01 = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  const __m128 s23 = _mm_add_ss(_mm_shuffle_ps(s, s, 2), _mm_shuffle_ps(s, s, 3));
  return _mm_cvtss_f32(_mm_add_ss(s01, s23));
}

inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }
// How far ahead the tiles prefetch the weights (into L2). q8: 16 KiB of weight rows, in whole
// tiles (measured best of 4-64 KiB with kernel_bench: 1.07x over two tiles, docs/PERFORMANCE.md).
// q4, whose kernel does more work per byte: two tiles, as quant_avx2.cpp.
constexpr int64_t kQ8PrefetchBytes = 16384;
constexpr int64_t kPrefetchTiles = 2;
inline int64_t q8_prefetch_rows(int64_t row_bytes, int wr) {
  const int64_t rows = (kQ8PrefetchBytes + row_bytes - 1) / row_bytes;
  return std::max<int64_t>(wr, (rows + wr - 1) / wr * wr);
}

// Results of a tile: out[c * kMaxRows + r] for weight row c, activation row r.
constexpr int kMaxRows = 4;

// R activation rows x WR weight rows of q8, ymm with VNNI. vpdpbusd multiplies unsigned by signed
// bytes, so the weights are read offset to unsigned (w ^ 0x80 = q + 128, one xor shared by the
// tile's activation rows) and each lane starts from -128 x (its four activations' sum), x.c:
// -128 x sum(x) + sum((q + 128) x) = sum(q x), the same exact integer as the AVX2 tile's
// sign/abs form (no saturation or wrap is reachable: |lane| <= 4 x 255 x 127 + 128 x 508).
template <int WR, int R>
void q8_tile(const QActs& x, int64_t i0, const uint8_t* wq, const uint16_t* ws, float* out) {
  const int64_t kp = x.kp, nb = kp / kQBlock, nbp = x.nbp;
  const int64_t ahead = q8_prefetch_rows(kp, WR);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const int8_t* xq[R];
  const int32_t* xc[R];
  const float* xd[R];
  for (int r = 0; r < R; ++r) {
    xq[r] = x.q.data() + (i0 + r) * kp;
    xc[r] = x.c.data() + (i0 + r) * (kp / 4);
    xd[r] = x.d.data() + (i0 + r) * nbp;
  }
  __m256 acc[WR][R];
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < R; ++r) acc[c][r] = _mm256_setzero_ps();
  alignas(32) float dd[WR][R][8];
  for (int64_t g = 0; g < nb; g += 8) {
    for (int c = 0; c < WR; ++c) {
      const __m256 dw = _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + c * nbp + g)));
      for (int r = 0; r < R; ++r) _mm256_store_ps(dd[c][r], _mm256_mul_ps(dw, _mm256_loadu_ps(xd[r] + g)));
    }
    const int64_t ge = std::min(nb, g + 8);
    for (int64_t b = g; b < ge; ++b) {
      __m256i xv[R], x0[R];
      for (int r = 0; r < R; ++r) {
        xv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[r] + b * kQBlock));
        x0[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc[r] + b * (kQBlock / 4)));
      }
      if ((b & 1) == 0)
        for (int c = 0; c < WR; ++c) prefetch(wq + (c + ahead) * kp + b * kQBlock);
      for (int c = 0; c < WR; ++c) {
        const __m256i wu = _mm256_xor_si256(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + c * kp + b * kQBlock)), flip);
        for (int r = 0; r < R; ++r) {
          const __m256i p = _mm256_dpbusd_epi32(x0[r], wu, xv[r]);
          acc[c][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&dd[c][r][b - g]),
                                      acc[c][r]);
        }
      }
    }
  }
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < R; ++r) out[c * kMaxRows + r] = hsum(acc[c][r]);
}

// R activation rows x WR weight rows of q4, two blocks per step (quant.h, "q4 block pairs"): one
// 32-byte load holds blocks b and b + 1; its low nibbles are elements 0-15 of both, its high
// nibbles elements 16-31. The activations are paired the same way (two 128-bit lane shuffles per
// pair and activation row, shared by the tile's weight rows), so two vpdpbusd give lanes 0-3 the
// sums of block b and lanes 4-7 those of block b + 1, and one conversion and one FMA with the
// pair's scales [d_b x 4, d_b+1 x 4] apply both blocks' scales.
template <int WR, int R>
void q4_tile(const QActs& x, int64_t i0, const uint8_t* wq, const uint16_t* ws, float* out) {
  const int64_t kp = x.kp, nb = kp / kQBlock, nbp = x.nbp;
  const int64_t row_bytes = kp / 2, scale_stride = 2 * nbp;
  const int64_t ahead = kPrefetchTiles * WR;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const int8_t* xq[R];
  const float* xd[R];
  const float* xs[R];
  for (int r = 0; r < R; ++r) {
    xq[r] = x.qp.data() + (i0 + r) * x.kpp;  // the pair order: pair b / 2 at b * 32
    xd[r] = x.d.data() + (i0 + r) * nbp;
    xs[r] = x.s.data() + (i0 + r) * nbp;
  }
  __m256 acc[WR][R], mins[WR][R];
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < R; ++r) acc[c][r] = mins[c][r] = _mm256_setzero_ps();
  alignas(32) float dd[WR][R][8];
  for (int64_t g = 0; g < nb; g += 8) {
    for (int c = 0; c < WR; ++c) {
      const __m256 dw = _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + c * scale_stride + g)));
      const __m256 mw = _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + c * scale_stride + nbp + g)));
      for (int r = 0; r < R; ++r) {
        _mm256_store_ps(dd[c][r], _mm256_mul_ps(dw, _mm256_loadu_ps(xd[r] + g)));
        mins[c][r] = _mm256_fmadd_ps(mw, _mm256_loadu_ps(xs[r] + g), mins[c][r]);
      }
    }
    // One pair of blocks (b, b + 1); pick selects its scales, lanes i and i + 1 of dd. GCC inlines
    // it as it is; do not mark it always_inline: GCC 12 then drops its prefetches (seen: 0
    // prefetcht1 in the object, q8/q4 from memory at 0.6x).
    auto pair = [&](int64_t b, const __m256i pick, bool whole, bool fetch) {
      // whole: else block b + 1 is padding (zero weights and activations).
      // Activations: a = elements 0-15 of blocks b and b + 1, h = elements 16-31 of both.
      __m256i xa[R], xh[R];
      for (int r = 0; r < R; ++r) {
        xa[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[r] + b * kQBlock));
        xh[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[r] + b * kQBlock + kQBlock));
      }
      if (fetch)  // one 64-byte line of each row per two pairs
        for (int c = 0; c < WR; ++c)
          prefetch(wq + (c + ahead) * row_bytes + b * (kQBlock / 2));
      for (int c = 0; c < WR; ++c) {
        const uint8_t* src = wq + c * row_bytes + b * (kQBlock / 2);
        const __m256i both =
            whole ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src))
                  : _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
        const __m256i wl = _mm256_and_si256(both, low4);
        const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(both, 4), low4);
        for (int r = 0; r < R; ++r) {
          const __m256i p = _mm256_dpbusd_epi32(
              _mm256_dpbusd_epi32(_mm256_setzero_si256(), wl, xa[r]), wh, xh[r]);
          const __m256 d = _mm256_permutevar8x32_ps(_mm256_load_ps(dd[c][r]), pick);
          acc[c][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc[c][r]);
        }
      }
    };
    if (g + 8 <= nb) {  // a whole group: four whole pairs, their scale picks constants
      pair(g, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), true, true);
      pair(g + 2, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3), true, false);
      pair(g + 4, _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5), true, true);
      pair(g + 6, _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7), true, false);
    } else {
      for (int64_t b = g; b < nb; b += 2) {
        const int i = static_cast<int>(b - g);
        pair(b, _mm256_setr_epi32(i, i, i, i, i + 1, i + 1, i + 1, i + 1), b + 1 < nb,
             (b & 3) == 0);
      }
    }
  }
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < R; ++r) out[c * kMaxRows + r] = hsum(acc[c][r]) + hsum(mins[c][r]);
}

template <bool Q4, int WR, int R>
void qymm_tile(const QActs& x, int64_t i0, const uint8_t* wq, const uint16_t* ws, float* out) {
  if constexpr (Q4) q4_tile<WR, R>(x, i0, wq, ws, out);
  else q8_tile<WR, R>(x, i0, wq, ws, out);
}

template <bool Q4>
void qmatmul_avx512(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                    int64_t n_begin, int64_t n_end) {
  const int64_t row_bytes = Q4 ? x.kp / 2 : x.kp, scale_stride = Q4 ? 2 * x.nbp : x.nbp;
  float r[4 * kMaxRows];
  auto store = [&](int64_t j, int wr, int64_t i0, int rows) {
    for (int c = 0; c < wr; ++c)
      for (int t = 0; t < rows; ++t) {
        const float v = r[c * kMaxRows + t];
        y[(i0 + t) * ldy + j + c] = bias != nullptr ? v + bias[j + c] : v;
      }
  };
  const int64_t m = x.m;
  // Weight tiles outside, activation rows inside: a tile's rows are read from memory once and
  // stay in L1 while every group of up to 4 activation rows (batched requests) passes over them.
  auto rows_at = [&](int64_t i0) { return static_cast<int>(std::min<int64_t>(kMaxRows, m - i0)); };
  int64_t j = n_begin;
  for (; j + 4 <= n_end; j += 4) {
    const uint8_t* wq = w.data + j * row_bytes;
    const uint16_t* ws = w.scales + j * scale_stride;
    for (int64_t i0 = 0; i0 < m; i0 += kMaxRows) {
      const int rows = rows_at(i0);
      switch (rows) {  // 4 weight rows x up to 2 activation rows, else 2 x 4 (as the AVX2 tiles)
        case 1: qymm_tile<Q4, 4, 1>(x, i0, wq, ws, r); break;
        case 2: qymm_tile<Q4, 4, 2>(x, i0, wq, ws, r); break;
        case 3:
          qymm_tile<Q4, 2, 3>(x, i0, wq, ws, r);
          qymm_tile<Q4, 2, 3>(x, i0, wq + 2 * row_bytes, ws + 2 * scale_stride, r + 2 * kMaxRows);
          break;
        default:
          qymm_tile<Q4, 2, 4>(x, i0, wq, ws, r);
          qymm_tile<Q4, 2, 4>(x, i0, wq + 2 * row_bytes, ws + 2 * scale_stride, r + 2 * kMaxRows);
          break;
      }
      store(j, 4, i0, rows);
    }
  }
  for (; j < n_end; ++j) {
    const uint8_t* wq = w.data + j * row_bytes;
    const uint16_t* ws = w.scales + j * scale_stride;
    for (int64_t i0 = 0; i0 < m; i0 += kMaxRows) {
      const int rows = rows_at(i0);
      switch (rows) {
        case 1: qymm_tile<Q4, 1, 1>(x, i0, wq, ws, r); break;
        case 2: qymm_tile<Q4, 1, 2>(x, i0, wq, ws, r); break;
        case 3: qymm_tile<Q4, 1, 3>(x, i0, wq, ws, r); break;
        default: qymm_tile<Q4, 1, 4>(x, i0, wq, ws, r); break;
      }
      store(j, 1, i0, rows);
    }
  }
}

}  // namespace

void qmatmul_q8_avx512(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                       int64_t n_begin, int64_t n_end) {
  qmatmul_avx512<false>(x, w, bias, y, ldy, n_begin, n_end);
}

void qmatmul_q4_avx512(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                       int64_t n_begin, int64_t n_end) {
  qmatmul_avx512<true>(x, w, bias, y, ldy, n_begin, n_end);
}

}  // namespace musicgen::kernels
