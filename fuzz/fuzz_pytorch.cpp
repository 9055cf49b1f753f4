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
    for (const musicgen::TensorInfo& t : ck.tensors) {
      if (t.nbytes > (size_t{64} << 20)) continue;
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
