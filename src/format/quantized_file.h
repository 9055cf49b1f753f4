// musicgen quantized model files (written by `musicgen quantize`, specified in
// docs/MODEL_FORMAT.md): one file holding a checkpoint's config.json, generation_config.json,
// tokenizer and every tensor, with the Linear weights already in their storage type (bf16, q8,
// q4), so loading maps the file and uses the bytes in place.
//
// Layout: a 32-byte prelude (magic "MGQUANT\0", u32 version, u32 CRC-32C of the header,
// u64 header length, u64 data offset), the JSON header, zero padding to a 64-byte boundary, then
// the data section: the tokenizer and every tensor at 64-byte aligned offsets, each with its
// CRC-32C in the header. Little-endian.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "format/safetensors.h"

namespace musicgen {

constexpr uint32_t kQuantizedFileVersion = 1;
constexpr uint64_t kQuantizedFileAlign = 64;

// What the header carries besides the tensor table.
struct QuantizedFileInfo {
  std::string weights;                 // storage type of the Linear weights: f32, bf16, q8, q4
  std::string config_json;             // config.json, verbatim
  std::string generation_config_json;  // generation_config.json, verbatim; empty if absent
  std::string tokenizer;               // spiece.model bytes
  std::string source;                  // the checkpoint it was made from (informational)
};

// True if `path` is a regular file that starts with the magic (any version).
bool is_quantized_file(const std::string& path);

struct QuantizedFile {
  QuantizedFileInfo info;
  TensorStore store;  // views into the mapping (F32/F16/BF16 and Q8/Q4 tensors)
  uint64_t file_bytes = 0;
};

// Maps and validates `path`: prelude, version, header checksum and JSON, every offset, size,
// alignment and overlap, and (verify_data) the checksum of the tokenizer and of every tensor.
// Throws Error(kNotFound / kIo) if it cannot be read, Error(kInvalidModel) with a one-line message
// for a damaged, truncated or unsupported file.
QuantizedFile read_quantized_file(const std::string& path, bool verify_data = true);

// One tensor of a file being written: its bytes come later, in declaration order.
struct QuantizedTensorDecl {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t size = 0;  // bytes
};

// Streams a file: the header is laid out first (offsets follow from the sizes), tensors are
// appended one by one, and finish() writes the checksums, syncs and renames the temporary file
// onto `path`. A writer destroyed before finish() removes its temporary file.
class QuantizedFileWriter {
 public:
  QuantizedFileWriter(const std::string& path, QuantizedFileInfo info,
                      std::vector<QuantizedTensorDecl> tensors);
  ~QuantizedFileWriter();
  QuantizedFileWriter(const QuantizedFileWriter&) = delete;
  QuantizedFileWriter& operator=(const QuantizedFileWriter&) = delete;

  // The whole of the next declared tensor.
  void write_tensor(const void* data, uint64_t size);
  void finish();

 private:
  std::string header(bool with_checksums) const;
  void write_at(uint64_t offset, const void* data, uint64_t size);

  std::string path_, tmp_path_;
  QuantizedFileInfo info_;
  std::vector<QuantizedTensorDecl> tensors_;
  std::vector<uint64_t> offsets_;  // per tensor, in the data section
  std::vector<uint32_t> crcs_;
  uint64_t tokenizer_offset_ = 0;
  uint32_t tokenizer_crc_ = 0;
  uint64_t data_offset_ = 0, data_size_ = 0;
  size_t next_ = 0;
  std::FILE* file_ = nullptr;
};

}  // namespace musicgen
