// Stage-by-stage parity with Hugging Face transformers on the committed tiny checkpoints
// (tests/fixtures/tiny-*, made by tools/reference/make_fixtures.py). Golden values come from the
// reference implementation only.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "generation/generator.h"
#include "generation/sampling.h"
#include "models/musicgen_decoder.h"
#include "models/t5_encoder.h"
#include "musicgen/musicgen.h"
#include "golden_runs.h"
#include "test_util.h"
#include "tokenizer/t5_tokenizer.h"

namespace musicgen {
namespace {

using testing::expect_close;
using testing::fixture_dir;
using testing::load_golden;

constexpr double kTol = 1e-4;

using testing::golden_json;

std::vector<std::string> prompts_of(const std::string& name) {
  return golden_json(name).at("text").at("prompts").get<std::vector<std::string>>();
}

std::vector<int32_t> to_i32(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

Tensor to_tensor(const ConstTensor& c) {
  Tensor t(c.shape);
  std::copy_n(c.data, c.numel(), t.ptr());
  return t;
}

class Parity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fixture_dir(GetParam());
    cfg_ = load_musicgen_config(dir_);
    store_ = TensorStore::open_checkpoint(dir_);
    golden_ = load_golden(GetParam());
  }
  std::string dir_;
  MusicgenConfig cfg_;
  TensorStore store_;
  TensorStore golden_;
  ThreadPool pool_{2};
};

TEST_P(Parity, TokenizerMatchesHf) {
  T5Tokenizer tok(dir_ + "/spiece.model");
  const TokenBatch b = tok.encode_batch(prompts_of(GetParam()));
  EXPECT_EQ(b.ids, to_i32(golden_.get_i64("text.input_ids")));
  EXPECT_EQ(b.mask, to_i32(golden_.get_i64("text.attention_mask")));
  EXPECT_EQ(b.length, golden_.find("text.input_ids")->shape[1]);
}

TEST_P(Parity, T5EncoderOutput) {
  T5Encoder t5(cfg_.text_encoder, store_);
  const auto ids = to_i32(golden_.get_i64("text.input_ids"));
  const auto mask = to_i32(golden_.get_i64("text.attention_mask"));
  const Shape& s = golden_.find("text.input_ids")->shape;
  const Tensor out = t5.forward(ids, mask, s[0], s[1], &pool_);
  expect_close(out.data, golden_.get_f32("t5.last_hidden_state"), kTol, "T5 last_hidden_state");
}

TEST_P(Parity, EncToDecProjection) {
  MusicgenDecoder dec(cfg_.decoder, cfg_.text_encoder.d_model, store_);
  const Tensor text = to_tensor(golden_.get_f32("t5.last_hidden_state"));
  const auto mask = to_i32(golden_.get_i64("text.attention_mask"));
  const Tensor proj = dec.project_text(text, mask, &pool_);
  expect_close(proj.data, golden_.get_f32("proj.hidden"), kTol, "enc_to_dec_proj * mask");
}

// Prefill of 3 positions, then 3 cached single steps, against one full HF forward.
TEST_P(Parity, DecoderLogitsPrefillAndCachedSteps) {
  MusicgenDecoder dec(cfg_.decoder, cfg_.text_encoder.d_model, store_);
  const Tensor proj = to_tensor(golden_.get_f32("proj.hidden"));
  const auto mask = to_i32(golden_.get_i64("text.attention_mask"));
  const auto ids = to_i32(golden_.get_i64("logits.decoder_input_ids"));  // [B*K, S]
  const ConstTensor full = golden_.get_f32("logits.full");                // [B*K, S, V]
  const int B = proj.dim(0), K = cfg_.decoder.num_codebooks, V = cfg_.decoder.vocab_size;
  const int S = static_cast<int>(full.dim(1));
  ASSERT_EQ(full.dim(0), B * K);
  ASSERT_EQ(full.dim(2), V);
  DecoderState st = dec.new_state(B, S);
  dec.set_text(st, proj, mask, &pool_);
  auto slice = [&](int s0, int n) {
    std::vector<int32_t> t(static_cast<size_t>(B) * K * n);
    for (int r = 0; r < B * K; ++r)
      for (int s = 0; s < n; ++s) t[r * n + s] = ids[r * S + s0 + s];
    return t;
  };
  auto expected = [&](int s0, int n) {
    std::vector<float> e(static_cast<size_t>(B) * K * n * V);
    for (int r = 0; r < B * K; ++r)
      for (int s = 0; s < n; ++s)
        std::copy_n(full.data + (static_cast<int64_t>(r) * S + s0 + s) * V, V,
                    e.data() + (static_cast<int64_t>(r) * n + s) * V);
    return e;
  };
  const int prefill = 3;
  std::vector<float> logits;
  dec.forward(st, slice(0, prefill).data(), prefill, true, &logits, &pool_);
  const auto e0 = expected(0, prefill);
  EXPECT_LE(testing::relative_max_error(logits.data(), e0.data(), e0.size()), kTol) << "prefill";
  for (int s = prefill; s < S; ++s) {
    dec.forward(st, slice(s, 1).data(), 1, false, &logits, &pool_);
    const auto e = expected(s, 1);
    ASSERT_EQ(logits.size(), e.size());
    EXPECT_LE(testing::relative_max_error(logits.data(), e.data(), e.size()), kTol)
        << "cached step " << s;
  }
}

// Self-attention runs over (stream, head) on the pool from the first position: a prefill and 40
// cached steps give bitwise the same logits with 1, 2 and 3 threads, for the float32 path and
// the 16-bit KV cache of a quantized one.
TEST_P(Parity, DecoderStepsIndependentOfThreadCount) {
  const Tensor proj = to_tensor(golden_.get_f32("proj.hidden"));
  const auto mask = to_i32(golden_.get_i64("text.attention_mask"));
  const int B = proj.dim(0), K = cfg_.decoder.num_codebooks, V = cfg_.decoder.vocab_size;
  for (WeightStorage storage : {WeightStorage::kF32, WeightStorage::kQ8}) {
    DecoderLoadOptions lo;
    lo.weights = storage;
    MusicgenDecoder dec(cfg_.decoder, cfg_.text_encoder.d_model, store_, 0, lo);
    std::vector<std::vector<float>> runs;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      DecoderState st = dec.new_state(B, 48);
      dec.set_text(st, proj, mask, &pool);
      std::vector<float> logits, all;
      std::vector<int32_t> tokens(static_cast<size_t>(B) * K * 4);
      for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37) % V);
      dec.forward(st, tokens.data(), 4, true, &logits, &pool);
      all.insert(all.end(), logits.begin(), logits.end());
      for (int s = 0; s < 40; ++s) {
        std::vector<int32_t> t(static_cast<size_t>(B) * K);
        for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int32_t>((i * 11 + s * 7) % V);
        dec.forward(st, t.data(), 1, false, &logits, &pool);
        all.insert(all.end(), logits.begin(), logits.end());
      }
      runs.push_back(std::move(all));
    }
    EXPECT_EQ(runs[0], runs[1]) << "2 threads";
    EXPECT_EQ(runs[0], runs[2]) << "3 threads";
  }
}

TEST_P(Parity, SamplingWarpersMatchHf) {
  const ConstTensor in = golden_.get_f32("warp.input");
  const ConstTensor out = golden_.get_f32("warp.output");
  const auto w = golden_json(GetParam()).at("warp");
  SamplingParams p;
  p.temperature = w.at("temperature").get<float>();
  p.top_k = w.at("top_k").get<int>();
  p.top_p = w.at("top_p").get<float>();
  const int rows = in.dim(0), V = in.dim(1);
  for (int r = 0; r < rows; ++r) {
    std::vector<float> s(in.data + r * V, in.data + (r + 1) * V);
    apply_warpers(s.data(), V, p);
    for (int i = 0; i < V; ++i) {
      const float e = out.data[r * V + i];
      if (std::isinf(e)) {
        EXPECT_TRUE(std::isinf(s[i]) && s[i] < 0) << "row " << r << " token " << i << " kept";
      } else {
        EXPECT_NEAR(s[i], e, 1e-5 * std::max(1.0f, std::fabs(e))) << "row " << r << " token " << i;
      }
    }
  }
}

using RunSpec = testing::TextRun;
void check_run(const std::string& fixture, const RunSpec& run) {
  testing::check_text_run(fixture, run, "cpu");
}

TEST_P(Parity, GreedyBatchGuidance3) { check_run(GetParam(), {"greedy_g3", true, false, 3.0f}); }
TEST_P(Parity, GreedyBatchGuidance1) { check_run(GetParam(), {"greedy_g1", true, false, 1.0f}); }
TEST_P(Parity, GreedySingleGuidance3) { check_run(GetParam(), {"single_g3", false, false, 3.0f}); }
TEST_P(Parity, GreedyUnconditional) { check_run(GetParam(), {"uncond", false, true, 1.0f}); }

// The processed (guided) scores of every greedy step, against HF's output_scores.
TEST_P(Parity, GuidedScoresEveryStep) {
  MusicgenDecoder dec(cfg_.decoder, cfg_.text_encoder.d_model, store_);
  const Tensor proj = to_tensor(golden_.get_f32("proj.hidden"));
  const auto mask = to_i32(golden_.get_i64("text.attention_mask"));
  const ConstTensor scores = golden_.get_f32("greedy_g3.scores");  // [steps, B*K, V]
  CodeGenRequest req;
  req.batch = proj.dim(0);
  req.text = &proj;
  req.text_mask = &mask;
  req.max_length = golden_json(GetParam()).at("runs").at("greedy_g3").at("max_new_tokens").get<int>() + 1;
  req.sampling.do_sample = false;
  req.sampling.guidance_scale = 3.0f;
  const int64_t per_step = scores.dim(1) * scores.dim(2);
  int seen = 0;
  req.on_scores = [&](int step, const std::vector<float>& s) {
    ASSERT_LT(step, scores.dim(0));
    ASSERT_EQ(static_cast<int64_t>(s.size()), per_step);
    EXPECT_LE(testing::relative_max_error(s.data(), scores.data + step * per_step, per_step), kTol)
        << "step " << step;
    ++seen;
  };
  generate_codes(dec, req, &pool_);
  EXPECT_EQ(seen, scores.dim(0));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity, ::testing::Values("tiny-a", "tiny-b", "tiny-edge"));

}  // namespace
}  // namespace musicgen
