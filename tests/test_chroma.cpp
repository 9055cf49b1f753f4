// Chroma extractor (HF MusicgenMelodyFeatureExtractor): the filter bank against values printed by
// transformers' chroma_filter_bank, frame counts, padding and truncation rules, pitch classes of
// pure tones, a deterministic melody whose expected argmax sequence was computed once with the HF
// extractor (transformers 4.40.2, torch 1.13), and the fixture golden (tests/fixtures/tiny-melody).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <numbers>
#include <thread>

#include "audio/audio_reader.h"
#include "core/error.h"
#include "models/chroma.h"
#include "test_util.h"

namespace musicgen {
namespace {

constexpr int kC = ChromaExtractor::kNumChroma;
constexpr int kBins = ChromaExtractor::kNumBins;

const ChromaExtractor& extractor() {
  static const ChromaExtractor ex;
  return ex;
}

// A deterministic 32 kHz test melody: 16 notes of 0.25 s (three harmonics each) repeating, plus a
// little LCG noise. The HF sequences below were computed from exactly these float32 samples.
std::vector<float> melody_signal(int64_t n) {
  static const int kNotes[16] = {0, 4, 7, 12, 2, 5, 9, 11, -3, 1, 6, 10, 3, 8, -5, -1};
  std::vector<float> x(static_cast<size_t>(n));
  uint32_t lcg = 12345;
  for (int64_t t = 0; t < n; ++t) {
    const double f = 261.6255653005986 * std::exp2(kNotes[(t / 8000) % 16] / 12.0);
    const double ph = 2.0 * std::numbers::pi * f * static_cast<double>(t) / 32000.0;
    lcg = lcg * 1664525u + 1013904223u;
    const double noise = 0.02 * (lcg / 4294967296.0 - 0.5);
    x[t] = static_cast<float>(0.4 * std::sin(ph) + 0.2 * std::sin(2 * ph) + 0.1 * std::sin(3 * ph) +
                              noise);
  }
  return x;
}

std::vector<float> tone(double freq, int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t)
    x[t] = static_cast<float>(0.5 * std::sin(2.0 * std::numbers::pi * freq * t / 32000.0));
  return x;
}

// One-hot rows → "0123456789ab" string of the hot bin; '?' for a row that is not one-hot.
std::string argmax_string(const std::vector<float>& onehot) {
  std::string s;
  for (size_t t = 0; t * kC < onehot.size(); ++t) {
    int hot = -1, count = 0;
    for (int c = 0; c < kC; ++c) {
      const float v = onehot[t * kC + c];
      if (v == 1.0f)
        hot = c, ++count;
      else if (v != 0.0f)
        count = 99;
    }
    s += count == 1 ? "0123456789ab"[hot] : '?';
  }
  return s;
}

TEST(ChromaFilterBank, MatchesTransformersFloat32Values) {
  const std::vector<float>& fb = extractor().filter_bank();
  ASSERT_EQ(fb.size(), static_cast<size_t>(kC) * kBins);
  // Bit patterns of transformers.audio_utils.chroma_filter_bank(...).astype(float32).
  struct Entry {
    int c, f;
    uint32_t bits;
  };
  for (const Entry& e :
       {Entry{0, 0, 887814587u}, Entry{0, 1, 933746223u}, Entry{3, 100, 681808412u},
        Entry{9, 225, 1063107546u}, Entry{0, 134, 1059815386u}, Entry{11, 8192, 1037724851u},
        Entry{5, 4000, 235549032u}}) {
    uint32_t bits;
    std::memcpy(&bits, &fb[static_cast<size_t>(e.c) * kBins + e.f], 4);
    EXPECT_EQ(bits, e.bits) << "F[" << e.c << ", " << e.f << "]";
  }
  // Row sums of the float32 matrix (in double) and each row's peak column.
  const double row_sums[kC] = {318.45010146296744, 321.2260176482952,  327.77352565764704,
                               334.1781035738332,  340.4167759400939,  346.4975465216155,
                               352.38678830656005, 358.08505991790435, 363.61653419912744,
                               368.94283377610816, 373.52980171382023, 354.8397351330075};
  const int peak_col[kC] = {536, 567, 601, 637, 338, 358, 379, 401, 425, 451, 477, 506};
  for (int c = 0; c < kC; ++c) {
    double sum = 0;
    int peak = 0;
    for (int f = 0; f < kBins; ++f) {
      sum += fb[static_cast<size_t>(c) * kBins + f];
      if (fb[static_cast<size_t>(c) * kBins + f] > fb[static_cast<size_t>(c) * kBins + peak])
        peak = f;
    }
    EXPECT_NEAR(sum, row_sums[c], 1e-9) << "row " << c;
    EXPECT_EQ(peak, peak_col[c]) << "row " << c;
  }
}

TEST(Chroma, FrameCounts) {
  EXPECT_EQ(ChromaExtractor::num_frames(960000), 235);
  EXPECT_EQ(ChromaExtractor::num_frames(2000000), 235);  // truncated to 30 s
  EXPECT_EQ(ChromaExtractor::num_frames(16384), 5);
  EXPECT_EQ(ChromaExtractor::num_frames(1), 5);  // zero-padded to n_fft
  EXPECT_EQ(ChromaExtractor::num_frames(20479), 5);
  EXPECT_EQ(ChromaExtractor::num_frames(20480), 6);
  const std::vector<float> x = tone(440.0, 50000);
  EXPECT_EQ(extractor().extract(x.data(), 50000).size(), static_cast<size_t>(13 * kC));
}

TEST(Chroma, PureTonesGiveTheirPitchClass) {
  // C4, E4, A4 (bins 0, 4, 9 with C first), 3 s each.
  const struct {
    double freq;
    char bin;
  } cases[] = {{261.6255653005986, '0'}, {329.6275569128699, '4'}, {440.0, '9'}, {493.8833, 'b'}};
  for (const auto& c : cases) {
    const std::vector<float> x = tone(c.freq, 96000);
    const std::string s = argmax_string(extractor().extract(x.data(), 96000));
    EXPECT_EQ(s, std::string(s.size(), c.bin)) << c.freq << " Hz";
  }
}

TEST(Chroma, SilenceIsBinZeroAndRowsAreOneHot) {
  const std::vector<float> zeros(70000, 0.0f);
  const std::string s = argmax_string(extractor().extract(zeros.data(), 70000));
  EXPECT_EQ(s, std::string(18, '0'));
}

TEST(Chroma, MatchesHuggingFaceOnAMelody) {
  // Expected argmax per frame from MusicgenMelodyFeatureExtractor on melody_signal(n).
  // The smallest relative gap between the best and second-best raw chroma was 0.0069 (8 s),
  // 0.0020 (34 s) and 0.0094 (short): far above the ~1e-6 difference between the two
  // implementations' raw chroma, so the comparison is robust.
  const std::vector<float> x8 = melody_signal(256000);
  EXPECT_EQ(argmax_string(extractor().extract(x8.data(), 256000)),
            "00447700225599bb991166aa338877bb0044770025599bbb91166aa338877bb");

  const std::vector<float> x34 = melody_signal(1100000);  // 34.4 s: only the first 30 s count
  EXPECT_EQ(argmax_string(extractor().extract(x34.data(), 1100000)),
            "00447700225599bb991166aa338877bb0044770025599bbb91166aa338877bb00447700225599bb9"
            "9116aaa38877bb00447700225599bb991166aa33887bbb0447700225599bb991166aa338877bb004"
            "4770022599bbb91166aa338877bb00447700225599bb99116aaa38877bb00447700225599bb");

  const std::vector<float> xs = melody_signal(10000);  // shorter than n_fft: zero-padded
  EXPECT_EQ(argmax_string(extractor().extract(xs.data(), 10000)), "00044");
}

TEST(Chroma, ShortInputIsCentredInZeros) {
  // 10000 samples → 6384 zeros of padding: 3192 left, 3192 right.
  const std::vector<float> x = melody_signal(10000);
  std::vector<float> padded(16384, 0.0f);
  std::copy(x.begin(), x.end(), padded.begin() + 3192);
  EXPECT_EQ(extractor().raw_chroma(x.data(), 10000), extractor().raw_chroma(padded.data(), 16384));
  // Odd padding: the extra zero goes right.
  std::vector<float> padded2(16384, 0.0f);
  std::copy(x.begin(), x.begin() + 9999, padded2.begin() + 3192);
  EXPECT_EQ(extractor().raw_chroma(x.data(), 9999), extractor().raw_chroma(padded2.data(), 16384));
}

TEST(Chroma, LongInputIsTruncatedTo30Seconds) {
  const std::vector<float> x = melody_signal(1000000);
  EXPECT_EQ(extractor().raw_chroma(x.data(), 1000000), extractor().raw_chroma(x.data(), 960000));
}

TEST(Chroma, BadInputThrows) {
  const auto expect_invalid = [](auto&& f, const char* needle) {
    try {
      f();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const float one = 1.0f;
  expect_invalid([&] { extractor().extract(&one, 0); }, "empty");
  std::vector<float> x = tone(440.0, 20000);
  x[123] = NAN;
  expect_invalid([&] { extractor().extract(x.data(), 20000); }, "NaN");
}

TEST(Chroma, ConcurrentCallsAgreeAndAreFast) {
  const std::vector<float> x = melody_signal(960000);
  const std::clock_t c0 = std::clock();
  const std::vector<float> ref = extractor().extract(x.data(), 960000);
  const double cpu_s = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  std::printf("chroma of 30 s: %.3f s CPU\n", cpu_s);
  EXPECT_LT(cpu_s, 2.0);  // ~0.1 s in Release; generous for sanitizer builds
  std::vector<float> a, b;
  std::thread ta([&] { a = extractor().extract(x.data(), 960000); });
  std::thread tb([&] { b = extractor().extract(x.data(), 960000); });
  ta.join();
  tb.join();
  EXPECT_EQ(a, ref);
  EXPECT_EQ(b, ref);
}

// The fixture goldens (tools/reference/make_fixtures.py): chroma.input [1, L] = the float32 mono
// signal HF computed chroma on (stereo: the channel mean), chroma.features [1, T, 12] from
// MusicgenMelodyFeatureExtractor; compared exactly. melody.wav holds the same samples as int16,
// so the file path (load_audio → mono mix) is checked too.
class ChromaGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(ChromaGolden, MatchesFixture) {
  const std::string dir = testing::fixture_dir(GetParam());
  if (!std::filesystem::exists(dir + "/golden.safetensors"))
    GTEST_SKIP() << dir << "/golden.safetensors not generated";
  const TensorStore golden = testing::load_golden(GetParam());
  const ConstTensor input = golden.get_f32("chroma.input");
  const ConstTensor features = golden.get_f32("chroma.features");
  const std::vector<float> got = extractor().extract(input.data, input.numel());
  ASSERT_EQ(static_cast<int64_t>(got.size()), features.numel());
  const std::vector<float> expected(features.data, features.data + features.numel());
  const std::string got_s = argmax_string(got), exp_s = argmax_string(expected);
  EXPECT_EQ(got_s, exp_s);
  EXPECT_EQ(got, expected);

  // How close the nearest decision was (relative gap between the two largest raw bins).
  const std::vector<double> raw = extractor().raw_chroma(input.data, input.numel());
  double min_gap = INFINITY;
  for (size_t t = 0; t * kC < raw.size(); ++t) {
    double best = -1, second = -1;
    for (int c = 0; c < kC; ++c) {
      const double v = raw[t * kC + c];
      if (v > best)
        second = best, best = v;
      else if (v > second)
        second = v;
    }
    if (best > 0) min_gap = std::min(min_gap, (best - second) / best);
  }
  std::printf("%s chroma: %zu frames, smallest relative top-2 gap %.3g\n", GetParam(), got_s.size(),
              min_gap);

  const std::string wav = dir + "/melody.wav";
  if (!std::filesystem::exists(wav)) return;
  const AudioBuffer mono = to_channels(load_audio(wav), 1);
  ASSERT_EQ(mono.sample_rate, ChromaExtractor::kSampleRate);
  ASSERT_EQ(mono.frames, input.numel());
  EXPECT_TRUE(std::equal(mono.samples.begin(), mono.samples.end(), input.data))
      << "melody.wav mixed to mono differs from chroma.input";
  EXPECT_EQ(extractor().extract(mono.channel(0), mono.frames), expected);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ChromaGolden,
                         ::testing::Values("tiny-melody", "tiny-stereo-melody"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace musicgen
