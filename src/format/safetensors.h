// Reading safetensors checkpoints (single file or sharded with model.safetensors.index.json).
// Files are memory-mapped and fully validated when opened: header size and JSON, dtypes, shapes,
// offsets inside the file and not overlapping. Tensors are exposed as float32 views: F32 data is
// used in place when aligned, F16/BF16 are converted once.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace musicgen {

enum class DType { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool,
                   // Block-quantized matrices of musicgen quantized files (kernels/quant.h);
                   // never in safetensors files. dtype_size() is 0 for them.
                   kQ8, kQ4 };

const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  const uint8_t* data = nullptr;  // inside the mapping (or inside `owner`)
  size_t nbytes = 0;
  std::shared_ptr<const MappedFile> file;  // the mapping `data` points into, or nullptr
  std::shared_ptr<const void> owner;       // when file is nullptr: the buffer holding `data`
};

class SafetensorsFile {
 public:
  // Throws Error(kNotFound) for a missing file, Error(kInvalidModel) for a corrupt one.
  static std::shared_ptr<const SafetensorsFile> open(const std::string& path);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_->path(); }

 private:
  std::shared_ptr<const MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint, by name.
class TensorStore {
 public:
  TensorStore() = default;
  // A checkpoint directory, the first present of: model.safetensors,
  // model.safetensors.index.json and its shards, pytorch_model.bin (torch.save zip), or
  // pytorch_model.bin.index.json and its shards (format/torch_checkpoint.h).
  static TensorStore open_checkpoint(const std::string& dir);
  // The weight files open_checkpoint would read in `dir` (one file, or an index and its shards),
  // and their format: "safetensors" or "pytorch". Throws Error(kNotFound) if there are none.
  struct WeightFiles {
    std::string format;
    std::string index;                // the index file, or empty
    std::vector<std::string> files;   // full paths
    std::map<std::string, std::string> weight_map;  // the index's tensor -> shard
  };
  static WeightFiles find_weight_files(const std::string& dir);
  // One safetensors file.
  static TensorStore open_file(const std::string& path);
  // Tensors that live elsewhere (a musicgen quantized file); each info.file keeps its mapping
  // alive. Names must be unique.
  static TensorStore from_tensors(std::vector<TensorInfo> tensors, const std::string& source);

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo* find(const std::string& name) const;
  // The first of `names` that exists, or nullptr.
  const TensorInfo* find_any(const std::vector<std::string>& names) const;
  std::vector<std::string> names() const;
  // Where the tensors came from, for messages.
  const std::string& source() const { return source_; }

  // A float32 view of a floating-point tensor. Throws Error(kInvalidModel) if it is missing or
  // not F32/F16/BF16/F64.
  ConstTensor get_f32(const std::string& name) const;
  static ConstTensor to_f32(const TensorInfo& info);
  // Integer tensors (I64/I32) as int64 values, for golden files.
  std::vector<int64_t> get_i64(const std::string& name) const;

 private:
  void add(const std::vector<TensorInfo>& tensors);

  std::map<std::string, TensorInfo> index_;
  std::string source_;
};

// One expected tensor: its Hugging Face name and shape. Alternatives name the same tensor under
// other spellings (the first found is used).
struct TensorSpec {
  std::vector<std::string> names;
  Shape shape;
};

// Checks every spec; throws one Error(kInvalidModel) naming every missing or misshapen tensor.
void validate_tensors(const TensorStore& store, const std::vector<TensorSpec>& specs);

}  // namespace musicgen
