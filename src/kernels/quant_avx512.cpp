// AVX-512 variants of the reduced-precision products (quant.h): F/BW/VL/DQ for bf16, plus VNNI
// (vpdpbusd) for q8 and q4. Compiled with per-file flags (the rest of the binary stays baseline)
// and -ffp-contract=off; only called when kernels::detect_isa() reports AVX-512 with VNNI.
//
// Each mirrors its scalar twin in quant.cpp operation for operation, so results are bitwise equal
// to the scalar and AVX2 kernels:
//  - vpdpbusd sums the same four u8 x s8 products into each int32 lane that maddubs + madd form
//    (exactly: no saturation is reachable, |q| <= 127);
//  - a zmm holds two 8-lane accumulators side by side (two activation rows for q8/q4, two weight
//    rows for bf16), each with the twin's lanes, fused multiply-add chain and horizontal sum.
// vdpbf16ps is not used for bf16: it rounds its pair products differently from the twin's FMA
// chain (and flushes subnormals), so it would change results.
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
inline float hsum_lo(__m512 v) { return hsum(_mm512_castps512_ps256(v)); }
inline float hsum_hi(__m512 v) { return hsum(_mm512_extractf32x8_ps(v, 1)); }

inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
constexpr int64_t kPrefetchTiles = 2;  // as quant_avx2.cpp: two tiles of weight rows ahead

// Results of a tile: out[c * kMaxRows + r] for weight row c, activation row r.
constexpr int kMaxRows = 4;

// Index vectors for vpermps: lanes 0-7 take element t, lanes 8-15 element 8 + t.
alignas(64) const int32_t kPairIdx[8][16] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8},
    {1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9},
    {2, 2, 2, 2, 2, 2, 2, 2, 10, 10, 10, 10, 10, 10, 10, 10},
    {3, 3, 3, 3, 3, 3, 3, 3, 11, 11, 11, 11, 11, 11, 11, 11},
    {4, 4, 4, 4, 4, 4, 4, 4, 12, 12, 12, 12, 12, 12, 12, 12},
    {5, 5, 5, 5, 5, 5, 5, 5, 13, 13, 13, 13, 13, 13, 13, 13},
    {6, 6, 6, 6, 6, 6, 6, 6, 14, 14, 14, 14, 14, 14, 14, 14},
    {7, 7, 7, 7, 7, 7, 7, 7, 15, 15, 15, 15, 15, 15, 15, 15}};

inline __m512 pair_ps(const float* lo, const float* hi) {  // 8 floats of each
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(lo)), _mm256_loadu_ps(hi), 1);
}
inline __m512i pair_si(const int8_t* lo, const int8_t* hi) {  // 32 bytes of each
  return _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi)), 1);
}

// ---- q8 / q4: RP pairs of activation rows (2 * RP rows from i0) x WR weight rows --------------

template <bool Q4, int WR, int RP>
void qpair_tile(const QActs& x, int64_t i0, const uint8_t* wq, const uint16_t* ws, float* out) {
  const int64_t kp = x.kp, nb = kp / kQBlock, nbp = x.nbp;
  const int64_t row_bytes = Q4 ? kp / 2 : kp;              // weight bytes per row
  const int64_t scale_stride = Q4 ? 2 * nbp : nbp;          // f16 scales per row
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i nibble_shift = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
  __m512 acc[WR][RP], mins[WR][RP];
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < RP; ++r) acc[c][r] = mins[c][r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < nb; g += 8) {
    __m512 dd[WR][RP];
    for (int r = 0; r < RP; ++r) {
      const int64_t ra = i0 + 2 * r, rb = ra + 1;
      const __m512 xd = pair_ps(x.d.data() + ra * nbp + g, x.d.data() + rb * nbp + g);
      for (int c = 0; c < WR; ++c) {
        const __m256 dw = _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + c * scale_stride + g)));
        dd[c][r] = _mm512_mul_ps(_mm512_broadcast_f32x8(dw), xd);
        if (Q4) {
          const __m256 mw = _mm256_cvtph_ps(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + c * scale_stride + nbp + g)));
          const __m512 xs = pair_ps(x.s.data() + ra * nbp + g, x.s.data() + rb * nbp + g);
          mins[c][r] = _mm512_fmadd_ps(_mm512_broadcast_f32x8(mw), xs, mins[c][r]);
        }
      }
    }
    const int64_t ge = std::min(nb, g + 8);
    for (int64_t b = g; b < ge; ++b) {
      const __m512i idx = _mm512_load_si512(kPairIdx[b - g]);
      __m512i xv[RP];
      for (int r = 0; r < RP; ++r) {
        const int8_t* xa = x.q.data() + (i0 + 2 * r) * kp + b * kQBlock;
        xv[r] = pair_si(xa, xa + kp);
        if (!Q4) xv[r] = _mm512_xor_si512(xv[r], flip);  // x + 128 as unsigned bytes
      }
      if ((b & (Q4 ? 3 : 1)) == 0)
        for (int c = 0; c < WR; ++c)
          prefetch(wq + (c + kPrefetchTiles * WR) * row_bytes + b * (Q4 ? kQBlock / 2 : kQBlock));
      for (int c = 0; c < WR; ++c) {
        __m512i wv, corr = _mm512_setzero_si512();
        if (Q4) {
          // 16 bytes in all four quarters; the upper quarter of each half to its high nibbles.
          const __m512i all = _mm512_broadcast_i32x4(_mm_loadu_si128(
              reinterpret_cast<const __m128i*>(wq + c * row_bytes + b * (kQBlock / 2))));
          wv = _mm512_and_si512(_mm512_srlv_epi64(all, nibble_shift), low4);
        } else {
          wv = _mm512_broadcast_i64x4(_mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(wq + c * row_bytes + b * kQBlock)));
          corr = _mm512_dpbusd_epi32(corr, flip, wv);  // 128 * (sum of each lane's 4 weights)
        }
        for (int r = 0; r < RP; ++r) {
          __m512i p;
          if (Q4) {
            p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv[r]);  // q in [0, 15] x int8
          } else {
            // (x + 128) . w - 128 . w = x . w, exact in int32.
            p = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), xv[r], wv), corr);
          }
          acc[c][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(idx, dd[c][r]),
                                      acc[c][r]);
        }
      }
    }
  }
  for (int c = 0; c < WR; ++c)
    for (int r = 0; r < RP; ++r) {
      float lo = hsum_lo(acc[c][r]), hi = hsum_hi(acc[c][r]);
      if (Q4) {
        lo += hsum_lo(mins[c][r]);
        hi += hsum_hi(mins[c][r]);
      }
      out[c * kMaxRows + 2 * r] = lo;
      out[c * kMaxRows + 2 * r + 1] = hi;
    }
}

// One activation row x WR weight rows, ymm with VNNI (the AVX2 tile with vpdpbusd).
template <bool Q4, int WR>
void qsingle_tile(const QActs& x, int64_t i0, const uint8_t* wq, const uint16_t* ws, float* out) {
  const int64_t kp = x.kp, nb = kp / kQBlock, nbp = x.nbp;
  const int64_t row_bytes = Q4 ? kp / 2 : kp;
  const int64_t scale_stride = Q4 ? 2 * nbp : nbp;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i nibble_shift = _mm256_setr_epi64x(0, 0, 4, 4);
  const int8_t* xq = x.q.data() + i0 * kp;
  const float* xd = x.d.data() + i0 * nbp;
  const float* xs = x.s.data() + i0 * nbp;
  __m256 acc[WR], mins[WR];
  for (int c = 0; c < WR; ++c) acc[c] = mins[c] = _mm256_setzero_ps();
  alignas(32) float dd[WR][8];
  for (int64_t g = 0; g < nb; g += 8) {
    for (int c = 0; c < WR; ++c) {
      const __m256 dw = _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + c * scale_stride + g)));
      _mm256_store_ps(dd[c], _mm256_mul_ps(dw, _mm256_loadu_ps(xd + g)));
      if (Q4) {
        const __m256 mw = _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + c * scale_stride + nbp + g)));
        mins[c] = _mm256_fmadd_ps(mw, _mm256_loadu_ps(xs + g), mins[c]);
      }
    }
    const int64_t ge = std::min(nb, g + 8);
    for (int64_t b = g; b < ge; ++b) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * kQBlock));
      if ((b & (Q4 ? 3 : 1)) == 0)
        for (int c = 0; c < WR; ++c)
          prefetch(wq + (c + kPrefetchTiles * WR) * row_bytes + b * (Q4 ? kQBlock / 2 : kQBlock));
      for (int c = 0; c < WR; ++c) {
        __m256i p;
        if (Q4) {
          const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(
              reinterpret_cast<const __m128i*>(wq + c * row_bytes + b * (kQBlock / 2))));
          const __m256i wv = _mm256_and_si256(_mm256_srlv_epi64(both, nibble_shift), low4);
          p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, xv);
        } else {
          const __m256i wv =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + c * row_bytes + b * kQBlock));
          p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(wv, wv),
                                  _mm256_sign_epi8(xv, wv));
        }
        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&dd[c][b - g]), acc[c]);
      }
    }
  }
  for (int c = 0; c < WR; ++c) out[c * kMaxRows] = Q4 ? hsum(acc[c]) + hsum(mins[c]) : hsum(acc[c]);
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
  int64_t i0 = 0;
  while (i0 < m) {
    const int rows = m - i0 >= 4 ? 4 : m - i0 >= 2 ? 2 : 1;
    int64_t j = n_begin;
    for (; j + 4 <= n_end; j += 4) {
      const uint8_t* wq = w.data + j * row_bytes;
      const uint16_t* ws = w.scales + j * scale_stride;
      if (rows == 4) qpair_tile<Q4, 4, 2>(x, i0, wq, ws, r);
      else if (rows == 2) qpair_tile<Q4, 4, 1>(x, i0, wq, ws, r);
      else qsingle_tile<Q4, 4>(x, i0, wq, ws, r);
      store(j, 4, i0, rows);
    }
    for (; j < n_end; ++j) {
      const uint8_t* wq = w.data + j * row_bytes;
      const uint16_t* ws = w.scales + j * scale_stride;
      if (rows == 4) qpair_tile<Q4, 1, 2>(x, i0, wq, ws, r);
      else if (rows == 2) qpair_tile<Q4, 1, 1>(x, i0, wq, ws, r);
      else qsingle_tile<Q4, 1>(x, i0, wq, ws, r);
      store(j, 1, i0, rows);
    }
    i0 += rows;
  }
}

// ---- bf16: NP pairs of weight rows x R activation rows ---------------------------------------

inline __m512 bf16_pair(const uint16_t* r0, const uint16_t* r1, int64_t p) {
  const __m256i h = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + p))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + p)), 1);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

inline float bf16_tail(const float* x, const uint16_t* w, int64_t k8, int64_t k) {
  float tail = 0.0f;
  for (int64_t p = k8; p < k; ++p) tail = std::fma(x[p], bf16_to_f32(w[p]), tail);
  return tail;
}

template <int NP, int R>
void bf16_tile(const float* x, int64_t ldx, const uint16_t* w, int64_t k, float* out) {
  const int64_t k8 = k & ~int64_t{7};
  __m512 acc[NP][R];
  for (int q = 0; q < NP; ++q)
    for (int r = 0; r < R; ++r) acc[q][r] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k8; p += 8) {
    __m512 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm512_broadcast_f32x8(_mm256_loadu_ps(x + r * ldx + p));
    if ((p & 31) == 0)
      for (int c = 0; c < 2 * NP; ++c) prefetch(w + (c + kPrefetchTiles * 2 * NP) * k + p);
    for (int q = 0; q < NP; ++q) {
      const __m512 wv = bf16_pair(w + (2 * q) * k, w + (2 * q + 1) * k, p);
      for (int r = 0; r < R; ++r) acc[q][r] = _mm512_fmadd_ps(xv[r], wv, acc[q][r]);
    }
  }
  for (int q = 0; q < NP; ++q)
    for (int r = 0; r < R; ++r) {
      const float* xr = x + r * ldx;
      out[(2 * q) * kMaxRows + r] = hsum_lo(acc[q][r]) + bf16_tail(xr, w + (2 * q) * k, k8, k);
      out[(2 * q + 1) * kMaxRows + r] =
          hsum_hi(acc[q][r]) + bf16_tail(xr, w + (2 * q + 1) * k, k8, k);
    }
}

template <int R>
void bf16_single(const float* x, int64_t ldx, const uint16_t* w, int64_t k, float* out) {
  const int64_t k8 = k & ~int64_t{7};
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k8; p += 8) {
    const __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + p))), 16));
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + p), wv, acc[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]) + bf16_tail(x + r * ldx, w, k8, k);
}

template <int NP>
void bf16_rows(int rows, const float* x, int64_t ldx, const uint16_t* w, int64_t k, float* out) {
  switch (rows) {
    case 1: bf16_tile<NP, 1>(x, ldx, w, k, out); break;
    case 2: bf16_tile<NP, 2>(x, ldx, w, k, out); break;
    case 3: bf16_tile<NP, 3>(x, ldx, w, k, out); break;
    default: bf16_tile<NP, 4>(x, ldx, w, k, out); break;
  }
}

}  // namespace

void qmatmul_bf16_avx512(const float* x, int64_t ldx, int64_t m, const QMatrix& w,
                         const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  const int64_t k = w.k;
  const uint16_t* wd = reinterpret_cast<const uint16_t*>(w.data);
  float r[8 * kMaxRows];
  auto store = [&](int64_t j, int wr, int64_t i0, int rows) {
    for (int c = 0; c < wr; ++c)
      for (int t = 0; t < rows; ++t) {
        const float v = r[c * kMaxRows + t];
        y[(i0 + t) * ldy + j + c] = bias != nullptr ? v + bias[j + c] : v;
      }
  };
  for (int64_t i0 = 0; i0 < m; i0 += kMaxRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kMaxRows, m - i0));
    const float* xr = x + i0 * ldx;
    int64_t j = n_begin;
    if (rows <= 2)
      for (; j + 8 <= n_end; j += 8) {
        bf16_rows<4>(rows, xr, ldx, wd + j * k, k, r);
        store(j, 8, i0, rows);
      }
    for (; j + 4 <= n_end; j += 4) {
      bf16_rows<2>(rows, xr, ldx, wd + j * k, k, r);
      store(j, 4, i0, rows);
    }
    for (; j + 2 <= n_end; j += 2) {
      bf16_rows<1>(rows, xr, ldx, wd + j * k, k, r);
      store(j, 2, i0, rows);
    }
    for (; j < n_end; ++j) {
      float s[kMaxRows];
      switch (rows) {
        case 1: bf16_single<1>(xr, ldx, wd + j * k, k, s); break;
        case 2: bf16_single<2>(xr, ldx, wd + j * k, k, s); break;
        case 3: bf16_single<3>(xr, ldx, wd + j * k, k, s); break;
        default: bf16_single<4>(xr, ldx, wd + j * k, k, s); break;
      }
      for (int t = 0; t < rows; ++t) r[t] = s[t];
      store(j, 1, i0, rows);
    }
  }
}

void qmatmul_q8_avx512(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                       int64_t n_begin, int64_t n_end) {
  qmatmul_avx512<false>(x, w, bias, y, ldy, n_begin, n_end);
}

void qmatmul_q4_avx512(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                       int64_t n_begin, int64_t n_end) {
  qmatmul_avx512<true>(x, w, bias, y, ldy, n_begin, n_end);
}

}  // namespace musicgen::kernels
