// The T5 encoder stack (HF T5EncoderModel, relu feed-forward), as MusicGen uses it for text.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "nn/linear.h"

namespace musicgen {

class T5Encoder {
 public:
  // linear: storage type of the attention and feed-forward matrices (models/weight_policy.h).
  T5Encoder(const T5Config& cfg, const TensorStore& store, const std::string& prefix = "text_encoder.",
            const LinearLoadOptions& linear = {});
  static std::vector<TensorSpec> tensor_specs(const T5Config& cfg,
                                              const std::string& prefix = "text_encoder.");

  // ids, mask: [B, S] -> last_hidden_state [B, S, d_model].
  Tensor forward(const std::vector<int32_t>& ids, const std::vector<int32_t>& mask, int batch,
                 int length, ThreadPool* pool) const;

  const T5Config& config() const { return cfg_; }
  // The encoder runs once per request: between requests its mapped weights need not stay
  // resident (Linear::release_resident; 170 MB in bf16 for musicgen's T5).
  void release_resident() const;

 private:
  struct Block {
    Norm attn_norm;
    Linear q, k, v, o;
    Norm ff_norm;
    Linear wi, wo;
  };
  // HF T5Attention._relative_position_bucket, bidirectional.
  int relative_bucket(int relative_position) const;

  T5Config cfg_;
  ConstTensor embed_;          // [vocab, d_model]
  ConstTensor relative_bias_;  // [num_buckets, heads]
  std::vector<Block> blocks_;
  Norm final_norm_;
};

}  // namespace musicgen
