#include "format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "format/torch_checkpoint.h"

namespace musicgen {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF64: return "F64";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kI16: return "I16";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
    case DType::kQ8: return "Q8";
    case DType::kQ4: return "Q4";
  }
  return "?";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF64:
    case DType::kI64: return 8;
    case DType::kF32:
    case DType::kI32: return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16: return 2;
    case DType::kI8:
    case DType::kU8:
    case DType::kBool: return 1;
    case DType::kQ8:
    case DType::kQ4: return 0;  // block formats: sizes from kernels/quant.h
  }
  return 0;
}

namespace {

bool parse_dtype(const std::string& s, DType* out) {
  static const std::map<std::string, DType> kTable = {
      {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16}, {"F64", DType::kF64},
      {"I64", DType::kI64}, {"I32", DType::kI32}, {"I16", DType::kI16},   {"I8", DType::kI8},
      {"U8", DType::kU8},   {"BOOL", DType::kBool}};
  auto it = kTable.find(s);
  if (it == kTable.end()) return false;
  *out = it->second;
  return true;
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  fail(ErrorCode::kInvalidModel, "corrupt safetensors file '" + path + "': " + what +
                                     "; re-download or re-export the checkpoint");
}

}  // namespace

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto result = std::make_shared<SafetensorsFile>();
  result->file_ = MappedFile::open(path);
  const MappedFile& f = *result->file_;
  if (f.size() < 8) corrupt(path, "file is " + std::to_string(f.size()) + " bytes, too short");
  uint64_t header_len = 0;
  std::memcpy(&header_len, f.data(), 8);  // little-endian u64
  if (header_len > f.size() - 8 || header_len > (uint64_t{100} << 20))
    corrupt(path, "header length " + std::to_string(header_len) + " exceeds the file size " +
                      std::to_string(f.size()) + " (truncated file?)");
  json header;
  try {
    header = json::parse(f.data() + 8, f.data() + 8 + header_len);
  } catch (const json::exception& e) {
    corrupt(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) corrupt(path, "header is not a JSON object");
  const uint8_t* base = f.data() + 8 + header_len;
  const uint64_t data_size = f.size() - 8 - header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it->is_object())
        for (auto m = it->begin(); m != it->end(); ++m)
          if (m->is_string()) result->metadata_[m.key()] = m->get<std::string>();
      continue;
    }
    const json& e = *it;
    const std::string& name = it.key();
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets"))
      corrupt(path, "entry '" + name + "' lacks dtype, shape or data_offsets");
    TensorInfo info;
    info.name = name;
    if (!e["dtype"].is_string() || !parse_dtype(e["dtype"].get<std::string>(), &info.dtype))
      corrupt(path, "entry '" + name + "' has an unknown dtype");
    if (!e["shape"].is_array()) corrupt(path, "entry '" + name + "' has a non-array shape");
    uint64_t numel = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned()) corrupt(path, "entry '" + name + "' has a bad dimension");
      const uint64_t v = d.get<uint64_t>();
      if (v != 0 && numel > (uint64_t{1} << 40) / v)
        corrupt(path, "entry '" + name + "' has an absurd shape");
      numel *= v;
      info.shape.push_back(static_cast<int64_t>(v));
    }
    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      corrupt(path, "entry '" + name + "' has malformed data_offsets");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      corrupt(path, "tensor '" + name + "' data [" + std::to_string(begin) + ", " +
                        std::to_string(end) + ") lies outside the file's " +
                        std::to_string(data_size) + " data bytes (truncated file?)");
    if (end - begin != numel * dtype_size(info.dtype))
      corrupt(path, "tensor '" + name + "' has " + std::to_string(end - begin) +
                        " bytes but its shape " + shape_str(info.shape) + " and dtype " +
                        dtype_name(info.dtype) + " need " +
                        std::to_string(numel * dtype_size(info.dtype)));
    info.data = base + begin;
    info.nbytes = end - begin;
    info.file = result->file_;
    ranges.emplace_back(begin, end);
    result->tensors_.push_back(std::move(info));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second && ranges[i].first != ranges[i].second)
      corrupt(path, "tensor data ranges overlap");
  return result;
}

void TensorStore::add(const std::vector<TensorInfo>& tensors) {
  for (const TensorInfo& t : tensors) {
    if (index_.count(t.name))
      fail(ErrorCode::kInvalidModel, "tensor '" + t.name + "' appears twice in checkpoint " +
                                         source_ + "; re-export the checkpoint");
    index_[t.name] = t;
  }
}

TensorStore TensorStore::open_file(const std::string& path) {
  TensorStore store;
  store.source_ = path;
  store.add(SafetensorsFile::open(path)->tensors());
  return store;
}

TensorStore TensorStore::from_tensors(std::vector<TensorInfo> tensors, const std::string& source) {
  TensorStore store;
  store.source_ = source;
  for (TensorInfo& t : tensors) {
    if (store.index_.count(t.name))
      fail(ErrorCode::kInvalidModel, "tensor '" + t.name + "' appears twice in " + source);
    const std::string name = t.name;
    store.index_[name] = std::move(t);
  }
  return store;
}

TensorStore::WeightFiles TensorStore::find_weight_files(const std::string& dir) {
  WeightFiles w;
  const fs::path d(dir);
  std::error_code ec;
  const char* const kSingle[2] = {"model.safetensors", "pytorch_model.bin"};
  const char* const kIndex[2] = {"model.safetensors.index.json", "pytorch_model.bin.index.json"};
  const char* const kFormat[2] = {"safetensors", "pytorch"};
  std::string incomplete;  // the first index with a missing shard
  for (int f = 0; f < 2; ++f) {
    w = WeightFiles{};
    w.format = kFormat[f];
    // Anything present under a weight file's name is taken: a FIFO or a directory there is then
    // refused by the input rule (core/mapped_file.h) with what it is, not reported as absent.
    if (fs::exists(d / kSingle[f], ec)) {
      w.files.push_back((d / kSingle[f]).string());
      return w;
    }
    const fs::path index_path = d / kIndex[f];
    if (!fs::exists(index_path, ec)) continue;
    w.index = index_path.string();
    json index;
    try {
      index = json::parse(read_regular_file(index_path.string(), kMaxJsonFileBytes));
    } catch (const json::exception& e) {
      fail(ErrorCode::kInvalidModel, "'" + index_path.string() + "' is not valid JSON (" +
                                         e.what() + "); re-download the checkpoint");
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(ErrorCode::kInvalidModel,
           "'" + index_path.string() + "' has no weight_map object; re-download the checkpoint");
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it->is_string())
        fail(ErrorCode::kInvalidModel, "'" + index_path.string() + "' maps '" + it.key() +
                                           "' to a non-string; re-download the checkpoint");
      const std::string shard = it->get<std::string>();
      if (shard.empty() || shard == "." || shard.find('/') != std::string::npos ||
          shard.find('\\') != std::string::npos || shard.find("..") != std::string::npos)
        fail(ErrorCode::kInvalidModel,
             "'" + index_path.string() + "' names shard '" + shard +
                 "', a path outside the checkpoint folder; re-download the checkpoint");
      w.weight_map[it.key()] = shard;
      const std::string full = (d / shard).string();
      if (std::find(w.files.begin(), w.files.end(), full) == w.files.end()) w.files.push_back(full);
    }
    std::string absent;
    for (const std::string& file : w.files)
      if (!fs::is_regular_file(file, ec)) absent = fs::path(file).filename().string();
    if (absent.empty()) return w;
    // Another complete layout is used if there is one (an index can be left dangling beside it).
    if (incomplete.empty())
      incomplete = "'" + index_path.string() + "' names shard '" + absent +
                   "', which is missing; re-download the checkpoint";
  }
  if (!incomplete.empty()) fail(ErrorCode::kNotFound, incomplete);
  fail(ErrorCode::kNotFound, "no model.safetensors, model.safetensors.index.json, "
                             "pytorch_model.bin or pytorch_model.bin.index.json in '" + dir +
                             "'; point --model at a Hugging Face MusicGen checkpoint directory");
}

TensorStore TensorStore::open_checkpoint(const std::string& dir) {
  const WeightFiles w = find_weight_files(dir);
  TensorStore store;
  store.source_ = w.index.empty() ? w.files.front() : w.index;
  for (const std::string& file : w.files)
    store.add(w.format == "pytorch" ? read_torch_checkpoint(file).tensors
                                    : SafetensorsFile::open(file)->tensors());
  for (const auto& [name, shard] : w.weight_map)
    if (!store.has(name))
      fail(ErrorCode::kInvalidModel, "tensor '" + name + "' listed in the index is missing from " +
                                         shard + "; re-download the checkpoint");
  return store;
}

const TensorInfo* TensorStore::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &it->second;
}

const TensorInfo* TensorStore::find_any(const std::vector<std::string>& names) const {
  for (const auto& n : names)
    if (const TensorInfo* t = find(n)) return t;
  return nullptr;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& kv : index_) out.push_back(kv.first);
  return out;
}

ConstTensor TensorStore::to_f32(const TensorInfo& info) {
  ConstTensor t;
  t.shape = info.shape;
  const size_t n = static_cast<size_t>(shape_numel(info.shape));
  if (info.dtype == DType::kF32 && reinterpret_cast<uintptr_t>(info.data) % alignof(float) == 0) {
    t.data = reinterpret_cast<const float*>(info.data);
    t.owner = info.file ? std::shared_ptr<const void>(info.file) : info.owner;
    return t;
  }
  auto buf = std::shared_ptr<float[]>(new float[n > 0 ? n : 1]);
  switch (info.dtype) {
    case DType::kF32: std::memcpy(buf.get(), info.data, n * 4); break;
    case DType::kF16:
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, info.data + 2 * i, 2);
        buf[i] = info.dtype == DType::kF16 ? f16_to_f32(v) : bf16_to_f32(v);
      }
      break;
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, info.data + 8 * i, 8);
        buf[i] = static_cast<float>(v);
      }
      break;
    default:
      fail(ErrorCode::kInvalidModel, "tensor '" + info.name + "' has dtype " +
                                         dtype_name(info.dtype) +
                                         ", expected F32, F16 or BF16; re-export the checkpoint");
  }
  t.data = buf.get();
  t.owner = buf;
  return t;
}

ConstTensor TensorStore::get_f32(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr)
    fail(ErrorCode::kInvalidModel, "tensor '" + name + "' is missing from " + source_);
  return to_f32(*info);
}

std::vector<int64_t> TensorStore::get_i64(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr)
    fail(ErrorCode::kInvalidModel, "tensor '" + name + "' is missing from " + source_);
  const size_t n = static_cast<size_t>(shape_numel(info->shape));
  std::vector<int64_t> out(n);
  if (info->dtype == DType::kI64) {
    std::memcpy(out.data(), info->data, n * 8);
  } else if (info->dtype == DType::kI32) {
    for (size_t i = 0; i < n; ++i) {
      int32_t v;
      std::memcpy(&v, info->data + 4 * i, 4);
      out[i] = v;
    }
  } else {
    fail(ErrorCode::kInvalidModel, "tensor '" + name + "' is not an integer tensor");
  }
  return out;
}

void validate_tensors(const TensorStore& store, const std::vector<TensorSpec>& specs) {
  std::vector<std::string> problems;
  for (const TensorSpec& spec : specs) {
    const TensorInfo* info = store.find_any(spec.names);
    if (info == nullptr) {
      problems.push_back(spec.names.front() + " (missing)");
      continue;
    }
    if (info->shape != spec.shape)
      problems.push_back(info->name + " (shape " + shape_str(info->shape) + ", expected " +
                         shape_str(spec.shape) + ")");
    else if (info->dtype != DType::kF32 && info->dtype != DType::kF16 &&
             info->dtype != DType::kBF16 && info->dtype != DType::kQ8 &&
             info->dtype != DType::kQ4)
      problems.push_back(info->name + " (dtype " + std::string(dtype_name(info->dtype)) +
                         ", expected F32, F16 or BF16)");
  }
  if (problems.empty()) return;
  std::string msg = "checkpoint " + store.source() + " does not match its config.json: " +
                    std::to_string(problems.size()) + " tensor(s) missing or misshapen: ";
  const size_t shown = std::min<size_t>(problems.size(), 20);
  for (size_t i = 0; i < shown; ++i) msg += (i ? ", " : "") + problems[i];
  if (shown < problems.size()) msg += ", and " + std::to_string(problems.size() - shown) + " more";
  msg += "; re-download the checkpoint or fix config.json";
  fail(ErrorCode::kInvalidModel, msg);
}

}  // namespace musicgen
