#include "tokenizer/t5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"

namespace musicgen {

namespace {

// libsentencepiece builds a trie of the pieces (darts-clone) that takes them as C strings and
// throws an exception it cannot pass back for an empty piece or one containing a NUL byte: the
// process aborts ("failed to insert key: zero-length key", found by fuzz_tokenizer). So the
// pieces are checked here first, with a minimal reader of the protobuf wire format
// (ModelProto.pieces = field 1, SentencePiece.piece = field 1). Returns "" when they are fine.
class WireReader {
 public:
  WireReader(const uint8_t* p, const uint8_t* end) : p_(p), end_(end) {}
  bool done() const { return p_ == end_; }
  bool varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  // Reads the bytes of a length-delimited field.
  bool bytes(const uint8_t** data, size_t* size) {
    uint64_t n = 0;
    if (!varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    *data = p_;
    *size = static_cast<size_t>(n);
    p_ += n;
    return true;
  }
  bool skip(int wire_type) {
    uint64_t v = 0;
    const uint8_t* d = nullptr;
    size_t n = 0;
    switch (wire_type) {
      case 0: return varint(&v);
      case 1: return advance(8);
      case 2: return bytes(&d, &n);
      case 5: return advance(4);
      default: return false;  // groups (3, 4) are not used by sentencepiece
    }
  }

 private:
  bool advance(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

std::string check_pieces(const std::string& proto) {
  const auto* begin = reinterpret_cast<const uint8_t*>(proto.data());
  WireReader top(begin, begin + proto.size());
  size_t index = 0;
  while (!top.done()) {
    uint64_t key = 0;
    if (!top.varint(&key)) return "it is not a SentencePiece model (malformed protobuf)";
    if ((key >> 3) != 1 || (key & 7) != 2) {
      if (!top.skip(static_cast<int>(key & 7)))
        return "it is not a SentencePiece model (malformed protobuf)";
      continue;
    }
    const uint8_t* msg = nullptr;
    size_t msg_size = 0;
    if (!top.bytes(&msg, &msg_size)) return "it is not a SentencePiece model (malformed protobuf)";
    WireReader piece(msg, msg + msg_size);
    while (!piece.done()) {
      uint64_t k = 0;
      if (!piece.varint(&k)) return "it is not a SentencePiece model (malformed protobuf)";
      if ((k >> 3) == 1 && (k & 7) == 2) {
        const uint8_t* s = nullptr;
        size_t n = 0;
        if (!piece.bytes(&s, &n)) return "it is not a SentencePiece model (malformed protobuf)";
        if (n == 0) return "piece " + std::to_string(index) + " is empty";
        if (std::memchr(s, '\0', n) != nullptr)
          return "piece " + std::to_string(index) + " contains a NUL byte";
      } else if (!piece.skip(static_cast<int>(k & 7))) {
        return "it is not a SentencePiece model (malformed protobuf)";
      }
    }
    ++index;
  }
  return "";
}

}  // namespace

struct T5Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

T5Tokenizer::T5Tokenizer(const std::string& path) : impl_(std::make_unique<Impl>()) {
  if (!std::filesystem::exists(path))
    fail(ErrorCode::kNotFound, "tokenizer '" + path +
                                   "' not found; a MusicGen checkpoint directory must hold the T5 "
                                   "spiece.model (copy it from t5-base)");
  // Read with the input rules (regular file, no blocking, bounded size), then parsed from memory.
  const std::string bytes = read_regular_file(path, kMaxTokenizerFileBytes);
  if (const std::string bad = check_pieces(bytes); !bad.empty())
    fail(ErrorCode::kInvalidModel, "cannot load tokenizer '" + path + "': " + bad +
                                       "; replace it with t5-base's spiece.model");
  const auto status = impl_->sp.LoadFromSerializedProto(bytes);
  if (!status.ok())
    fail(ErrorCode::kInvalidModel, "cannot load tokenizer '" + path + "': " + status.ToString() +
                                       "; replace it with t5-base's spiece.model");
}

T5Tokenizer::T5Tokenizer(const Serialized& model) : impl_(std::make_unique<Impl>()) {
  if (const std::string bad = check_pieces(model.bytes); !bad.empty())
    fail(ErrorCode::kInvalidModel, "cannot load the tokenizer of " + model.where + ": " + bad +
                                       "; quantize the checkpoint again");
  const auto status = impl_->sp.LoadFromSerializedProto(model.bytes);
  if (!status.ok())
    fail(ErrorCode::kInvalidModel, "cannot load the tokenizer of " + model.where + ": " +
                                       status.ToString() + "; quantize the checkpoint again");
}

T5Tokenizer::~T5Tokenizer() = default;

int T5Tokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }

std::vector<int32_t> T5Tokenizer::encode(const std::string& text) const {
  std::vector<int> pieces;
  const auto status = impl_->sp.Encode(text, &pieces);
  if (!status.ok())
    fail(ErrorCode::kInvalidArgument, "cannot tokenize prompt: " + status.ToString());
  std::vector<int32_t> ids(pieces.begin(), pieces.end());
  ids.push_back(eos_id());
  return ids;
}

TokenBatch T5Tokenizer::encode_batch(const std::vector<std::string>& texts) const {
  TokenBatch b;
  b.batch = static_cast<int>(texts.size());
  std::vector<std::vector<int32_t>> all;
  for (const auto& t : texts) {
    all.push_back(encode(t));
    b.length = std::max<int>(b.length, static_cast<int>(all.back().size()));
  }
  b.ids.assign(static_cast<size_t>(b.batch) * b.length, pad_id());
  b.mask.assign(static_cast<size_t>(b.batch) * b.length, 0);
  for (int i = 0; i < b.batch; ++i)
    for (size_t j = 0; j < all[i].size(); ++j) {
      b.ids[i * b.length + j] = all[i][j];
      b.mask[i * b.length + j] = 1;
    }
  return b;
}

}  // namespace musicgen
