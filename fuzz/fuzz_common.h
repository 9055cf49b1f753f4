// Shared by the libFuzzer harnesses (fuzz/README.md): the input as a file, because the readers
// take paths (they map files and apply the input rule: regular files only, no blocking open).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "format/safetensors.h"
#include "musicgen/error.h"

namespace musicgen::fuzz {

// An anonymous in-memory regular file (memfd) holding the bytes; path() opens it by name.
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) {
    fd_ = ::memfd_create("fuzz-input", MFD_CLOEXEC);
    if (fd_ < 0) __builtin_trap();
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) __builtin_trap();
      done += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Converts every tensor to float32 as the loader does (tensors over 64 MiB skipped: the input
// bounds them anyway); a musicgen::Error from one tensor is a correct rejection of that tensor.
template <typename Tensors>
void read_all_as_f32(const Tensors& tensors) {
  for (const auto& t : tensors) {
    if (t.nbytes > (size_t{64} << 20)) continue;
    try {
      const auto f = musicgen::TensorStore::to_f32(t);
      volatile float sink = f.numel() > 0 ? f.data[f.numel() - 1] : 0.0f;
      (void)sink;
    } catch (const musicgen::Error&) {
    }
  }
}

}  // namespace musicgen::fuzz
