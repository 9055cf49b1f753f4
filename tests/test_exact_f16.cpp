// Exact f16 storage (LoadOptions::exact_f16): float32 matrices whose values are all exactly
// representable in IEEE half are kept as half (an F16 checkpoint in place, an F32 one converted)
// and converted in the kernel. The results must be bitwise those of the plain float32 path, the
// decoder must stream half the bytes, and a matrix that is not exact must stay float32.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "format/safetensors_writer.h"
#include "musicgen/hub.h"
#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen {
namespace {

namespace fs = std::filesystem;
using testing::fixture_dir;

GenerationResult greedy_run(const std::shared_ptr<const Model>& model, bool audio_prompt) {
  Session session(model, {.threads = 2});
  GenerationOptions opt;
  opt.prompts = {"80s pop track with bassy drums and synth", "lo-fi beat"};
  opt.max_new_tokens = 12;
  opt.guidance_scale = 3.0f;
  opt.greedy = true;
  if (audio_prompt) {
    AudioData a;
    a.sample_rate = 32000;
    a.channels = 2;
    a.frames = 4000;
    for (int i = 0; i < 2 * 4000; ++i) a.samples.push_back(0.3f * std::sin(0.01f * i * (1 + i % 3)));
    opt.audio_prompts.push_back(a);
  }
  return session.generate(opt);
}

void expect_bitwise_equal(const GenerationResult& a, const GenerationResult& b) {
  EXPECT_EQ(a.codes, b.codes);
  ASSERT_EQ(a.audio.size(), b.audio.size());
  EXPECT_EQ(std::memcmp(a.audio.data(), b.audio.data(), a.audio.size() * sizeof(float)), 0)
      << "waveforms differ";
}

// The F16 fixture's tensors written back as F32 into a new checkpoint folder: every value is
// half-representable, except one value of `nudged` (when named), moved to the next float.
std::string f16_fixture_as_f32(const std::string& tag, const std::string& nudged = "") {
  const std::string dir = testing::make_temp_dir(tag);
  for (const char* f : {"config.json", "generation_config.json", "spiece.model"})
    fs::copy_file(fixture_dir("tiny-stereo-f16") + "/" + f, dir + "/" + f);
  const TensorStore src = TensorStore::open_checkpoint(fixture_dir("tiny-stereo-f16"));
  if (!nudged.empty() && src.find(nudged) == nullptr) ADD_FAILURE() << "no tensor " << nudged;
  std::vector<TensorDecl> decls;
  for (const std::string& name : src.names())
    decls.push_back({name, DType::kF32, src.find(name)->shape});
  SafetensorsWriter w(dir + "/model.safetensors", decls);
  for (const TensorDecl& d : decls) {
    const ConstTensor t = src.get_f32(d.name);
    std::vector<float> v(t.data, t.data + t.numel());
    if (d.name == nudged) v[v.size() / 2] = std::nextafter(v[v.size() / 2], 1.0f);
    w.write(v.data(), v.size() * 4);
  }
  w.finish();
  return dir;
}

TEST(ExactF16, F16CheckpointKeptAsHalfGivesBitwiseTheFloat32Path) {
  auto plain = Model::load(fixture_dir("tiny-stereo-f16"), {.exact_f16 = false});
  auto half = Model::load(fixture_dir("tiny-stereo-f16"));
  EXPECT_EQ(plain->info().decoder_exact_f16, 0);
  EXPECT_GT(half->info().decoder_matrices, 0);
  EXPECT_EQ(half->info().decoder_exact_f16, half->info().decoder_matrices);
  EXPECT_EQ(2 * half->info().decoder_step_bytes, plain->info().decoder_step_bytes);
  for (bool prompt : {false, true}) expect_bitwise_equal(greedy_run(plain, prompt), greedy_run(half, prompt));
}

TEST(ExactF16, F32CheckpointWithHalfValuesIsDetected) {
  const std::string dir = f16_fixture_as_f32("exact-f16");
  auto f32 = Model::load(dir);
  auto f16 = Model::load(fixture_dir("tiny-stereo-f16"));
  auto plain = Model::load(dir, {.exact_f16 = false});
  EXPECT_EQ(f32->info().decoder_exact_f16, f32->info().decoder_matrices);
  EXPECT_EQ(plain->info().decoder_exact_f16, 0);
  const GenerationResult r = greedy_run(f32, true);
  expect_bitwise_equal(r, greedy_run(plain, true));
  expect_bitwise_equal(r, greedy_run(f16, true));
  fs::remove_all(dir);
}

TEST(ExactF16, InfoReportsWhatTheLoaderKeepsAsHalf) {
  // One value of one step matrix moved off the half grid: `info` (inspect_model) and the loader
  // must both count that matrix out, and only it.
  const std::string dir =
      f16_fixture_as_f32("exact-f16-info", "decoder.model.decoder.layers.0.fc1.weight");
  const CheckpointSummary s = inspect_model(dir);
  auto m = Model::load(dir);
  EXPECT_GT(s.step_matrices, 1);
  EXPECT_EQ(s.step_matrices, m->info().decoder_matrices);
  EXPECT_EQ(s.step_matrices_f16_exact, s.step_matrices - 1);
  EXPECT_EQ(m->info().decoder_exact_f16, s.step_matrices_f16_exact);
  const CheckpointSummary f16 = inspect_model(fixture_dir("tiny-stereo-f16"));
  EXPECT_EQ(f16.step_matrices_f16_exact, f16.step_matrices);
  const CheckpointSummary random = inspect_model(fixture_dir("tiny-a"));
  EXPECT_GT(random.step_matrices, 0);
  EXPECT_EQ(random.step_matrices_f16_exact, 0);
  fs::remove_all(dir);
}

TEST(ExactF16, MatricesThatAreNotExactStayFloat32) {
  auto m = Model::load(fixture_dir("tiny-a"));  // random float32 values
  EXPECT_EQ(m->info().decoder_exact_f16, 0);
  EXPECT_GT(m->info().decoder_matrices, 0);
}

}  // namespace
}  // namespace musicgen
