// The seam between a model and the backends that run it.
//
// A model describes its decoder as a DecoderSpec: the shape of a pre-norm transformer decoder
// step (summed token embeddings + position rows, layers of self-attention over a KV cache,
// optional cross-attention, a GELU feed-forward, a final norm and one head per codebook) and
// read-only views of its weights in their stored types (Linear: f32 / f16 / bf16 / q8 / q4).
// A backend turns a spec into a DecoderRunner that owns one generation's mutable state on its
// device (the KV cache, the cross-attention K/V) and runs steps. The model code never tests
// which device runs it: the CPU runner (models/) and the Vulkan runner (gpu/) both implement
// DecoderRunner, and the generation loop (generation/) talks only to that interface.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "nn/linear.h"

namespace musicgen {

struct DecoderLayerSpec {
  const Norm* self_norm = nullptr;
  const Linear *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr;
  // Cross-attention to the text; all null for decoders without it (melody).
  const Norm* cross_norm = nullptr;
  const Linear *cross_q = nullptr, *cross_k = nullptr, *cross_v = nullptr, *cross_out = nullptr;
  const Norm* ffn_norm = nullptr;
  const Linear *fc1 = nullptr, *fc2 = nullptr;  // fc1 is followed by the exact (erf) GELU
};

struct DecoderSpec {
  int hidden = 0, heads = 0, head_dim = 0, ffn = 0, vocab = 0, codebooks = 0;
  float norm_eps = 1e-5f;
  float attention_scale = 1.0f;     // applied to the query before the key products
  std::vector<ConstTensor> embed;   // codebooks x [vocab + 1, hidden]
  std::vector<DecoderLayerSpec> layers;
  const Norm* final_norm = nullptr;
  std::vector<const Linear*> lm_heads;  // codebooks x [vocab, hidden]
  // Writes the position rows [start, start + count) x hidden (added to the embeddings).
  std::function<void(int start, int count, float* out)> positions;
  // Whether the reduced weight types keep the self-attention cache in IEEE half (the CPU's rule:
  // f32 weights keep it in float32, the exact path).
  bool kv_half = false;
};

// One generation's decoder state on some device, and the steps that advance it.
class DecoderRunner {
 public:
  virtual ~DecoderRunner() = default;
  // A fresh state for `batch` rows and up to `capacity` positions. text: the projected text
  // [batch, S, hidden] and its mask [batch, S] for cross-attention, or null (none).
  virtual void start(int batch, int capacity, const Tensor* text,
                     const std::vector<int32_t>* mask) = 0;
  // Runs `n` new positions for every row (tokens [batch, K, n]; prefix [batch, prefix_len,
  // hidden] hidden states placed first, melody conditioning) and returns the logits of the last
  // position, [batch, K, vocab].
  virtual void step(const int32_t* tokens, int n, const float* prefix, int prefix_len,
                    std::vector<float>* logits) = 0;
};

}  // namespace musicgen
