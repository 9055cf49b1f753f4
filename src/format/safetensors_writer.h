// Streaming safetensors writer: the header (every tensor's name, dtype, shape and offsets) is
// written first, then the data of each tensor in the declared order, in chunks of any size, so a
// checkpoint larger than memory can be written with a small buffer. The file layout is the one
// the safetensors library writes: u64 header length, JSON header padded with spaces to a multiple
// of 8 bytes, then the tensors back to back with no gaps.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "format/safetensors.h"

namespace musicgen {

struct TensorDecl {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t nbytes() const { return static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype); }
};

class SafetensorsWriter {
 public:
  // Creates (truncates) `path` and writes the header. Data offsets follow the order of
  // `tensors`. Throws Error(kIo) if the file cannot be written, Error(kInvalidArgument) for
  // duplicate or empty names.
  SafetensorsWriter(const std::string& path, const std::vector<TensorDecl>& tensors,
                    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Appends bytes to the current tensor (the first one not yet complete). A chunk may not run
  // past the end of the current tensor.
  void write(const void* data, size_t bytes);
  // Index of the tensor the next write() goes to; tensors().size() when all are complete.
  size_t current() const { return current_; }
  const std::vector<TensorDecl>& tensors() const { return tensors_; }
  // Checks that every tensor is complete, flushes, fsyncs and closes. Throws Error(kIo).
  void finish();

  // The header bytes (length prefix included) for `tensors`; exposed for tests.
  static std::string header_bytes(const std::vector<TensorDecl>& tensors,
                                  const std::map<std::string, std::string>& metadata);

 private:
  void advance();

  std::string path_;
  std::FILE* file_ = nullptr;
  std::vector<TensorDecl> tensors_;
  size_t current_ = 0;
  uint64_t written_in_current_ = 0;
};

}  // namespace musicgen
