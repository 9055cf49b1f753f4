// Reduced-precision kernels (kernels/quant.h, kernels/attention.h) against their scalar twins,
// against float64 references, and for thread-count independence.
#include <immintrin.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <tuple>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/cpu.h"
#include "kernels/fast_math.h"
#include "kernels/quant.h"
#include "test_util.h"

namespace musicgen {
namespace {

using kernels::QMatrix;
using kernels::QType;

std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

bool has_avx2() { return kernels::at_least(kernels::detect_isa(), kernels::Isa::kAvx2); }

__attribute__((target("f16c"))) uint16_t f16c_convert(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}

// A quantized matrix that owns its buffers.
struct Owned {
  std::vector<uint8_t> data;
  std::vector<uint16_t> scales;
  QMatrix view;
};

Owned quantize(QType type, const std::vector<float>& w, int64_t n, int64_t k) {
  Owned o;
  o.data.assign(kernels::q_data_bytes(type, n, k), 0);
  o.scales.assign(kernels::q_scale_bytes(type, n, k) / 2, 0);
  kernels::quantize_matrix(type, w.data(), n, k, o.data.data(), o.scales.data(), nullptr);
  o.view = QMatrix{type, n, k, o.data.data(), o.scales.empty() ? nullptr : o.scales.data()};
  return o;
}

const QType kTypes[] = {QType::kBF16, QType::kQ8, QType::kQ4};

TEST(QuantConvert, F16MatchesF16C) {
  if (!has_avx2()) GTEST_SKIP() << "CPU has no F16C";
  std::vector<float> vals = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.0f, 65520.0f, 1e-8f,
                             6.1e-5f, 5.96e-8f, 2.98e-8f, 3e-8f, 1e30f, INFINITY, -INFINITY,
                             0.1f, 1.0f / 3.0f};
  for (float v : random_vec(20000, 11, 3.0f)) vals.push_back(v);
  for (float v : random_vec(20000, 12, 1e-5f)) vals.push_back(v);
  for (float v : vals) EXPECT_EQ(kernels::f32_to_f16(v), f16c_convert(v)) << v;
}

TEST(QuantConvert, Bf16RoundsToNearestEven) {
  EXPECT_EQ(kernels::f32_to_bf16(1.0f), 0x3f80);
  for (float v : random_vec(10000, 13)) {
    const float r = bf16_to_f32(kernels::f32_to_bf16(v));
    EXPECT_LE(std::fabs(r - v), std::fabs(v) * (1.0f / 256.0f)) << v;
  }
}

TEST(QuantFormat, DequantizedErrorIsBounded) {
  for (auto [n, k] : {std::tuple{5, 64}, {3, 100}, {7, 1024}, {2, 33}}) {
    const auto w = random_vec(n * k, 21);
    for (QType type : kTypes) {
      const Owned q = quantize(type, w, n, k);
      std::vector<float> row(k);
      for (int64_t j = 0; j < n; ++j) {
        kernels::dequantize_row(q.view, j, row.data());
        for (int64_t b = 0; b * 32 < k; ++b) {
          float lo = INFINITY, hi = -INFINITY;
          for (int64_t p = b * 32; p < std::min<int64_t>(k, b * 32 + 32); ++p) {
            lo = std::min(lo, w[j * k + p]);
            hi = std::max(hi, w[j * k + p]);
          }
          const float amax = std::max(std::fabs(lo), std::fabs(hi));
          // Half a quantization step plus the f16 rounding of the scales; q4's least-squares
          // refit of (d, m) may trade an extreme element's error for a smaller total.
          const float bound = type == QType::kBF16 ? amax / 256.0f
                              : type == QType::kQ8 ? amax / 127.0f * 0.51f + amax * 1e-3f
                                                   : (hi - lo) / 15.0f * 1.5f + amax * 2e-3f;
          for (int64_t p = b * 32; p < std::min<int64_t>(k, b * 32 + 32); ++p)
            EXPECT_LE(std::fabs(row[p] - w[j * k + p]), bound)
                << kernels::qtype_name(type) << " " << n << "x" << k << " at " << j << "," << p;
        }
      }
    }
  }
}

TEST(QuantFormat, ConstantAndZeroBlocks) {
  const int64_t n = 2, k = 64;
  std::vector<float> w(n * k, 0.0f);
  std::fill(w.begin() + k, w.end(), 0.75f);
  for (QType type : kTypes) {
    const Owned q = quantize(type, w, n, k);
    std::vector<float> row(k);
    for (int64_t j = 0; j < n; ++j) {
      kernels::dequantize_row(q.view, j, row.data());
      for (int64_t p = 0; p < k; ++p) EXPECT_NEAR(row[p], w[j * k + p], 1e-3) << kernels::qtype_name(type);
    }
  }
}

TEST(QuantActs, Avx2MatchesScalarTwin) {
  if (!has_avx2()) GTEST_SKIP() << "CPU has no AVX2+FMA+F16C";
  for (auto [m, k] : {std::tuple{1, 32}, {3, 48}, {2, 1024}, {5, 100}, {1, 7}}) {
    auto x = random_vec(m * k, 31);
    if (k >= 32) std::fill_n(x.begin(), 32, 0.0f);  // an all-zero block
    kernels::QActs a, b;
    kernels::quantize_acts_scalar(x.data(), k, m, k, &a);
    // b reused, as the products' scratch is, after a wider row: every byte must be rewritten,
    // padding included.
    const auto other = random_vec(m * (k + 32), 32);
    kernels::quantize_acts_avx2(other.data(), k + 32, m, k + 32, &b);
    kernels::quantize_acts_avx2(x.data(), k, m, k, &b);
    EXPECT_EQ(a.q, b.q) << m << "x" << k;
    EXPECT_EQ(a.d, b.d) << m << "x" << k;
    EXPECT_EQ(a.s, b.s) << m << "x" << k;
    EXPECT_EQ(a.c, b.c) << m << "x" << k;
    EXPECT_EQ(a.qp, b.qp) << m << "x" << k;
  }
}

TEST(QuantMatmul, Avx2MatchesScalarTwinBitwise) {
  if (!has_avx2()) GTEST_SKIP() << "CPU has no AVX2+FMA+F16C";
  for (auto [m, n, k] : {std::tuple{1, 7, 32}, {2, 16, 64}, {5, 33, 100}, {3, 4, 256},
                         {9, 9, 1031}, {2, 40, 48}, {4, 3, 1024}, {1, 1, 8}}) {
    const auto x = random_vec(m * k, 41), w = random_vec(n * k, 42), bias = random_vec(n, 43);
    for (QType type : kTypes) {
      const Owned q = quantize(type, w, n, k);
      std::vector<float> y1(m * n), y2(m * n);
      if (type == QType::kBF16) {
        kernels::qmatmul_bf16_scalar(x.data(), k, m, q.view, bias.data(), y1.data(), n, 0, n);
        kernels::qmatmul_bf16_avx2(x.data(), k, m, q.view, bias.data(), y2.data(), n, 0, n);
      } else {
        kernels::QActs a;
        kernels::quantize_acts_scalar(x.data(), k, m, k, &a);
        if (type == QType::kQ8) {
          kernels::qmatmul_q8_scalar(a, q.view, bias.data(), y1.data(), n, 0, n);
          kernels::qmatmul_q8_avx2(a, q.view, bias.data(), y2.data(), n, 0, n);
        } else {
          kernels::qmatmul_q4_scalar(a, q.view, bias.data(), y1.data(), n, 0, n);
          kernels::qmatmul_q4_avx2(a, q.view, bias.data(), y2.data(), n, 0, n);
        }
      }
      EXPECT_EQ(y1, y2) << kernels::qtype_name(type) << " " << m << "x" << n << "x" << k;
    }
  }
}

bool has_avx512() { return kernels::at_least(kernels::detect_isa(), kernels::Isa::kAvx512); }

// AVX-512 (VNNI) q8/q4 against the scalar twins, bitwise; shapes cover 1-9 activation rows,
// weight-row tails, partial blocks, more than 8 blocks per row and column slices.
TEST(QuantMatmul, Avx512MatchesScalarTwinBitwise) {
  if (!has_avx512()) GTEST_SKIP() << "SKIPPED: no AVX-512 (F/BW/VL/DQ/VNNI) on this CPU";
  for (auto [m, n, k] : {std::tuple{1, 7, 32}, {2, 16, 64}, {5, 33, 100}, {3, 4, 256},
                         {9, 9, 1031}, {2, 40, 48}, {4, 3, 1024}, {1, 1, 8}, {2, 37, 4096},
                         {6, 21, 520}, {8, 12, 300}}) {
    auto x = random_vec(m * k, 141);
    if (k >= 64) std::fill_n(x.begin() + 32, 32, 0.0f);  // an all-zero activation block
    const auto w = random_vec(n * k, 142), bias = random_vec(n, 143);
    for (QType type : {QType::kQ8, QType::kQ4}) {
      const Owned q = quantize(type, w, n, k);
      std::vector<float> y1(m * n), y2(m * n), y3(m * n, 0.0f);
      const int64_t n0 = n / 3, n1 = n - n / 4;
      {
        kernels::QActs a;
        kernels::quantize_acts_scalar(x.data(), k, m, k, &a);
        auto fn = type == QType::kQ8 ? kernels::qmatmul_q8_avx512 : kernels::qmatmul_q4_avx512;
        if (type == QType::kQ8) kernels::qmatmul_q8_scalar(a, q.view, bias.data(), y1.data(), n, 0, n);
        else kernels::qmatmul_q4_scalar(a, q.view, bias.data(), y1.data(), n, 0, n);
        fn(a, q.view, bias.data(), y2.data(), n, 0, n);
        fn(a, q.view, bias.data(), y3.data(), n, n0, n1);
      }
      EXPECT_EQ(y1, y2) << kernels::qtype_name(type) << " " << m << "x" << n << "x" << k;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = n0; j < n1; ++j)
          ASSERT_EQ(y3[i * n + j], y1[i * n + j]) << kernels::qtype_name(type) << " slice";
    }
  }
}

// Extreme int8 values: every activation and weight at +-127 (the largest dot products vpdpbusd
// and maddubs form) still agree bitwise.
TEST(QuantMatmul, Avx512ExtremeValuesMatchScalarTwin) {
  if (!has_avx512()) GTEST_SKIP() << "SKIPPED: no AVX-512 (F/BW/VL/DQ/VNNI) on this CPU";
  const int64_t m = 3, n = 9, k = 512;
  std::vector<float> x(m * k), w(n * k);
  for (size_t i = 0; i < x.size(); ++i) x[i] = (i % 3 == 0) ? -1.0f : 1.0f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = (i % 5 == 0) ? -2.0f : 2.0f;
  for (QType type : {QType::kQ8, QType::kQ4}) {
    const Owned q = quantize(type, w, n, k);
    kernels::QActs a;
    kernels::quantize_acts_scalar(x.data(), k, m, k, &a);
    std::vector<float> y1(m * n), y2(m * n);
    if (type == QType::kQ8) {
      kernels::qmatmul_q8_scalar(a, q.view, nullptr, y1.data(), n, 0, n);
      kernels::qmatmul_q8_avx512(a, q.view, nullptr, y2.data(), n, 0, n);
    } else {
      kernels::qmatmul_q4_scalar(a, q.view, nullptr, y1.data(), n, 0, n);
      kernels::qmatmul_q4_avx512(a, q.view, nullptr, y2.data(), n, 0, n);
    }
    EXPECT_EQ(y1, y2) << kernels::qtype_name(type);
  }
}

// The dispatcher at each level the CPU has gives the same values (the twins are bitwise equal).
TEST(QuantMatmul, EveryIsaLevelGivesTheSameResult) {
  const int64_t m = 2, n = 75, k = 1024;
  const auto x = random_vec(m * k, 151), w = random_vec(n * k, 152);
  for (QType type : kTypes) {
    const Owned q = quantize(type, w, n, k);
    std::vector<float> ref;
    for (auto isa : {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
      if (!kernels::at_least(kernels::detect_isa(), isa)) {
        std::printf("SKIPPED: %s not on this CPU\n", kernels::isa_name(isa));
        continue;
      }
      kernels::force_isa(isa);
      std::vector<float> y(m * n);
      kernels::qmatmul(x.data(), k, m, q.view, nullptr, y.data(), n, nullptr);
      kernels::unforce_isa();
      if (ref.empty()) ref = y;
      else EXPECT_EQ(y, ref) << kernels::qtype_name(type) << " " << kernels::isa_name(isa);
    }
  }
}

TEST(QuantMatmul, CloseToFloat64ReferenceOfDequantizedWeights) {
  const int64_t m = 3, n = 20, k = 512;
  const auto x = random_vec(m * k, 51), w = random_vec(n * k, 52);
  for (QType type : kTypes) {
    const Owned q = quantize(type, w, n, k);
    std::vector<float> y(m * n), deq(k);
    kernels::qmatmul(x.data(), k, m, q.view, nullptr, y.data(), n, nullptr);
    double max_err = 0, max_ref = 0;
    for (int64_t j = 0; j < n; ++j) {
      kernels::dequantize_row(q.view, j, deq.data());
      for (int64_t i = 0; i < m; ++i) {
        double ref = 0;
        for (int64_t p = 0; p < k; ++p) ref += static_cast<double>(x[i * k + p]) * deq[p];
        max_err = std::max(max_err, std::fabs(ref - y[i * n + j]));
        max_ref = std::max(max_ref, std::fabs(ref));
      }
    }
    // bf16 keeps float activations; q8/q4 add the int8 rounding of the activations.
    const double tol = type == QType::kBF16 ? 1e-5 : 2e-2;
    EXPECT_LE(max_err / max_ref, tol) << kernels::qtype_name(type);
  }
}

TEST(QuantMatmul, ResultIndependentOfThreadCount) {
  const int64_t m = 2, n = 301, k = 1024;
  const auto x = random_vec(m * k, 61), w = random_vec(n * k, 62), bias = random_vec(n, 63);
  ThreadPool p1(1), p2(2), p3(3);
  for (QType type : kTypes) {
    const Owned q = quantize(type, w, n, k);
    std::vector<float> y1(m * n), y2(m * n), y3(m * n);
    kernels::qmatmul(x.data(), k, m, q.view, bias.data(), y1.data(), n, &p1);
    kernels::qmatmul(x.data(), k, m, q.view, bias.data(), y2.data(), n, &p2);
    kernels::qmatmul(x.data(), k, m, q.view, bias.data(), y3.data(), n, &p3);
    EXPECT_EQ(y1, y2) << kernels::qtype_name(type);
    EXPECT_EQ(y1, y3) << kernels::qtype_name(type);
  }
}

TEST(QuantMatmul, QuantizationIndependentOfThreadCount) {
  const int64_t n = 37, k = 200;
  const auto w = random_vec(n * k, 71);
  ThreadPool p3(3);
  for (QType type : kTypes) {
    std::vector<uint8_t> d1(kernels::q_data_bytes(type, n, k)), d2(d1.size());
    std::vector<uint16_t> s1(kernels::q_scale_bytes(type, n, k) / 2), s2(s1.size());
    kernels::quantize_matrix(type, w.data(), n, k, d1.data(), s1.data(), nullptr);
    kernels::quantize_matrix(type, w.data(), n, k, d2.data(), s2.data(), &p3);
    EXPECT_EQ(d1, d2);
    EXPECT_EQ(s1, s2);
  }
}

// ---- Attention over a KV cache ---------------------------------------------------------------

std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = kernels::f32_to_f16(v[i]);
  return h;
}

TEST(Attention, Avx2MatchesScalarTwin) {
  if (!has_avx2()) GTEST_SKIP() << "CPU has no AVX2+FMA+F16C";
  for (auto [keys, d] : {std::tuple{1, 64}, {7, 64}, {300, 64}, {5, 12}, {33, 96}, {64, 40}}) {
    const auto q = random_vec(d, 81), k = random_vec(keys * d, 82), v = random_vec(keys * d, 83);
    auto bias = random_vec(keys, 84);
    bias[0] = -3.4e38f;
    const auto kh = to_f16(k), vh = to_f16(v);
    std::vector<float> o1(d), o2(d), o3(d), o4(d), scratch(keys);
    const float scale = 0.125f;
    kernels::attend_scalar(q.data(), k.data(), v.data(), keys, d, scale, bias.data(),
                           scratch.data(), o1.data());
    kernels::attend_avx2(q.data(), k.data(), v.data(), keys, d, scale, bias.data(), scratch.data(),
                         o2.data());
    kernels::attend_f16_scalar(q.data(), kh.data(), vh.data(), keys, d, scale, nullptr,
                               scratch.data(), o3.data());
    kernels::attend_f16_avx2(q.data(), kh.data(), vh.data(), keys, d, scale, nullptr,
                             scratch.data(), o4.data());
    EXPECT_EQ(o1, o2) << keys << "x" << d;
    EXPECT_EQ(o3, o4) << keys << "x" << d;
  }
}

TEST(Attention, Q8CacheAvx2MatchesScalarTwinAndTheDequantizedCache) {
  for (auto [keys, d] : {std::tuple{1, 64}, {7, 64}, {300, 64}, {5, 12}, {33, 96}, {64, 40}}) {
    const auto q = random_vec(d, 91), k = random_vec(keys * d, 92), v = random_vec(keys * d, 93);
    std::vector<int8_t> k8(keys * d), v8(keys * d);
    std::vector<float> ks(keys), vs(keys), kd(keys * d), vd(keys * d);
    for (int j = 0; j < keys; ++j) {
      kernels::quantize_kv_row(k.data() + j * d, d, k8.data() + j * d, &ks[j]);
      kernels::quantize_kv_row(v.data() + j * d, d, v8.data() + j * d, &vs[j]);
      for (int t = 0; t < d; ++t) {
        // Rounding to the nearest step: within half a step of the float value.
        EXPECT_LE(std::fabs(ks[j] * k8[j * d + t] - k[j * d + t]), 0.5f * ks[j] * 1.0001f);
        kd[j * d + t] = ks[j] * k8[j * d + t];
        vd[j * d + t] = vs[j] * v8[j * d + t];
      }
    }
    std::vector<float> o1(d), o2(d), od(d), of(d), scratch(keys);
    const float scale = 0.125f;
    kernels::attend_q8_scalar(q.data(), k8.data(), ks.data(), v8.data(), vs.data(), keys, d, scale,
                              nullptr, scratch.data(), o1.data());
    // The scores take the scaled query quantized like a cached row: with it and the cache
    // dequantized, the float kernel gives the same numbers up to float rounding.
    std::vector<float> qscaled(d), qd(d);
    std::vector<int8_t> q8(d);
    float qscale = 0.0f;
    for (int t = 0; t < d; ++t) qscaled[t] = q[t] * scale;
    kernels::quantize_kv_row(qscaled.data(), d, q8.data(), &qscale);
    for (int t = 0; t < d; ++t) qd[t] = qscale * q8[t];
    kernels::attend_scalar(qd.data(), kd.data(), vd.data(), keys, d, 1.0f, nullptr, scratch.data(),
                           od.data());
    // And the unquantized cache: the q8 error itself, small against the output's scale.
    kernels::attend_scalar(q.data(), k.data(), v.data(), keys, d, scale, nullptr, scratch.data(),
                           of.data());
    double num = 0, den = 0;
    for (int t = 0; t < d; ++t) {
      EXPECT_NEAR(o1[t], od[t], 1e-5f * (1.0f + std::fabs(od[t]))) << keys << "x" << d;
      num += (o1[t] - of[t]) * (o1[t] - of[t]);
      den += of[t] * of[t];
    }
    EXPECT_LT(std::sqrt(num / den), 0.05) << keys << "x" << d;
    if (has_avx2()) {
      kernels::attend_q8_avx2(q.data(), k8.data(), ks.data(), v8.data(), vs.data(), keys, d, scale,
                              nullptr, scratch.data(), o2.data());
      EXPECT_EQ(o1, o2) << keys << "x" << d;
    }
  }
  if (!has_avx2()) GTEST_SKIP() << "scalar checked; CPU has no AVX2+FMA+F16C for the twin";
}

TEST(Attention, MatchesFloat64Reference) {
  const int keys = 50, d = 64;
  const auto q = random_vec(d, 91), k = random_vec(keys * d, 92), v = random_vec(keys * d, 93);
  const auto kh = to_f16(k), vh = to_f16(v);
  const float scale = 0.125f;
  std::vector<double> p(keys), ref(d, 0.0);
  double mx = -INFINITY, sum = 0;
  for (int j = 0; j < keys; ++j) {
    double s = 0;
    for (int t = 0; t < d; ++t) s += static_cast<double>(q[t]) * scale * k[j * d + t];
    p[j] = s;
    mx = std::max(mx, s);
  }
  for (int j = 0; j < keys; ++j) sum += p[j] = std::exp(p[j] - mx);
  for (int j = 0; j < keys; ++j)
    for (int t = 0; t < d; ++t) ref[t] += p[j] / sum * v[j * d + t];
  std::vector<float> out(d), out16(d), scratch(keys);
  kernels::attend(q.data(), k.data(), v.data(), keys, d, scale, nullptr, scratch.data(), out.data());
  kernels::attend_f16(q.data(), kh.data(), vh.data(), keys, d, scale, nullptr, scratch.data(),
                      out16.data());
  for (int t = 0; t < d; ++t) {
    EXPECT_NEAR(out[t], ref[t], 1e-5);
    EXPECT_NEAR(out16[t], ref[t], 3e-3);
  }
}

TEST(Attention, SoftmaxExpIsAccurate) {
  for (float x = -87.0f; x <= 0.0f; x += 0.0137f) {
    const float e = kernels::exp_scalar(x);
    EXPECT_NEAR(e, std::exp(x), 3e-7f * std::exp(x) + 1e-38f) << x;
  }
  EXPECT_EQ(kernels::exp_scalar(-200.0f), 0.0f);
}

TEST(Gelu, Avx2MatchesScalarTwinAndErf) {
  auto x = random_vec(1003, 101, 3.0f);
  x[0] = -12.0f;
  x[1] = 12.0f;
  x[2] = 0.0f;
  std::vector<float> a = x, b = x;
  kernels::gelu_erf_scalar(a.data(), static_cast<int64_t>(a.size()));
  if (has_avx2()) {
    kernels::gelu_erf_avx2(b.data(), static_cast<int64_t>(b.size()));
    EXPECT_EQ(a, b);
  }
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
    EXPECT_NEAR(a[i], ref, 1e-6 * std::max(1.0, std::fabs(ref))) << x[i];
  }
}

}  // namespace
}  // namespace musicgen
