// Micro-benchmark of the decoder's self-attention over a long KV cache: `heads` independent
// (stream, head) caches of `keys` keys of d = 64, as musicgen-small has at step `keys` (24 layers x
// 16 heads x 2 guidance streams = 768), so one pass reads the whole cache from memory as a
// decoder step does. Prints the median time of a pass, the KV bytes read per second and the
// cycles-free cost per key, for each cache type (f32, f16, q8).
//
// --capacity C (>= keys) spaces the caches as the decoder does: each (stream, head) owns C rows of
// which the first `keys` are read, so each head is a short stream of its own (default: keys, one
// contiguous stream).
//
// Usage: attention_bench [--threads T] [--keys N] [--heads H] [--reps R] [--capacity C]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/cpu.h"
#include "kernels/quant.h"

using namespace musicgen;

int main(int argc, char** argv) {
  int threads = 2, reps = 7;
  int64_t keys = 1500, heads = 768, capacity = 0;
  const int64_t d = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const long v = std::strtol(argv[i + 1], nullptr, 10);
    if (a == "--threads") threads = static_cast<int>(v);
    else if (a == "--keys") keys = v;
    else if (a == "--heads") heads = v;
    else if (a == "--reps") reps = static_cast<int>(v);
    else if (a == "--capacity") capacity = v;
    else {
      std::fprintf(stderr, "usage: attention_bench [--threads T] [--keys N] [--heads H] [--reps R] [--capacity C]\n");
      return 2;
    }
  }
  if (capacity == 0) capacity = keys;
  if (threads < 1 || keys < 1 || heads < 1 || reps < 1 || capacity < keys) {
    std::fprintf(stderr, "attention_bench: every option must be positive, --capacity at least --keys\n");
    return 2;
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n = heads * capacity * d;
  std::vector<float> k32(n), v32(n);
  for (auto& x : k32) x = nd(rng);
  for (auto& x : v32) x = nd(rng);
  std::vector<uint16_t> k16(n), v16(n);
  kernels::convert_f32_to_f16(k32.data(), k16.data(), n);
  kernels::convert_f32_to_f16(v32.data(), v16.data(), n);
  std::vector<int8_t> k8(n), v8(n);
  std::vector<float> ks(heads * capacity), vs(heads * capacity);
  for (int64_t r = 0; r < heads * capacity; ++r) {
    kernels::quantize_kv_row(k32.data() + r * d, d, k8.data() + r * d, &ks[r]);
    kernels::quantize_kv_row(v32.data() + r * d, d, v8.data() + r * d, &vs[r]);
  }
  std::vector<float> q(heads * d), out(heads * d);
  for (auto& x : q) x = nd(rng);
  ThreadPool pool(threads);
  const float scale = 0.125f;
  std::printf("attention_bench: %lld keys (of %lld rows per head), %lld heads, d %lld, %d threads, kernels %s\n",
              static_cast<long long>(keys), static_cast<long long>(capacity), static_cast<long long>(heads),
              static_cast<long long>(d), threads, kernels::isa_name(kernels::active_isa()));
  for (const char* type : {"f32", "f16", "q8"}) {
    const std::string t = type;
    auto pass = [&](int64_t h0, int64_t h1) {
      thread_local std::vector<float> scratch;
      scratch.resize(keys);
      for (int64_t h = h0; h < h1; ++h) {
        const int64_t o = h * capacity * d;
        if (t == "f32")
          kernels::attend(q.data() + h * d, k32.data() + o, v32.data() + o, keys, d, scale,
                          nullptr, scratch.data(), out.data() + h * d);
        else if (t == "f16")
          kernels::attend_f16(q.data() + h * d, k16.data() + o, v16.data() + o, keys, d, scale,
                              nullptr, scratch.data(), out.data() + h * d);
        else
          kernels::attend_q8(q.data() + h * d, k8.data() + o, ks.data() + h * capacity,
                             v8.data() + o, vs.data() + h * capacity, keys, d, scale, nullptr,
                             scratch.data(), out.data() + h * d);
      }
    };
    const double bytes_per_elem = t == "f32" ? 4.0 : t == "f16" ? 2.0 : 1.0;
    const double bytes = 2.0 * static_cast<double>(heads * keys * d) * bytes_per_elem +
                         (t == "q8" ? 2.0 * heads * keys * 4.0 : 0.0);
    std::vector<double> times;
    for (int r = 0; r < reps + 1; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      pool.parallel_for(heads, pass);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) times.push_back(s);  // the first pass warms up
    }
    std::sort(times.begin(), times.end());
    const double med = times[times.size() / 2];
    std::printf("%-4s %8.3f ms per pass  %6.1f GB/s of KV  %6.2f ns per key and head\n", type,
                med * 1e3, bytes / med / 1e9, med * 1e9 * threads / (heads * keys));
  }
  return 0;
}
