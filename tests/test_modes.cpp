// Every generation mode against Hugging Face transformers goldens: audio continuation (with and
// without text, a left-padded batch), stereo checkpoints (text and continuation), melody
// checkpoints (with and without a melody, stereo-melody), and the melody prefix logits.
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "models/musicgen_decoder.h"
#include "musicgen/musicgen.h"
#include "golden_runs.h"
#include "test_util.h"

namespace musicgen {
namespace {

using testing::expect_close;
using testing::fixture_dir;
using testing::load_golden;

constexpr double kTol = 1e-4;

using Case = testing::ModeRun;


class Modes : public ::testing::TestWithParam<Case> {};

TEST_P(Modes, GreedyCodesAndAudioMatchHf) { testing::check_mode_run(GetParam(), "cpu"); }

INSTANTIATE_TEST_SUITE_P(
    Fixtures, Modes,
    ::testing::Values(Case{"tiny-a", "cont_text", true, false},
                      Case{"tiny-a", "cont_notext", true, false},
                      Case{"tiny-a", "cont_batch", true, false},
                      Case{"tiny-stereo", "stereo_text", false, false},
                      Case{"tiny-stereo", "stereo_cont", true, false},
                      Case{"tiny-melody", "melody_text", false, true},
                      Case{"tiny-melody", "melody_none", false, false},
                      Case{"tiny-stereo-melody", "smelody_text", false, true},
                      // configs transformers accepts: T5 without blocks, EnCodec without
                      // residual blocks, 2 codebooks for 4 quantizers (tools/reference)
                      Case{"tiny-edge2", "greedy_g3", false, false},
                      Case{"tiny-edge2", "uncond", false, false}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::string n = i.param.fixture + "_" + i.param.run;
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

// Prefix conditioning stage by stage: the HF prefix [chroma_235, text] fed before the tokens,
// prefill of 3 tokens then cached single steps, against one full HF forward.
class MelodyLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(MelodyLogits, PrefixThenCachedSteps) {
  const std::string dir = fixture_dir(GetParam());
  const MusicgenConfig cfg = load_musicgen_config(dir);
  ASSERT_TRUE(cfg.melody);
  const TensorStore store = TensorStore::open_checkpoint(dir);
  const TensorStore golden = load_golden(GetParam());
  const MusicgenDecoder dec(cfg.decoder, cfg.text_encoder.d_model, store, cfg.num_chroma);
  ThreadPool pool(2);
  const ConstTensor prefix = golden.get_f32("logits.prefix");  // [B, P0, H]
  const auto ids64 = golden.get_i64("logits.decoder_input_ids");  // [B*K, S]
  const std::vector<int32_t> ids(ids64.begin(), ids64.end());
  const ConstTensor full = golden.get_f32("logits.full");  // [B*K, S, V]
  const int B = prefix.dim(0), P0 = prefix.dim(1), K = cfg.decoder.num_codebooks,
            V = cfg.decoder.vocab_size, S = full.dim(1);
  DecoderState st = dec.new_state(B, P0 + S);
  std::vector<float> logits;
  auto slice = [&](int s0, int n) {
    std::vector<int32_t> t(static_cast<size_t>(B) * K * n);
    for (int r = 0; r < B * K; ++r)
      for (int s = 0; s < n; ++s) t[r * n + s] = ids[r * S + s0 + s];
    return t;
  };
  const int prefill = 3;
  dec.forward(st, slice(0, prefill).data(), prefill, true, &logits, &pool, prefix.data, P0);
  for (int r = 0; r < B * K; ++r)
    for (int s = 0; s < prefill; ++s)
      ASSERT_LE(testing::relative_max_error(logits.data() + (r * prefill + s) * V,
                                            full.data + (r * S + s) * V, V),
                kTol)
          << "prefill row " << r << " pos " << s;
  for (int s = prefill; s < S; ++s) {
    dec.forward(st, slice(s, 1).data(), 1, false, &logits, &pool);
    for (int r = 0; r < B * K; ++r)
      ASSERT_LE(testing::relative_max_error(logits.data() + r * V, full.data + (r * S + s) * V, V),
                kTol)
          << "cached step " << s << " row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MelodyLogits,
                         ::testing::Values("tiny-melody", "tiny-stereo-melody"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           return i.param == "tiny-melody" ? std::string("mono") : std::string("stereo");
                         });

TEST(Modes, MelodyOnNonMelodyModelIsRejected) {
  auto model = Model::load(fixture_dir("tiny-a"));
  Session session(model, {.threads = 1});
  GenerationOptions opt;
  opt.prompts = {"x"};
  opt.max_new_tokens = 8;
  AudioData a;
  a.sample_rate = 32000;
  a.channels = 1;
  a.frames = 32000;
  a.samples.assign(32000, 0.1f);
  opt.melodies.push_back(a);
  try {
    session.generate(opt);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("takes no melody"), std::string::npos) << e.what();
  }
}

TEST(Modes, AudioPromptWithFewerCodebooksThanQuantizersIsRejected) {
  auto model = Model::load(fixture_dir("tiny-edge2"));  // 2 codebooks, a 4-quantizer codec
  Session session(model, {.threads = 1});
  GenerationOptions opt;
  opt.max_new_tokens = 8;
  AudioData a;
  a.sample_rate = 32000;
  a.channels = 1;
  a.frames = 3200;
  a.samples.assign(3200, 0.1f);
  opt.audio_prompts.push_back(a);
  try {
    session.generate(opt);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("cannot be continued"), std::string::npos) << e.what();
  }
}

TEST(Modes, PromptLongerThanDurationIsRejected) {
  auto model = Model::load(fixture_dir("tiny-a"));
  Session session(model, {.threads = 1});
  GenerationOptions opt;
  opt.duration_s = 0.5;
  AudioData a;
  a.sample_rate = 32000;
  a.channels = 1;
  a.frames = 32000;  // 1 s prompt
  a.samples.assign(32000, 0.1f);
  opt.audio_prompts.push_back(a);
  EXPECT_THROW(session.generate(opt), Error);
}

TEST(Modes, StereoPromptOnMonoModelIsMixed) {
  auto model = Model::load(fixture_dir("tiny-a"));
  Session session(model, {.threads = 1});
  AudioData stereo;
  stereo.sample_rate = 32000;
  stereo.channels = 2;
  stereo.frames = 3200;
  for (int c = 0; c < 2; ++c)
    for (int t = 0; t < 3200; ++t) stereo.samples.push_back(0.3f * std::sin(0.01f * t * (c + 1)));
  AudioData mono = stereo;
  mono.channels = 1;
  mono.samples.resize(3200);
  for (int t = 0; t < 3200; ++t) mono.samples[t] = 0.5f * (stereo.samples[t] + stereo.samples[3200 + t]);
  GenerationOptions opt;
  opt.max_new_tokens = 8;
  opt.greedy = true;
  opt.audio_prompts = {stereo};
  const GenerationResult a = session.generate(opt);
  opt.audio_prompts = {mono};
  const GenerationResult b = session.generate(opt);
  EXPECT_EQ(a.channels, 1);
  EXPECT_EQ(a.codes, b.codes);
}

}  // namespace
}  // namespace musicgen
