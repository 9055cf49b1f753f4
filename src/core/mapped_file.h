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

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace musicgen
