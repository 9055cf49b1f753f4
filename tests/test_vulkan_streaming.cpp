// Streaming (GenerationOptions::on_audio) with the decoder on a Vulkan device: the audio is
// decoded by the CPU codec while the codes arrive, so the pieces are the result's audio and equal
// the CPU decode of the generated codes bit for bit. Its own target: a Vulkan driver (lavapipe)
// leaks at unload, so it runs without LeakSanitizer (tests/CMakeLists.txt), unlike
// test_streaming. Skipped (visibly) without Vulkan.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen {
namespace {

TEST(StreamingVulkan, ModelStreamsTheCpuDecode) {
  std::shared_ptr<const Model> gpu;
  try {
    if (list_devices().empty()) GTEST_SKIP() << "no Vulkan adapter on this system";
    gpu = Model::load(testing::fixture_dir("tiny-a"), {.device = "vulkan"});
  } catch (const Error& e) {
    GTEST_SKIP() << "no Vulkan here: " << e.what();
  }
  Session session(gpu, {.threads = 1});
  GenerationOptions opt;
  opt.prompts = {"80s pop track"};
  opt.duration_s = 1.0;  // 50 frames: a piece at 36 frames, the rest at the end
  opt.greedy = true;
  std::vector<float> pieces;
  int calls = 0;
  opt.on_audio = [&](const float* audio, int batch, int channels, int64_t start, int64_t count) {
    EXPECT_EQ(batch, 1);
    EXPECT_EQ(channels, 1);
    EXPECT_EQ(start, static_cast<int64_t>(pieces.size()));
    pieces.insert(pieces.end(), audio, audio + count);
    ++calls;
    return true;
  };
  const GenerationResult r = session.generate(opt);
  EXPECT_EQ(calls, 2);
  ASSERT_EQ(pieces.size(), r.audio.size());
  EXPECT_EQ(0, std::memcmp(pieces.data(), r.audio.data(), sizeof(float) * pieces.size()));
  auto cpu = Model::load(testing::fixture_dir("tiny-a"));
  Session cpu_session(cpu, {.threads = 1});
  const GenerationResult decoded = cpu_session.decode_codes(r.codes, 1, r.frames);
  ASSERT_EQ(decoded.audio.size(), pieces.size());
  EXPECT_EQ(0, std::memcmp(decoded.audio.data(), pieces.data(), sizeof(float) * pieces.size()));
  // And the non-streamed GPU run: the same codes, audio within the GPU codec's tolerance.
  opt.on_audio = nullptr;
  const GenerationResult whole = session.generate(opt);
  EXPECT_EQ(whole.codes, r.codes);
  ASSERT_EQ(whole.audio.size(), r.audio.size());
  EXPECT_LT(testing::relative_max_error(whole.audio.data(), r.audio.data(), r.audio.size()), 1e-4);
}

}  // namespace
}  // namespace musicgen
