// The T5 tokenizer as Hugging Face applies it for MusicGen: SentencePiece pieces of the text,
// then EOS (id 1) appended; a batch is right-padded with the pad id (0) and gets an attention
// mask (1 for real tokens, EOS included).
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace musicgen {

struct TokenBatch {
  int batch = 0;
  int length = 0;              // L: the longest sequence
  std::vector<int32_t> ids;    // [batch, length]
  std::vector<int32_t> mask;   // [batch, length]
};

class T5Tokenizer {
 public:
  // Throws Error(kNotFound / kInvalidModel) if spiece.model is missing or unreadable.
  explicit T5Tokenizer(const std::string& spiece_model_path);
  // From the bytes of a spiece.model (a musicgen quantized file embeds them); `where` names the
  // source in messages. Throws Error(kInvalidModel) if they do not parse.
  struct Serialized {
    std::string bytes;
    std::string where;
  };
  explicit T5Tokenizer(const Serialized& model);
  ~T5Tokenizer();
  T5Tokenizer(const T5Tokenizer&) = delete;
  T5Tokenizer& operator=(const T5Tokenizer&) = delete;

  std::vector<int32_t> encode(const std::string& text) const;  // pieces + EOS
  TokenBatch encode_batch(const std::vector<std::string>& texts) const;
  int vocab_size() const;
  int eos_id() const { return 1; }
  int pad_id() const { return 0; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace musicgen
