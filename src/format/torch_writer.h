// Streaming writer of PyTorch checkpoints in torch.save's zip format (what
// save_pretrained(safe_serialization=False) writes): `archive/data.pkl` (a protocol-2 pickle of an
// OrderedDict of _rebuild_tensor_v2 calls, one storage per tensor), `archive/data/<i>` (the raw
// little-endian bytes, 64-byte aligned as torch aligns them), `archive/version` and
// `archive/byteorder`. Entries are stored (never compressed) with their CRC-32; zip64 records are
// written where a size or offset needs them. Same interface as SafetensorsWriter: declare every
// tensor, then write their bytes in order in chunks of any size. Used by make-random-model
// --format bin; torch.load and format/torch_checkpoint.h read the result.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "format/safetensors_writer.h"

namespace musicgen {

class TorchZipWriter {
 public:
  // Creates (truncates) `path`. Throws Error(kIo) if it cannot be written,
  // Error(kInvalidArgument) for a dtype torch.save has no storage class for, or empty names.
  TorchZipWriter(const std::string& path, const std::vector<TensorDecl>& tensors);
  ~TorchZipWriter();
  TorchZipWriter(const TorchZipWriter&) = delete;
  TorchZipWriter& operator=(const TorchZipWriter&) = delete;

  // Appends bytes to the current tensor; a chunk may not run past its end.
  void write(const void* data, size_t bytes);
  // Checks every tensor is complete, writes the remaining records and the central directory,
  // fsyncs and closes. Throws Error(kIo).
  void finish();

  // The pickle for `tensors` (storage keys "0", "1", ... in order); exposed for tests.
  static std::string pickle_bytes(const std::vector<TensorDecl>& tensors);

 private:
  struct Entry {
    std::string name;
    uint64_t header_offset = 0, size = 0;
    uint32_t crc = 0;
  };
  void begin_entry(const std::string& name, uint64_t size);
  void end_entry();
  void put(const void* data, size_t bytes);
  void add_record(const std::string& name, const std::string& data);

  std::string path_;
  std::FILE* file_ = nullptr;
  uint64_t pos_ = 0;
  std::vector<TensorDecl> tensors_;
  std::vector<Entry> entries_;
  size_t current_ = 0;  // tensor being written
  uint64_t written_in_current_ = 0;
  bool in_entry_ = false;
};

// CRC-32 (zip, zlib: polynomial 0xEDB88320) of `bytes`, continuing from `crc`.
uint32_t crc32_update(uint32_t crc, const void* bytes, size_t n);

}  // namespace musicgen
