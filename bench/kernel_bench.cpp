// Micro-benchmark of the decoder's matrix products: every weight type multiplies `rows`
// activation rows (2 = the two guidance streams) against a set of matrices shaped like one
// musicgen-small layer, repeated until the set is far larger than the caches, so every pass
// streams the weights from memory as a decoder step does. Prints the median time per pass and the
// achieved weight bandwidth per type.
//
// Usage: kernel_bench [--threads T] [--rows M] [--mib N] [--reps R] [--hidden H]
//        kernel_bench --compare-isa [--rows M]
// --compare-isa: each kernel's AVX2 and AVX-512 variants on one 256 x 1024 matrix that stays in
// the core's cache (one thread, best of 300 trials of 20 calls): the compute cost alone, which
// is what decides between the variants when the machine is shared (memory-bound timings are not
// comparable under load).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"

using namespace musicgen;

namespace {

struct Mat {
  int64_t n, k;
  std::vector<float> f32;
  std::vector<uint8_t> data;
  std::vector<uint16_t> scales;
};

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Best time of one call, in microseconds.
template <typename Fn>
double best_us(const Fn& fn) {
  double best = 1e30;
  for (int trial = 0; trial < 300; ++trial) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int it = 0; it < 20; ++it) fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 20);
  }
  return best * 1e6;
}

int compare_isa(int rows) {
  if (!kernels::at_least(kernels::detect_isa(), kernels::Isa::kAvx512)) {
    std::printf("SKIPPED: no AVX-512 (F/BW/VL/DQ/VNNI) on this CPU\n");
    return 0;
  }
  const int64_t n = 256, k = 1024, m = rows;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(n * k), x(m * k), y(m * n);
  for (auto& v : w) v = nd(rng);
  for (auto& v : x) v = nd(rng);
  std::vector<uint16_t> h(w.size());
  for (size_t i = 0; i < w.size(); ++i) h[i] = kernels::f32_to_f16(w[i]);
  std::printf("in-cache %lld x %lld, %lld activation rows, one thread, best of 300 x 20 calls\n",
              static_cast<long long>(n), static_cast<long long>(k), static_cast<long long>(m));
  auto report = [](const char* name, double avx2, double avx512) {
    std::printf("%-4s avx2 %7.1f us  avx512 %7.1f us  avx512 speed %.2fx\n", name, avx2, avx512,
                avx2 / avx512);
  };
  report("f16", best_us([&] { kernels::matmul_nt_f16_avx2(x.data(), k, h.data(), nullptr, y.data(), n, m, n, k, 0, n); }),
         best_us([&] { kernels::matmul_nt_f16_avx512(x.data(), k, h.data(), nullptr, y.data(), n, m, n, k, 0, n); }));
  for (kernels::QType type : {kernels::QType::kQ8, kernels::QType::kQ4}) {
    std::vector<uint8_t> d(kernels::q_data_bytes(type, n, k));
    std::vector<uint16_t> sc(kernels::q_scale_bytes(type, n, k) / 2);
    kernels::quantize_matrix(type, w.data(), n, k, d.data(), sc.data(), nullptr);
    const kernels::QMatrix q{type, n, k, d.data(), sc.data()};
    kernels::QActs a;
    kernels::quantize_acts(x.data(), k, m, k, &a);
    const bool q8 = type == kernels::QType::kQ8;
    report(kernels::qtype_name(type),
           best_us([&] { (q8 ? kernels::qmatmul_q8_avx2 : kernels::qmatmul_q4_avx2)(a, q, nullptr, y.data(), n, 0, n); }),
           best_us([&] { (q8 ? kernels::qmatmul_q8_avx512 : kernels::qmatmul_q4_avx512)(a, q, nullptr, y.data(), n, 0, n); }));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, rows = 2, reps = 15;
  int64_t hidden = 1024;
  size_t mib = 512;  // f32 footprint of the set
  bool compare = false;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--compare-isa") {
      compare = true;
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      break;
    }
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const long v = std::strtol(argv[i + 1], nullptr, 10);
    if (a == "--threads") threads = static_cast<int>(v);
    else if (a == "--rows") rows = static_cast<int>(v);
    else if (a == "--mib") mib = static_cast<size_t>(v);
    else if (a == "--reps") reps = static_cast<int>(v);
    else if (a == "--hidden") hidden = v;
    else {
      std::fprintf(stderr, "usage: kernel_bench [--compare-isa] [--threads T] [--rows M] [--mib N] [--reps R] [--hidden H]\n");
      return 2;
    }
  }
  if (compare) return compare_isa(rows);
  ThreadPool pool(threads);
  // One layer's per-step products: q, k, v, out, cross_q, cross_out (H x H), fc1 (4H x H), fc2.
  std::vector<std::pair<int64_t, int64_t>> layer = {
      {hidden, hidden}, {hidden, hidden}, {hidden, hidden},     {hidden, hidden},
      {hidden, hidden}, {hidden, hidden}, {4 * hidden, hidden}, {hidden, 4 * hidden}};
  std::vector<Mat> mats;
  size_t bytes = 0;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.03f);
  while (bytes < (mib << 20)) {
    for (auto [n, k] : layer) {
      Mat m{n, k, std::vector<float>(n * k), {}, {}};
      for (auto& x : m.f32) x = nd(rng);
      mats.push_back(std::move(m));
      bytes += static_cast<size_t>(n * k) * 4;
    }
  }
  const int64_t max_dim = 4 * hidden;
  std::vector<float> x(rows * max_dim), y(rows * max_dim);
  for (auto& v : x) v = nd(rng) * 30.0f;
  std::printf("threads %d, rows %d, %zu matrices, %.0f M weights\n", threads, rows, mats.size(),
              bytes / 4 / 1e6);
  // f16: the exact-f16 storage of float32 weights (matmul_nt_f16), 2 bytes per weight.
  const char* names[] = {"f32", "f16", "bf16", "q8", "q4"};
  std::printf("instruction set: %s (MUSICGEN_ISA=scalar|avx2|avx512 caps it)\n",
              kernels::isa_name(kernels::active_isa()));
  for (int t = 0; t < 5; ++t) {
    size_t wbytes = 0;
    std::vector<kernels::QMatrix> views;
    std::vector<std::vector<uint16_t>> halves;
    if (t == 1) {
      for (Mat& m : mats) {
        halves.emplace_back(m.f32.size());
        for (size_t i = 0; i < m.f32.size(); ++i) halves.back()[i] = kernels::f32_to_f16(m.f32[i]);
        wbytes += m.f32.size() * 2;
      }
    } else if (t > 1) {
      const auto type = static_cast<kernels::QType>(t - 2);
      for (Mat& m : mats) {
        m.data.assign(kernels::q_data_bytes(type, m.n, m.k), 0);
        m.scales.assign(kernels::q_scale_bytes(type, m.n, m.k) / 2 + 1, 0);
        kernels::quantize_matrix(type, m.f32.data(), m.n, m.k, m.data.data(), m.scales.data(), &pool);
        views.push_back({type, m.n, m.k, m.data.data(), m.scales.data()});
        wbytes += m.data.size() + (m.scales.size() - 1) * 2;
      }
    } else {
      wbytes = bytes;
    }
    auto pass = [&] {
      for (size_t i = 0; i < mats.size(); ++i) {
        const Mat& m = mats[i];
        if (t == 0)
          kernels::matmul_nt(x.data(), m.k, m.f32.data(), nullptr, y.data(), m.n, rows, m.n, m.k, &pool);
        else if (t == 1)
          kernels::matmul_nt_f16(x.data(), m.k, halves[i].data(), nullptr, y.data(), m.n, rows, m.n,
                                 m.k, &pool);
        else
          kernels::qmatmul(x.data(), m.k, rows, views[i], nullptr, y.data(), m.n, &pool);
      }
    };
    pass();
    std::vector<double> secs, cpu;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = cpu_seconds();
      pass();
      cpu.push_back(cpu_seconds() - c0);
      secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double s = median(secs), c = median(cpu);
    // CPU time (all threads) tells the compute cost when the machine is shared.
    std::printf("%-5s %8.1f MB/pass  %7.2f ms/pass  %6.2f GB/s  cpu %7.2f ms/pass (%.2f GB/s per "
                "busy core)\n",
                names[t], wbytes / 1e6, s * 1e3, wbytes / s / 1e9, c * 1e3, wbytes / c / 1e9);
    for (Mat& m : mats) {
      m.data.clear();
      m.data.shrink_to_fit();
      m.scales.clear();
      m.scales.shrink_to_fit();
    }
  }
  return 0;
}
