// Software prefetch of a byte range: hints that change no result. Used where the hardware
// prefetcher meets a short stream cold (the decoder's KV cache rows, read or written a few
// hundred bytes at a time).
#pragma once

#include <cstdint>

namespace musicgen::kernels {

// Asks for the cache lines of [p, p + bytes) (nothing when bytes <= 0). for_write: the lines will
// be stored to (the store then does not wait for them).
inline void prefetch(const void* p, int64_t bytes, bool for_write = false) {
  if (bytes <= 0) return;
  const char* c = static_cast<const char*>(p);
  if (for_write) {
    for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 1, 3);
    __builtin_prefetch(c + bytes - 1, 1, 3);  // the last line when the range straddles one more
  } else {
    for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 0, 3);
    __builtin_prefetch(c + bytes - 1, 0, 3);
  }
}

}  // namespace musicgen::kernels
