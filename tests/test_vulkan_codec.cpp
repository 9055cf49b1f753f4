// EnCodec decoding on the Vulkan backend (src/gpu/vulkan_codec.h), on whatever adapter the system
// has (Mesa's lavapipe in CI): the GPU decode against the CPU decode (EncodecModel::decode) and
// the transformers golden audio of the fixtures, mono and stereo; chunked decoding equal to one
// pass and device memory bounded by the chunk; the CPU's input errors.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "gpu/context.h"
#include "gpu/vulkan_codec.h"
#include "models/encodec.h"
#include "nn/activation.h"
#include "nn/codec_spec.h"
#include "nn/conv.h"
#include "nn/lstm.h"
#include "test_util.h"

namespace musicgen {
namespace {

using testing::expect_close;
using testing::fixture_dir;
using testing::load_golden;
using testing::relative_max_error;

constexpr double kCpuTol = 1e-5;  // GPU vs CPU
constexpr double kHfTol = 1e-4;   // GPU vs the transformers goldens (the CPU suites' tolerance)

// Skips (visibly) when the system has no Vulkan driver at all; CI installs lavapipe.
std::shared_ptr<gpu::Context> open_or_skip() {
  try {
    return gpu::Context::open(-1);
  } catch (const Error&) {
    return nullptr;
  }
}
#define REQUIRE_VULKAN(ctx)  \
  auto ctx = open_or_skip(); \
  if (!ctx) GTEST_SKIP() << "no Vulkan adapter on this system (install mesa-vulkan-drivers)"

struct Codec {
  EncodecConfig cfg;
  TensorStore store;
  TensorStore golden;
  std::unique_ptr<EncodecModel> model;
};

Codec open_codec(const std::string& name) {
  const std::string dir = fixture_dir(name);
  Codec c{load_musicgen_config(dir).audio_encoder, TensorStore::open_checkpoint(dir),
          load_golden(name), nullptr};
  c.model = std::make_unique<EncodecModel>(c.cfg, c.store);
  return c;
}

std::vector<int32_t> to_i32(const std::vector<int64_t>& v) {
  return std::vector<int32_t>(v.begin(), v.end());
}

std::vector<int32_t> random_codes(size_t n, int vocab, uint32_t seed) {
  std::vector<int32_t> codes(n);
  uint32_t state = seed;
  for (int32_t& c : codes) {
    state = state * 1664525u + 1013904223u;
    c = static_cast<int32_t>((state >> 8) % static_cast<uint32_t>(vocab));
  }
  return codes;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A golden run: codes [B, K, T] (K = channels · n_q, stereo interleaved [L0, R0, L1, R1, ...])
// and the reference audio [B, channels, T·hop].
struct GoldenRun {
  std::string codes, audio;
  int channels = 1;
};

// Decodes one run on the GPU and the CPU, channel by channel as the engine does; both against
// each other (kCpuTol) and the GPU against the golden audio (kHfTol).
void check_run(const Codec& c, const gpu::VulkanCodecDecoder& gpu, const GoldenRun& run,
               ThreadPool* pool) {
  SCOPED_TRACE(run.codes);
  const TensorInfo* ci = c.golden.find(run.codes);
  ASSERT_NE(ci, nullptr);
  const std::vector<int32_t> codes = to_i32(c.golden.get_i64(run.codes));
  // [1, B, Q, T] (encodec.codes) or [B, K, T].
  const size_t r = ci->shape.size();
  const int batch = static_cast<int>(ci->shape[r - 3]), k = static_cast<int>(ci->shape[r - 2]),
            frames = static_cast<int>(ci->shape[r - 1]);
  const int ch = run.channels, kc = k / ch;
  const int64_t samples = static_cast<int64_t>(frames) * gpu.hop_length();
  const ConstTensor expected = c.golden.get_f32(run.audio);
  ASSERT_EQ(expected.numel(), batch * ch * samples);
  std::vector<float> gpu_audio(expected.numel()), cpu_audio(expected.numel());
  for (int channel = 0; channel < ch; ++channel) {
    std::vector<int32_t> sub(static_cast<size_t>(batch) * kc * frames);
    for (int b = 0; b < batch; ++b)
      for (int q = 0; q < kc; ++q)
        std::copy_n(codes.data() + (static_cast<size_t>(b) * k + q * ch + channel) * frames, frames,
                    sub.data() + (static_cast<size_t>(b) * kc + q) * frames);
    const Tensor g = gpu.decode(sub, batch, kc, frames);
    const Tensor cpu = c.model->decode(sub, batch, kc, frames, pool);
    ASSERT_EQ(g.shape, cpu.shape);
    ASSERT_EQ(g.shape, (Shape{batch, 1, samples}));
    for (int b = 0; b < batch; ++b) {
      std::copy_n(g.ptr() + b * samples, samples, gpu_audio.data() + (b * ch + channel) * samples);
      std::copy_n(cpu.ptr() + b * samples, samples,
                  cpu_audio.data() + (b * ch + channel) * samples);
    }
  }
  const double vs_cpu = relative_max_error(gpu_audio.data(), cpu_audio.data(), gpu_audio.size());
  EXPECT_LE(vs_cpu, kCpuTol) << "GPU vs CPU decode";
  expect_close(gpu_audio, expected, kHfTol, run.audio);
  std::printf("[ vulkan codec ] %s: rel. max error vs CPU %.3g, vs HF %.3g (CPU vs HF %.3g)\n",
              run.codes.c_str(), vs_cpu,
              relative_max_error(gpu_audio.data(), expected.data, gpu_audio.size()),
              relative_max_error(cpu_audio.data(), expected.data, cpu_audio.size()));
}

TEST(VulkanCodec, MonoDecodesMatchCpuAndHf) {
  REQUIRE_VULKAN(ctx);
  const Codec c = open_codec("tiny-a");
  const gpu::VulkanCodecDecoder gpu(ctx, c.model->decoder_spec());
  ThreadPool pool(2);
  for (const GoldenRun& run :
       {GoldenRun{"encodec.codes", "encodec.audio"},
        GoldenRun{"greedy_g1.codes", "greedy_g1.audio"},
        GoldenRun{"greedy_g3.codes", "greedy_g3.audio"},
        GoldenRun{"single_g3.codes", "single_g3.audio"}, GoldenRun{"uncond.codes", "uncond.audio"},
        GoldenRun{"cont_text.codes", "cont_text.audio"},
        GoldenRun{"cont_batch.codes", "cont_batch.audio"}})
    check_run(c, gpu, run, &pool);
}

TEST(VulkanCodec, StereoDecodesMatchCpuAndHf) {
  REQUIRE_VULKAN(ctx);
  const Codec c = open_codec("tiny-stereo");
  const gpu::VulkanCodecDecoder gpu(ctx, c.model->decoder_spec());
  ThreadPool pool(2);
  for (const GoldenRun& run : {GoldenRun{"stereo_text.codes", "stereo_text.audio", 2},
                               GoldenRun{"stereo_cont.codes", "stereo_cont.audio", 2}})
    check_run(c, gpu, run, &pool);
}

TEST(VulkanCodec, SecondFixtureMatchesHf) {
  // tiny-b: other widths (hidden 24, 6 filters).
  REQUIRE_VULKAN(ctx);
  const Codec c = open_codec("tiny-b");
  const gpu::VulkanCodecDecoder gpu(ctx, c.model->decoder_spec());
  ThreadPool pool(2);
  check_run(c, gpu, {"encodec.codes", "encodec.audio"}, &pool);
  check_run(c, gpu, {"greedy_g3.codes", "greedy_g3.audio"}, &pool);
}

// A codec decoder of random weights with a given layout, and its reference decode by the nn
// layers, composed as EncodecModel::decoder_forward does.
struct SynthLayout {
  int hidden, channels, lstm_layers, vocab, n_q, first_kernel, last_kernel;
  struct Stage {
    int ratio, width;            // up-sampling stride, output channels
    std::vector<int> dilations;  // one residual block (kernel 3, width / 2 hidden) each
  };
  std::vector<Stage> stages;
};

struct Synthetic {
  std::mt19937 rng{2024};
  std::vector<std::vector<float>> codebook_data;
  nn::Conv1d first, last;
  nn::Lstm lstm;
  struct Res {
    nn::Conv1d conv1, conv2;
  };
  struct Stage {
    nn::ConvTranspose1d up;
    std::vector<Res> res;
  };
  std::vector<Stage> stages;
  int hidden = 0, vocab = 0, n_q = 0, hop = 1;

  std::vector<float> random(size_t n, float scale) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
  }
  nn::Conv1d conv(int in, int out, int k, int dilation) {
    return nn::Conv1d(random(size_t(out) * in * k, 1.0f / std::sqrt(float(in * k))),
                      random(out, 0.1f), in, out, k, 1, dilation);
  }
  explicit Synthetic(const SynthLayout& lay) : hidden(lay.hidden), vocab(lay.vocab), n_q(lay.n_q) {
    for (int q = 0; q < n_q; ++q) codebook_data.push_back(random(size_t(vocab) * hidden, 1.0f));
    const int c = lay.channels;
    first = conv(hidden, c, lay.first_kernel, 1);
    std::vector<nn::LstmLayerWeights> layers;
    const float ws = 1.0f / std::sqrt(float(c));
    for (int l = 0; l < lay.lstm_layers; ++l)
      layers.push_back({random(size_t(4) * c * c, ws), random(size_t(4) * c * c, ws),
                        random(4 * c, 0.1f), random(4 * c, 0.1f)});
    lstm = nn::Lstm(c, c, std::move(layers));
    int in = c;
    for (const SynthLayout::Stage& st : lay.stages) {
      const int r = st.ratio, w = st.width;
      Stage g{nn::ConvTranspose1d(random(size_t(in) * w * 2 * r, 1.0f / std::sqrt(float(in))),
                                  random(w, 0.1f), in, w, 2 * r, r),
              {}};
      for (int d : st.dilations)
        g.res.push_back({conv(w, std::max(1, w / 2), 3, d), conv(std::max(1, w / 2), w, 1, 1)});
      stages.push_back(std::move(g));
      hop *= r;
      in = w;
    }
    last = conv(in, 1, lay.last_kernel, 1);
  }
  CodecDecoderSpec spec(int64_t chunk_frames) const {
    CodecDecoderSpec s;
    s.hidden = hidden;
    s.hop = hop;
    s.codebook_size = vocab;
    for (const auto& cb : codebook_data)
      s.codebooks.push_back(ConstTensor{{vocab, hidden}, cb.data(), {}});
    s.first = &first;
    s.lstm = &lstm;
    for (const Stage& st : stages) {
      CodecUpStageSpec g;
      g.up = &st.up;
      for (const Res& r : st.res) g.res.push_back({&r.conv1, &r.conv2});
      s.stages.push_back(g);
    }
    s.last = &last;
    s.chunk_frames = chunk_frames;
    s.halo_frames = 8;
    return s;
  }
  // [B, 1, T·hop] by the nn layers, one pass.
  Tensor decode(const std::vector<int32_t>& codes, int batch, int frames, ThreadPool* pool) const {
    Tensor z({batch, frames, hidden});
    for (int b = 0; b < batch; ++b)
      for (int q = 0; q < n_q; ++q)
        for (int t = 0; t < frames; ++t) {
          const int32_t code = codes[(size_t(b) * n_q + q) * frames + t];
          float* dst = z.ptr() + (size_t(b) * frames + t) * hidden;
          for (int d = 0; d < hidden; ++d) dst[d] = dst[d] + codebook_data[q][code * hidden + d];
        }
    Tensor x = first.forward(z, pool);
    Tensor y = lstm.forward(x, pool);
    for (size_t i = 0; i < y.data.size(); ++i) y.data[i] = y.data[i] + x.data[i];
    x = std::move(y);
    for (const Stage& st : stages) {
      x = st.up.forward(x, pool, nn::PreActivation::kElu);
      for (const Res& r : st.res) {
        Tensor h = r.conv1.forward(x, pool, nn::PreActivation::kElu);
        nn::elu(h.ptr(), h.ptr(), h.numel());
        const Tensor o = r.conv2.forward(h, pool);
        for (size_t i = 0; i < x.data.size(); ++i) x.data[i] = x.data[i] + o.data[i];
      }
    }
    Tensor audio = last.forward(x, pool, nn::PreActivation::kElu);
    audio.reshape({batch, 1, audio.shape[1]});
    return audio;
  }
};

TEST(VulkanCodec, SyntheticCodecMatchesNnLayers) {
  // What the fixtures lack: dilated residual convolutions (1, 3, 2), two residual blocks in a
  // stage, odd strides and widths, a 3-layer LSTM wider than one 64-input slice (70), inputs
  // shorter than the padding (the reflect workaround), chunks (4 frames) with halos.
  REQUIRE_VULKAN(ctx);
  const Synthetic syn({5, 70, 3, 11, 3, 7, 5, {{3, 35, {1, 3}}, {2, 9, {2}}}});
  const gpu::VulkanCodecDecoder gpu(ctx, syn.spec(4));
  for (const auto& [batch, frames] :
       {std::pair<int, int>{1, 1}, {2, 2}, {1, 5}, {2, 23}, {1, 41}}) {
    SCOPED_TRACE("batch " + std::to_string(batch) + " frames " + std::to_string(frames));
    const std::vector<int32_t> codes =
        random_codes(size_t(batch) * syn.n_q * frames, syn.vocab, 99 + frames);
    const Tensor ref = syn.decode(codes, batch, frames, nullptr);
    const Tensor chunked = gpu.decode(codes, batch, syn.n_q, frames);
    const Tensor whole = gpu.decode(codes, batch, syn.n_q, frames, -1);
    ASSERT_EQ(chunked.shape, ref.shape);
    ASSERT_EQ(whole.shape, ref.shape);
    EXPECT_EQ(0, std::memcmp(chunked.ptr(), whole.ptr(), whole.data.size() * 4));
    const double err = relative_max_error(chunked.ptr(), ref.ptr(), ref.data.size());
    EXPECT_LE(err, kCpuTol);
    std::printf("[ vulkan codec ] synthetic %d x %d frames: rel. max error vs nn layers %.3g\n",
                batch, frames, err);
  }
}

TEST(VulkanCodec, MusicgenSizedCodecMatchesNnLayers) {
  // The layout of musicgen's 32 kHz codec (hidden 128, 1024-wide 2-layer LSTM, strides 8 5 4 4,
  // widths 512 .. 64, 4 codebooks of 2048), random weights, a few frames: the real widths
  // through every shader (16 LSTM slices, 4-channel tiles, buffer sizes).
  REQUIRE_VULKAN(ctx);
  const Synthetic syn(
      {128, 1024, 2, 2048, 4, 7, 7, {{8, 512, {1}}, {5, 256, {1}}, {4, 128, {1}}, {4, 64, {1}}}});
  const gpu::VulkanCodecDecoder gpu(ctx, syn.spec(256));
  ThreadPool pool(2);
  const int batch = 2, frames = 3;
  const std::vector<int32_t> codes = random_codes(size_t(batch) * syn.n_q * frames, syn.vocab, 3);
  const Tensor ref = syn.decode(codes, batch, frames, &pool);
  const auto t0 = std::chrono::steady_clock::now();
  const Tensor g = gpu.decode(codes, batch, syn.n_q, frames);
  const double s = seconds_since(t0);
  ASSERT_EQ(g.shape, (Shape{batch, 1, frames * 640}));
  const double err = relative_max_error(g.ptr(), ref.ptr(), ref.data.size());
  EXPECT_LE(err, kCpuTol);
  std::printf(
      "[ vulkan codec ] musicgen-sized codec, %d x %d frames: %.3f s, rel. max error vs nn "
      "layers %.3g (%.0f MB of weights on the device)\n",
      batch, frames, s, err, gpu.weight_bytes() / 1e6);
}

TEST(VulkanCodec, ChunksEqualOnePass) {
  // Every chunk size gives the one-pass result bit for bit (as on the CPU), and the default
  // chunking of a long input (several 256-frame chunks) matches the CPU.
  REQUIRE_VULKAN(ctx);
  const Codec c = open_codec("tiny-a");
  const gpu::VulkanCodecDecoder gpu(ctx, c.model->decoder_spec());
  const int n_q = c.model->num_quantizers(), vocab = c.model->codebook_size();
  {
    const int batch = 2, frames = 70;
    const std::vector<int32_t> codes = random_codes(size_t{2} * n_q * frames, vocab, 12345);
    const Tensor whole = gpu.decode(codes, batch, n_q, frames, -1);
    for (int64_t chunk : {3, 16, 53}) {
      const Tensor parts = gpu.decode(codes, batch, n_q, frames, chunk);
      ASSERT_EQ(parts.shape, whole.shape);
      EXPECT_EQ(0, std::memcmp(parts.ptr(), whole.ptr(), whole.data.size() * 4))
          << "chunk " << chunk;
    }
  }
  const int batch = 2, frames = 600;  // 3 chunks (256, 256, 88 frames)
  const std::vector<int32_t> codes = random_codes(size_t{batch} * n_q * frames, vocab, 777);
  auto t0 = std::chrono::steady_clock::now();
  const Tensor chunked = gpu.decode(codes, batch, n_q, frames);
  const double gpu_s = seconds_since(t0);
  const Tensor whole = gpu.decode(codes, batch, n_q, frames, -1);
  ASSERT_EQ(chunked.shape, (Shape{batch, 1, int64_t{frames} * c.model->hop_length()}));
  EXPECT_EQ(0, std::memcmp(chunked.ptr(), whole.ptr(), whole.data.size() * 4))
      << "chunked decode differs from one pass";
  ThreadPool pool(2);
  t0 = std::chrono::steady_clock::now();
  const Tensor cpu = c.model->decode(codes, batch, n_q, frames, &pool);
  const double cpu_s = seconds_since(t0);
  const double err = relative_max_error(chunked.ptr(), cpu.ptr(), cpu.data.size());
  EXPECT_LE(err, kCpuTol);
  std::printf(
      "[ vulkan codec ] %d x %d frames: GPU %.3f s (%s), CPU 2 threads %.3f s, rel. max "
      "error %.3g\n",
      batch, frames, gpu_s, ctx->adapter().name.c_str(), cpu_s, err);
}

TEST(VulkanCodec, DeviceMemoryBoundedByChunk) {
  // Device memory of a decode grows with the frames only by the frame-rate tensors and the
  // audio itself; the audio-rate activations are the chunk's. Each decode on a fresh context.
  REQUIRE_VULKAN(ctx0);
  ctx0.reset();
  const Codec c = open_codec("tiny-a");
  const int n_q = c.model->num_quantizers(), vocab = c.model->codebook_size();
  const int batch = 1;
  auto peak = [&](int frames, int64_t chunk) {
    auto ctx = gpu::Context::open(-1);
    const gpu::VulkanCodecDecoder gpu(ctx, c.model->decoder_spec());
    const size_t before = ctx->allocated_bytes();
    gpu.decode(random_codes(size_t{batch} * n_q * frames, vocab, 5), batch, n_q, frames, chunk);
    return static_cast<double>(ctx->peak_allocated_bytes()) - static_cast<double>(before);
  };
  const int t1 = 300, t2 = 600;
  const double grow = peak(t2, 0) - peak(t1, 0);
  const double grow_one_pass = peak(t2, -1) - peak(t1, -1);
  const double lstm_width =
      static_cast<double>(c.cfg.num_filters << c.cfg.upsampling_ratios.size());
  // Per frame and item: codes, latent, first conv, LSTM projections and outputs (D + 8 C + n_q
  // floats), the audio and its download staging (2 hop floats).
  const double per_frame =
      4.0 * (c.cfg.hidden_size + 8.0 * lstm_width + n_q + 2.0 * c.model->hop_length()) * batch;
  std::printf(
      "[ vulkan codec ] device memory growth %d -> %d frames: chunked %.0f KB, one pass "
      "%.0f KB (bound %.0f KB)\n",
      t1, t2, grow / 1024, grow_one_pass / 1024, per_frame * (t2 - t1) * 1.25 / 1024);
  EXPECT_LE(grow, per_frame * (t2 - t1) * 1.25 + 65536);
  EXPECT_GT(grow_one_pass, grow);
}

TEST(VulkanCodec, ConcurrentDecodesAgree) {
  // Two threads decoding at once on one context (each call has its own buffers and command
  // buffer; Context::submit_wait serialises the queue) give the sequential results.
  REQUIRE_VULKAN(ctx);
  const Codec c = open_codec("tiny-a");
  const gpu::VulkanCodecDecoder gpu(ctx, c.model->decoder_spec());
  const int n_q = c.model->num_quantizers(), vocab = c.model->codebook_size(), frames = 40;
  const std::vector<int32_t> a = random_codes(size_t{2} * n_q * frames, vocab, 1);
  const std::vector<int32_t> b = random_codes(size_t{1} * n_q * frames, vocab, 2);
  const Tensor sa = gpu.decode(a, 2, n_q, frames, 16), sb = gpu.decode(b, 1, n_q, frames, 16);
  Tensor ta, tb;
  std::thread t1([&] { ta = gpu.decode(a, 2, n_q, frames, 16); });
  std::thread t2([&] { tb = gpu.decode(b, 1, n_q, frames, 16); });
  t1.join();
  t2.join();
  EXPECT_TRUE(ta.data == sa.data);
  EXPECT_TRUE(tb.data == sb.data);
}

TEST(VulkanCodec, BadCodesThrowLikeCpu) {
  REQUIRE_VULKAN(ctx);
  const Codec c = open_codec("tiny-a");
  const gpu::VulkanCodecDecoder gpu(ctx, c.model->decoder_spec());
  const int q = c.model->num_quantizers(), v = c.model->codebook_size();
  std::vector<int32_t> codes(static_cast<size_t>(q) * 3, 1);
  EXPECT_NO_THROW(gpu.decode(codes, 1, q, 3));
  // Fewer codebooks than the codec has (the first n_q).
  const std::vector<int32_t> two(static_cast<size_t>(2) * 3, 5);
  const Tensor g2 = gpu.decode(two, 1, 2, 3);
  const Tensor c2 = c.model->decode(two, 1, 2, 3, nullptr);
  EXPECT_LE(relative_max_error(g2.ptr(), c2.ptr(), c2.data.size()), kCpuTol);
  codes[4] = v;
  EXPECT_THROW(gpu.decode(codes, 1, q, 3), Error);
  codes[4] = -1;
  EXPECT_THROW(gpu.decode(codes, 1, q, 3), Error);
  codes[4] = 0;
  EXPECT_THROW(gpu.decode(codes, 1, q + 1, 3), Error);
  EXPECT_THROW(gpu.decode({}, 1, q, 0), Error);
  try {
    codes[2] = v + 5;
    gpu.decode(codes, 1, q, 3);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace musicgen
