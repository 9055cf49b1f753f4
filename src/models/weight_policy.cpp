#include "models/weight_policy.h"

#include <regex>

namespace musicgen {

WeightStorage lm_head_storage(WeightStorage requested) {
  // The heads write the logits directly (no later layer averages their error out) and are 2% of
  // the bytes a step reads: q4 models keep them in q8.
  return requested == WeightStorage::kQ4 ? WeightStorage::kQ8 : requested;
}

WeightStorage t5_storage(WeightStorage requested) {
  // T5 runs once per prompt: its type changes memory, never speed. T5 was trained in bfloat16,
  // and measured on a full-size checkpoint its output moves 3x more in q8 than in bf16
  // (docs/QUANTIZATION.md): every reduced type keeps T5 in bf16 (half of float32's memory).
  return requested == WeightStorage::kF32 ? WeightStorage::kF32 : WeightStorage::kBF16;
}

WeightStorage tensor_storage(const std::string& name, WeightStorage requested) {
  static const std::regex kDecoderLayer(
      R"(decoder\.model\.decoder\.layers\.\d+\.(self_attn|encoder_attn)\.(q|k|v|out)_proj\.weight|decoder\.model\.decoder\.layers\.\d+\.fc[12]\.weight)");
  static const std::regex kLmHead(R"(decoder\.lm_heads\.\d+\.weight)");
  static const std::regex kT5(
      R"(text_encoder\.encoder\.block\.\d+\.layer\.(0\.SelfAttention\.(q|k|v|o)|1\.DenseReluDense\.(wi|wo))\.weight)");
  if (std::regex_match(name, kDecoderLayer)) return decoder_layer_storage(requested);
  if (std::regex_match(name, kLmHead)) return lm_head_storage(requested);
  if (std::regex_match(name, kT5)) return t5_storage(requested);
  return WeightStorage::kF32;
}

}  // namespace musicgen
