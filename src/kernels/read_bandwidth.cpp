#include "kernels/read_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu.h"

namespace musicgen::kernels {
namespace {

#if defined(__x86_64__)
// ahead > 0: each 256-byte step also prefetches its lines `ahead` bytes further into L2
// (prefetcht1), as the matrix kernels do; prefetches never fault, so reading past the slice is
// harmless.
__attribute__((target("avx512f"))) uint64_t read_avx512(const uint8_t* p, size_t n, size_t ahead) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    if (ahead > 0)
      for (size_t l = 0; l < 256; l += 64)
        _mm_prefetch(reinterpret_cast<const char*>(p + i + ahead + l), _MM_HINT_T1);
    a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 192));
  }
  const __m512i x = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, x);
  return lanes[0] ^ lanes[7];
}

__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t n, size_t ahead) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    if (ahead > 0)
      for (size_t l = 0; l < 128; l += 64)
        _mm_prefetch(reinterpret_cast<const char*>(p + i + ahead + l), _MM_HINT_T1);
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i x = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  return static_cast<uint64_t>(_mm256_extract_epi64(x, 0) ^ _mm256_extract_epi64(x, 3));
}
#endif

uint64_t read_scalar(const uint8_t* p, size_t n, size_t /*ahead*/) {
  uint64_t s = 0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    s ^= v;
  }
  return s;
}

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

}  // namespace

ReadBandwidth measure_read_bandwidth(size_t bytes, ThreadPool& pool, int reps) {
  bytes &= ~size_t{4095};
  if (bytes == 0) return {};
  std::unique_ptr<uint8_t, FreeDeleter> buf(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes)));
  if (!buf) throw std::bad_alloc();
  uint8_t* p = buf.get();
  for (size_t i = 0; i < bytes; i += 64) std::memset(p + i, static_cast<int>(i >> 6), 64);
  const Isa isa = active_isa();
  const int64_t parts = pool.size();
  const size_t slice = (bytes / static_cast<size_t>(parts)) & ~size_t{255};
  std::vector<uint64_t> sums(static_cast<size_t>(parts));
  volatile uint64_t sink = 0;
  // Two methods, each timed over `reps` passes: plain vector loads, and the same loads with an L2
  // prefetch 4 KiB ahead (on the 2-vCPU Zen 4 of docs/PERFORMANCE.md two threads read 31 GB/s
  // the first way and 48-53 GB/s the second). The faster is the machine's read bandwidth.
  size_t ahead = 0;
  auto pass = [&] {
    pool.parallel_for(parts, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const uint8_t* s = p + static_cast<size_t>(i) * slice;
#if defined(__x86_64__)
        sums[i] = isa == Isa::kAvx512 ? read_avx512(s, slice, ahead)
                  : isa == Isa::kAvx2 ? read_avx2(s, slice, ahead)
                                      : read_scalar(s, slice, ahead);
#else
        sums[i] = read_scalar(s, slice, ahead);
#endif
      }
    });
    for (uint64_t s : sums) sink = sink ^ s;
  };
  ReadBandwidth result;
  for (size_t method_ahead : {size_t{0}, size_t{4096}}) {
    if (method_ahead > 0 && isa == Isa::kScalar) break;  // the scalar loop has no prefetch
    ahead = method_ahead;
    pass();  // warm-up
    std::vector<double> rates;
    for (int r = 0; r < std::max(1, reps); ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      pass();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rates.push_back(static_cast<double>(slice * static_cast<size_t>(parts)) / s);
    }
    std::sort(rates.begin(), rates.end());
    const double median = rates[rates.size() / 2];
    (ahead == 0 ? result.plain_median_bytes_per_s : result.prefetch_median_bytes_per_s) = median;
    if (median > result.median_bytes_per_s) {
      result.median_bytes_per_s = median;
      result.best_bytes_per_s = rates.back();
      result.prefetch_ahead_bytes = ahead;
    }
  }
  return result;
}

}  // namespace musicgen::kernels
