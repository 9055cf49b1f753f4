// Kernels against their scalar twins, thread-count independence, small numeric helpers.
#include <cmath>
#include <cstring>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "generation/delay_pattern.h"
#include "generation/sampling.h"
#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "test_util.h"

namespace musicgen {
namespace {

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(Matmul, Avx2MatchesScalarTwin) {
  if (!kernels::at_least(kernels::detect_isa(), kernels::Isa::kAvx2)) GTEST_SKIP() << "CPU has no AVX2+FMA";
  for (auto [m, n, k] : {std::tuple{1, 7, 3}, {2, 16, 64}, {5, 33, 100}, {3, 4, 8}, {17, 9, 1031}}) {
    const auto a = random_vec(m * k, 1), w = random_vec(n * k, 2), bias = random_vec(n, 3);
    std::vector<float> c1(m * n), c2(m * n);
    kernels::matmul_nt_scalar(a.data(), k, w.data(), bias.data(), c1.data(), n, m, n, k, 0, n);
    kernels::matmul_nt_avx2(a.data(), k, w.data(), bias.data(), c2.data(), n, m, n, k, 0, n);
    // Same reduction structure: equal up to FMA contraction.
    EXPECT_LE(testing::relative_max_error(c2.data(), c1.data(), c1.size()), 1e-6)
        << m << "x" << n << "x" << k;
  }
}

TEST(Matmul, ResultIndependentOfThreadCount) {
  const int m = 6, n = 300, k = 257;
  const auto a = random_vec(m * k, 4), w = random_vec(n * k, 5);
  std::vector<float> c1(m * n), c2(m * n), c3(m * n);
  ThreadPool p1(1), p2(2), p3(3);
  kernels::matmul_nt(a.data(), k, w.data(), nullptr, c1.data(), n, m, n, k, &p1);
  kernels::matmul_nt(a.data(), k, w.data(), nullptr, c2.data(), n, m, n, k, &p2);
  kernels::matmul_nt(a.data(), k, w.data(), nullptr, c3.data(), n, m, n, k, &p3);
  EXPECT_EQ(c1, c2);
  EXPECT_EQ(c1, c3);
}

TEST(Matmul, MatchesDoublePrecisionReference) {
  const int m = 3, n = 5, k = 77;
  const auto a = random_vec(m * k, 6), w = random_vec(n * k, 7);
  std::vector<float> c(m * n);
  kernels::matmul_nt(a.data(), k, w.data(), nullptr, c.data(), n, m, n, k, nullptr);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double ref = 0;
      for (int p = 0; p < k; ++p) ref += static_cast<double>(a[i * k + p]) * w[j * k + p];
      EXPECT_NEAR(c[i * n + j], ref, 1e-4);
    }
}

// Exact f16 storage: weights whose float32 values are half-representable, stored as half and
// converted on load, give bitwise the float32 kernel's results (same ISA, any thread count).
TEST(Matmul, F16WeightsGiveBitwiseTheFloat32Result) {
  for (auto [m, n, k] : {std::tuple{1, 7, 3}, {2, 16, 64}, {5, 33, 100}, {3, 4, 8}, {17, 9, 1031},
                         {4, 64, 63}, {6, 300, 257}}) {
    const auto a = random_vec(m * k, 11), bias = random_vec(n, 13);
    std::vector<float> w = random_vec(n * k, 12);
    std::vector<uint16_t> h(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      h[i] = kernels::f32_to_f16(w[i]);
      w[i] = f16_to_f32(h[i]);  // the float32 matrix holds exactly the half values
    }
    std::vector<float> c1(m * n), c2(m * n);
    kernels::matmul_nt_scalar(a.data(), k, w.data(), bias.data(), c1.data(), n, m, n, k, 0, n);
    kernels::matmul_nt_f16_scalar(a.data(), k, h.data(), bias.data(), c2.data(), n, m, n, k, 0, n);
    EXPECT_EQ(c1, c2) << "scalar " << m << "x" << n << "x" << k;
    if (kernels::at_least(kernels::detect_isa(), kernels::Isa::kAvx2)) {
      kernels::matmul_nt_avx2(a.data(), k, w.data(), bias.data(), c1.data(), n, m, n, k, 0, n);
      kernels::matmul_nt_f16_avx2(a.data(), k, h.data(), bias.data(), c2.data(), n, m, n, k, 0, n);
      EXPECT_EQ(c1, c2) << "avx2 " << m << "x" << n << "x" << k;
    }
    ThreadPool p3(3);
    kernels::matmul_nt(a.data(), k, w.data(), bias.data(), c1.data(), n, m, n, k, &p3);
    kernels::matmul_nt_f16(a.data(), k, h.data(), bias.data(), c2.data(), n, m, n, k, nullptr);
    EXPECT_EQ(c1, c2) << "threads " << m << "x" << n << "x" << k;
  }
}

bool has_avx512() { return kernels::at_least(kernels::detect_isa(), kernels::Isa::kAvx512); }

// The AVX-512 exact-f16 kernel keeps the AVX2 kernel's lanes (two weight rows per zmm): bitwise
// equal to it and to the float32 AVX2 kernel on the same values, so exact-f16 storage gives the
// same numbers (and the same transformers parity) on either machine.
TEST(Matmul, Avx512F16MatchesAvx2Bitwise) {
  if (!has_avx512()) GTEST_SKIP() << "SKIPPED: no AVX-512 (F/BW/VL/DQ/VNNI) on this CPU";
  for (auto [m, n, k] : {std::tuple{1, 7, 3}, {2, 16, 64}, {5, 33, 100}, {3, 4, 8}, {17, 9, 1031},
                         {2, 37, 1024}, {4, 64, 63}, {1, 19, 4096}, {6, 300, 257}}) {
    const auto a = random_vec(m * k, 21), bias = random_vec(n, 23);
    std::vector<float> w = random_vec(n * k, 22);
    std::vector<uint16_t> h(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      h[i] = kernels::f32_to_f16(w[i]);
      w[i] = f16_to_f32(h[i]);
    }
    std::vector<float> c1(m * n), c2(m * n), c3(m * n), c0(m * n);
    kernels::matmul_nt_avx2(a.data(), k, w.data(), bias.data(), c1.data(), n, m, n, k, 0, n);
    kernels::matmul_nt_f16_avx2(a.data(), k, h.data(), bias.data(), c2.data(), n, m, n, k, 0, n);
    kernels::matmul_nt_f16_avx512(a.data(), k, h.data(), bias.data(), c3.data(), n, m, n, k, 0, n);
    EXPECT_EQ(c2, c3) << "f16 avx512 vs avx2 " << m << "x" << n << "x" << k;
    EXPECT_EQ(c1, c3) << "f16 avx512 vs f32 avx2 " << m << "x" << n << "x" << k;
    // Against the scalar twin: the same reduction structure, equal up to FMA contraction.
    kernels::matmul_nt_f16_scalar(a.data(), k, h.data(), bias.data(), c0.data(), n, m, n, k, 0, n);
    EXPECT_LE(testing::relative_max_error(c3.data(), c0.data(), c0.size()), 1e-6);
    // A column range inside the matrix (a thread's slice) gives the same values.
    std::vector<float> c5(m * n, 0.0f);
    const int64_t n0 = n / 3, n1 = n - n / 4;
    kernels::matmul_nt_f16_avx512(a.data(), k, h.data(), bias.data(), c5.data(), n, m, n, k, n0, n1);
    for (int i = 0; i < m; ++i)
      for (int64_t j = n0; j < n1; ++j) EXPECT_EQ(c5[i * n + j], c3[i * n + j]);
  }
}

TEST(Matmul, IsaCanBeForcedDown) {
  const kernels::Isa best = kernels::detect_isa();
  kernels::force_isa(kernels::Isa::kScalar);
  EXPECT_EQ(kernels::active_isa(), kernels::Isa::kScalar);
  kernels::force_isa(kernels::Isa::kAvx512);  // capped at what the CPU has
  EXPECT_EQ(kernels::active_isa(), best);
  kernels::unforce_isa();
  kernels::Isa parsed = kernels::Isa::kScalar;
  EXPECT_TRUE(kernels::parse_isa("avx512", &parsed));
  EXPECT_EQ(parsed, kernels::Isa::kAvx512);
  EXPECT_FALSE(kernels::parse_isa("sse2", &parsed));
}

TEST(ThreadPool, CoversEveryIndexOnce) {
  ThreadPool pool(2);
  std::vector<int> hits(1000, 0);
  pool.parallel_for(1000, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ++hits[i];
  });
  for (int h : hits) EXPECT_EQ(h, 1);
}

TEST(ThreadPool, StealingCoversEveryIndexOnceInWholePieces) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 16, 64, 257, 1000})
      for (int64_t grain : {1, 3, 16}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> bad{0};
        for (int rep = 0; rep < 3; ++rep) {
          for (auto& h : hits) h = 0;
          pool.parallel_for_stealing(n, [&](int64_t b, int64_t e) {
            // Ranges start on a piece boundary and hold whole pieces (but the last).
            if (b % grain != 0 || ((e - b) % grain != 0 && e != n)) ++bad;
            for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
          }, grain);
          for (auto& h : hits) ASSERT_EQ(h.load(), 1) << threads << " threads, n " << n;
        }
        EXPECT_EQ(bad.load(), 0) << threads << " threads, n " << n << ", grain " << grain;
      }
  }
}

TEST(ThreadPool, StealingHelpsASlowThreadAndKeepsSharesContiguous) {
  // Two threads, 64 pieces: each owns 32. The thread that runs piece 0 first takes a quarter of
  // its share ([0, 8)) and sleeps; the other runs its own share [32, 64), then takes the slow
  // thread's pieces one at a time from the back (31, 30, ..., 8). With a static split each would
  // run 32.
  ThreadPool pool(2);
  std::mutex mu;
  std::map<std::thread::id, std::vector<std::pair<int64_t, int64_t>>> calls;
  pool.parallel_for_stealing(64, [&](int64_t b, int64_t e) {
    {
      std::lock_guard<std::mutex> lock(mu);
      calls[std::this_thread::get_id()].push_back({b, e});
    }
    if (b == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  });
  ASSERT_EQ(calls.size(), 2u);
  for (const auto& [id, ranges] : calls) {
    if (ranges.front().first == 0) {  // the slow thread: one call
      ASSERT_EQ(ranges.size(), 1u);
      EXPECT_EQ(ranges[0].second, 8);
      continue;
    }
    // The fast thread: its own share front to back in calls that do not grow, then single
    // pieces from 31 down to 8.
    int64_t next = 32, covered = 0;
    size_t i = 0;
    for (; i < ranges.size() && ranges[i].first >= 32; ++i) {
      EXPECT_EQ(ranges[i].first, next);
      if (i > 0) {
        EXPECT_LE(ranges[i].second - ranges[i].first, ranges[i - 1].second - ranges[i - 1].first);
      }
      next = ranges[i].second;
      covered += ranges[i].second - ranges[i].first;
    }
    EXPECT_EQ(next, 64);
    EXPECT_EQ(ranges.size() - i, 24u);
    for (int64_t p = 31; i < ranges.size(); ++i, --p) {
      EXPECT_EQ(ranges[i].first, p);
      EXPECT_EQ(ranges[i].second, p + 1);
      covered += 1;
    }
    EXPECT_EQ(covered, 56);
  }
}

TEST(LayerNorm, RowsTogetherEqualRowsAlone) {
  // layer_norm overlaps up to four rows' sums; each row must come out bitwise as alone.
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.5f, 3.0f);
  for (int rows : {1, 2, 3, 4, 5, 6, 9})
    for (int n : {1, 7, 64, 1024}) {
      std::vector<float> x(rows * n), g(n), b(n), together(rows * n), alone(rows * n);
      for (auto& v : x) v = nd(rng);
      for (auto& v : g) v = nd(rng);
      for (auto& v : b) v = nd(rng);
      kernels::layer_norm(x.data(), g.data(), b.data(), together.data(), rows, n, 1e-5f);
      for (int r = 0; r < rows; ++r)
        kernels::layer_norm(x.data() + r * n, g.data(), b.data(), alone.data() + r * n, 1, n, 1e-5f);
      EXPECT_EQ(std::memcmp(together.data(), alone.data(), together.size() * 4), 0)
          << rows << " rows of " << n;
      // And it is a layer norm: row 0's mean of (y - beta) / gamma is about 0.
      if (n >= 64) {
        double m = 0;
        for (int i = 0; i < n; ++i) m += (alone[i] - b[i]) / g[i];
        EXPECT_NEAR(m / n, 0.0, 1e-3);
      }
    }
}

TEST(LayerNorm, Avx2MatchesScalarTwinAndADoubleReference) {
  if (!kernels::at_least(kernels::detect_isa(), kernels::Isa::kAvx2))
    GTEST_SKIP() << "SKIPPED: no AVX2+FMA+F16C on this CPU";
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.5f, 3.0f);
  // Widths below, at and around the 16-element step (tails of every length), and the model's.
  for (int n : {1, 5, 15, 16, 17, 31, 33, 100, 1000, 1024, 1536})
    for (int rows : {1, 2, 3}) {
      std::vector<float> x(rows * n), g(n), b(n), simd(rows * n), twin(rows * n);
      for (auto& v : x) v = nd(rng) + 40.0f;  // a large mean: the variance pass must subtract it
      for (auto& v : g) v = nd(rng);
      for (auto& v : b) v = nd(rng);
      kernels::layer_norm_avx2(x.data(), g.data(), b.data(), simd.data(), rows, n, 1e-5f);
      kernels::layer_norm_scalar(x.data(), g.data(), b.data(), twin.data(), rows, n, 1e-5f);
      ASSERT_EQ(std::memcmp(simd.data(), twin.data(), simd.size() * 4), 0) << rows << " x " << n;
      // Against long double two-pass sums.
      for (int r = 0; r < rows; ++r) {
        long double m = 0, v = 0;
        for (int i = 0; i < n; ++i) m += x[r * n + i];
        m /= n;
        for (int i = 0; i < n; ++i) v += (x[r * n + i] - m) * (x[r * n + i] - m);
        v /= n;
        const long double inv = 1.0L / std::sqrt(v + 1e-5L);
        for (int i = 0; i < n; ++i) {
          const double want = static_cast<double>((x[r * n + i] - m) * inv * g[i] + b[i]);
          EXPECT_NEAR(twin[r * n + i], want, 1e-5 * (1.0 + std::fabs(want))) << r << " " << i;
        }
      }
    }
}

TEST(ThreadPool, StatsCountRegionsAndTheirTime) {
  ThreadPool pool(2);
  pool.reset_stats();
  std::atomic<int> sink{0};
  for (int i = 0; i < 10; ++i)
    pool.parallel_for(2, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
        while (std::chrono::steady_clock::now() < end) sink.fetch_add(1, std::memory_order_relaxed);
      }
    });
  const ThreadPool::Stats s = pool.stats();
  EXPECT_EQ(s.calls, 10u);
  // Two threads x 10 calls x at least 200 us each.
  EXPECT_GE(s.busy_s, 2 * 10 * 200e-6);
  EXPECT_GE(s.barrier_s, 0.0);
  EXPECT_GE(s.start_s, 0.0);
  pool.parallel_for(1, [](int64_t, int64_t) {});  // one range: runs inline, not a region
  EXPECT_EQ(pool.stats().calls, 10u);
}

TEST(HalfFloat, ConvertsSpecialValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
}

TEST(DelayPattern, MatchesHfLayoutForFourCodebooks) {
  // HF example: max_length M = 8 gives N = 4 frames; codebook k is forced at steps <= k and at
  // steps >= M - 4 + 1 + k.
  DelayPattern p(4, 1, 8, 2048);
  EXPECT_EQ(p.frames(), 4);
  for (int k = 0; k < 4; ++k)
    for (int s = 0; s < 8; ++s) EXPECT_EQ(p.forced(k, s), s <= k || s >= 5 + k) << k << "," << s;
  std::vector<int32_t> seq(4 * 8, 2048);
  for (int k = 0; k < 4; ++k)
    for (int t = 0; t < 4; ++t) seq[k * 8 + t + 1 + k] = 10 * k + t;
  const auto codes = p.undelay(seq, 1);
  for (int k = 0; k < 4; ++k)
    for (int t = 0; t < 4; ++t) EXPECT_EQ(codes[k * 4 + t], 10 * k + t);
}

TEST(DelayPattern, StereoPairsShareDelays) {
  DelayPattern p(8, 2, 10, 2048);
  for (int k = 0; k < 8; ++k) EXPECT_EQ(p.delay(k), k / 2);
  EXPECT_EQ(p.frames(), 6);
}

TEST(Sampling, GuidanceFormula) {
  const float c[2] = {1.0f, 2.0f}, u[2] = {0.5f, -1.0f};
  float out[2];
  apply_guidance(c, u, 3.0f, out, 2);
  EXPECT_FLOAT_EQ(out[0], 0.5f + 0.5f * 3.0f);
  EXPECT_FLOAT_EQ(out[1], -1.0f + 3.0f * 3.0f);
}

TEST(Sampling, TopKKeepsTiesAndSampleRespectsMask) {
  std::vector<float> s = {1.0f, 3.0f, 3.0f, 0.0f, 2.0f};
  SamplingParams p;
  p.top_k = 2;
  apply_warpers(s.data(), 5, p);
  EXPECT_TRUE(std::isinf(s[0]) && std::isinf(s[3]) && std::isinf(s[4]));
  EXPECT_EQ(s[1], 3.0f);
  EXPECT_EQ(s[2], 3.0f);
  for (double u : {0.0, 0.3, 0.7, 0.999999}) {
    const int t = sample(s.data(), 5, u);
    EXPECT_TRUE(t == 1 || t == 2);
  }
  EXPECT_EQ(sample(s.data(), 5, 0.25), 1);
  EXPECT_EQ(sample(s.data(), 5, 0.75), 2);
}

TEST(Sampling, RngIsReproducible) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 10; ++i) {
    const double x = a.uniform();
    EXPECT_EQ(x, b.uniform());
    EXPECT_GE(x, 0.0);
    EXPECT_LT(x, 1.0);
  }
  EXPECT_NE(Rng(42).uniform(), c.uniform());
}

}  // namespace
}  // namespace musicgen
