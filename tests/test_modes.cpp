// Every generation mode against Hugging Face transformers goldens: audio continuation (with and
// without text, a left-padded batch), stereo checkpoints (text and continuation), melody
// checkpoints (with and without a melody, stereo-melody), and the melody prefix logits.
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "models/musicgen_decoder.h"
#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen {
namespace {

using testing::expect_close;
using testing::fixture_dir;
using testing::load_golden;

constexpr double kTol = 1e-4;

nlohmann::json run_info(const std::string& fixture, const std::string& run) {
  std::ifstream in(fixture_dir(fixture) + "/golden.json");
  return nlohmann::json::parse(in).at("runs").at(run);
}

std::vector<std::string> texts_of(const nlohmann::json& info) {
  for (const char* key : {"texts", "prompts"})
    if (info.contains(key) && !info[key].is_null()) return info[key].get<std::vector<std::string>>();
  return {};
}

// Item b of a golden [B, C, L] waveform, without its left padding.
AudioData golden_audio(const ConstTensor& t, int b, int64_t pad) {
  AudioData a;
  a.sample_rate = 32000;
  a.channels = static_cast<int>(t.dim(1));
  const int64_t L = t.dim(2);
  a.frames = L - pad;
  for (int c = 0; c < a.channels; ++c)
    a.samples.insert(a.samples.end(), t.data + (b * a.channels + c) * L + pad,
                     t.data + (b * a.channels + c) * L + L);
  return a;
}

struct Case {
  std::string fixture, run;
  bool audio_prompt = false;
  bool melody = false;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.fixture << "/" << c.run; }

class Modes : public ::testing::TestWithParam<Case> {};

TEST_P(Modes, GreedyCodesAndAudioMatchHf) {
  const Case& c = GetParam();
  const TensorStore golden = load_golden(c.fixture);
  const nlohmann::json info = run_info(c.fixture, c.run);
  auto model = Model::load(fixture_dir(c.fixture));
  Session session(model, {.threads = 2});
  GenerationOptions opt;
  opt.prompts = texts_of(info);
  opt.max_new_tokens = info.at("max_new_tokens").get<int>();
  opt.guidance_scale = info.at("guidance_scale").get<float>();
  opt.greedy = true;
  const int batch = info.at("batch").get<int>();
  if (c.audio_prompt) {
    const ConstTensor in = golden.get_f32(c.run + ".input_values");
    const auto pads = info.at("left_padding").get<std::vector<int64_t>>();
    for (int b = 0; b < batch; ++b) opt.audio_prompts.push_back(golden_audio(in, b, pads[b]));
  }
  if (c.melody) {
    const ConstTensor in = golden.get_f32("chroma.input");  // [1, L] mono 32 kHz
    AudioData a;
    a.sample_rate = 32000;
    a.channels = 1;
    a.frames = in.dim(1);
    a.samples.assign(in.data, in.data + in.numel());
    opt.melodies.push_back(a);
  }
  const GenerationResult r = session.generate(opt);
  const auto codes = golden.get_i64(c.run + ".codes");
  const Shape& cs = golden.find(c.run + ".codes")->shape;
  ASSERT_EQ(r.batch, cs[0]);
  ASSERT_EQ(r.num_codebooks, cs[1]);
  ASSERT_EQ(r.frames, cs[2]);
  EXPECT_EQ(r.codes, std::vector<int32_t>(codes.begin(), codes.end())) << "codes differ from HF";
  // HF's audio keeps the left padding of a batch (batch_decode removes it; see below).
  expect_close(r.audio, golden.get_f32(c.run + ".audio"), kTol, c.run + " waveform");
  if (info.contains("left_padding")) {
    const auto pads = info.at("left_padding").get<std::vector<int64_t>>();
    ASSERT_EQ(r.leading_padding, pads);
    for (int b = 0; b < batch && golden.has(c.run + ".audio_trimmed." + std::to_string(b)); ++b) {
      const ConstTensor trimmed = golden.get_f32(c.run + ".audio_trimmed." + std::to_string(b));
      EXPECT_EQ(r.samples - r.leading_padding[b], trimmed.dim(1));
      expect_close(r.audio.data() + b * r.samples + r.leading_padding[b],
                   r.samples - r.leading_padding[b], trimmed, kTol, "batch_decode item");
    }
  }
}

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
