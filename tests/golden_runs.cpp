#include "golden_runs.h"

#include <gtest/gtest.h>

#include <fstream>

#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen::testing {

namespace {

constexpr double kTol = 1e-4;

std::vector<std::string> texts_of(const nlohmann::json& info) {
  for (const char* key : {"texts", "prompts"})
    if (info.contains(key) && !info[key].is_null()) return info[key].get<std::vector<std::string>>();
  return {};
}


void expect_codes(const GenerationResult& r, const TensorStore& golden, const std::string& run) {
  const auto codes = golden.get_i64(run + ".codes");
  const Shape& cs = golden.find(run + ".codes")->shape;
  ASSERT_EQ(r.batch, cs[0]);
  ASSERT_EQ(r.num_codebooks, cs[1]);
  ASSERT_EQ(r.frames, cs[2]);
  EXPECT_EQ(r.codes, std::vector<int32_t>(codes.begin(), codes.end()))
      << run << ": greedy codes differ from HF";
}

}  // namespace

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

nlohmann::json golden_json(const std::string& fixture) {
  std::ifstream in(fixture_dir(fixture) + "/golden.json");
  return nlohmann::json::parse(in);
}

void check_mode_run(const ModeRun& c, const std::string& device) {
  const TensorStore golden = load_golden(c.fixture);
  const nlohmann::json info = golden_json(c.fixture).at("runs").at(c.run);
  auto model = Model::load(fixture_dir(c.fixture), {.device = device});
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
  expect_codes(r, golden, c.run);
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

void check_text_run(const std::string& fixture, const TextRun& run, const std::string& device) {
  const TensorStore golden = load_golden(fixture);
  const nlohmann::json info = golden_json(fixture);
  auto model = Model::load(fixture_dir(fixture), {.device = device});
  Session session(model, {.threads = 2});
  GenerationOptions opt;
  const auto prompts = info.at("text").at("prompts").get<std::vector<std::string>>();
  if (!run.unconditional)
    opt.prompts = run.batch_prompts ? prompts : std::vector<std::string>{prompts[0]};
  opt.max_new_tokens = info.at("runs").at(run.name).at("max_new_tokens").get<int>();
  opt.guidance_scale = run.guidance;
  opt.greedy = true;
  const GenerationResult r = session.generate(opt);
  expect_codes(r, golden, run.name);
  expect_close(r.audio, golden.get_f32(run.name + ".audio"), kTol, run.name + " waveform");
}

}  // namespace musicgen::testing
