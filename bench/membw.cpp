// Read bandwidth of this machine: streams a buffer much larger than the caches with 1..N threads
// (each thread reads its own contiguous slice, as the matrix kernels do) and prints the median
// of repeated passes. The decoder step is bound by this number (docs/PERFORMANCE.md).
//
// Usage: membw [--mib N] [--reps R] [--threads T] [--json]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include "core/thread_pool.h"
#include "kernels/cpu.h"
#include "kernels/read_bandwidth.h"

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
  // The same probe as `musicgen bench` (kernels/read_bandwidth.h): vector loads of the active
  // instruction set (MUSICGEN_ISA caps it), each thread its own contiguous slice, plain and with
  // an L2 prefetch ahead; the faster method is the figure.
  if (!json)
    std::printf("loads: %s\n", musicgen::kernels::isa_name(musicgen::kernels::active_isa()));
  if (json) std::printf("{");
  for (int t = 1; t <= max_threads; ++t) {
    musicgen::ThreadPool pool(t);
    musicgen::kernels::ReadBandwidth bw;
    try {
      bw = musicgen::kernels::measure_read_bandwidth(bytes, pool, reps);
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib);
      return 1;
    }
    const double med = bw.median_bytes_per_s / 1e9, best = bw.best_bytes_per_s / 1e9;
    if (json)
      std::printf("%s\"threads_%d_gb_per_s\": %.2f, \"threads_%d_best_gb_per_s\": %.2f, "
                  "\"threads_%d_plain_gb_per_s\": %.2f, \"threads_%d_prefetch_gb_per_s\": %.2f",
                  t > 1 ? ", " : "", t, med, t, best, t, bw.plain_median_bytes_per_s / 1e9, t,
                  bw.prefetch_median_bytes_per_s / 1e9);
    else
      std::printf("threads %d: median %.2f GB/s, best %.2f GB/s (%d passes over %zu MiB; plain "
                  "loads %.2f, with prefetch %.2f)\n",
                  t, med, best, reps, mib, bw.plain_median_bytes_per_s / 1e9,
                  bw.prefetch_median_bytes_per_s / 1e9);
  }
  if (json) std::printf("}\n");
  return 0;
}
