// A read-only memory-mapped file. Shared ownership keeps the mapping alive as long as any
// tensor view into it exists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace musicgen {

// The one rule for input files: only regular files are read, and open() never blocks (O_NONBLOCK:
// a FIFO or a device named as an input gives an error instead of a hang). Returns an open file
// descriptor (O_CLOEXEC, blocking mode restored) of a regular file; *size gets its size. Throws
// Error(kNotFound) for a missing path and Error(kInvalidArgument) naming what the path is (a
// directory, a FIFO, a device) otherwise.
int open_regular_file(const std::string& path, uint64_t* size);
// Reads a whole regular file of at most max_bytes bytes (checked before reading); a larger file
// is an Error(kInvalidModel) that names the limit.
std::string read_regular_file(const std::string& path, uint64_t max_bytes);
// Limits for the small files of a checkpoint: JSON (config, generation config, shard index) and
// the SentencePiece model (t5-base's is 792 kB).
constexpr uint64_t kMaxJsonFileBytes = uint64_t{64} << 20;
constexpr uint64_t kMaxTokenizerFileBytes = uint64_t{64} << 20;

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
