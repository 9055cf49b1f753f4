// musicgen quantized files (.mgq, read_quantized_file). The header carries a CRC-32C, so the
// harness recomputes it for inputs that have a prelude: otherwise nearly every mutation would stop
// at the checksum. Tensor data checksums are skipped (verify_data = false) for the same reason;
// they are exercised by the tests.
#include <cstring>
#include <vector>

#include "format/crc32c.h"
#include "format/hf_config.h"
#include "format/quantized_file.h"
#include "fuzz_common.h"
#include "musicgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (size >= 32) {
    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data() + 16, 8);
    if (header_len <= size - 32) {
      const uint32_t crc = musicgen::crc32c(0, bytes.data() + 32, header_len);
      std::memcpy(bytes.data() + 12, &crc, 4);
    }
  }
  musicgen::fuzz::MemFile file(bytes.data(), bytes.size());
  try {
    musicgen::QuantizedFile q = musicgen::read_quantized_file(file.path(), /*verify_data=*/false);
    for (const std::string& name : q.store.names()) {
      const musicgen::TensorInfo* t = q.store.find(name);
      volatile uint8_t sink = t->nbytes > 0 ? t->data[t->nbytes - 1] : 0;
      (void)sink;
    }
    musicgen::parse_musicgen_config(q.info.config_json, q.info.generation_config_json, "fuzz");
  } catch (const musicgen::Error&) {
  }
  return 0;
}
