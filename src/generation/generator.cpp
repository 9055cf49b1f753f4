#include "generation/generator.h"

#include <algorithm>

#include "core/error.h"
#include "generation/delay_pattern.h"

namespace musicgen {

namespace {
constexpr int32_t kUnknown = -1;

bool guidance_on(const CodeGenRequest& req) {
  return req.sampling.guidance_scale > 1.0f &&
         (req.text != nullptr || req.prefix_uncond != nullptr);
}
}  // namespace

int codegen_steps(const CodeGenRequest& req) { return req.max_length - (req.prompt_frames + 1); }

CodeGenResult generate_codes(const MusicgenDecoder& decoder, const CodeGenRequest& req,
                             ThreadPool* pool) {
  CpuDecoderRunner runner(decoder, pool);
  return generate_codes(runner, decoder.config(), req);
}

CodeGenResult generate_codes(DecoderRunner& runner, const DecoderConfig& cfg,
                             const CodeGenRequest& req) {
  const int B = req.batch, K = cfg.num_codebooks, V = cfg.vocab_size, M = req.max_length;
  const int special = cfg.vocab_size;
  const int Tp = req.prompt_frames;
  if (M < DelayPattern::min_max_length(K, cfg.audio_channels) || M < Tp + 2)
    fail(ErrorCode::kInvalidArgument, "max_length " + std::to_string(M) + " is too short");
  if (req.sampling.do_sample && req.rng == nullptr)
    fail(ErrorCode::kInvalidArgument, "sampling needs a random stream");
  const DelayPattern pattern(K, cfg.audio_channels, M, special);

  // Guidance on an unconditional request is a no-op (both streams see zero text): one stream.
  const bool cfg_on = guidance_on(req);
  const int rows = cfg_on ? 2 * B : B;  // [cond_0..cond_{B-1}, uncond_0..uncond_{B-1}]

  const int capacity = M + (req.prefix_cond ? static_cast<int>(req.prefix_cond->dim(1)) : 0);
  if (req.text == nullptr) runner.start(rows, capacity, nullptr, nullptr);
  if (req.text != nullptr) {
    const int64_t S = req.text->dim(1), H = req.text->dim(2);
    if (!cfg_on) {
      runner.start(rows, capacity, req.text, req.text_mask);
    } else {
      // The null stream: zero text states and a zero mask (HF appends zeros_like).
      Tensor both({rows, S, H});
      std::copy(req.text->data.begin(), req.text->data.end(), both.data.begin());
      std::vector<int32_t> mask(static_cast<size_t>(rows) * S, 0);
      std::copy(req.text_mask->begin(), req.text_mask->end(), mask.begin());
      runner.start(rows, capacity, &both, &mask);
    }
  }
  std::vector<float> prefix;  // [rows, P0, H]
  int prefix_len = 0;
  if (req.prefix_cond != nullptr) {
    prefix_len = static_cast<int>(req.prefix_cond->dim(1));
    prefix = req.prefix_cond->data;
    if (cfg_on) prefix.insert(prefix.end(), req.prefix_uncond->data.begin(), req.prefix_uncond->data.end());
  }

  // The sequence [B, K, M]: forced cells hold the special token, prompt cells the prompt codes
  // (HF build_delay_pattern_mask), the rest is generated.
  std::vector<int32_t> seq(static_cast<size_t>(B) * K * M, kUnknown);
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < K; ++k) {
      int32_t* row = seq.data() + (static_cast<size_t>(b) * K + k) * M;
      for (int c = 0; c < M; ++c)
        if (pattern.forced(k, c)) row[c] = special;
      for (int t = 0; t < Tp && t + 1 + pattern.delay(k) < M; ++t) {
        const int32_t code = (*req.prompt_codes)[(static_cast<size_t>(b) * K + k) * Tp + t];
        if (code < 0 || code >= V)
          fail(ErrorCode::kInvalidArgument, "audio prompt code " + std::to_string(code) + " out of range");
        if (!pattern.forced(k, t + 1 + pattern.delay(k))) row[t + 1 + pattern.delay(k)] = code;
      }
    }
  auto cell = [&](int b, int k, int c) -> int32_t& {
    return seq[(static_cast<size_t>(b) * K + k) * M + c];
  };

  // Streaming: frame t is final once column t + 1 + d_k is known for every k (max d_k = Kc - 1).
  const int N = pattern.frames(), kc = K / cfg.audio_channels;
  int reported = 0;
  std::vector<int32_t> fresh;
  auto report = [&](int complete) {
    complete = std::min(complete, N);
    if (!req.on_frames || complete <= reported) return;
    const int n = complete - reported;
    fresh.assign(static_cast<size_t>(B) * K * n, 0);
    for (int b = 0; b < B; ++b)
      for (int k = 0; k < K; ++k)
        for (int t = 0; t < n; ++t)
          fresh[(static_cast<size_t>(b) * K + k) * n + t] = cell(b, k, reported + t + 1 + pattern.delay(k));
    const int first = reported;
    reported = complete;
    if (!req.on_frames(first, n, fresh)) fail(ErrorCode::kCancelled, "generation cancelled");
  };
  report(Tp);

  // The first call feeds columns [0, start): the whole prompt prefix (HF first_start = Tp + 1).
  const int start = Tp + 1;
  std::vector<int32_t> input;
  std::vector<float> logits, scores(static_cast<size_t>(B) * K * V);
  const int steps = M - start;
  const int report_total = req.step_total > 0 ? req.step_total : steps;
  for (int s = start - 1, done = 0; s < M - 1; ++s, ++done) {
    const int c0 = s == start - 1 ? 0 : s;  // first column fed by this call
    const int n = s + 1 - c0;
    input.assign(static_cast<size_t>(rows) * K * n, 0);
    for (int r = 0; r < rows; ++r)
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < n; ++j) {
          const int32_t v = cell(r % B, k, c0 + j);
          if (v == kUnknown) fail(ErrorCode::kInvalidArgument, "internal: unknown input cell");
          input[(static_cast<size_t>(r) * K + k) * n + j] = v;
        }
    const bool first = s == start - 1;
    runner.step(input.data(), n, first && prefix_len > 0 ? prefix.data() : nullptr,
                first ? prefix_len : 0, &logits);
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
          token = sample(sc, V, req.rng->uniform());
        } else {
          token = argmax(sc, V);
        }
        int32_t& next = cell(b, k, s + 1);
        if (next == kUnknown) next = token;  // forced and prompt cells keep their value
      }
    if (req.on_scores) req.on_scores(s, scores);
    if (req.on_step && !req.on_step(req.step_offset + done + 1, report_total))
      fail(ErrorCode::kCancelled, "generation cancelled");
    report(s + 2 - kc);  // column s + 1 is now known
  }
  report(N);
  CodeGenResult result;
  result.codes = pattern.undelay(seq, B);
  result.frames = pattern.frames();
  return result;
}

std::vector<Window> plan_windows(int total_frames, int prompt_frames, int window_frames,
                                 int stride_frames) {
  if (stride_frames <= 0 || stride_frames >= window_frames)
    fail(ErrorCode::kInvalidArgument, "the extend stride must be positive and shorter than the window");
  std::vector<Window> plan;
  int off = 0, plen = prompt_frames;
  while (off + plen < total_frames) {
    const int n = std::min(total_frames - off, window_frames);
    plan.push_back({off, n, plen});
    plen = n - stride_frames;
    off += stride_frames;
  }
  return plan;
}

CodeGenResult generate_long(const MusicgenDecoder& decoder, const LongFormRequest& lr,
                            ThreadPool* pool) {
  CpuDecoderRunner runner(decoder, pool);
  return generate_long(runner, decoder.config(), lr);
}

CodeGenResult generate_long(DecoderRunner& runner, const DecoderConfig& cfg,
                            const LongFormRequest& lr) {
  const int B = lr.base.batch, K = cfg.num_codebooks, kc = K / cfg.audio_channels;
  const std::vector<Window> plan =
      plan_windows(lr.total_frames, lr.base.prompt_frames, lr.window_frames, lr.stride_frames);
  // Progress across windows: every window runs frames - prompt_frames + kc - 1 decoder calls.
  int total_steps = 0;
  for (const Window& w : plan) total_steps += w.frames + kc - (w.prompt_frames + 1);

  const int N = lr.total_frames;
  CodeGenResult out;
  out.frames = N;
  out.codes.assign(static_cast<size_t>(B) * K * N, 0);
  int written = 0;  // frames of the output filled so far
  if (lr.base.prompt_frames > 0) {
    const int Tp = lr.base.prompt_frames;
    for (int bk = 0; bk < B * K; ++bk)
      std::copy_n(lr.base.prompt_codes->data() + static_cast<size_t>(bk) * Tp, Tp,
                  out.codes.data() + static_cast<size_t>(bk) * N);
    written = Tp;
  }
  std::vector<int32_t> prompt = lr.base.prompt_codes ? *lr.base.prompt_codes : std::vector<int32_t>{};
  int steps_done = 0;
  int reported = 0;  // output frames passed to lr.base.on_frames
  for (const Window& w : plan) {
    CodeGenRequest req = lr.base;
    if (lr.base.on_frames)  // window frame t is output frame w.offset + t; report each once
      req.on_frames = [&, offset = w.offset](int first, int count, const std::vector<int32_t>& codes) {
        const int skip = std::max(0, reported - (offset + first));
        if (skip >= count) return true;
        const int n = count - skip;
        std::vector<int32_t> part(static_cast<size_t>(B) * K * n);
        for (int bk = 0; bk < B * K; ++bk)
          std::copy_n(codes.data() + static_cast<size_t>(bk) * count + skip, n,
                      part.data() + static_cast<size_t>(bk) * n);
        const int begin = offset + first + skip;
        if (begin != reported) fail(ErrorCode::kInvalidArgument, "internal: long-form frames out of order");
        reported = begin + n;
        return lr.base.on_frames(begin, n, part);
      };
    req.prompt_codes = w.prompt_frames > 0 ? &prompt : nullptr;
    req.prompt_frames = w.prompt_frames;
    req.max_length = w.frames + kc;
    req.step_offset = steps_done;
    req.step_total = total_steps;
    if (lr.before_window) lr.before_window(w, &req);
    const CodeGenResult g = generate_codes(runner, cfg, req);
    steps_done += codegen_steps(req);
    if (lr.after_window) lr.after_window(w, req, g);
    // Append the new frames, then carry the tail (frames after the stride) as the next prompt.
    const int fresh = g.frames - w.prompt_frames;
    for (int bk = 0; bk < B * K; ++bk)
      std::copy_n(g.codes.data() + static_cast<size_t>(bk) * g.frames + w.prompt_frames, fresh,
                  out.codes.data() + static_cast<size_t>(bk) * N + written);
    written += fresh;
    const int tail = std::max(0, g.frames - lr.stride_frames);
    prompt.assign(static_cast<size_t>(B) * K * tail, 0);
    for (int bk = 0; bk < B * K; ++bk)
      std::copy_n(g.codes.data() + static_cast<size_t>(bk) * g.frames + lr.stride_frames, tail,
                  prompt.data() + static_cast<size_t>(bk) * tail);
  }
  if (written != N) fail(ErrorCode::kInvalidArgument, "internal: long-form stitching produced " +
                                                          std::to_string(written) + " of " +
                                                          std::to_string(N) + " frames");
  return out;
}

}  // namespace musicgen
