// Reading PyTorch checkpoints written by torch.save (the zip serialization of torch >= 1.6):
// `pytorch_model.bin`, or the shards of `pytorch_model.bin.index.json`.
//
// The zip central directory is parsed here (stored entries only, zip64 where needed) and each
// tensor's bytes are used in place from the memory-mapped file, as for safetensors. The pickle
// (`<archive>/data.pkl`) is read by a restricted unpickler that knows only what a state dict
// uses: dicts and OrderedDict, strings, numbers, tuples, lists, torch._utils._rebuild_tensor_v2,
// torch._utils._rebuild_parameter, the storage classes Float/Half/BFloat16/Double/Long/Int and
// persistent ids ('storage', class, key, location, numel) naming `<archive>/data/<key>`. It never
// imports or calls anything named by the file; any other global, call or opcode is refused with
// a one-line Error(kInvalidModel) (a pickle is code, a malicious checkpoint must not run).
//
// Views into shared storages (tied weights, slices) are accepted: a contiguous view points into
// the mapping; a non-contiguous one (a transposed or strided view) is materialised into an owned
// buffer (TensorInfo::owner, file == nullptr).
#pragma once

#include <string>
#include <vector>

#include "format/safetensors.h"

namespace musicgen {

struct TorchCheckpoint {
  std::shared_ptr<const MappedFile> file;
  std::vector<TensorInfo> tensors;  // in pickle order
  int materialised = 0;             // non-contiguous views copied out of the mapping
};

// Throws Error(kNotFound) for a missing file, Error(kInvalidModel) for anything it cannot read
// safely: a legacy (pre-zip) file, a compressed or truncated archive, a pickle that is not a
// plain state dict, a tensor outside its storage.
TorchCheckpoint read_torch_checkpoint(const std::string& path);

}  // namespace musicgen
