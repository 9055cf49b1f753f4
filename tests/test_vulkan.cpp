// The Vulkan backend (src/gpu) on whatever adapter the system has: Mesa's lavapipe in CI, a real
// GPU in bench/gpu_check.sh. Shaders against their CPU twins, then whole greedy generations in
// every mode against the same transformers goldens as the CPU suites, long form, determinism and
// batch-composition independence, and the device-selection errors.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "generation/generator.h"
#include "gpu/context.h"
#include "gpu/vulkan_decoder.h"
#include "kernels/quant.h"
#include "models/musicgen_decoder.h"
#include "models/t5_encoder.h"
#include "musicgen/musicgen.h"
#include "golden_runs.h"
#include "test_util.h"
#include "tokenizer/t5_tokenizer.h"

namespace musicgen {
namespace {

// Skips (visibly) when the system has no Vulkan driver at all; CI installs lavapipe, so there
// the tests run.
std::shared_ptr<gpu::Context> open_or_skip() {
  try {
    return gpu::Context::open(-1);
  } catch (const Error& e) {
    return nullptr;
  }
}
#define REQUIRE_VULKAN(ctx)                                                     \
  auto ctx = open_or_skip();                                                    \
  if (!ctx) GTEST_SKIP() << "no Vulkan adapter on this system (install mesa-vulkan-drivers)"

// y = x · Wᵀ on the GPU through the matvec shader of `storage`, for m rows.
std::vector<float> gpu_matvec(gpu::Context& ctx, const Linear& lin, const std::vector<float>& x,
                              int m, uint32_t flags, const std::vector<float>& y0) {
  const int64_t n = lin.out_features(), k = lin.in_features();
  gpu::Buffer xb = ctx.create_buffer(x.size() * 4, false);
  ctx.upload(xb, x.data(), x.size() * 4);
  std::vector<uint8_t> w, s;
  std::string shader;
  if (lin.storage == WeightStorage::kF32) {
    const auto* p = reinterpret_cast<const uint8_t*>(lin.weight.data);
    w.assign(p, p + n * k * 4);
    shader = "matvec_f32";
  } else {
    const kernels::QMatrix& q = lin.qweight;
    w.assign(q.data, q.data + kernels::q_data_bytes(q.type, n, k));
    if (q.scales) {
      const auto* sp = reinterpret_cast<const uint8_t*>(q.scales);
      s.assign(sp, sp + kernels::q_scale_bytes(q.type, n, k));
    }
    shader = std::string("matvec_") + kernels::qtype_name(q.type);
  }
  gpu::Buffer wb = ctx.create_buffer(w.size(), false), sb = ctx.create_buffer(std::max<size_t>(4, s.size()), false);
  ctx.upload(wb, w.data(), w.size());
  if (!s.empty()) ctx.upload(sb, s.data(), s.size());
  gpu::Buffer bb = ctx.create_buffer(n * 4, false);
  if (!lin.bias.empty()) ctx.upload(bb, lin.bias.data, n * 4);
  gpu::Buffer yb = ctx.create_buffer(m * n * 4, false);
  ctx.upload(yb, y0.data(), m * n * 4);
  struct {
    uint32_t m, n, k, x_off, ldx, y_off, ldy, flags, kp, nbp;
  } p{static_cast<uint32_t>(m), static_cast<uint32_t>(n), static_cast<uint32_t>(k), 0,
      static_cast<uint32_t>(k), 0, static_cast<uint32_t>(n), flags,
      static_cast<uint32_t>(kernels::q_padded_k(k)), static_cast<uint32_t>(kernels::q_scale_stride(k))};
  {
    gpu::Recorder r(ctx, 1);
    ctx.run_once([&](VkCommandBuffer cb) {
      r.begin(cb);
      r.dispatch(shader, {&xb, &wb, &sb, &bb, &yb}, &p, sizeof(p), static_cast<uint32_t>((n + 3) / 4));
    });
  }
  std::vector<float> y(m * n);
  ctx.download(yb, y.data(), y.size() * 4);
  for (gpu::Buffer* b : {&xb, &wb, &sb, &bb, &yb}) ctx.destroy(*b);
  return y;
}

double gelu_ref(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

class MatvecTwin : public ::testing::TestWithParam<WeightStorage> {};

// Every weight type against a double-precision product with the stored (dequantized) weights:
// bias, GELU and the residual accumulate, odd widths, and bitwise row independence (a row
// computed alone equals the same row inside a batch).
TEST_P(MatvecTwin, MatchesDequantizedReferenceAndIsRowIndependent) {
  REQUIRE_VULKAN(ctx);
  for (const auto& [n, k] : {std::pair<int64_t, int64_t>{37, 96}, {64, 200}, {130, 1000}}) {
    std::mt19937 gen(static_cast<unsigned>(n * 7 + k));
    std::normal_distribution<float> dist(0.0f, 0.5f);
    Tensor w({n, k}), bias({n});
    for (float& v : w.data) v = dist(gen);
    for (float& v : bias.data) v = dist(gen);
    const Linear lin = Linear::from_f32(ConstTensor{w.shape, w.ptr(), {}}, ConstTensor{bias.shape, bias.ptr(), {}},
                                        GetParam(), nullptr);
    const int m = 5;
    std::vector<float> x(m * k), y0(m * n);
    for (float& v : x) v = dist(gen);
    for (float& v : y0) v = dist(gen);
    std::vector<float> wd(k);
    for (uint32_t flags : {0u, 1u | 4u, 1u | 2u}) {
      const std::vector<float> y = gpu_matvec(*ctx, lin, x, m, flags, y0);
      double scale = 1e-6, err = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (GetParam() == WeightStorage::kF32) std::copy_n(w.ptr() + j * k, k, wd.data());
        else kernels::dequantize_row(lin.qweight, j, wd.data());
        for (int i = 0; i < m; ++i) {
          double r = 0;
          for (int64_t p = 0; p < k; ++p) r += static_cast<double>(x[i * k + p]) * wd[p];
          if (flags & 1u) r += bias.data[j];
          if (flags & 4u) r = gelu_ref(r);
          if (flags & 2u) r += y0[i * n + j];
          scale = std::max(scale, std::fabs(r));
          err = std::max(err, std::fabs(r - y[i * n + j]));
        }
      }
      EXPECT_LE(err / scale, 2e-6) << "n " << n << " k " << k << " flags " << flags;
      // Row 2 alone equals row 2 of the batch, bit for bit.
      const std::vector<float> x2(x.begin() + 2 * k, x.begin() + 3 * k);
      const std::vector<float> y02(y0.begin() + 2 * n, y0.begin() + 3 * n);
      const std::vector<float> alone = gpu_matvec(*ctx, lin, x2, 1, flags, y02);
      EXPECT_EQ(0, std::memcmp(alone.data(), y.data() + 2 * n, n * 4)) << "row depends on the batch";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, MatvecTwin,
                         ::testing::Values(WeightStorage::kF32, WeightStorage::kBF16,
                                           WeightStorage::kQ8, WeightStorage::kQ4),
                         [](const ::testing::TestParamInfo<WeightStorage>& i) {
                           return std::string(weight_storage_name(i.param));
                         });

// Whole generations on the GPU against the transformers goldens (the CPU suites' checks).
class VulkanText : public ::testing::TestWithParam<std::string> {};
TEST_P(VulkanText, GreedyRunsMatchHf) {
  REQUIRE_VULKAN(ctx);
  for (const testing::TextRun& run : {testing::TextRun{"greedy_g3", true, false, 3.0f},
                                      testing::TextRun{"greedy_g1", true, false, 1.0f},
                                      testing::TextRun{"single_g3", false, false, 3.0f},
                                      testing::TextRun{"uncond", false, true, 1.0f}}) {
    SCOPED_TRACE(run.name);
    testing::check_text_run(GetParam(), run, "vulkan");
  }
}
INSTANTIATE_TEST_SUITE_P(Fixtures, VulkanText, ::testing::Values("tiny-a", "tiny-b"));

class VulkanModes : public ::testing::TestWithParam<testing::ModeRun> {};
TEST_P(VulkanModes, GreedyCodesAndAudioMatchHf) {
  REQUIRE_VULKAN(ctx);
  testing::check_mode_run(GetParam(), "vulkan");
}
INSTANTIATE_TEST_SUITE_P(
    Fixtures, VulkanModes,
    ::testing::Values(testing::ModeRun{"tiny-a", "cont_text", true, false},
                      testing::ModeRun{"tiny-a", "cont_notext", true, false},
                      testing::ModeRun{"tiny-a", "cont_batch", true, false},
                      testing::ModeRun{"tiny-stereo", "stereo_text", false, false},
                      testing::ModeRun{"tiny-stereo", "stereo_cont", true, false},
                      testing::ModeRun{"tiny-melody", "melody_text", false, true},
                      testing::ModeRun{"tiny-melody", "melody_none", false, false},
                      testing::ModeRun{"tiny-stereo-melody", "smelody_text", false, true}),
    [](const ::testing::TestParamInfo<testing::ModeRun>& i) {
      std::string n = i.param.fixture + "_" + i.param.run;
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

// Long form (sliding windows, each prompted by the previous tail) gives the CPU's codes.
TEST(Vulkan, LongFormEqualsCpu) {
  REQUIRE_VULKAN(ctx);
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
  LongFormRequest lr;
  lr.base.batch = 1;
  lr.base.text = &proj;
  lr.base.text_mask = &tokens.mask;
  lr.base.sampling.do_sample = false;
  lr.base.sampling.guidance_scale = 3.0f;
  lr.total_frames = 70;
  lr.window_frames = 30;
  lr.stride_frames = 18;
  const CodeGenResult cpu = generate_long(dec, lr, &pool);
  gpu::VulkanDecoder vk(ctx, dec.spec());
  auto runner = vk.new_runner();
  const CodeGenResult gpu = generate_long(*runner, cfg.decoder, lr);
  EXPECT_EQ(gpu.frames, 70);
  EXPECT_EQ(gpu.codes, cpu.codes);
}

// Sampling: the same seed gives the same music twice; a prompt's codes do not depend on what
// else is in its batch.
TEST(Vulkan, SeededAndBatchIndependent) {
  REQUIRE_VULKAN(ctx);
  auto model = Model::load(testing::fixture_dir("tiny-a"), {.device = "vulkan"});
  Session session(model, {.threads = 1});
  GenerationOptions opt;
  opt.prompts = {"warm jazz"};
  opt.max_new_tokens = 24;
  opt.seed = 11;
  const GenerationResult a = session.generate(opt);
  const GenerationResult b = session.generate(opt);
  EXPECT_EQ(a.codes, b.codes);
  opt.greedy = true;
  const GenerationResult alone = session.generate(opt);
  opt.prompts = {"warm jazz", "a very different and much longer prompt about drums"};
  const GenerationResult both = session.generate(opt);
  const size_t per = alone.codes.size();
  EXPECT_EQ(alone.codes, std::vector<int32_t>(both.codes.begin(), both.codes.begin() + per));
}

// One model on the GPU, two sessions generating at the same time from two threads: each gets
// what it gets alone.
TEST(Vulkan, ConcurrentSessionsShareOneModel) {
  REQUIRE_VULKAN(ctx);
  auto model = Model::load(testing::fixture_dir("tiny-a"), {.device = "vulkan"});
  GenerationOptions a, b;
  a.prompts = {"warm jazz"};
  b.prompts = {"cold techno", "rain"};
  for (GenerationOptions* o : {&a, &b}) {
    o->max_new_tokens = 20;
    o->greedy = true;
  }
  const auto alone_a = Session(model, {.threads = 1}).generate(a).codes;
  const auto alone_b = Session(model, {.threads = 1}).generate(b).codes;
  std::vector<int32_t> got_a, got_b;
  std::thread ta([&] { got_a = Session(model, {.threads = 1}).generate(a).codes; });
  std::thread tb([&] { got_b = Session(model, {.threads = 1}).generate(b).codes; });
  ta.join();
  tb.join();
  EXPECT_EQ(got_a, alone_a);
  EXPECT_EQ(got_b, alone_b);
}

// The reduced types keep the self-attention cache in IEEE half on both devices: bf16 weights
// give the CPU's greedy codes; q8 and q4 (float activations on the GPU, int8 blocks on the CPU)
// give full-length finite audio.
TEST(Vulkan, ReducedWeightTypes) {
  REQUIRE_VULKAN(ctx);
  GenerationOptions opt;
  opt.prompts = {"hello world", "drums"};
  opt.max_new_tokens = 30;
  opt.greedy = true;
  auto run = [&](WeightType w, const std::string& device) {
    Session s(Model::load(testing::fixture_dir("tiny-a"), {.weights = w, .device = device}),
              {.threads = 1});
    return s.generate(opt);
  };
  EXPECT_EQ(run(WeightType::kBF16, "vulkan").codes, run(WeightType::kBF16, "cpu").codes);
  for (WeightType w : {WeightType::kQ8, WeightType::kQ4}) {
    const GenerationResult g = run(w, "vulkan"), c = run(w, "cpu");
    ASSERT_EQ(g.audio.size(), c.audio.size());
    for (float v : g.audio) ASSERT_TRUE(std::isfinite(v));
  }
}

// F16 weights kept as half (exact f16, a transformers-saved F16 checkpoint) read by the f16
// shader: the CPU's greedy codes, audio within the parity tolerance.
TEST(Vulkan, ExactF16WeightsFollowCpu) {
  REQUIRE_VULKAN(ctx);
  GenerationOptions opt;
  opt.prompts = {"hello world"};
  opt.max_new_tokens = 24;
  opt.greedy = true;
  auto run = [&](const std::string& device) {
    Session s(Model::load(testing::fixture_dir("tiny-stereo-f16"), {.device = device}), {.threads = 1});
    return s.generate(opt);
  };
  const GenerationResult g = run("vulkan"), c = run("cpu");
  EXPECT_EQ(g.codes, c.codes);
  ASSERT_EQ(g.audio.size(), c.audio.size());
  EXPECT_LE(testing::relative_max_error(g.audio.data(), c.audio.data(), c.audio.size()), 1e-4);
}

TEST(Vulkan, DeviceSelectionErrors) {
  EXPECT_THROW(gpu::resolve_device("gpu"), Error);
  EXPECT_THROW(gpu::resolve_device("vulkan:x"), Error);
  EXPECT_FALSE(gpu::resolve_device("cpu").vulkan);
  EXPECT_NO_THROW(gpu::resolve_device("auto"));
  try {
    Model::load(testing::fixture_dir("tiny-a"), {.device = "vulkan:99"});
    FAIL() << "no error for a missing adapter";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDevice);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

TEST(Vulkan, Q8KvCacheIsCpuOnly) {
  try {
    gpu::resolve_device("vulkan");
  } catch (const Error&) {
    GTEST_SKIP() << "no Vulkan adapter on this system (install mesa-vulkan-drivers)";
  }
  try {
    Model::load(testing::fixture_dir("tiny-a"), {.device = "vulkan", .kv_cache = KvCache::kQ8});
    FAIL() << "the q8 KV cache was accepted on a GPU";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("--kv-cache q8"), std::string::npos) << e.what();
  }
}

// The command line: a missing driver or adapter is one line and exit 1, no output file, never a
// silent fall back to the CPU.
TEST(Vulkan, CliDeviceErrors) {
  const std::string out = testing::make_temp_dir("vkcli") + "/x.wav";
  const char* cli = std::getenv("MUSICGEN_CLI");  // a copied binary (bench/gpu_check.sh)
  const std::string base = std::string(cli != nullptr ? cli : MUSICGEN_CLI) + " generate --model " +
                           testing::fixture_dir("tiny-a") + " --max-new-tokens 8 --output " + out;
  for (const std::string& cmd :
       {"VK_DRIVER_FILES=/nonexistent.json VK_ICD_FILENAMES=/nonexistent.json " + base + " --device vulkan",
        base + " --device vulkan:99", base + " --device cuda"}) {
    const std::string full = cmd + " 2>&1";
    FILE* p = popen(full.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string text;
    char buf[512];
    while (fgets(buf, sizeof buf, p) != nullptr) text += buf;
    const int status = pclose(p);
    EXPECT_EQ(WEXITSTATUS(status), 1) << cmd << "\n" << text;
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    EXPECT_NE(text.find("musicgen: error:"), std::string::npos) << text;
    EXPECT_FALSE(std::filesystem::exists(out));
  }
}

TEST(Vulkan, ListsAdapters) {
  REQUIRE_VULKAN(ctx);
  const auto devices = list_devices();
  ASSERT_FALSE(devices.empty());
  EXPECT_EQ(devices[0].id, "vulkan:0");
  EXPECT_FALSE(devices[0].name.empty());
}

}  // namespace
}  // namespace musicgen
