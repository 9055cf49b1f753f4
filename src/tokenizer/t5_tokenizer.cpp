#include "tokenizer/t5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"

namespace musicgen {

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
  const auto status = impl_->sp.LoadFromSerializedProto(bytes);
  if (!status.ok())
    fail(ErrorCode::kInvalidModel, "cannot load tokenizer '" + path + "': " + status.ToString() +
                                       "; replace it with t5-base's spiece.model");
}

T5Tokenizer::T5Tokenizer(const Serialized& model) : impl_(std::make_unique<Impl>()) {
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
