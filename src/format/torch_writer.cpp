#include "format/torch_writer.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace musicgen {

uint32_t crc32_update(uint32_t crc, const void* bytes, size_t n) {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const uint8_t* p = static_cast<const uint8_t*>(bytes);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

namespace {

constexpr uint32_t kSat32 = 0xFFFFFFFFu;
constexpr char kArchive[] = "archive";

void le(std::string* s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

const char* storage_class(DType d) {
  switch (d) {
    case DType::kF32: return "FloatStorage";
    case DType::kF16: return "HalfStorage";
    case DType::kBF16: return "BFloat16Storage";
    case DType::kF64: return "DoubleStorage";
    case DType::kI64: return "LongStorage";
    case DType::kI32: return "IntStorage";
    default: return nullptr;
  }
}

// Pickle pieces (protocol 2).
void p_int(std::string* s, int64_t v) {
  if (v >= 0 && v < 256) {
    s->push_back('K');
    le(s, static_cast<uint64_t>(v), 1);
  } else if (v >= 0 && v < 65536) {
    s->push_back('M');
    le(s, static_cast<uint64_t>(v), 2);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    s->push_back('J');
    le(s, static_cast<uint64_t>(static_cast<int64_t>(v)), 4);
  } else {
    s->push_back('\x8a');
    s->push_back('\x08');
    le(s, static_cast<uint64_t>(v), 8);
  }
}
void p_str(std::string* s, const std::string& v) {
  s->push_back('X');
  le(s, v.size(), 4);
  *s += v;
}
void p_global(std::string* s, const char* module, const char* name) {
  *s += 'c';
  *s += module;
  *s += '\n';
  *s += name;
  *s += '\n';
}
void p_tuple(std::string* s, const std::vector<int64_t>& v) {
  s->push_back('(');
  for (int64_t x : v) p_int(s, x);
  s->push_back('t');
}

}  // namespace

std::string TorchZipWriter::pickle_bytes(const std::vector<TensorDecl>& tensors) {
  std::string s = "\x80\x02";
  p_global(&s, "collections", "OrderedDict");
  s += ")R(";
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorDecl& t = tensors[i];
    p_str(&s, t.name);
    p_global(&s, "torch._utils", "_rebuild_tensor_v2");
    s += "((";
    p_str(&s, "storage");
    p_global(&s, "torch", storage_class(t.dtype));
    p_str(&s, std::to_string(i));
    p_str(&s, "cpu");
    p_int(&s, shape_numel(t.shape));
    s += "tQ";  // TUPLE, BINPERSID
    p_int(&s, 0);
    p_tuple(&s, t.shape);
    std::vector<int64_t> stride(t.shape.size());
    int64_t st = 1;
    for (size_t d = t.shape.size(); d-- > 0;) {
      stride[d] = st;
      st *= t.shape[d];
    }
    p_tuple(&s, stride);
    s += '\x89';  // requires_grad False
    p_global(&s, "collections", "OrderedDict");
    s += ")RtR";  // backward hooks OrderedDict(); the argument tuple; REDUCE
  }
  s += "u.";  // SETITEMS, STOP
  return s;
}

TorchZipWriter::TorchZipWriter(const std::string& path, const std::vector<TensorDecl>& tensors)
    : path_(path), tensors_(tensors) {
  for (const TensorDecl& t : tensors_) {
    if (t.name.empty()) fail(ErrorCode::kInvalidArgument, "a tensor has an empty name");
    if (storage_class(t.dtype) == nullptr)
      fail(ErrorCode::kInvalidArgument, "tensor '" + t.name + "' has dtype " + dtype_name(t.dtype) +
                                            ", which torch.save has no storage class for here");
  }
  file_ = std::fopen(path.c_str(), "wb");
  if (file_ == nullptr)
    fail(ErrorCode::kIo, "cannot create '" + path + "': " + std::strerror(errno));
  add_record(std::string(kArchive) + "/data.pkl", pickle_bytes(tensors_));
  current_ = 0;
  while (current_ < tensors_.size() && tensors_[current_].nbytes() == 0) {
    begin_entry(std::string(kArchive) + "/data/" + std::to_string(current_), 0);
    end_entry();
    ++current_;
  }
  if (current_ < tensors_.size())
    begin_entry(std::string(kArchive) + "/data/" + std::to_string(current_), tensors_[current_].nbytes());
}

TorchZipWriter::~TorchZipWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void TorchZipWriter::put(const void* data, size_t bytes) {
  if (bytes == 0) return;
  if (std::fwrite(data, 1, bytes, file_) != bytes)
    fail(ErrorCode::kIo, "cannot write '" + path_ + "': " + std::strerror(errno));
  pos_ += bytes;
  if (in_entry_) {
    Entry& e = entries_.back();
    e.crc = crc32_update(e.crc, data, bytes);
  }
}

void TorchZipWriter::begin_entry(const std::string& name, uint64_t size) {
  Entry e;
  e.name = name;
  e.header_offset = pos_;
  e.size = size;
  const bool zip64 = size >= kSat32;
  std::string h;
  le(&h, 0x04034b50, 4);
  le(&h, zip64 ? 45 : 20, 2);
  le(&h, 0, 2);  // flags
  le(&h, 0, 2);  // stored
  le(&h, 0, 4);  // time, date
  le(&h, 0, 4);  // crc, patched by end_entry
  le(&h, zip64 ? kSat32 : size, 4);
  le(&h, zip64 ? kSat32 : size, 4);
  le(&h, name.size(), 2);
  std::string extra;
  if (zip64) {
    le(&extra, 0x0001, 2);
    le(&extra, 16, 2);
    le(&extra, size, 8);
    le(&extra, size, 8);
  }
  // Padding so that the data starts on a 64-byte boundary, as torch writes it.
  const uint64_t base = pos_ + 30 + name.size() + extra.size() + 4;
  const uint64_t pad = (64 - base % 64) % 64;
  le(&extra, 0x4246, 2);  // "FB", torch's padding field
  le(&extra, pad, 2);
  extra.append(pad, 'Z');
  le(&h, extra.size(), 2);
  h += name;
  h += extra;
  put(h.data(), h.size());
  entries_.push_back(e);
  in_entry_ = true;
}

void TorchZipWriter::end_entry() {
  in_entry_ = false;
  const Entry& e = entries_.back();
  std::string crc;
  le(&crc, e.crc, 4);
  if (::fseeko(file_, static_cast<off_t>(e.header_offset + 14), SEEK_SET) != 0 ||
      std::fwrite(crc.data(), 1, 4, file_) != 4 ||
      ::fseeko(file_, static_cast<off_t>(pos_), SEEK_SET) != 0)
    fail(ErrorCode::kIo, "cannot write '" + path_ + "': " + std::strerror(errno));
}

void TorchZipWriter::add_record(const std::string& name, const std::string& data) {
  begin_entry(name, data.size());
  put(data.data(), data.size());
  end_entry();
}

void TorchZipWriter::write(const void* data, size_t bytes) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (bytes > 0) {
    if (current_ >= tensors_.size())
      fail(ErrorCode::kInvalidArgument, "write past the last tensor of '" + path_ + "'");
    const uint64_t left = tensors_[current_].nbytes() - written_in_current_;
    if (bytes > left)
      fail(ErrorCode::kInvalidArgument, "a chunk runs past the end of tensor '" +
                                            tensors_[current_].name + "'");
    put(p, bytes);
    written_in_current_ += bytes;
    p += bytes;
    bytes = 0;
    while (current_ < tensors_.size() && written_in_current_ == tensors_[current_].nbytes()) {
      end_entry();
      written_in_current_ = 0;
      ++current_;
      if (current_ < tensors_.size()) {
        begin_entry(std::string(kArchive) + "/data/" + std::to_string(current_),
                    tensors_[current_].nbytes());
        if (tensors_[current_].nbytes() != 0) break;
      }
    }
  }
}

void TorchZipWriter::finish() {
  if (current_ < tensors_.size())
    fail(ErrorCode::kInvalidArgument, "tensor '" + tensors_[current_].name + "' of '" + path_ +
                                          "' is incomplete");
  add_record(std::string(kArchive) + "/version", "3\n");
  add_record(std::string(kArchive) + "/byteorder", "little");
  const uint64_t cd_offset = pos_;
  std::string cd;
  for (const Entry& e : entries_) {
    const bool big = e.size >= kSat32, far = e.header_offset >= kSat32;
    std::string extra;
    if (big || far) {
      le(&extra, 0x0001, 2);
      le(&extra, (big ? 16 : 0) + (far ? 8 : 0), 2);
      if (big) {
        le(&extra, e.size, 8);
        le(&extra, e.size, 8);
      }
      if (far) le(&extra, e.header_offset, 8);
    }
    le(&cd, 0x02014b50, 4);
    le(&cd, extra.empty() ? 20 : 45, 2);
    le(&cd, extra.empty() ? 20 : 45, 2);
    le(&cd, 0, 2);
    le(&cd, 0, 2);
    le(&cd, 0, 4);
    le(&cd, e.crc, 4);
    le(&cd, big ? kSat32 : e.size, 4);
    le(&cd, big ? kSat32 : e.size, 4);
    le(&cd, e.name.size(), 2);
    le(&cd, extra.size(), 2);
    le(&cd, 0, 2);  // comment
    le(&cd, 0, 2);  // disk
    le(&cd, 0, 2);  // internal attributes
    le(&cd, 0, 4);  // external attributes
    le(&cd, far ? kSat32 : e.header_offset, 4);
    cd += e.name;
    cd += extra;
  }
  put(cd.data(), cd.size());
  const uint64_t n = entries_.size(), cd_size = cd.size();
  std::string tail;
  const bool zip64 = n >= 0xFFFF || cd_offset >= kSat32 || cd_size >= kSat32;
  if (zip64) {
    const uint64_t z = pos_;
    le(&tail, 0x06064b50, 4);
    le(&tail, 44, 8);
    le(&tail, 45, 2);
    le(&tail, 45, 2);
    le(&tail, 0, 4);
    le(&tail, 0, 4);
    le(&tail, n, 8);
    le(&tail, n, 8);
    le(&tail, cd_size, 8);
    le(&tail, cd_offset, 8);
    le(&tail, 0x07064b50, 4);
    le(&tail, 0, 4);
    le(&tail, z, 8);
    le(&tail, 1, 4);
  }
  le(&tail, 0x06054b50, 4);
  le(&tail, 0, 4);
  le(&tail, zip64 ? 0xFFFF : n, 2);
  le(&tail, zip64 ? 0xFFFF : n, 2);
  le(&tail, zip64 ? kSat32 : cd_size, 4);
  le(&tail, zip64 ? kSat32 : cd_offset, 4);
  le(&tail, 0, 2);
  put(tail.data(), tail.size());
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    fail(ErrorCode::kIo, "cannot write '" + path_ + "': " + std::strerror(errno));
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) fail(ErrorCode::kIo, "cannot close '" + path_ + "': " + std::strerror(errno));
}

}  // namespace musicgen
