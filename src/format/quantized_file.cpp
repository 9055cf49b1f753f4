#include "format/quantized_file.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "format/crc32c.h"

namespace musicgen {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr char kMagic[8] = {'M', 'G', 'Q', 'U', 'A', 'N', 'T', '\0'};
constexpr uint64_t kPreludeBytes = 32;
constexpr uint64_t kMaxHeaderBytes = uint64_t{256} << 20;

uint64_t align_up(uint64_t v) { return (v + kQuantizedFileAlign - 1) / kQuantizedFileAlign * kQuantizedFileAlign; }

std::string hex8(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08x", v);
  return buf;
}

const std::map<std::string, DType>& dtype_table() {
  static const std::map<std::string, DType> t = {
      {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16}, {"F64", DType::kF64},
      {"I64", DType::kI64}, {"I32", DType::kI32}, {"I16", DType::kI16},   {"I8", DType::kI8},
      {"U8", DType::kU8},   {"BOOL", DType::kBool}, {"Q8", DType::kQ8},   {"Q4", DType::kQ4}};
  return t;
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  fail(ErrorCode::kInvalidModel, "bad musicgen quantized file '" + path + "': " + what +
                                     "; run musicgen quantize again to rewrite it");
}

template <typename T>
T read_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// One blob of the data section, as the header describes it.
struct Blob {
  uint64_t offset = 0, size = 0;
  uint32_t crc = 0;
};

Blob parse_blob(const json& j, const std::string& path, const std::string& what) {
  if (!j.is_object() || !j.contains("offset") || !j.contains("size") || !j.contains("crc32c") ||
      !j["offset"].is_number_unsigned() || !j["size"].is_number_unsigned() ||
      !j["crc32c"].is_string())
    corrupt(path, what + " lacks offset/size/crc32c");
  Blob b;
  b.offset = j["offset"].get<uint64_t>();
  b.size = j["size"].get<uint64_t>();
  const std::string crc = j["crc32c"].get<std::string>();
  char* end = nullptr;
  b.crc = static_cast<uint32_t>(std::strtoul(crc.c_str(), &end, 16));
  if (crc.size() != 8 || *end != '\0') corrupt(path, what + " has a malformed checksum");
  return b;
}

}  // namespace

bool is_quantized_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return in.gcount() == 8 && std::memcmp(magic, kMagic, 8) == 0;
}

QuantizedFile read_quantized_file(const std::string& path, bool verify_data) {
  auto file = MappedFile::open(path);
  const uint8_t* base = file->data();
  const uint64_t size = file->size();
  if (size < kPreludeBytes)
    corrupt(path, "the file is " + std::to_string(size) + " bytes, shorter than the 32-byte prelude");
  if (std::memcmp(base, kMagic, 8) != 0) corrupt(path, "it does not start with the MGQUANT magic");
  const uint32_t version = read_le<uint32_t>(base + 8);
  if (version != kQuantizedFileVersion)
    fail(ErrorCode::kInvalidModel, "musicgen quantized file '" + path + "' has format version " +
                                       std::to_string(version) + "; this build reads version " +
                                       std::to_string(kQuantizedFileVersion) +
                                       "; quantize the checkpoint again with this build");
  const uint32_t header_crc = read_le<uint32_t>(base + 12);
  const uint64_t header_len = read_le<uint64_t>(base + 16);
  const uint64_t data_offset = read_le<uint64_t>(base + 24);
  if (header_len > kMaxHeaderBytes || header_len > size - kPreludeBytes)
    corrupt(path, "header length " + std::to_string(header_len) + " exceeds the file size " +
                      std::to_string(size) + " (truncated?)");
  if (data_offset < kPreludeBytes + header_len || data_offset % kQuantizedFileAlign != 0 ||
      data_offset > size)
    corrupt(path, "data offset " + std::to_string(data_offset) + " is invalid for a " +
                      std::to_string(size) + "-byte file (truncated?)");
  if (crc32c(0, base + kPreludeBytes, header_len) != header_crc)
    corrupt(path, "the header checksum does not match (damaged file)");
  json h;
  try {
    h = json::parse(base + kPreludeBytes, base + kPreludeBytes + header_len);
  } catch (const json::exception& e) {
    corrupt(path, std::string("the header is not valid JSON (") + e.what() + ")");
  }
  if (!h.is_object() || !h.contains("format") || !h["format"].is_string() ||
      h["format"].get<std::string>() != "musicgen-quantized")
    corrupt(path, "the header is not a musicgen-quantized header");
  for (const char* key : {"weights", "config", "tokenizer", "data_size", "tensors"})
    if (!h.contains(key)) corrupt(path, std::string("the header lacks '") + key + "'");
  if (!h["weights"].is_string() || !h["config"].is_string() || !h["data_size"].is_number_unsigned() ||
      !h["tensors"].is_array())
    corrupt(path, "the header has fields of the wrong type");
  const uint64_t data_size = h["data_size"].get<uint64_t>();
  if (data_offset + data_size != size)
    corrupt(path, "the file is " + std::to_string(size) + " bytes but its header describes " +
                      std::to_string(data_offset + data_size) +
                      (data_offset + data_size > size ? " (truncated)" : " (trailing bytes)"));

  QuantizedFile out;
  out.file_bytes = size;
  QuantizedFileInfo& info = out.info;
  info.weights = h["weights"].get<std::string>();
  info.config_json = h["config"].get<std::string>();
  if (h.contains("generation_config") && h["generation_config"].is_string())
    info.generation_config_json = h["generation_config"].get<std::string>();
  if (h.contains("source") && h["source"].is_string()) info.source = h["source"].get<std::string>();
  const uint8_t* data = base + data_offset;

  // Every blob inside the data section, aligned, not overlapping another.
  std::vector<std::pair<Blob, std::string>> blobs;
  auto check_blob = [&](const Blob& b, const std::string& what) {
    if (b.offset % kQuantizedFileAlign != 0) corrupt(path, what + " is not 64-byte aligned");
    if (b.offset > data_size || b.size > data_size - b.offset)
      corrupt(path, what + " lies outside the data section (truncated?)");
    blobs.push_back({b, what});
  };
  const Blob tok = parse_blob(h["tokenizer"], path, "the tokenizer");
  check_blob(tok, "the tokenizer");

  std::vector<TensorInfo> tensors;
  std::vector<Blob> tensor_blobs;
  for (const json& t : h["tensors"]) {
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string() || !t.contains("dtype") ||
        !t["dtype"].is_string() || !t.contains("shape") || !t["shape"].is_array())
      corrupt(path, "a tensor entry lacks name/dtype/shape");
    TensorInfo ti;
    ti.name = t["name"].get<std::string>();
    const std::string what = "tensor '" + ti.name + "'";
    auto dt = dtype_table().find(t["dtype"].get<std::string>());
    if (dt == dtype_table().end()) corrupt(path, what + " has an unknown dtype");
    ti.dtype = dt->second;
    for (const json& d : t["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) corrupt(path, what + " has a bad shape");
      ti.shape.push_back(d.get<int64_t>());
    }
    const Blob b = parse_blob(t, path, what);
    check_blob(b, what);
    const size_t elem = dtype_size(ti.dtype);
    if (shape_numel(ti.shape) > (int64_t{1} << 40))  // also throws on overflow
      corrupt(path, what + " has an absurd shape " + shape_str(ti.shape));
    if (elem > 0 && b.size != static_cast<uint64_t>(shape_numel(ti.shape)) * elem)
      corrupt(path, what + " holds " + std::to_string(b.size) + " bytes, its shape " +
                        shape_str(ti.shape) + " needs " +
                        std::to_string(static_cast<uint64_t>(shape_numel(ti.shape)) * elem));
    if (elem == 0 && ti.shape.size() != 2) corrupt(path, what + " is a quantized tensor but not a matrix");
    ti.data = data + b.offset;
    ti.nbytes = b.size;
    ti.file = file;
    tensors.push_back(std::move(ti));
    tensor_blobs.push_back(b);
  }
  std::sort(blobs.begin(), blobs.end(),
            [](const auto& a, const auto& b) { return a.first.offset < b.first.offset; });
  for (size_t i = 1; i < blobs.size(); ++i)
    if (blobs[i - 1].first.offset + blobs[i - 1].first.size > blobs[i].first.offset)
      corrupt(path, blobs[i - 1].second + " overlaps " + blobs[i].second);

  if (verify_data) {
    if (crc32c(0, data + tok.offset, tok.size) != tok.crc)
      corrupt(path, "the tokenizer's checksum does not match (damaged file)");
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (crc32c(0, tensors[i].data, tensors[i].nbytes) != tensor_blobs[i].crc)
        corrupt(path, "tensor '" + tensors[i].name + "' fails its checksum (damaged file)");
      // Verified: only the pages the model really reads should stay resident (most of the
      // token embeddings never are, and the text encoder only while it runs).
      MappedFile::release(tensors[i].data, tensors[i].nbytes);
    }
  }
  info.tokenizer.assign(reinterpret_cast<const char*>(data + tok.offset), tok.size);
  out.store = TensorStore::from_tensors(std::move(tensors), path);
  return out;
}

// ---- Writer ---------------------------------------------------------------------------------

QuantizedFileWriter::QuantizedFileWriter(const std::string& path, QuantizedFileInfo info,
                                         std::vector<QuantizedTensorDecl> tensors)
    : path_(path), info_(std::move(info)), tensors_(std::move(tensors)) {
  uint64_t off = 0;
  tokenizer_offset_ = off;
  off = align_up(off + info_.tokenizer.size());
  for (const auto& t : tensors_) {
    offsets_.push_back(off);
    off = align_up(off + t.size);
  }
  data_size_ = off;
  crcs_.assign(tensors_.size(), 0);
  data_offset_ = align_up(kPreludeBytes + header(false).size());
  tmp_path_ = path_ + ".tmp-" + std::to_string(::getpid());
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (file_ == nullptr)
    fail(ErrorCode::kIo, "cannot write '" + path_ + "': cannot create '" + tmp_path_ + "'");
  // Placeholder prelude and header (rewritten by finish), then the tokenizer.
  const std::vector<uint8_t> zeros(data_offset_, 0);
  write_at(0, zeros.data(), zeros.size());
  tokenizer_crc_ = crc32c(0, info_.tokenizer.data(), info_.tokenizer.size());
  write_at(data_offset_ + tokenizer_offset_, info_.tokenizer.data(), info_.tokenizer.size());
}

QuantizedFileWriter::~QuantizedFileWriter() {
  if (file_ != nullptr) {
    std::fclose(file_);
    std::remove(tmp_path_.c_str());
  }
}

std::string QuantizedFileWriter::header(bool with_checksums) const {
  json h;
  h["format"] = "musicgen-quantized";
  h["version"] = kQuantizedFileVersion;
  h["weights"] = info_.weights;
  h["block_size"] = 32;
  h["source"] = info_.source;
  h["config"] = info_.config_json;
  if (info_.generation_config_json.empty())
    h["generation_config"] = nullptr;
  else
    h["generation_config"] = info_.generation_config_json;
  h["tokenizer"] = {{"offset", tokenizer_offset_},
                    {"size", static_cast<uint64_t>(info_.tokenizer.size())},
                    {"crc32c", hex8(with_checksums ? tokenizer_crc_ : 0)}};
  h["data_size"] = data_size_;
  json list = json::array();
  for (size_t i = 0; i < tensors_.size(); ++i)
    list.push_back({{"name", tensors_[i].name},
                    {"dtype", dtype_name(tensors_[i].dtype)},
                    {"shape", tensors_[i].shape},
                    {"offset", offsets_[i]},
                    {"size", tensors_[i].size},
                    {"crc32c", hex8(with_checksums ? crcs_[i] : 0)}});
  h["tensors"] = list;
  return h.dump();
}

void QuantizedFileWriter::write_at(uint64_t offset, const void* data, uint64_t size) {
  if (::fseeko(file_, static_cast<off_t>(offset), SEEK_SET) != 0 ||
      (size > 0 && std::fwrite(data, 1, size, file_) != size))
    fail(ErrorCode::kIo, "writing '" + tmp_path_ + "' failed (disk full?)");
}

void QuantizedFileWriter::write_tensor(const void* data, uint64_t size) {
  if (next_ >= tensors_.size() || size != tensors_[next_].size)
    fail(ErrorCode::kInvalidArgument, "quantized file writer: unexpected tensor data");
  crcs_[next_] = crc32c(0, data, size);
  write_at(data_offset_ + offsets_[next_], data, size);
  ++next_;
}

void QuantizedFileWriter::finish() {
  if (next_ != tensors_.size())
    fail(ErrorCode::kInvalidArgument, "quantized file writer: " +
                                          std::to_string(tensors_.size() - next_) +
                                          " tensor(s) not written");
  // Zero tail up to the aligned end of the data section.
  const uint64_t end = data_offset_ + data_size_;
  if (::fseeko(file_, 0, SEEK_END) != 0) fail(ErrorCode::kIo, "writing '" + tmp_path_ + "' failed");
  const uint64_t cur = static_cast<uint64_t>(::ftello(file_));
  if (cur < end) {
    const std::vector<uint8_t> zeros(end - cur, 0);
    write_at(cur, zeros.data(), zeros.size());
  }
  const std::string h = header(true);
  if (kPreludeBytes + h.size() > data_offset_)
    fail(ErrorCode::kIo, "quantized file writer: header grew");  // fixed-width fields: never
  uint8_t prelude[kPreludeBytes] = {};
  std::memcpy(prelude, kMagic, 8);
  const uint32_t version = kQuantizedFileVersion, crc = crc32c(0, h.data(), h.size());
  const uint64_t len = h.size();
  std::memcpy(prelude + 8, &version, 4);
  std::memcpy(prelude + 12, &crc, 4);
  std::memcpy(prelude + 16, &len, 8);
  std::memcpy(prelude + 24, &data_offset_, 8);
  write_at(0, prelude, kPreludeBytes);
  write_at(kPreludeBytes, h.data(), h.size());
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    fail(ErrorCode::kIo, "writing '" + tmp_path_ + "' failed (disk full?)");
  std::fclose(file_);
  file_ = nullptr;
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_path_.c_str());
    fail(ErrorCode::kIo, "cannot move the quantized model into '" + path_ + "'");
  }
}

}  // namespace musicgen
