// Quantization of weights and activations, the scalar reference twins of the reduced-precision
// products (the AVX2 variants live in quant_avx2.cpp) and the dispatcher.
#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu.h"

namespace musicgen::kernels {

const char* qtype_name(QType type) {
  switch (type) {
    case QType::kBF16: return "bf16";
    case QType::kQ8: return "q8";
    case QType::kQ4: return "q4";
  }
  return "?";
}

size_t q_data_bytes(QType type, int64_t n, int64_t k) {
  switch (type) {
    case QType::kBF16: return static_cast<size_t>(n * k) * 2;
    case QType::kQ8: return static_cast<size_t>(n * q_padded_k(k));
    case QType::kQ4: return static_cast<size_t>(n * q_padded_k(k) / 2);
  }
  return 0;
}

size_t q_scale_bytes(QType type, int64_t n, int64_t k) {
  switch (type) {
    case QType::kBF16: return 0;
    case QType::kQ8: return static_cast<size_t>(n * q_scale_stride(k)) * 2;
    case QType::kQ4: return static_cast<size_t>(n * q_scale_stride(k)) * 4;
  }
  return 0;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u);  // inf, nan
  if (x >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (x < 0x38800000u) {                        // below 2^-14: subnormal (or zero) in f16
    const float a = std::fabs(f) * 16777216.0f;  // units of 2^-24, exact
    return sign | static_cast<uint16_t>(std::nearbyint(a));
  }
  uint32_t h = ((((x >> 23) - 127 + 15) << 10) | ((x & 0x7fffffu) >> 13));
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry bumps the exponent: right
  return sign | static_cast<uint16_t>(h);
}

void convert_f32_to_f16_if_exact(const uint8_t* x, int64_t i0, int64_t i1, uint16_t* h,
                                 std::atomic<bool>* exact) {
  for (int64_t i = i0; i < i1 && exact->load(std::memory_order_relaxed); ++i) {
    float v;
    std::memcpy(&v, x + 4 * i, 4);
    const uint16_t half = f32_to_f16(v);
    if (h != nullptr) h[i] = half;
    const float back = f16_to_f32(half);
    if (std::memcmp(&back, &v, 4) != 0) exact->store(false, std::memory_order_relaxed);
  }
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // nan
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

namespace {

// Round to nearest even for |v| <= 2^22, as std::nearbyint in the default rounding mode, without
// a library call (the loops then vectorise): adding 1.5 * 2^23 leaves no fraction bits.
inline float round_even(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

void quantize_row_q8(const float* w, int64_t k, int8_t* q, uint16_t* scales) {
  const int64_t nb = q_blocks(k);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t p0 = b * kQBlock, p1 = std::min(k, p0 + kQBlock);
    float amax = 0.0f;
    for (int64_t p = p0; p < p1; ++p) amax = std::max(amax, std::fabs(w[p]));
    const uint16_t dh = f32_to_f16(amax / 127.0f);
    scales[b] = dh;
    const float d = f16_to_f32(dh);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int64_t p = p0; p < p0 + kQBlock; ++p) {
      const float v = p < p1 ? round_even(w[p] * id) : 0.0f;
      q[p] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
}

// w = d * q + m with q in [0, 15]. Starts from the block's range, then refines (d, m) by least
// squares for the chosen q and keeps the better of the candidates (smaller squared error).
void quantize_row_q4(const float* w, int64_t k, uint8_t* q, uint16_t* d_out, uint16_t* m_out) {
  const int64_t nb = q_blocks(k);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t p0 = b * kQBlock, n = std::min(k, p0 + kQBlock) - p0;
    const float* x = w + p0;
    float lo = x[0], hi = x[0];
    for (int64_t p = 1; p < n; ++p) {
      lo = std::min(lo, x[p]);
      hi = std::max(hi, x[p]);
    }
    uint8_t best_q[kQBlock] = {};
    uint16_t best_d = 0, best_m = f32_to_f16(lo);
    double best_err = INFINITY;
    float d = (hi - lo) / 15.0f, m = lo;
    for (int iter = 0; iter < 3; ++iter) {
      const uint16_t dh = f32_to_f16(d), mh = f32_to_f16(m);
      const float dq = f16_to_f32(dh), mq = f16_to_f32(mh);
      if (!std::isfinite(dq) || !std::isfinite(mq)) break;
      const float id = dq != 0.0f ? 1.0f / dq : 0.0f;
      uint8_t qq[kQBlock] = {};
      double err = 0.0;
      for (int64_t p = 0; p < n; ++p) {
        const float v = std::clamp(round_even((x[p] - mq) * id), 0.0f, 15.0f);
        qq[p] = static_cast<uint8_t>(v);
        const double e = static_cast<double>(x[p]) - (static_cast<double>(dq) * v + mq);
        err += e * e;
      }
      if (err < best_err) {
        best_err = err;
        best_d = dh;
        best_m = mh;
        std::memcpy(best_q, qq, sizeof(qq));
      }
      // Least-squares (d, m) for these q.
      double sq = 0, sqq = 0, sx = 0, sqx = 0;
      for (int64_t p = 0; p < n; ++p) {
        sq += qq[p];
        sqq += static_cast<double>(qq[p]) * qq[p];
        sx += x[p];
        sqx += static_cast<double>(qq[p]) * x[p];
      }
      const double det = n * sqq - sq * sq;
      if (det <= 0) break;
      d = static_cast<float>((n * sqx - sq * sx) / det);
      m = static_cast<float>((sqq * sx - sq * sqx) / det);
      if (d < 0) break;
    }
    d_out[b] = best_d;
    m_out[b] = best_m;
    uint8_t* dst = q + b * (kQBlock / 2);
    for (int j = 0; j < kQBlock / 2; ++j)
      dst[j] = static_cast<uint8_t>(best_q[j] | (best_q[j + kQBlock / 2] << 4));
  }
}

inline float hsum8(const float* a) {
  return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

}  // namespace

void quantize_rows(QType type, const float* w, int64_t k, int64_t row_begin, int64_t row_end,
                   uint8_t* data, uint16_t* scales) {
  const int64_t kp = q_padded_k(k), nbp = q_scale_stride(k);
  for (int64_t j = row_begin; j < row_end; ++j) {
    const float* wr = w + j * k;
    switch (type) {
      case QType::kBF16: {
        uint16_t* dst = reinterpret_cast<uint16_t*>(data) + j * k;
        for (int64_t p = 0; p < k; ++p) dst[p] = f32_to_bf16(wr[p]);
        break;
      }
      case QType::kQ8: {
        uint16_t* s = scales + j * nbp;
        std::fill_n(s, nbp, uint16_t{0});
        quantize_row_q8(wr, k, reinterpret_cast<int8_t*>(data) + j * kp, s);
        break;
      }
      case QType::kQ4: {
        uint16_t* s = scales + j * 2 * nbp;
        std::fill_n(s, 2 * nbp, uint16_t{0});
        quantize_row_q4(wr, k, data + j * kp / 2, s, s + nbp);
        break;
      }
    }
  }
}

void quantize_matrix(QType type, const float* w, int64_t n, int64_t k, uint8_t* data,
                     uint16_t* scales, ThreadPool* pool) {
  if (pool == nullptr || pool->size() == 1) {
    quantize_rows(type, w, k, 0, n, data, scales);
    return;
  }
  pool->parallel_for(n, [&](int64_t b, int64_t e) { quantize_rows(type, w, k, b, e, data, scales); });
}

void dequantize_row(const QMatrix& w, int64_t row, float* out) {
  const int64_t k = w.k, kp = q_padded_k(k), nbp = q_scale_stride(k);
  switch (w.type) {
    case QType::kBF16: {
      const uint16_t* src = reinterpret_cast<const uint16_t*>(w.data) + row * k;
      for (int64_t p = 0; p < k; ++p) out[p] = bf16_to_f32(src[p]);
      break;
    }
    case QType::kQ8: {
      const int8_t* q = reinterpret_cast<const int8_t*>(w.data) + row * kp;
      const uint16_t* s = w.scales + row * nbp;
      for (int64_t p = 0; p < k; ++p) out[p] = f16_to_f32(s[p / kQBlock]) * q[p];
      break;
    }
    case QType::kQ4: {
      const uint8_t* q = w.data + row * kp / 2;
      const uint16_t* s = w.scales + row * 2 * nbp;
      for (int64_t p = 0; p < k; ++p) {
        const int64_t b = p / kQBlock, e = p % kQBlock;
        const uint8_t byte = q[b * (kQBlock / 2) + e % (kQBlock / 2)];
        const int v = e < kQBlock / 2 ? (byte & 0xf) : (byte >> 4);
        out[p] = f16_to_f32(s[b]) * static_cast<float>(v) + f16_to_f32(s[nbp + b]);
      }
      break;
    }
  }
}

// ---- Activations ----------------------------------------------------------------------------

namespace {
void prepare_acts(int64_t m, int64_t k, QActs* out) {
  out->m = m;
  out->k = k;
  out->kp = q_padded_k(k);
  out->nbp = q_scale_stride(k);
  out->q.assign(static_cast<size_t>(m * out->kp), 0);
  out->d.assign(static_cast<size_t>(m * out->nbp), 0.0f);
  out->s.assign(static_cast<size_t>(m * out->nbp), 0.0f);
}
}  // namespace

void fill_pairs(QActs* out) {
  const int64_t kp = out->kp, nb = kp / kQBlock, half = kQBlock / 2;
  out->kpp = q_paired_k(kp);
  out->qp.assign(static_cast<size_t>(out->m * out->kpp), 0);
  for (int64_t i = 0; i < out->m; ++i) {
    const int8_t* q = out->q.data() + i * kp;
    int8_t* qp = out->qp.data() + i * out->kpp;
    for (int64_t b = 0; b < nb; ++b) {  // block b: its halves at pair offsets 0 / 32 (+16 if odd)
      int8_t* dst = qp + (b / 2) * 2 * kQBlock + (b % 2) * half;
      std::memcpy(dst, q + b * kQBlock, half);
      std::memcpy(dst + kQBlock, q + b * kQBlock + half, half);
    }
  }
}

void fill_offset_sums(QActs* out) {
  const int64_t lanes = out->m * out->kp / 4;
  out->c.resize(static_cast<size_t>(lanes));
  const int8_t* q = out->q.data();
  for (int64_t l = 0; l < lanes; ++l)
    out->c[l] = -128 * (q[4 * l] + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
}

void quantize_acts_scalar(const float* x, int64_t ldx, int64_t m, int64_t k, QActs* out) {
  prepare_acts(m, k, out);
  const int64_t nb = q_blocks(k);
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t p0 = b * kQBlock, p1 = std::min(k, p0 + kQBlock);
      float amax = 0.0f;
      for (int64_t p = p0; p < p1; ++p) amax = std::max(amax, std::fabs(xr[p]));
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      int32_t sum = 0;
      for (int64_t p = p0; p < p1; ++p) {
        const int32_t v = static_cast<int32_t>(round_even(xr[p] * id));
        out->q[i * out->kp + p] = static_cast<int8_t>(v);
        sum += v;
      }
      out->d[i * out->nbp + b] = d;
      out->s[i * out->nbp + b] = d * static_cast<float>(sum);
    }
  }
  fill_offset_sums(out);
  fill_pairs(out);
}

// ---- Scalar twins ---------------------------------------------------------------------------

void qmatmul_bf16_scalar(const float* x, int64_t ldx, int64_t m, const QMatrix& w,
                         const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  const int64_t k = w.k, k8 = k & ~int64_t{7};
  for (int64_t j = n_begin; j < n_end; ++j) {
    const uint16_t* wr = reinterpret_cast<const uint16_t*>(w.data) + j * k;
    for (int64_t i = 0; i < m; ++i) {
      const float* xr = x + i * ldx;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t p = 0;
      for (; p < k8; p += 8)
        for (int l = 0; l < 8; ++l) acc[l] = std::fma(xr[p + l], bf16_to_f32(wr[p + l]), acc[l]);
      float tail = 0.0f;
      for (; p < k; ++p) tail = std::fma(xr[p], bf16_to_f32(wr[p]), tail);
      const float s = hsum8(acc) + tail;
      y[i * ldy + j] = bias != nullptr ? s + bias[j] : s;
    }
  }
}

void qmatmul_q8_scalar(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                       int64_t n_begin, int64_t n_end) {
  const int64_t kp = x.kp, nb = kp / kQBlock, nbp = x.nbp;
  for (int64_t j = n_begin; j < n_end; ++j) {
    const int8_t* wq = reinterpret_cast<const int8_t*>(w.data) + j * kp;
    const uint16_t* ws = w.scales + j * nbp;
    for (int64_t i = 0; i < x.m; ++i) {
      const int8_t* xq = x.q.data() + i * kp;
      const float* xd = x.d.data() + i * nbp;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t g = 0; g < nb; g += 8) {
        float dd[8];
        for (int l = 0; l < 8; ++l) dd[l] = f16_to_f32(ws[g + l]) * xd[g + l];
        for (int64_t b = g; b < std::min(nb, g + 8); ++b)
          for (int l = 0; l < 8; ++l) {
            int32_t s = 0;
            for (int t = 0; t < 4; ++t) {
              const int64_t p = b * kQBlock + 4 * l + t;
              s += static_cast<int32_t>(wq[p]) * xq[p];
            }
            acc[l] = std::fma(static_cast<float>(s), dd[b - g], acc[l]);
          }
      }
      const float s = hsum8(acc);
      y[i * ldy + j] = bias != nullptr ? s + bias[j] : s;
    }
  }
}

void qmatmul_q4_scalar(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                       int64_t n_begin, int64_t n_end) {
  const int64_t kp = x.kp, nb = kp / kQBlock, nbp = x.nbp;
  for (int64_t j = n_begin; j < n_end; ++j) {
    const uint8_t* wq = w.data + j * kp / 2;
    const uint16_t* ws = w.scales + j * 2 * nbp;
    for (int64_t i = 0; i < x.m; ++i) {
      const int8_t* xq = x.q.data() + i * kp;
      const float* xd = x.d.data() + i * nbp;
      const float* xs = x.s.data() + i * nbp;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, mins[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t g = 0; g < nb; g += 8) {
        float dd[8];
        for (int l = 0; l < 8; ++l) {
          dd[l] = f16_to_f32(ws[g + l]) * xd[g + l];
          mins[l] = std::fma(f16_to_f32(ws[nbp + g + l]), xs[g + l], mins[l]);
        }
        // Block pairs (quant.h): lanes 0-3 sum block b, lanes 4-7 block b + 1 (zero when b + 1
        // is padding), each lane the low-nibble elements 4l'..4l'+3 and the high-nibble ones
        // 16+4l'..16+4l'+3 of its block (l' = l mod 4); one FMA per lane and pair.
        for (int64_t b = g; b < std::min(nb, g + 8); b += 2)
          for (int l = 0; l < 8; ++l) {
            const int64_t blk = b + l / 4;
            const int e0 = 4 * (l % 4);
            int32_t s = 0;
            if (blk < nb)
              for (int t = 0; t < 4; ++t) {
                const uint8_t byte = wq[blk * (kQBlock / 2) + e0 + t];
                s += (byte & 0xf) * xq[blk * kQBlock + e0 + t];
                s += (byte >> 4) * xq[blk * kQBlock + 16 + e0 + t];
              }
            acc[l] = std::fma(static_cast<float>(s), dd[blk - g], acc[l]);
          }
      }
      const float s = hsum8(acc) + hsum8(mins);
      y[i * ldy + j] = bias != nullptr ? s + bias[j] : s;
    }
  }
}

// ---- Dispatcher -----------------------------------------------------------------------------

void convert_f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  if (isa_at_least(Isa::kAvx2)) {
    convert_f32_to_f16_avx2(x, y, n);
    return;
  }
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

void quantize_acts(const float* x, int64_t ldx, int64_t m, int64_t k, QActs* out) {
  if (isa_at_least(Isa::kAvx2))
    quantize_acts_avx2(x, ldx, m, k, out);
  else
    quantize_acts_scalar(x, ldx, m, k, out);
}

void qmatmul_cols(const float* x, int64_t ldx, int64_t m, const QActs& acts, const QMatrix& w,
                  const float* bias, float* y, int64_t ldy, int64_t n0, int64_t n1) {
  const Isa isa = active_isa();
  switch (w.type) {
    case QType::kBF16:
      if (at_least(isa, Isa::kAvx2)) qmatmul_bf16_avx2(x, ldx, m, w, bias, y, ldy, n0, n1);
      else qmatmul_bf16_scalar(x, ldx, m, w, bias, y, ldy, n0, n1);
      break;
    case QType::kQ8:
      if (isa == Isa::kAvx512) qmatmul_q8_avx512(acts, w, bias, y, ldy, n0, n1);
      else if (isa == Isa::kAvx2) qmatmul_q8_avx2(acts, w, bias, y, ldy, n0, n1);
      else qmatmul_q8_scalar(acts, w, bias, y, ldy, n0, n1);
      break;
    case QType::kQ4:
      if (isa == Isa::kAvx512) qmatmul_q4_avx512(acts, w, bias, y, ldy, n0, n1);
      else if (isa == Isa::kAvx2) qmatmul_q4_avx2(acts, w, bias, y, ldy, n0, n1);
      else qmatmul_q4_scalar(acts, w, bias, y, ldy, n0, n1);
      break;
  }
}

void qmatmul(const float* x, int64_t ldx, int64_t m, const QMatrix& w, const float* bias,
             float* y, int64_t ldy, ThreadPool* pool) {
  if (m <= 0 || w.n <= 0) return;
  // Scratch of the calling thread; the workers read it through this reference (a thread_local
  // named inside the lambda would be each worker's own, empty one).
  thread_local QActs scratch;
  QActs& acts = scratch;
  if (w.type != QType::kBF16) quantize_acts(x, ldx, m, w.k, &acts);
  auto run = [&](int64_t n0, int64_t n1) { qmatmul_cols(x, ldx, m, acts, w, bias, y, ldy, n0, n1); };
  const int64_t work = m * w.n * w.k;
  if (pool == nullptr || pool->size() == 1 || work < (1 << 15)) {
    run(0, w.n);
    return;
  }
  // Contiguous slices of whole rows: each thread streams its own part of the matrix once.
  constexpr int64_t kCols = 8;
  const int64_t blocks = (w.n + kCols - 1) / kCols;
  pool->parallel_for(blocks, [&](int64_t b0, int64_t b1) {
    run(b0 * kCols, std::min(w.n, b1 * kCols));
  });
}

}  // namespace musicgen::kernels
