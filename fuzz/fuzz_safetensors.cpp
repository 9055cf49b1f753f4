// safetensors: header parsing and validation (SafetensorsFile::open), then every tensor read as
// float32 (TensorStore::to_f32) as the loader does. Any musicgen::Error is a correct rejection;
// a crash, a sanitizer report, a leak or a hang is a finding.
#include "format/safetensors.h"
#include "fuzz_common.h"
#include "musicgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  musicgen::fuzz::MemFile file(data, size);
  try {
    const auto st = musicgen::SafetensorsFile::open(file.path());
    for (const musicgen::TensorInfo& t : st->tensors()) {
      if (t.nbytes > (size_t{64} << 20)) continue;  // bounded by the input size anyway
      try {
        musicgen::ConstTensor f = musicgen::TensorStore::to_f32(t);
        volatile float sink = f.numel() > 0 ? f.data[f.numel() - 1] : 0.0f;
        (void)sink;
      } catch (const musicgen::Error&) {
      }
    }
  } catch (const musicgen::Error&) {
  }
  return 0;
}
