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
    musicgen::fuzz::read_all_as_f32(st->tensors());
  } catch (const musicgen::Error&) {
  }
  return 0;
}
