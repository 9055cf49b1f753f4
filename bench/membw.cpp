// Read bandwidth of this machine: streams a buffer much larger than the caches with 1..N threads
// (each thread reads its own contiguous slice, as the matrix kernels do) and prints the median
// of repeated passes. The decoder step is bound by this number (docs/PERFORMANCE.md).
//
// Usage: membw [--mib N] [--reps R] [--threads T] [--json]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/thread_pool.h"

namespace {

__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i x = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  return static_cast<uint64_t>(_mm256_extract_epi64(x, 0) ^ _mm256_extract_epi64(x, 3));
}

uint64_t read_scalar(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    s ^= v;
  }
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 1024;
  int reps = 15, max_threads = 2;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> long {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "membw: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::strtol(argv[++i], nullptr, 10);
    };
    if (a == "--mib") mib = static_cast<size_t>(std::max(64L, next()));
    else if (a == "--reps") reps = static_cast<int>(std::max(3L, next()));
    else if (a == "--threads") max_threads = static_cast<int>(std::max(1L, next()));
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr, "usage: membw [--mib N] [--reps R] [--threads T] [--json]\n");
      return 2;
    }
  }
  const size_t bytes = mib << 20;
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
  if (buf == nullptr) {
    std::fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib);
    return 1;
  }
  for (size_t i = 0; i < bytes; i += 64) std::memset(buf + i, static_cast<int>(i >> 6), 64);
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2");
  volatile uint64_t sink = 0;
  if (json) std::printf("{");
  for (int t = 1; t <= max_threads; ++t) {
    musicgen::ThreadPool pool(t);
    const int64_t parts = t;
    const size_t slice = (bytes / parts) & ~size_t{127};
    std::vector<uint64_t> sums(parts);
    auto pass = [&] {
      pool.parallel_for(parts, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          sums[i] = avx2 ? read_avx2(buf + i * slice, slice) : read_scalar(buf + i * slice, slice);
      });
      for (uint64_t s : sums) sink = sink ^ s;
    };
    pass();  // warm-up
    std::vector<double> gbs;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      pass();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      gbs.push_back(static_cast<double>(slice * parts) / s / 1e9);
    }
    const double med = median(gbs), best = *std::max_element(gbs.begin(), gbs.end());
    if (json)
      std::printf("%s\"threads_%d_gb_per_s\": %.2f, \"threads_%d_best_gb_per_s\": %.2f",
                  t > 1 ? ", " : "", t, med, t, best);
    else
      std::printf("threads %d: median %.2f GB/s, best %.2f GB/s (%d passes over %zu MiB)\n", t,
                  med, best, reps, mib);
  }
  if (json) std::printf("}\n");
  std::free(buf);
  return 0;
}
