// The MusicGen decoder (HF MusicgenForCausalLM + enc_to_dec_proj): summed codebook embeddings,
// sinusoidal positions, pre-norm layers with causal self-attention over a KV cache and
// cross-attention to the projected text, final LayerNorm and one LM head per codebook.
//
// The model is immutable after construction and shared by sessions; everything mutable lives in
// DecoderState, owned by one session.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "nn/decoder_spec.h"
#include "nn/linear.h"

namespace musicgen {

// Per-session decoder state: self-attention KV cache and the cross-attention K/V of the text.
struct DecoderState {
  int batch = 0;     // B: rows, guidance streams included
  int capacity = 0;  // positions the cache holds
  int length = 0;    // P: positions already in the cache
  // Per layer: [B, heads, capacity, head_dim], float32, (kv_f16) IEEE half, or (kv_q8) int8
  // with one float scale per cached row, [B, heads, capacity] (kernels::quantize_kv_row).
  bool kv_f16 = false;
  bool kv_q8 = false;
  std::vector<std::vector<float>> self_k, self_v;
  std::vector<std::vector<uint16_t>> self_k16, self_v16;
  std::vector<std::vector<int8_t>> self_k8, self_v8;
  std::vector<std::vector<float>> self_ks, self_vs;
  // Per layer: [B, heads, S_text, head_dim]; empty when there is no text.
  std::vector<std::vector<float>> cross_k, cross_v;
  int text_length = 0;          // S_text
  std::vector<float> cross_bias;  // [B, S_text]: 0 for real tokens, -FLT_MAX for padding
  std::vector<uint8_t> cross_active;  // [B]: 0 when the row's text mask is all zero (output 0)

  // Bytes per cached value, and the address of element `offset` of layer l's K (k) or V cache.
  int64_t kv_bytes() const { return kv_q8 ? 1 : kv_f16 ? 2 : 4; }
  const void* kv_at(size_t l, bool k, int64_t offset) const {
    if (kv_q8) return (k ? self_k8 : self_v8)[l].data() + offset;
    if (kv_f16) return (k ? self_k16 : self_v16)[l].data() + offset;
    return (k ? self_k : self_v)[l].data() + offset;
  }
};

// How the decoder stores its weights (docs/QUANTIZATION.md lists what stays float32).
struct DecoderLoadOptions {
  // Every Linear layer and the LM heads. Anything but kF32 also keeps the self-attention KV cache
  // in IEEE half (float32 with kF32: the parity tests' exact path).
  WeightStorage weights = WeightStorage::kF32;
  ThreadPool* pool = nullptr;  // splits the quantization at load; nullptr: one thread
  bool exact_f16 = true;       // LinearLoadOptions::exact_f16 (kF32 only)
  // The self-attention KV cache in int8 with a scale per row (half the bytes of the 16-bit
  // cache; its error is measured in docs/QUANTIZATION.md), whatever the weight type.
  bool kv_q8 = false;
};

class MusicgenDecoder {
 public:
  // num_chroma > 0 builds the melody variant (HF MusicgenMelody): no cross-attention layers, and
  // an audio_enc_to_dec_proj [H, num_chroma] for the chroma prefix.
  MusicgenDecoder(const DecoderConfig& cfg, int text_hidden, const TensorStore& store,
                  int num_chroma = 0, const DecoderLoadOptions& options = {});
  static std::vector<TensorSpec> tensor_specs(const DecoderConfig& cfg, int text_hidden,
                                              int num_chroma = 0);

  const DecoderConfig& config() const { return cfg_; }
  WeightStorage weight_storage() const { return weights_; }
  // The self-attention cache's element type: "f32", "f16" or "q8".
  const char* kv_cache_type() const {
    return kv_q8_ ? "q8" : weights_ != WeightStorage::kF32 ? "f16" : "f32";
  }
  bool has_cross_attention() const { return num_chroma_ == 0; }

  // Melody only: audio_enc_to_dec_proj(chroma): [B, T, num_chroma] -> [B, T, H].
  Tensor project_chroma(const Tensor& chroma, ThreadPool* pool) const;

  // enc_to_dec_proj(text) * mask: [B, S, text_hidden] -> [B, S, H].
  Tensor project_text(const Tensor& text_states, const std::vector<int32_t>& mask,
                      ThreadPool* pool) const;

  // A fresh state for `batch` rows and up to `capacity` positions.
  DecoderState new_state(int batch, int capacity) const;
  // Computes the cross-attention K/V once for a generation. projected: [B, S, H], mask [B, S].
  void set_text(DecoderState& state, const Tensor& projected, const std::vector<int32_t>& mask,
                ThreadPool* pool) const;

  // Runs `n` new positions for every row. tokens: [B, K, n] (ids 0..vocab, vocab = special).
  // logits: [B, K, n, V] when all_positions, else [B, K, V] for the last position only.
  // prefix (melody conditioning): [B, prefix_len, H] hidden states placed before the tokens (they
  // take positions too; no logits are returned for them).
  void forward(DecoderState& state, const int32_t* tokens, int n, bool all_positions,
               std::vector<float>* logits, ThreadPool* pool, const float* prefix = nullptr,
               int prefix_len = 0) const;

  // One sequence's part of a multi-sequence step: forward()'s arguments for one state.
  struct SeqStep {
    DecoderState* state = nullptr;
    const int32_t* tokens = nullptr;  // [B, K, n]
    int n = 0;
    bool all_positions = false;
    std::vector<float>* logits = nullptr;
    const float* prefix = nullptr;
    int prefix_len = 0;
  };
  // Advances several independent sequences in one pass (continuous batching): each keeps its
  // own KV cache, position and cross-attention text, and the weight products run once over the
  // rows of all of them. Every output equals forward() on that sequence alone, bit for bit
  // (the kernels compute each row with the same arithmetic whatever the other rows; forward()
  // is this function with one sequence). All inputs are checked before any state changes.
  void forward_multi(const std::vector<SeqStep>& seqs, ThreadPool* pool) const;

  // The decoder step as a backend-neutral description (nn/decoder_spec.h): views of this
  // model's weights, valid while the model lives. Backends other than the CPU run it.
  DecoderSpec spec() const;
  // Writes the sinusoidal position rows [start, start + count) x hidden (HF's float32 values).
  void position_rows(int start, int count, float* out) const;
  // The matrices one decoder step streams (every layer's Linear layers but the cross-attention
  // key and value, which run once per text, and the LM heads): how many, how many of them are
  // stored as exact f16 (LinearLoadOptions::exact_f16), and their bytes.
  struct StepWeights {
    int matrices = 0, exact_f16 = 0;
    uint64_t bytes = 0;
  };
  StepWeights step_weights() const;

 private:
  struct Layer {
    Norm self_attn_norm;
    Linear q, k, v, out;
    Norm cross_attn_norm;
    Linear cross_q, cross_k, cross_v, cross_out;
    Norm final_norm;
    Linear fc1, fc2;
  };
  // forward_multi's activations, kept per calling thread between steps.
  struct Scratch {
    std::vector<float> x, a, q, k, v, att, o, ff, hsel, heads;
  };
  void add_positions(float* h, int rows_per_batch, int batch, int start) const;

  DecoderConfig cfg_;
  int text_hidden_;
  int num_chroma_;
  Linear audio_enc_to_dec_proj_;  // melody only
  std::vector<ConstTensor> embed_;  // K x [V+1, H]
  std::vector<Layer> layers_;
  Norm final_norm_;
  std::vector<Linear> lm_heads_;  // K x [V, H]
  WeightStorage weights_ = WeightStorage::kF32;
  bool kv_q8_ = false;
  Linear enc_to_dec_proj_;
  std::vector<float> inv_freq_;  // [H/2]: the sinusoid frequencies
};

// The CPU backend's DecoderRunner: this decoder's forward() on a DecoderState in host memory.
class CpuDecoderRunner : public DecoderRunner {
 public:
  CpuDecoderRunner(const MusicgenDecoder& decoder, ThreadPool* pool)
      : decoder_(decoder), pool_(pool) {}
  void start(int batch, int capacity, const Tensor* text,
             const std::vector<int32_t>* mask) override;
  void step(const int32_t* tokens, int n, const float* prefix, int prefix_len,
            std::vector<float>* logits) override;

 private:
  const MusicgenDecoder& decoder_;
  ThreadPool* pool_;
  DecoderState state_;
};

}  // namespace musicgen
