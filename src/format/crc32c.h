// CRC-32C (Castagnoli), the checksum of musicgen quantized files. Uses the SSE4.2 instruction when
// the CPU has it (about 8 GB/s per core), a table otherwise; both give the same value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace musicgen {

// Extends `crc` (0 for a fresh checksum) over n bytes.
uint32_t crc32c(uint32_t crc, const void* data, size_t n);

}  // namespace musicgen
