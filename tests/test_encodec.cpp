// EnCodec: conv padding/length rules on hand-checkable cases, decoder and encoder parity with the
// HF reference goldens of the tiny fixtures, thread-count independence, bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "kernels/cpu.h"
#include "models/encodec.h"
#include "nn/activation.h"
#include "nn/conv.h"
#include "nn/lstm.h"
#include "test_util.h"

namespace musicgen {
namespace {

using testing::expect_close;
using testing::fixture_dir;
using testing::load_golden;

constexpr double kTol = 1e-4;
using Pads = std::pair<int64_t, int64_t>;
Pads P(int64_t l, int64_t r) {
  return {l, r};
}

Tensor make_input(int64_t batch, int64_t steps, int64_t channels, const std::vector<float>& v) {
  Tensor x({batch, steps, channels});
  x.data = v;
  return x;
}

// ---------------------------------------------------------------------------------------------
// Padding and length rules

TEST(ConvPadding, PaddingsMatchReference) {
  // k7 s1 → (3, 3); k3 → (1, 1); k1 → (0, 0), whatever the length.
  EXPECT_EQ(nn::conv1d_paddings(10, 7, 1), P(3, 3));
  EXPECT_EQ(nn::conv1d_paddings(1, 3, 1), P(1, 1));
  EXPECT_EQ(nn::conv1d_paddings(5, 1, 1), P(0, 0));
  // k8 s4, L = 10: padding_total 4 → (2, 2) plus extra ceil(10/4)·4 − 10 = 2 on the right.
  EXPECT_EQ(nn::conv1d_paddings(10, 8, 4), P(2, 4));
  // k10 s5: (3, 2) plus extra; k16 s8: (4, 4) plus extra.
  EXPECT_EQ(nn::conv1d_paddings(10, 10, 5), P(3, 2));
  EXPECT_EQ(nn::conv1d_paddings(11, 10, 5), P(3, 6));
  EXPECT_EQ(nn::conv1d_paddings(3, 16, 8), P(4, 9));
}

TEST(ConvPadding, StridedOutputLengthIsCeil) {
  for (int r : {2, 4, 5, 8}) {
    nn::Conv1d conv(std::vector<float>(2 * r, 0.5f), {}, 1, 1, 2 * r, r);
    for (int64_t len = 1; len <= 50; ++len) {
      EXPECT_EQ(conv.output_length(len), (len + r - 1) / r) << "r=" << r << " L=" << len;
      Tensor y = conv.forward(Tensor({1, len, 1}, 1.0f), nullptr);
      EXPECT_EQ(y.shape, (Shape{1, (len + r - 1) / r, 1}));
    }
  }
}

TEST(ConvPadding, ReflectMatchesTorch) {
  // torch-derived (HF EncodecConv1d._pad1d): [1,2,3] padded (1,1) reflect = [2,1,2,3,2].
  const std::vector<int64_t> expect = {1, 0, 1, 2, 1};
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(nn::reflect_source_row(i, 3, 1, 1), expect[i]);
}

TEST(ConvPadding, ReflectShorterThanPad) {
  // Values from HF EncodecConv1d._pad1d (the short-input workaround reflects over appended
  // zeros): [1,2] (3,3) → [0,0,2,1,2,0,0,0]; [1,2,3] (3,3) → [0,3,2,1,2,3,0,3,2];
  // [5] (2,5) → [0,0,5,0,0,0,0,0]. Source rows (-1 = zero).
  const std::vector<int64_t> a = {-1, -1, 1, 0, 1, -1, -1, -1};
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(nn::reflect_source_row(i, 2, 3, 3), a[i]) << i;
  const std::vector<int64_t> b = {-1, 2, 1, 0, 1, 2, -1, 2, 1};
  for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(nn::reflect_source_row(i, 3, 3, 3), b[i]) << i;
  const std::vector<int64_t> c = {-1, -1, 0, -1, -1, -1, -1, -1};
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(nn::reflect_source_row(i, 1, 2, 5), c[i]) << i;
}

TEST(ConvPadding, Conv1dByHand) {
  // Kernel [1, 0, 0] picks the left neighbour: y[t] = x_pad[t] with reflect → [x1, x0, x1, x2].
  nn::Conv1d left({1.0f, 0.0f, 0.0f}, {0.5f}, 1, 1, 3);
  Tensor y = left.forward(make_input(1, 4, 1, {1, 2, 3, 4}), nullptr);
  EXPECT_EQ(y.data, (std::vector<float>{2.5f, 1.5f, 2.5f, 3.5f}));
  // Input of length 1 with k7 (pads 3/3 > L): the workaround pads with zeros only.
  nn::Conv1d wide(std::vector<float>(7, 1.0f), {}, 1, 1, 7);
  y = wide.forward(make_input(1, 1, 1, {2}), nullptr);
  EXPECT_EQ(y.data, (std::vector<float>{2.0f}));
  // With ELU fused on the input: ELU(−1) = e^−1 − 1.
  y = wide.forward(make_input(1, 1, 1, {-1}), nullptr, nn::PreActivation::kElu);
  EXPECT_NEAR(y.data[0], std::expm1(-1.0f), 1e-7);
  // Two channels in, two out, k1: a plain matrix product per step.
  nn::Conv1d mix({1, 2, 3, 4}, {0, 10}, 2, 2, 1);  // W [out=2, in=2, k=1]
  y = mix.forward(make_input(1, 2, 2, {1, 1, 2, 0}), nullptr);
  EXPECT_EQ(y.data, (std::vector<float>{3, 17, 2, 16}));
}

TEST(ConvPadding, StridedConvByHand) {
  // k4 s2, L = 5: paddings (1, 1 + extra 1), padded [x1 | x0..x4 | x3 x2]; windows at 0, 2, 4.
  nn::Conv1d conv({1, 10, 100, 1000}, {}, 1, 1, 4, 2);
  Tensor y = conv.forward(make_input(1, 5, 1, {1, 2, 3, 4, 5}), nullptr);
  // padded = [2,1,2,3,4,5,4,3]
  EXPECT_EQ(y.data,
            (std::vector<float>{2 + 10 + 200 + 3000, 2 + 30 + 400 + 5000, 4 + 50 + 400 + 3000}));
}

TEST(ConvPadding, ConvTransposeByHand) {
  // k4 s2, all-ones kernel, x = [1,2,3]: raw [1,1,3,3,5,5,3,3], trim 1 left and 1 right.
  nn::ConvTranspose1d up(std::vector<float>(4, 1.0f), {0.25f}, 1, 1, 4, 2);
  EXPECT_EQ(up.output_length(3), 6);
  Tensor y = up.forward(make_input(1, 3, 1, {1, 2, 3}), nullptr);
  EXPECT_EQ(y.data, (std::vector<float>{1.25f, 3.25f, 3.25f, 5.25f, 5.25f, 3.25f}));
  // Odd stride: k10 s5 trims 3 left, 2 right; output r·L.
  nn::ConvTranspose1d up5(std::vector<float>(10, 1.0f), {}, 1, 1, 10, 5);
  for (int64_t len = 1; len < 6; ++len) EXPECT_EQ(up5.output_length(len), 5 * len);
  // Two in, two out channels: W [in, out, k].
  // k2 s1: padding_total 1 → pad_right 0, pad_left 1 (trims the first raw step).
  nn::ConvTranspose1d mix({1, 0, 0, 0, 0, 0, 0, 1}, {}, 2, 2, 2, 1);
  y = mix.forward(make_input(1, 2, 2, {1, 2, 3, 4}), nullptr);
  // raw[p][0] = x[p][0]·W[0,0,0], raw[p][1] = x[p−1][1]·W[1,1,1]: raw = [1,0 | 3,2 | 0,4]
  // (torch conv_transpose1d), then the first step is trimmed.
  EXPECT_EQ(y.data, (std::vector<float>{3, 2, 0, 4}));
}

TEST(ConvChunks, ChunkedLayersMatchWholeAndNaive) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = u(rng);
    return v;
  };
  ThreadPool pool(2);
  // Conv1d k7 with ELU: long enough for several chunks; whole-range forward_rows is the
  // unchunked computation and must agree bitwise.
  const int in = 8, out = 12, k = 7;
  const int64_t len = 20011;
  nn::Conv1d conv(random(out * in * k), random(out), in, out, k);
  ASSERT_LT(conv.chunk_rows(), len / 2);
  Tensor x({1, len, in});
  x.data = random(len * in);
  Tensor chunked = conv.forward(x, &pool, nn::PreActivation::kElu);
  std::vector<float> whole(len * out), scratch;
  conv.forward_rows(x.ptr(), len, 0, len, whole.data(), nn::PreActivation::kElu, &scratch);
  EXPECT_EQ(0, std::memcmp(chunked.ptr(), whole.data(), sizeof(float) * whole.size()));

  // ConvTranspose1d k10 s5 against a direct double-precision transposed convolution.
  const int cin = 6, cout = 4, kt = 10, st = 5;
  const int64_t tin = 3001;
  std::vector<float> w = random(cin * cout * kt), bias = random(cout);
  nn::ConvTranspose1d up(w, bias, cin, cout, kt, st);
  Tensor xi({2, tin, cin});
  xi.data = random(2 * tin * cin);
  Tensor y = up.forward(xi, &pool);
  ASSERT_EQ(y.shape, (Shape{2, tin * st, cout}));
  const int64_t pad_left = (kt - st) - (kt - st) / 2;
  double max_err = 0.0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t o = 0; o < tin * st; ++o)
      for (int co = 0; co < cout; ++co) {
        double ref = bias[co];
        const int64_t p = o + pad_left;
        for (int64_t t = 0; t < tin; ++t) {
          const int64_t j = p - t * st;
          if (j < 0 || j >= kt) continue;
          for (int ci = 0; ci < cin; ++ci)
            ref += static_cast<double>(xi.data[(b * tin + t) * cin + ci]) *
                   w[(ci * cout + co) * kt + j];
        }
        max_err = std::max(max_err, std::fabs(ref - y.data[(b * tin * st + o) * cout + co]));
      }
  EXPECT_LT(max_err, 1e-5);
  // One thread and no pool give the same bits.
  ThreadPool one(1);
  EXPECT_TRUE(up.forward(xi, &one).data == y.data);
  EXPECT_TRUE(conv.forward(x, nullptr, nn::PreActivation::kElu).data == chunked.data);
}

TEST(Lstm, SingleStepByHand) {
  // H = 1, input 1: gates = [i, f, g, o] rows; zero state → c = i·g, h = o·tanh(c).
  nn::LstmLayerWeights w{{1, 1, 1, 1}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}};
  nn::Lstm lstm(1, 1, {w});
  Tensor y = lstm.forward(make_input(1, 1, 1, {0.5f}), nullptr);
  const float s = 1.0f / (1.0f + std::exp(-0.5f));
  EXPECT_NEAR(y.data[0], s * std::tanh(s * std::tanh(0.5f)), 1e-7);
}

// ---------------------------------------------------------------------------------------------
// Codec kernels: packed matmul and ELU, each against its scalar twin (bitwise) and a reference

TEST(PackedMatmul, MatchesScalarTwinAndReference) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  struct Case {
    int64_t m, n, k, lda;
  };
  // Edge tiles in both directions, overlapping rows (lda < k, as in a convolution), n < 8.
  for (const Case& t :
       {Case{1, 16, 8, 8}, Case{7, 17, 13, 13}, Case{13, 40, 96, 96}, Case{29, 35, 12, 4},
        Case{64, 8, 300, 300}, Case{5, 3, 21, 21}, Case{100, 130, 33, 40}, Case{1, 80, 37, 37},
        Case{2, 70, 19, 19}, Case{1, 4096, 64, 64}, Case{2, 200, 1, 1}}) {
    std::vector<float> a(static_cast<size_t>((t.m - 1) * t.lda + t.k)), w(t.n * t.k), bias(t.n);
    for (float& v : a) v = u(rng);
    for (float& v : w) v = u(rng);
    for (float& v : bias) v = u(rng);
    nn::PackedWeights packed(w.data(), t.n, t.k);
    std::vector<float> scalar(t.m * t.n), vec(t.m * t.n), pooled(t.m * t.n);
    nn::matmul_packed_scalar(a.data(), t.lda, packed, bias.data(), scalar.data(), t.n, 0, t.m, 0,
                             packed.panels());
    if (kernels::at_least(kernels::detect_isa(), kernels::Isa::kAvx2)) {
      nn::matmul_packed_avx2(a.data(), t.lda, packed, bias.data(), vec.data(), t.n, 0, t.m, 0,
                             packed.panels());
      EXPECT_EQ(0, std::memcmp(scalar.data(), vec.data(), sizeof(float) * vec.size()))
          << "m=" << t.m << " n=" << t.n << " k=" << t.k;
    }
    ThreadPool pool(3);
    nn::matmul_packed(a.data(), t.lda, packed, bias.data(), pooled.data(), t.n, t.m, &pool);
    EXPECT_EQ(0, std::memcmp(scalar.data(), pooled.data(), sizeof(float) * pooled.size()));
    nn::WeightMatrix wm(w, t.n, t.k);
    std::vector<float> via(t.m * t.n);
    wm.multiply(a.data(), t.lda, bias.data(), via.data(), t.n, t.m, &pool);
    double max_err = 0.0;
    for (int64_t i = 0; i < t.m; ++i)
      for (int64_t j = 0; j < t.n; ++j) {
        double ref = bias[j];
        for (int64_t p = 0; p < t.k; ++p)
          ref += static_cast<double>(a[i * t.lda + p]) * w[j * t.k + p];
        max_err = std::max(max_err, std::fabs(ref - scalar[i * t.n + j]));
        max_err = std::max(max_err, std::fabs(ref - via[i * t.n + j]));
      }
    EXPECT_LT(max_err, 1e-4) << "m=" << t.m << " n=" << t.n << " k=" << t.k;
  }
}

TEST(Elu, MatchesExpm1AndScalarTwin) {
  std::vector<float> x;
  for (float v = -100.0f; v <= 5.0f; v += 0.0137f) x.push_back(v);
  for (float v = -1e-3f; v <= 1e-3f; v += 1.3e-6f) x.push_back(v);
  for (float v : {0.0f, -0.0f, -1e-30f, 1e-30f, -87.5f, -1e4f, -INFINITY, INFINITY}) x.push_back(v);
  std::vector<float> s(x.size()), v(x.size());
  nn::elu_scalar(x.data(), s.data(), static_cast<int64_t>(x.size()));
  double worst_ulps = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = x[i] > 0 ? x[i] : std::expm1(static_cast<double>(x[i]));
    const float rf = static_cast<float>(ref);
    const double ulp =
        std::max(static_cast<double>(std::fabs(std::nextafter(rf, 0.0f) - rf)), 1e-45);
    worst_ulps = std::max(worst_ulps, std::fabs(s[i] - ref) / ulp);
  }
  EXPECT_LE(worst_ulps, 2.0);
  if (kernels::at_least(kernels::detect_isa(), kernels::Isa::kAvx2)) {
    nn::elu_avx2(x.data(), v.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(0, std::memcmp(s.data(), v.data(), sizeof(float) * s.size()));
  }
  float nan = NAN;
  nn::elu(&nan, &nan, 1);
  EXPECT_TRUE(std::isnan(nan));
}

// ---------------------------------------------------------------------------------------------
// Fixture parity

struct Fixture {
  EncodecConfig cfg;
  TensorStore store;
  TensorStore golden;
};

Fixture open_fixture(const std::string& name) {
  const std::string dir = fixture_dir(name);
  return {load_musicgen_config(dir).audio_encoder, TensorStore::open_checkpoint(dir),
          load_golden(name)};
}

std::vector<int32_t> to_i32(const std::vector<int64_t>& v) {
  return std::vector<int32_t>(v.begin(), v.end());
}

class EncodecFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(EncodecFixture, DecodeMatchesReference) {
  Fixture f = open_fixture(GetParam());
  EncodecModel codec(f.cfg, f.store);
  ThreadPool pool(2);
  const TensorInfo* ci = f.golden.find("encodec.codes");  // [chunks=1, B, Q, T]
  ASSERT_NE(ci, nullptr);
  ASSERT_EQ(ci->shape.size(), 4u);
  const int batch = ci->shape[1], n_q = ci->shape[2], frames = ci->shape[3];
  Tensor audio = codec.decode(to_i32(f.golden.get_i64("encodec.codes")), batch, n_q, frames, &pool);
  const ConstTensor expected = f.golden.get_f32("encodec.audio");
  EXPECT_EQ(audio.shape, expected.shape);
  expect_close(audio.data, expected, kTol, GetParam() + " encodec.audio");
  std::printf("[ %s ] decode rel. max error %.3g\n", GetParam().c_str(),
              testing::relative_max_error(audio.ptr(), expected.data, expected.numel()));
}

TEST_P(EncodecFixture, DecodeGreedyRunMatchesReference) {
  Fixture f = open_fixture(GetParam());
  EncodecModel codec(f.cfg, f.store);
  ThreadPool pool(2);
  for (const std::string run : {"greedy_g1", "greedy_g3"}) {
    const TensorInfo* ci = f.golden.find(run + ".codes");  // [B, K, N]
    if (ci == nullptr) continue;
    const int batch = ci->shape[0], n_q = ci->shape[1], frames = ci->shape[2];
    Tensor audio =
        codec.decode(to_i32(f.golden.get_i64(run + ".codes")), batch, n_q, frames, &pool);
    const ConstTensor expected = f.golden.get_f32(run + ".audio");
    EXPECT_EQ(audio.shape, expected.shape);
    expect_close(audio.data, expected, kTol, GetParam() + " " + run + ".audio");
    std::printf("[ %s ] %s decode rel. max error %.3g\n", GetParam().c_str(), run.c_str(),
                testing::relative_max_error(audio.ptr(), expected.data, expected.numel()));
  }
}

TEST_P(EncodecFixture, DecodeIndependentOfThreadCount) {
  Fixture f = open_fixture(GetParam());
  EncodecModel codec(f.cfg, f.store);
  const TensorInfo* ci = f.golden.find("greedy_g3.codes");  // [B, K, N]
  ASSERT_NE(ci, nullptr);
  const std::vector<int32_t> codes = to_i32(f.golden.get_i64("greedy_g3.codes"));
  ThreadPool one(1), two(2), three(3);
  const Tensor a = codec.decode(codes, ci->shape[0], ci->shape[1], ci->shape[2], &one);
  const Tensor b = codec.decode(codes, ci->shape[0], ci->shape[1], ci->shape[2], &two);
  const Tensor c = codec.decode(codes, ci->shape[0], ci->shape[1], ci->shape[2], &three);
  const Tensor d = codec.decode(codes, ci->shape[0], ci->shape[1], ci->shape[2], nullptr);
  EXPECT_TRUE(a.data == b.data) << "1 vs 2 threads differ";
  EXPECT_TRUE(a.data == c.data) << "1 vs 3 threads differ";
  EXPECT_TRUE(a.data == d.data) << "1 thread vs no pool differ";
}

TEST_P(EncodecFixture, DecodeInChunksEqualsOnePass) {
  // The audio-rate convolutions run in chunks with a halo (EncodecModel::decode_latent): every
  // chunk size must give the one-pass result bit for bit, and the one pass matches the
  // reference (DecodeMatchesReference). Random codes, long enough for many chunks.
  Fixture f = open_fixture(GetParam());
  EncodecModel codec(f.cfg, f.store);
  ThreadPool pool(2);
  const int batch = 2, n_q = codec.num_quantizers(), frames = 70;
  std::vector<int32_t> codes(static_cast<size_t>(batch) * n_q * frames);
  uint32_t state = 12345;
  for (int32_t& c : codes) {
    state = state * 1664525u + 1013904223u;
    c = static_cast<int32_t>((state >> 8) % static_cast<uint32_t>(codec.codebook_size()));
  }
  const Tensor latent = codec.quantizer_decode(codes, batch, n_q, frames);
  const Tensor whole = codec.decode_latent(latent, &pool, 0);
  ASSERT_EQ(whole.shape, (Shape{batch, 1, static_cast<int64_t>(frames) * codec.hop_length()}));
  for (int64_t chunk : {1, 3, 16, 53}) {
    const Tensor parts = codec.decode_latent(latent, &pool, chunk);
    ASSERT_EQ(parts.shape, whole.shape) << "chunk " << chunk;
    size_t first_diff = parts.data.size();
    for (size_t i = 0; i < parts.data.size() && first_diff == parts.data.size(); ++i)
      if (std::memcmp(&parts.data[i], &whole.data[i], sizeof(float)) != 0) first_diff = i;
    EXPECT_EQ(first_diff, parts.data.size())
        << "chunk " << chunk << ": sample " << first_diff << " differs from one pass";
  }
}

TEST_P(EncodecFixture, BadCodesThrow) {
  Fixture f = open_fixture(GetParam());
  EncodecModel codec(f.cfg, f.store);
  const int q = codec.num_quantizers(), v = codec.codebook_size();
  std::vector<int32_t> codes(static_cast<size_t>(q) * 3, 1);
  EXPECT_NO_THROW(codec.decode(codes, 1, q, 3, nullptr));
  codes[4] = v;  // the special token id, one past the codebook
  EXPECT_THROW(codec.decode(codes, 1, q, 3, nullptr), Error);
  codes[4] = -1;
  EXPECT_THROW(codec.decode(codes, 1, q, 3, nullptr), Error);
  codes[4] = 0;
  EXPECT_THROW(codec.decode(codes, 1, q + 1, 3, nullptr), Error);  // size mismatch, too many
  std::vector<int32_t> more(static_cast<size_t>(q + 1) * 3, 0);
  EXPECT_THROW(codec.decode(more, 1, q + 1, 3, nullptr), Error);  // n_q > num_quantizers
  EXPECT_THROW(codec.decode({}, 1, q, 0, nullptr), Error);
  try {
    codes[2] = v + 5;
    codec.decode(codes, 1, q, 3, nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_THROW(codec.encode(nullptr, 1, 0, nullptr, nullptr), Error);
}

TEST_P(EncodecFixture, EncodeShapesAndRoundTrip) {
  Fixture f = open_fixture(GetParam());
  EncodecModel codec(f.cfg, f.store);
  const int hop = codec.hop_length();
  // Frames are ceil(L / hop), for lengths down to a single sample (reflect-pad workaround).
  for (int64_t len :
       {int64_t{1}, int64_t{7}, int64_t{hop - 1}, int64_t{hop}, int64_t{3 * hop + 5}}) {
    std::vector<float> audio(static_cast<size_t>(2 * len));
    for (size_t i = 0; i < audio.size(); ++i) audio[i] = 0.3f * std::sin(0.05f * i);
    int frames = -1;
    std::vector<int32_t> codes = codec.encode(audio.data(), 2, len, nullptr, &frames);
    EXPECT_EQ(frames, (len + hop - 1) / hop) << "L=" << len;
    ASSERT_EQ(codes.size(), static_cast<size_t>(2) * codec.num_quantizers() * frames);
    for (int32_t c : codes) {
      EXPECT_GE(c, 0);
      EXPECT_LT(c, codec.codebook_size());
    }
  }
  // A latent that is exactly one codebook row per frame quantises back to that row at level 0.
  const int frames = 5;
  std::vector<int32_t> level0(2 * frames);
  for (size_t i = 0; i < level0.size(); ++i)
    level0[i] = static_cast<int32_t>((i * 37 + 3) % codec.codebook_size());
  Tensor z = codec.quantizer_decode(level0, 2, 1, frames);  // [2, D, frames]
  const std::vector<int32_t> codes = codec.quantizer_encode(z, nullptr);
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < frames; ++t)
      EXPECT_EQ(codes[(b * codec.num_quantizers()) * frames + t], level0[b * frames + t]);
}

TEST_P(EncodecFixture, EncodeMatchesReference) {
  Fixture f = open_fixture(GetParam());
  if (!f.golden.has("encodec.encode_input") || !f.golden.has("encodec.encode_latent") ||
      !f.golden.has("encodec.encode_codes"))
    GTEST_SKIP() << "golden lacks encodec.encode_input / encode_latent / encode_codes";
  EncodecModel codec(f.cfg, f.store);
  ThreadPool pool(2);
  const ConstTensor input = f.golden.get_f32("encodec.encode_input");  // [B, 1, L]
  ASSERT_EQ(input.rank(), 3u);
  ASSERT_EQ(input.dim(1), 1);
  const int batch = input.dim(0);
  const int64_t samples = input.dim(2);
  Tensor latent = codec.encode_latent(input.data, batch, samples, &pool);  // [B, D, T]
  const ConstTensor expected_latent = f.golden.get_f32("encodec.encode_latent");
  EXPECT_EQ(latent.shape, expected_latent.shape);
  expect_close(latent.data, expected_latent, kTol, GetParam() + " encodec.encode_latent");
  std::printf(
      "[ %s ] encode latent rel. max error %.3g\n", GetParam().c_str(),
      testing::relative_max_error(latent.ptr(), expected_latent.data, expected_latent.numel()));

  int frames = 0;
  const std::vector<int32_t> codes = codec.encode(input.data, batch, samples, &pool, &frames);
  const TensorInfo* ci = f.golden.find("encodec.encode_codes");  // [B, Q, T] (or [1, B, Q, T])
  const std::vector<int64_t> expected = f.golden.get_i64("encodec.encode_codes");
  EXPECT_EQ(ci->shape.back(), frames);
  ASSERT_EQ(codes.size(), expected.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < codes.size(); ++i) mismatches += codes[i] != expected[i];
  EXPECT_EQ(mismatches, 0u) << GetParam() << ": " << mismatches << " of " << codes.size()
                            << " codes differ";

  // The quantizer alone on the reference latent must reproduce the reference codes exactly.
  Tensor ref_latent(expected_latent.shape);
  std::copy(expected_latent.data, expected_latent.data + expected_latent.numel(), ref_latent.ptr());
  const std::vector<int32_t> codes_ref = codec.quantizer_encode(ref_latent, &pool);
  size_t ref_mismatches = 0;
  for (size_t i = 0; i < codes_ref.size(); ++i) ref_mismatches += codes_ref[i] != expected[i];
  EXPECT_EQ(ref_mismatches, 0u);
}

INSTANTIATE_TEST_SUITE_P(Tiny, EncodecFixture, ::testing::Values("tiny-a", "tiny-b", "tiny-edge", "tiny-edge2"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

TEST(EncodecSpecs, ReportsEveryMissingTensorAtOnce) {
  const std::string dir = fixture_dir("tiny-a");
  const EncodecConfig cfg = load_musicgen_config(dir).audio_encoder;
  const TensorStore store = TensorStore::open_checkpoint(dir);
  const std::vector<TensorSpec> specs = EncodecModel::tensor_specs(cfg);
  EXPECT_NO_THROW(validate_tensors(store, specs));
  // A wrong prefix: every tensor is missing, one error.
  try {
    EncodecModel codec(cfg, store, "nope.");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
    EXPECT_NE(std::string(e.what()).find(std::to_string(specs.size()) + " tensor(s)"),
              std::string::npos)
        << e.what();
  }
  // A config that does not match the checkpoint (num_filters) is reported, not crashed on.
  EncodecConfig wrong = cfg;
  wrong.num_filters *= 2;
  EXPECT_THROW(EncodecModel(wrong, store), Error);
}

}  // namespace
}  // namespace musicgen
