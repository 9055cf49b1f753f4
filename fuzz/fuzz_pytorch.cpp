// PyTorch checkpoints: the zip directory, the restricted unpickler and the storage bounds
// (read_torch_checkpoint), then every tensor read as float32 as the loader does. Any
// musicgen::Error is a correct rejection; a crash, a sanitizer report, a leak or a hang is a
// finding (and so would be anything the file names being imported or called: nothing can be).
#include "format/safetensors.h"
#include "format/torch_checkpoint.h"
#include "fuzz_common.h"
#include "musicgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  musicgen::fuzz::MemFile file(data, size);
  try {
    const musicgen::TorchCheckpoint ck = musicgen::read_torch_checkpoint(file.path());
    musicgen::fuzz::read_all_as_f32(ck.tensors);
  } catch (const musicgen::Error&) {
  }
  return 0;
}
