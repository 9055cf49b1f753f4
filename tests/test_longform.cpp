// Long-form generation (audiocraft's sliding window): the window plan, the prompt carried from
// window to window, and stitching without dropped or duplicated frames.
#include "core/error.h"
#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "generation/generator.h"
#include "models/musicgen_decoder.h"
#include "models/t5_encoder.h"
#include "test_util.h"
#include "tokenizer/t5_tokenizer.h"

namespace musicgen {
namespace {

TEST(LongForm, PlanFor75SecondsMatchesAudiocraft) {
  // audiocraft _generate_tokens with duration 75, max_duration 30, extend_stride 18 at 50 Hz.
  const auto plan = plan_windows(3750, 0, 1500, 900);
  ASSERT_EQ(plan.size(), 4u);
  const int offsets[] = {0, 900, 1800, 2700}, frames[] = {1500, 1500, 1500, 1050},
            prompts[] = {0, 600, 600, 600};
  int new_frames = 0;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(plan[i].offset, offsets[i]);
    EXPECT_EQ(plan[i].frames, frames[i]);
    EXPECT_EQ(plan[i].prompt_frames, prompts[i]);
    new_frames += plan[i].frames - plan[i].prompt_frames;
  }
  EXPECT_EQ(new_frames, 3750);
}

TEST(LongForm, PlanWithUserPromptAndShortRequests) {
  // 60 s: 1500, 1500 (900 new), 1200 (600 new), as in the reference's worked example.
  const auto p60 = plan_windows(3000, 0, 1500, 900);
  ASSERT_EQ(p60.size(), 3u);
  EXPECT_EQ(p60[2].frames, 1200);
  // Within one window: a single window holding the user prompt.
  const auto one = plan_windows(1000, 250, 1500, 900);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].prompt_frames, 250);
  EXPECT_EQ(one[0].frames, 1000);
  EXPECT_THROW(plan_windows(3000, 0, 1500, 1500), Error);
}

// Runs 75 s on the tiny fixture and checks what each window saw and produced.
TEST(LongForm, WindowsArePromptedByThePreviousTailAndStitchExactly) {
  const std::string dir = testing::fixture_dir("tiny-a");
  const MusicgenConfig cfg = load_musicgen_config(dir);
  const TensorStore store = TensorStore::open_checkpoint(dir);
  const T5Encoder t5(cfg.text_encoder, store);
  const MusicgenDecoder dec(cfg.decoder, cfg.text_encoder.d_model, store);
  const T5Tokenizer tok(dir + "/spiece.model");
  ThreadPool pool(2);
  const TokenBatch tokens = tok.encode_batch({"slow blues"});
  const Tensor text = t5.forward(tokens.ids, tokens.mask, 1, tokens.length, &pool);
  const Tensor proj = dec.project_text(text, tokens.mask, &pool);

  Rng rng(5);
  LongFormRequest lr;
  lr.base.batch = 1;
  lr.base.text = &proj;
  lr.base.text_mask = &tokens.mask;
  lr.base.sampling.guidance_scale = 3.0f;
  lr.base.rng = &rng;
  lr.total_frames = 3750;
  const int K = cfg.decoder.num_codebooks;
  std::vector<std::vector<int32_t>> window_codes, window_prompts;
  std::vector<Window> windows;
  int last_step = 0, last_total = 0;
  lr.base.on_step = [&](int step, int total) {
    EXPECT_EQ(step, last_step + 1);  // progress counts across windows
    last_step = step;
    last_total = total;
    return true;
  };
  lr.after_window = [&](const Window& w, const CodeGenRequest& r, const CodeGenResult& g) {
    windows.push_back(w);
    EXPECT_EQ(g.frames, w.frames);
    EXPECT_EQ(r.prompt_frames, w.prompt_frames);
    window_prompts.push_back(r.prompt_codes ? *r.prompt_codes : std::vector<int32_t>{});
    window_codes.push_back(g.codes);
  };
  // Streaming hook: every output frame once, in order, as soon as it is final (frame f of the
  // first window after decoder step f + K), with the codes of the stitched output.
  std::vector<int32_t> streamed(static_cast<size_t>(K) * 3750, -1);
  int next_frame = 0, step_at_frame_100 = -1;
  lr.base.on_frames = [&](int first, int count, const std::vector<int32_t>& codes) {
    EXPECT_EQ(first, next_frame);
    EXPECT_EQ(codes.size(), static_cast<size_t>(K) * count);
    for (int k = 0; k < K; ++k)
      for (int t = 0; t < count; ++t) streamed[k * 3750 + first + t] = codes[k * count + t];
    if (first <= 100 && 100 < first + count) step_at_frame_100 = last_step;
    next_frame = first + count;
    return true;
  };
  const CodeGenResult out = generate_long(dec, lr, &pool);
  ASSERT_EQ(out.frames, 3750);
  EXPECT_EQ(next_frame, 3750);
  EXPECT_EQ(streamed, out.codes);
  EXPECT_EQ(step_at_frame_100, 100 + K);
  ASSERT_EQ(windows.size(), 4u);
  EXPECT_EQ(last_step, last_total);
  for (size_t w = 1; w < windows.size(); ++w) {
    // Window w's prompt is window w-1's frames from the stride on, and it regenerates them intact.
    const int prev = windows[w - 1].frames, p = windows[w].prompt_frames;
    ASSERT_EQ(p, prev - 900);
    for (int k = 0; k < K; ++k)
      for (int t = 0; t < p; ++t) {
        ASSERT_EQ(window_prompts[w][k * p + t], window_codes[w - 1][k * prev + 900 + t]);
        ASSERT_EQ(window_codes[w][k * windows[w].frames + t], window_prompts[w][k * p + t]);
      }
  }
  // Stitching: output frame f comes from the window whose new frames cover it.
  for (size_t w = 0; w < windows.size(); ++w) {
    const int begin = windows[w].offset + windows[w].prompt_frames;
    for (int k = 0; k < K; ++k)
      for (int t = windows[w].prompt_frames; t < windows[w].frames; ++t)
        ASSERT_EQ(out.codes[k * 3750 + windows[w].offset + t],
                  window_codes[w][k * windows[w].frames + t])
            << "window " << w << " frame " << t << " (output " << begin << "+)";
  }
}

}  // namespace
}  // namespace musicgen
