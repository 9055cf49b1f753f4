#include "generation/generator.h"

#include "core/error.h"
#include "generation/delay_pattern.h"

namespace musicgen {

CodeGenResult generate_codes(const MusicgenDecoder& decoder, const CodeGenRequest& req,
                             ThreadPool* pool) {
  const DecoderConfig& cfg = decoder.config();
  const int B = req.batch, K = cfg.num_codebooks, V = cfg.vocab_size, M = req.max_length;
  const int special = cfg.vocab_size;
  if (M < DelayPattern::min_max_length(K, cfg.audio_channels))
    fail(ErrorCode::kInvalidArgument, "max_length " + std::to_string(M) + " is too short");
  const DelayPattern pattern(K, cfg.audio_channels, M, special);

  // Guidance on an unconditional request is a no-op (both streams see zero text): one stream.
  const bool cfg_on = req.sampling.guidance_scale > 1.0f && req.text != nullptr;
  const int rows = cfg_on ? 2 * B : B;  // [cond_0..cond_{B-1}, uncond_0..uncond_{B-1}]

  DecoderState state = decoder.new_state(rows, M);
  if (req.text != nullptr) {
    const int64_t S = req.text->dim(1), H = req.text->dim(2);
    if (!cfg_on) {
      decoder.set_text(state, *req.text, *req.text_mask, pool);
    } else {
      // The null stream: zero text states and a zero mask (HF appends zeros_like).
      Tensor both({rows, S, H});
      std::copy(req.text->data.begin(), req.text->data.end(), both.data.begin());
      std::vector<int32_t> mask(static_cast<size_t>(rows) * S, 0);
      std::copy(req.text_mask->begin(), req.text_mask->end(), mask.begin());
      decoder.set_text(state, both, mask, pool);
    }
  }

  std::vector<int32_t> seq(static_cast<size_t>(B) * K * M, special);  // [B, K, M]
  std::vector<int32_t> input(static_cast<size_t>(rows) * K);
  std::vector<float> logits, scores(static_cast<size_t>(B) * K * V);
  Rng rng(req.seed);
  const int steps = M - 1;
  for (int s = 0; s < steps; ++s) {
    for (int r = 0; r < rows; ++r)
      for (int k = 0; k < K; ++k) {
        const int b = r % B;
        input[r * K + k] = pattern.forced(k, s) ? special : seq[(static_cast<size_t>(b) * K + k) * M + s];
      }
    decoder.forward(state, input.data(), 1, false, &logits, pool);  // [rows, K, V]
    for (int b = 0; b < B; ++b)
      for (int k = 0; k < K; ++k) {
        float* sc = scores.data() + (static_cast<size_t>(b) * K + k) * V;
        const float* cond = logits.data() + (static_cast<size_t>(b) * K + k) * V;
        if (cfg_on)
          apply_guidance(cond, logits.data() + (static_cast<size_t>(B + b) * K + k) * V,
                         req.sampling.guidance_scale, sc, V);
        else
          std::copy_n(cond, V, sc);
        int token;
        if (req.sampling.do_sample) {
          apply_warpers(sc, V, req.sampling);
          token = sample(sc, V, rng.uniform());
        } else {
          token = argmax(sc, V);
        }
        seq[(static_cast<size_t>(b) * K + k) * M + s + 1] = pattern.forced(k, s + 1) ? special : token;
      }
    if (req.on_scores) req.on_scores(s, scores);
    if (req.on_step && !req.on_step(s + 1, steps)) fail(ErrorCode::kCancelled, "generation cancelled");
  }
  CodeGenResult result;
  result.codes = pattern.undelay(seq, B);
  result.frames = pattern.frames();
  return result;
}

}  // namespace musicgen
