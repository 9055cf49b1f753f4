// The decoding loop: delay pattern, classifier-free guidance with the conditional and null
// streams batched in one forward pass, logits processing and token choice.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "generation/sampling.h"
#include "models/musicgen_decoder.h"

namespace musicgen {

// Called after each decoder step with (steps done, total steps); return false to cancel.
using StepCallback = std::function<bool(int, int)>;

struct CodeGenRequest {
  int batch = 1;                                // B: prompts or unconditional samples
  const Tensor* text = nullptr;                 // projected text [B, S, H]; null: unconditional
  const std::vector<int32_t>* text_mask = nullptr;  // [B, S]
  int max_length = 0;                           // M: HF max_length (1 + max_new_tokens)
  SamplingParams sampling;
  uint64_t seed = 0;
  StepCallback on_step;
  // Optional: receives the processed scores [B, K, V] of every step (tests and debugging).
  std::function<void(int, const std::vector<float>&)> on_scores;
};

struct CodeGenResult {
  std::vector<int32_t> codes;  // [B, K, N], un-delayed
  int frames = 0;              // N
};

// Throws Error(kCancelled) if on_step returns false.
CodeGenResult generate_codes(const MusicgenDecoder& decoder, const CodeGenRequest& request,
                             ThreadPool* pool);

}  // namespace musicgen
