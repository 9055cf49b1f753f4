// The tokenizer: a spiece.model (SentencePiece ModelProto) from untrusted bytes, as a checkpoint
// directory or a quantized file supplies it, then a prompt encoded with it.
#include <string>

#include "musicgen/error.h"
#include "tokenizer/t5_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    musicgen::T5Tokenizer tok(musicgen::T5Tokenizer::Serialized{
        std::string(reinterpret_cast<const char*>(data), size), "fuzz"});
    tok.encode_batch({"80s pop track with bassy drums and synth", ""});
  } catch (const musicgen::Error&) {
  }
  return 0;
}
