#include "format/safetensors_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace musicgen {

namespace {

[[noreturn]] void io_error(const std::string& path, const std::string& what) {
  fail(ErrorCode::kIo, "cannot write '" + path + "': " + what +
                           " (disk full or not writable?); free space or choose another --out");
}

}  // namespace

std::string SafetensorsWriter::header_bytes(const std::vector<TensorDecl>& tensors,
                                            const std::map<std::string, std::string>& metadata) {
  // nlohmann::ordered_json keeps the declared order; readers do not depend on it.
  nlohmann::ordered_json header;
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  std::set<std::string> seen;
  for (const TensorDecl& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !seen.insert(t.name).second)
      fail(ErrorCode::kInvalidArgument,
           "safetensors writer: bad or duplicate tensor name '" + t.name + "'");
    nlohmann::ordered_json e;
    e["dtype"] = dtype_name(t.dtype);
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + t.nbytes()};
    header[t.name] = e;
    offset += t.nbytes();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);  // little-endian
  return out + json;
}

SafetensorsWriter::SafetensorsWriter(const std::string& path,
                                     const std::vector<TensorDecl>& tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), tensors_(tensors) {
  const std::string header = header_bytes(tensors_, metadata);
  file_ = std::fopen(path.c_str(), "wb");
  if (file_ == nullptr) io_error(path, std::strerror(errno));
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  if (std::fwrite(header.data(), 1, header.size(), file_) != header.size())
    io_error(path, std::strerror(errno));
  advance();
}

SafetensorsWriter::~SafetensorsWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void SafetensorsWriter::advance() {
  while (current_ < tensors_.size() && written_in_current_ == tensors_[current_].nbytes()) {
    ++current_;
    written_in_current_ = 0;
  }
}

void SafetensorsWriter::write(const void* data, size_t bytes) {
  if (bytes == 0) return;
  if (file_ == nullptr || current_ >= tensors_.size() ||
      written_in_current_ + bytes > tensors_[current_].nbytes())
    fail(ErrorCode::kInvalidArgument, "safetensors writer: write of " + std::to_string(bytes) +
                                          " bytes runs past the declared tensors");
  if (std::fwrite(data, 1, bytes, file_) != bytes) io_error(path_, std::strerror(errno));
  written_in_current_ += bytes;
  advance();
}

void SafetensorsWriter::finish() {
  if (file_ == nullptr) fail(ErrorCode::kInvalidArgument, "safetensors writer: already finished");
  if (current_ != tensors_.size())
    fail(ErrorCode::kInvalidArgument,
         "safetensors writer: tensor '" + tensors_[current_].name + "' is incomplete");
  const bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  const int err = errno;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok || !closed) io_error(path_, std::strerror(err));
}

}  // namespace musicgen
