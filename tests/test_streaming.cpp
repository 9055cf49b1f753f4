// Streaming audio: EnCodec decoding while the codes arrive (models/encodec_stream.h) and
// GenerationOptions::on_audio. The reference for every check is the non-streamed decode
// (EncodecModel::decode, itself held to the transformers goldens in test_encodec/test_parity):
// streamed pieces must concatenate to it bit for bit.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "format/random_checkpoint.h"
#include "format/safetensors.h"
#include "models/encodec.h"
#include "models/encodec_stream.h"
#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen {
namespace {

using testing::fixture_dir;

bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, sizeof(float) * n) == 0;
}

// ---------------------------------------------------------------------------------------------
// The streaming decoder against EncodecModel::decode

struct Codec {
  EncodecConfig cfg;
  TensorStore store;
};

Codec open_codec(const std::string& fixture) {
  const std::string dir = fixture_dir(fixture);
  return {load_musicgen_config(dir).audio_encoder, TensorStore::open_checkpoint(dir)};
}

std::vector<int32_t> random_codes(int batch, int n_q, int frames, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> u(0, vocab - 1);
  std::vector<int32_t> codes(static_cast<size_t>(batch) * n_q * frames);
  for (int32_t& c : codes) c = u(rng);
  return codes;
}

// Frames [first, first + count) of codes [B, n_q, T].
std::vector<int32_t> slice_frames(const std::vector<int32_t>& codes, int batch, int n_q, int frames,
                                  int first, int count) {
  std::vector<int32_t> out(static_cast<size_t>(batch) * n_q * count);
  for (int bq = 0; bq < batch * n_q; ++bq)
    std::copy_n(codes.data() + static_cast<size_t>(bq) * frames + first, count,
                out.data() + static_cast<size_t>(bq) * count);
  return out;
}

struct Streamed {
  std::vector<float> audio;           // [B, samples]
  std::vector<int64_t> frames_at;     // frames pushed when each non-empty piece came
};

// Pushes codes in pieces of sizes[i % sizes.size()] frames, then finishes.
Streamed stream_decode(const EncodecModel& codec, const std::vector<int32_t>& codes, int batch,
                       int n_q, int frames, const std::vector<int>& sizes, ThreadPool* pool,
                       int64_t first_chunk = EncodecStreamDecoder::kFirstChunkFrames,
                       int64_t chunk = EncodecStreamDecoder::kChunkFrames) {
  EncodecStreamDecoder dec(codec, batch, n_q, pool, first_chunk, chunk);
  const int64_t hop = codec.hop_length();
  std::vector<std::vector<float>> items(batch);
  Streamed s;
  auto take = [&](const Tensor& piece) {
    EXPECT_EQ(piece.shape.size(), 2u);
    EXPECT_EQ(piece.dim(0), batch);
    const int64_t n = piece.dim(1);
    EXPECT_EQ(n % hop, 0);
    if (n == 0) return;
    s.frames_at.push_back(dec.frames_pushed());
    for (int b = 0; b < batch; ++b)
      items[b].insert(items[b].end(), piece.ptr() + b * n, piece.ptr() + (b + 1) * n);
  };
  int done = 0;
  for (size_t i = 0; done < frames; ++i) {
    const int n = std::min(frames - done, sizes[i % sizes.size()]);
    take(dec.push(slice_frames(codes, batch, n_q, frames, done, n), n));
    done += n;
    EXPECT_EQ(dec.samples_emitted(), static_cast<int64_t>(items[0].size()));
  }
  take(dec.finish());
  for (auto& v : items) s.audio.insert(s.audio.end(), v.begin(), v.end());
  return s;
}

TEST(StreamDecoder, EqualsWholeDecodeBitwiseForEveryPushPattern) {
  Codec f = open_codec("tiny-a");
  EncodecModel codec(f.cfg, f.store);
  ThreadPool pool(2);
  const int batch = 2, n_q = codec.num_quantizers();
  const std::vector<std::vector<int>> patterns = {
      {1}, {7, 3, 13}, {1 << 20}, {2, 40, 1, 5}, {299}, {64}};
  for (int frames : {1, 2, 3, 4, 5, 11, 37, 90, 301, 700}) {
    const std::vector<int32_t> codes =
        random_codes(batch, n_q, frames, codec.codebook_size(), 1000 + frames);
    const Tensor whole = codec.decode(codes, batch, n_q, frames, &pool);
    ASSERT_EQ(whole.numel(), static_cast<int64_t>(batch) * frames * codec.hop_length());
    for (const std::vector<int>& sizes : patterns) {
      const Streamed s = stream_decode(codec, codes, batch, n_q, frames, sizes, &pool);
      ASSERT_EQ(s.audio.size(), whole.data.size()) << frames << " frames";
      EXPECT_TRUE(same_bits(s.audio.data(), whole.ptr(), whole.data.size()))
          << frames << " frames, pushes of " << sizes[0] << "...";
    }
    // Tiny chunks (every frame as soon as possible) and no pool: the same bits.
    const Streamed fine = stream_decode(codec, codes, batch, n_q, frames, {3}, nullptr, 1, 1);
    ASSERT_EQ(fine.audio.size(), whole.data.size());
    EXPECT_TRUE(same_bits(fine.audio.data(), whole.ptr(), whole.data.size())) << frames;
  }
  // Fewer codebooks than the codec has (musicgen's codec may hold more than the decoder uses).
  const std::vector<int32_t> codes = random_codes(1, 2, 120, codec.codebook_size(), 5);
  const Tensor whole = codec.decode(codes, 1, 2, 120, &pool);
  const Streamed s = stream_decode(codec, codes, 1, 2, 120, {1}, &pool);
  ASSERT_EQ(s.audio.size(), whole.data.size());
  EXPECT_TRUE(same_bits(s.audio.data(), whole.ptr(), whole.data.size()));
}

// musicgen's 32 kHz codec (hidden 128, a 1024-wide 2-layer LSTM, strides 8 5 4 4, 2048-entry
// codebooks) with random weights, built in memory: the real widths through every kernel.
std::unique_ptr<EncodecModel> musicgen_sized_codec() {
  const RandomShape* shape = find_random_shape("small");
  const EncodecConfig cfg =
      parse_musicgen_config(random_config_json(*shape, DType::kF32),
                            random_generation_config_json(*shape), "random small")
          .audio_encoder;
  std::mt19937 rng(11);
  std::vector<TensorInfo> infos;
  for (const TensorSpec& spec : EncodecModel::tensor_specs(cfg)) {
    const std::string& name = spec.names.front();
    const int64_t n = shape_numel(spec.shape);
    auto data = std::make_shared<std::vector<float>>(static_cast<size_t>(n));
    const int64_t fan_in = spec.shape.size() > 1 ? n / spec.shape[0] : 1;
    const bool is_g = name.find("weight_g") != std::string::npos;
    const float a = name.find("codebook") != std::string::npos ? 1.0f
                    : name.find("bias") != std::string::npos ? 0.05f
                                                              : std::sqrt(3.0f / fan_in);
    std::uniform_real_distribution<float> u(-a, a);
    std::uniform_real_distribution<float> g(0.5f, 1.5f);
    for (float& v : *data) v = is_g ? g(rng) : u(rng);
    TensorInfo info;
    info.name = name;
    info.dtype = DType::kF32;
    info.shape = spec.shape;
    info.data = reinterpret_cast<const uint8_t*>(data->data());
    info.nbytes = sizeof(float) * static_cast<size_t>(n);
    info.owner = data;
    infos.push_back(std::move(info));
  }
  const TensorStore store = TensorStore::from_tensors(std::move(infos), "random codec");
  return std::make_unique<EncodecModel>(cfg, store);
}

TEST(StreamDecoder, MusicgenSizedCodecEqualsWholeDecode) {
  const std::unique_ptr<EncodecModel> codec = musicgen_sized_codec();
  ASSERT_EQ(codec->hop_length(), 640);
  ThreadPool pool(2);
  const int batch = 1, n_q = 4, frames = 200;  // 4 s: a first piece, three more, the rest
  const std::vector<int32_t> codes = random_codes(batch, n_q, frames, codec->codebook_size(), 17);
  auto t0 = std::chrono::steady_clock::now();
  const Tensor whole = codec->decode(codes, batch, n_q, frames, &pool);
  const double whole_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const std::vector<int>& sizes : std::vector<std::vector<int>>{{1}, {7, 3, 13}}) {
    t0 = std::chrono::steady_clock::now();
    const Streamed s = stream_decode(*codec, codes, batch, n_q, frames, sizes, &pool);
    const double stream_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(s.audio.size(), whole.data.size());
    EXPECT_TRUE(same_bits(s.audio.data(), whole.ptr(), whole.data.size())) << sizes[0];
    std::printf("[ stream ] musicgen-sized codec, %d frames, pushes of %d...: whole %.2f s, "
                "streamed %.2f s (2 threads; timings noisy)\n",
                frames, sizes[0], whole_s, stream_s);
  }
}

TEST(StreamDecoder, AudioComesWhileFramesArrive) {
  Codec f = open_codec("tiny-a");
  EncodecModel codec(f.cfg, f.store);
  const int frames = 300, n_q = codec.num_quantizers();
  const std::vector<int32_t> codes = random_codes(1, n_q, frames, codec.codebook_size(), 9);
  const Streamed s = stream_decode(codec, codes, 1, n_q, frames, {1}, nullptr);
  // The first piece: 25 frames of audio once their halo (8) and the first conv's lookahead (3)
  // exist; then one per 50 frames; the last at finish().
  ASSERT_GE(s.frames_at.size(), 5u);
  EXPECT_EQ(s.frames_at[0], 25 + EncodecModel::kDecodeHaloFrames + 3);
  for (size_t i = 1; i + 1 < s.frames_at.size(); ++i)
    EXPECT_EQ(s.frames_at[i] - s.frames_at[i - 1], 50) << i;
  EXPECT_EQ(s.frames_at.back(), frames);
}

TEST(StreamDecoder, BadInputIsAnError) {
  Codec f = open_codec("tiny-a");
  EncodecModel codec(f.cfg, f.store);
  const int n_q = codec.num_quantizers();
  EXPECT_THROW(EncodecStreamDecoder(codec, 1, n_q + 1, nullptr), Error);
  EXPECT_THROW(EncodecStreamDecoder(codec, 0, n_q, nullptr), Error);
  EncodecStreamDecoder dec(codec, 1, n_q, nullptr);
  EXPECT_THROW(dec.finish(), Error);  // nothing pushed
  std::vector<int32_t> codes(n_q * 2, 0);
  EXPECT_THROW(dec.push(codes, 3), Error);  // size mismatch
  codes[1] = codec.codebook_size();
  EXPECT_THROW(dec.push(codes, 2), Error);  // out of the codebook
  codes[1] = 0;
  dec.push(codes, 2);
  dec.finish();
  EXPECT_THROW(dec.push(codes, 2), Error);  // after finish
  EXPECT_THROW(dec.finish(), Error);
}

// ---------------------------------------------------------------------------------------------
// GenerationOptions::on_audio through the public API

struct StreamRun {
  GenerationResult result;
  std::vector<float> pieces;  // concatenated per (item, channel): [B, C, samples]
  int calls = 0;
  int step_at_first_piece = -1;
  int last_step = 0;
};

// Runs opt with on_audio (and a progress callback recording the step), checking that the pieces
// come in order, contiguous, in the result's layout.
StreamRun run_streamed(Session& session, GenerationOptions opt) {
  StreamRun s;
  std::vector<std::vector<float>> planes;
  int64_t next = 0;
  int step = 0;
  opt.progress = [&](int done, int) {
    step = done;
    return true;
  };
  opt.on_audio = [&](const float* audio, int batch, int channels, int64_t start, int64_t count) {
    EXPECT_EQ(start, next);
    EXPECT_GT(count, 0);
    if (planes.empty()) planes.resize(static_cast<size_t>(batch) * channels);
    EXPECT_EQ(planes.size(), static_cast<size_t>(batch) * channels);
    for (size_t p = 0; p < planes.size(); ++p)
      planes[p].insert(planes[p].end(), audio + p * count, audio + (p + 1) * count);
    if (s.calls++ == 0) s.step_at_first_piece = step;
    next = start + count;
    return true;
  };
  s.result = session.generate(opt);
  s.last_step = step;
  for (const auto& p : planes) s.pieces.insert(s.pieces.end(), p.begin(), p.end());
  return s;
}

// Streamed == result == the non-streamed generation, bit for bit.
void expect_stream_equals_whole(const std::string& fixture, const GenerationOptions& opt,
                                int min_pieces) {
  auto model = Model::load(fixture_dir(fixture));
  Session session(model, {.threads = 2});
  const GenerationResult whole = session.generate(opt);
  const StreamRun s = run_streamed(session, opt);
  const GenerationResult& r = s.result;
  EXPECT_EQ(r.codes, whole.codes);
  EXPECT_EQ(r.leading_padding, whole.leading_padding);
  ASSERT_EQ(r.batch, whole.batch);
  ASSERT_EQ(r.channels, whole.channels);
  ASSERT_EQ(r.samples, whole.samples);
  ASSERT_EQ(r.frames, whole.frames);
  ASSERT_EQ(r.audio.size(), whole.audio.size());
  ASSERT_EQ(s.pieces.size(), whole.audio.size()) << fixture;
  EXPECT_TRUE(same_bits(s.pieces.data(), whole.audio.data(), whole.audio.size()))
      << fixture << ": streamed pieces differ from the non-streamed audio";
  EXPECT_TRUE(same_bits(r.audio.data(), whole.audio.data(), whole.audio.size()))
      << fixture << ": the streamed result's audio differs from the non-streamed audio";
  EXPECT_GE(s.calls, min_pieces) << fixture;
  // The first piece came while generating: well before the last decoder step.
  ASSERT_GT(s.last_step, 0);
  EXPECT_GE(s.step_at_first_piece, 0);
  EXPECT_LT(s.step_at_first_piece, s.last_step / 2) << fixture;
}

GenerationOptions greedy(std::vector<std::string> prompts, double seconds) {
  GenerationOptions opt;
  opt.prompts = std::move(prompts);
  opt.duration_s = seconds;
  opt.greedy = true;
  return opt;
}

TEST(StreamingGenerate, TextBatchEqualsWhole) {
  // 4 s = 200 frames: pieces at 36, 86, 136, 186 frames and the end.
  expect_stream_equals_whole("tiny-a", greedy({"80s pop track", "a calm piano"}, 4.0), 5);
}

TEST(StreamingGenerate, FirstAudioWithinASecondOfFrames) {
  auto model = Model::load(fixture_dir("tiny-a"));
  Session session(model, {.threads = 1});
  const StreamRun s = run_streamed(session, greedy({"drums"}, 4.0));
  // Frame t is final after decoder step t + K (the delay pattern); the first piece needs 36
  // frames (25 + halo 8 + lookahead 3): at step 36 + 4 - 1 of 203.
  EXPECT_EQ(s.step_at_first_piece, 36 + 4 - 1);
  EXPECT_EQ(s.last_step, 200 + 4 - 1);
}

TEST(StreamingGenerate, StereoEqualsWhole) {
  expect_stream_equals_whole("tiny-stereo", greedy({"stereo jazz"}, 3.0), 3);
}

TEST(StreamingGenerate, ContinuationEqualsWhole) {
  GenerationOptions opt = greedy({"continue this", "and this"}, 4.0);
  // Two prompts of different lengths: left padding, and the prompt frames stream first.
  const AudioData clip = load_audio_file(fixture_dir("audio") + "/16k_mono.wav");
  opt.audio_prompts = {slice_audio(clip, 0.0, 1.0), slice_audio(clip, 0.2, 0.5)};
  expect_stream_equals_whole("tiny-a", opt, 4);
}

TEST(StreamingGenerate, MelodyEqualsWhole) {
  GenerationOptions opt = greedy({"follow the tune"}, 3.0);
  opt.melodies = {load_audio_file(fixture_dir("tiny-melody") + "/melody.wav")};
  expect_stream_equals_whole("tiny-melody", opt, 3);
}

TEST(StreamingGenerate, LongFormEqualsWhole) {
  // 40 s > the 30 s window: two windows (the second prompted by the first's last 12 s); audio
  // streams across the window boundary.
  GenerationOptions opt = greedy({"a long ambient piece"}, 40.0);
  expect_stream_equals_whole("tiny-a", opt, 30);
}

TEST(StreamingGenerate, ReturningFalseCancels) {
  auto model = Model::load(fixture_dir("tiny-a"));
  Session session(model, {.threads = 1});
  GenerationOptions opt = greedy({"stop me"}, 8.0);
  int calls = 0, step = 0;
  opt.progress = [&](int done, int) {
    step = done;
    return true;
  };
  opt.on_audio = [&](const float*, int, int, int64_t, int64_t) { return ++calls < 2; };
  try {
    session.generate(opt);
    FAIL() << "expected Error(kCancelled)";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCancelled) << e.what();
  }
  EXPECT_EQ(calls, 2);
  EXPECT_LT(step, 200);  // stopped at the second piece (86 frames), far before 403 steps
  // The session still works afterwards.
  opt.on_audio = nullptr;
  opt.duration_s = 1.0;
  EXPECT_EQ(session.generate(opt).frames, 50);
}

}  // namespace
}  // namespace musicgen
