// A read-only memory-mapped file. Shared ownership keeps the mapping alive as long as any
// tensor view into it exists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace musicgen {

class MappedFile {
 public:
  // Throws Error(kNotFound / kIo) with the path in the message.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Drops the whole pages inside [p, p + n) from this process's resident set (they stay in the
  // page cache; touching them again maps them back). For bytes read once, e.g. to verify a
  // checksum or to convert a tensor to another type, so that they do not count as the process's
  // memory for the rest of its life.
  static void release(const uint8_t* p, size_t n);

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace musicgen
