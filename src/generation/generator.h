// The decoding loop: delay pattern, audio-prompt cells, classifier-free guidance with the
// conditional and null streams batched in one forward pass, logits processing and token choice;
// and audiocraft's sliding-window algorithm for music longer than one window.
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
  int batch = 1;  // B: prompts or unconditional samples
  // Cross-attention models: projected text [B, S, H] and its mask [B, S]; null = unconditional.
  const Tensor* text = nullptr;
  const std::vector<int32_t>* text_mask = nullptr;
  // Melody models: conditioning prefix [B, P0, H] of the conditional stream and, for guidance,
  // of the null stream.
  const Tensor* prefix_cond = nullptr;
  const Tensor* prefix_uncond = nullptr;
  // Audio prompt: un-delayed codes [B, K, prompt_frames] (HF generate(input_values=...)).
  const std::vector<int32_t>* prompt_codes = nullptr;
  int prompt_frames = 0;
  int max_length = 0;  // M: HF max_length (prompt_frames + 1 + max_new_tokens)
  SamplingParams sampling;
  Rng* rng = nullptr;  // required when sampling
  StepCallback on_step;
  int step_offset = 0;  // added to the step count reported to on_step (long-form progress)
  int step_total = 0;   // total reported to on_step (0: this request's steps)
  // Optional: receives the processed scores [B, K, V] of every produced step.
  std::function<void(int, const std::vector<float>&)> on_scores;
  // Optional (streaming): called as soon as output frames are final (all K codebooks known
  // after the delay pattern), in order, with frames [first, first + count) of the result as
  // un-delayed codes [B, K, count]; the prompt's frames come first, before any step. In
  // generate_long, frame numbers are those of the stitched output. Return false to cancel
  // (Error(kCancelled)).
  std::function<bool(int first, int count, const std::vector<int32_t>& codes)> on_frames;
};

struct CodeGenResult {
  std::vector<int32_t> codes;  // [B, K, N], un-delayed, prompt frames included
  int frames = 0;              // N = max_length - Kc
};

// Decoder forward calls a request needs (for progress totals).
int codegen_steps(const CodeGenRequest& request);

// Throws Error(kCancelled) if on_step returns false. Runs on the CPU.
CodeGenResult generate_codes(const MusicgenDecoder& decoder, const CodeGenRequest& request,
                             ThreadPool* pool);
// The same on any backend's runner (nn/decoder_spec.h) for a decoder of configuration cfg.
CodeGenResult generate_codes(DecoderRunner& runner, const DecoderConfig& cfg,
                             const CodeGenRequest& request);

// One window of a long-form generation (audiocraft MusicGen._generate_tokens), in frames.
struct Window {
  int offset = 0;         // frame of the final output where this window starts
  int frames = 0;         // frames the window generates in total, its prompt included
  int prompt_frames = 0;  // frames carried over as its prompt (the previous window's tail)
};

// The windows for `total_frames` of output given `prompt_frames` of user prompt:
// off = 0, plen = prompt; while off + plen < total: n = min(total - off, window); then the next
// window is prompted by the last n - stride frames and off += stride.
std::vector<Window> plan_windows(int total_frames, int prompt_frames, int window_frames,
                                 int stride_frames);

struct LongFormRequest {
  CodeGenRequest base;   // text/prefix/sampling/rng/progress; prompt and max_length are set per window
  int total_frames = 0;  // frames of the final output, user prompt included
  int window_frames = 1500;
  int stride_frames = 900;
  // Melody: called before each window with its offset in frames to refresh the prefixes.
  std::function<void(const Window&, CodeGenRequest*)> before_window;
  // Optional: observes each window's request and result (tests).
  std::function<void(const Window&, const CodeGenRequest&, const CodeGenResult&)> after_window;
};

// Runs the windows and stitches the new frames of each: [B, K, total_frames].
CodeGenResult generate_long(const MusicgenDecoder& decoder, const LongFormRequest& request,
                            ThreadPool* pool);
CodeGenResult generate_long(DecoderRunner& runner, const DecoderConfig& cfg,
                            const LongFormRequest& request);

}  // namespace musicgen
