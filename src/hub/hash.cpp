#include "hub/hash.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace musicgen::hub {

struct Hasher::Impl {
  const EVP_MD* md = nullptr;
  EVP_MD_CTX* ctx = nullptr;
};

Hasher::Hasher(HashAlgorithm algorithm) : impl_(std::make_unique<Impl>()) {
  impl_->md = algorithm == HashAlgorithm::kSha256 ? EVP_sha256() : EVP_sha1();
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr) throw std::bad_alloc();
  reset();
}

Hasher::~Hasher() {
  EVP_MD_CTX_free(impl_->ctx);
}

void Hasher::reset() {
  if (EVP_DigestInit_ex(impl_->ctx, impl_->md, nullptr) != 1)
    fail(ErrorCode::kIo, "OpenSSL could not start a digest; check the libcrypto installation");
}

void Hasher::update(const void* data, size_t n) {
  if (n != 0) EVP_DigestUpdate(impl_->ctx, data, n);
}

std::string Hasher::hex_digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  reset();
  return out;
}

std::string hash_file(const std::string& path, HashAlgorithm algorithm) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    fail(ErrorCode::kIo, "cannot read '" + path + "' (" + std::strerror(errno) + ")");
  Hasher h(algorithm);
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.update(buf.data(), n);
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) fail(ErrorCode::kIo, "reading '" + path + "' failed");
  return h.hex_digest();
}

}  // namespace musicgen::hub
