// The machine's read bandwidth as the decoder sees it: every thread of a ThreadPool streams its
// own contiguous slice of one large buffer with vector loads (AVX-512 or AVX2 where the CPU has
// them), as the matrix kernels do, once with plain loads and once with an L2 prefetch ahead of
// them (as the kernels prefetch); the faster method is the bandwidth. Shared by bench/membw and `musicgen bench`, so the two report
// the same number.
#pragma once

#include <cstddef>

namespace musicgen {
class ThreadPool;
}

namespace musicgen::kernels {

struct ReadBandwidth {
  double median_bytes_per_s = 0;  // the faster method's median
  double best_bytes_per_s = 0;    // and its best pass
  double plain_median_bytes_per_s = 0;     // plain loads
  double prefetch_median_bytes_per_s = 0;  // loads with prefetcht1 4 KiB ahead (0: not run)
  size_t prefetch_ahead_bytes = 0;         // the faster method: 0 plain, else the distance
};

// Allocates `bytes` (rounded down to 4 KiB pages), touches every page, then per method runs one
// warm-up pass and `reps` timed passes with the pool's threads. Throws std::bad_alloc when the
// buffer cannot be allocated.
ReadBandwidth measure_read_bandwidth(size_t bytes, ThreadPool& pool, int reps);

}  // namespace musicgen::kernels
