// Streaming SHA-256 and SHA-1 (OpenSSL libcrypto) for verifying downloads: LFS files against the
// hub's sha256, small files against their git blob id (sha1 of "blob <size>\0" + content).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace musicgen::hub {

enum class HashAlgorithm { kSha256, kSha1 };

class Hasher {
 public:
  explicit Hasher(HashAlgorithm algorithm);
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(const void* data, size_t n);
  // Lower-case hex digest; the hasher starts over afterwards.
  std::string hex_digest();
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Hex digest of a whole file, read in chunks. Throws Error(kIo) if it cannot be read.
std::string hash_file(const std::string& path, HashAlgorithm algorithm);

}  // namespace musicgen::hub
