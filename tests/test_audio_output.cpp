// Audio output: every format by its magic bytes and read back through libsndfile, audiocraft's
// normalisation strategies measured on the written files (loudness with libebur128 itself),
// tags read back per format, reproducible bytes; and the command line's formats, tags, seeds and
// standard output.
#include <ebur128.h>
#include <sndfile.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kRate = 32000;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A batch of `batch` items of `channels` channels: a mix of two tones and a little
// deterministic noise, each item and channel at its own amplitude `amp`.
GenerationResult make_result(int batch, int channels, int64_t samples, float amp) {
  GenerationResult r;
  r.batch = batch;
  r.channels = channels;
  r.sample_rate = kRate;
  r.samples = samples;
  r.frames = static_cast<int>(samples / 640);
  r.num_codebooks = 4;
  r.leading_padding.assign(batch, 0);
  r.audio.resize(static_cast<size_t>(batch) * channels * samples);
  uint32_t state = 12345;
  for (int b = 0; b < batch; ++b)
    for (int c = 0; c < channels; ++c)
      for (int64_t t = 0; t < samples; ++t) {
        state = state * 1664525u + 1013904223u;
        const double noise = (static_cast<double>(state >> 8) / (1 << 24) - 0.5) * 0.1;
        const double x = std::sin(2 * M_PI * 220.0 * (c + 1) * t / kRate) * 0.6 +
                         std::sin(2 * M_PI * 1375.0 * t / kRate + b) * 0.3 + noise;
        r.audio[(static_cast<size_t>(b) * channels + c) * samples + t] =
            static_cast<float>(x * amp * (1.0 + 0.25 * b));
      }
  return r;
}

// The planar samples of item `index` as the result holds them (padding skipped).
std::vector<float> item(const GenerationResult& r, int index) {
  const int64_t skip = r.leading_padding[index];
  const int64_t n = r.samples - skip;
  std::vector<float> out(static_cast<size_t>(r.channels) * n);
  for (int c = 0; c < r.channels; ++c)
    std::copy_n(r.audio.data() + (static_cast<size_t>(index) * r.channels + c) * r.samples + skip, n,
                out.data() + c * n);
  return out;
}

struct Decoded {
  int channels = 0, sample_rate = 0, format = 0;
  int64_t frames = 0;
  std::vector<float> planar;
  std::vector<short> pcm;  // interleaved, read as 16-bit
  std::map<int, std::string> tags;
};

Decoded decode(const std::string& path) {
  Decoded d;
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (f == nullptr) {
    ADD_FAILURE() << "libsndfile cannot read " << path << ": " << sf_strerror(nullptr);
    return d;
  }
  d.channels = info.channels;
  d.sample_rate = info.samplerate;
  d.frames = info.frames;
  d.format = info.format;
  for (int t = SF_STR_FIRST; t <= SF_STR_LAST; ++t)
    if (const char* s = sf_get_string(f, t)) d.tags[t] = s;
  std::vector<float> inter(static_cast<size_t>(info.frames) * info.channels);
  EXPECT_EQ(sf_readf_float(f, inter.data(), info.frames), info.frames) << path;
  d.planar.resize(inter.size());
  for (int c = 0; c < info.channels; ++c)
    for (int64_t t = 0; t < info.frames; ++t) d.planar[c * info.frames + t] = inter[t * info.channels + c];
  sf_seek(f, 0, SEEK_SET);
  d.pcm.resize(inter.size());
  EXPECT_EQ(sf_readf_short(f, d.pcm.data(), info.frames), info.frames) << path;
  sf_close(f);
  return d;
}

// Integrated loudness measured by libebur128 directly (unit channel weights: mono as one
// front channel, as torchaudio's Loudness that audiocraft uses).
double measure_lufs(const Decoded& d) {
  ebur128_state* st = ebur128_init(d.channels, d.sample_rate, EBUR128_MODE_I);
  std::vector<float> inter(d.planar.size());
  for (int c = 0; c < d.channels; ++c)
    for (int64_t t = 0; t < d.frames; ++t) inter[t * d.channels + c] = d.planar[c * d.frames + t];
  ebur128_add_frames_float(st, inter.data(), d.frames);
  double lufs = 0;
  ebur128_loudness_global(st, &lufs);
  ebur128_destroy(&st);
  return lufs;
}

float max_abs(const std::vector<float>& x) {
  float m = 0;
  for (float v : x) m = std::max(m, std::fabs(v));
  return m;
}

double rms_of_mean(const std::vector<float>& planar, int channels) {
  const size_t frames = planar.size() / channels;
  double sum = 0;
  for (size_t t = 0; t < frames; ++t) {
    double m = 0;
    for (int c = 0; c < channels; ++c) m += planar[c * frames + t];
    m /= channels;
    sum += m * m;
  }
  return std::sqrt(sum / frames);
}

// Pearson correlation of two equal-length signals.
double correlation(const float* a, const float* b, size_t n) {
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) ma += a[i], mb += b[i];
  ma /= n, mb /= n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

const float kMinus1dB = static_cast<float>(std::pow(10.0, -1.0 / 20.0));

void expect_magic(const std::string& bytes, AudioFileFormat f) {
  ASSERT_GT(bytes.size(), 64u);
  switch (f) {
    case AudioFileFormat::kWav:
      EXPECT_EQ(bytes.substr(0, 4), "RIFF");
      EXPECT_EQ(bytes.substr(8, 4), "WAVE");
      break;
    case AudioFileFormat::kFlac:
      EXPECT_EQ(bytes.substr(0, 4), "fLaC");
      break;
    case AudioFileFormat::kOgg:
      EXPECT_EQ(bytes.substr(0, 4), "OggS");
      EXPECT_EQ(bytes.substr(28, 7), "\x01vorbis");
      break;
    case AudioFileFormat::kOpus:
      EXPECT_EQ(bytes.substr(0, 4), "OggS");
      EXPECT_EQ(bytes.substr(28, 8), "OpusHead");
      break;
    case AudioFileFormat::kMp3: {
      // An ID3v2 tag (when there are tags), then MPEG-1 Layer III frames (sync 0xFFF, layer 01).
      const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
      const size_t tag = bytes.substr(0, 3) != "ID3" ? 0
                         : 10 + ((b[6] & 0x7f) << 21 | (b[7] & 0x7f) << 14 | (b[8] & 0x7f) << 7 | (b[9] & 0x7f));
      ASSERT_LT(tag + 2, bytes.size());
      EXPECT_EQ(b[tag], 0xff);
      EXPECT_EQ(b[tag + 1] & 0xfe, 0xfa) << "not an MPEG-1 Layer III frame header";
      break;
    }
  }
}

const AudioFileFormat kFormats[] = {AudioFileFormat::kWav, AudioFileFormat::kFlac, AudioFileFormat::kOgg,
                                    AudioFileFormat::kOpus, AudioFileFormat::kMp3};

std::string ext(AudioFileFormat f) { return std::string(".") + audio_format_name(f); }

template <typename F>
void expect_error(F&& f, ErrorCode code, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

bool no_temporaries(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().string().find(".tmp-") != std::string::npos) return false;
  return true;
}

// ---- the library -----------------------------------------------------------------------------

TEST(AudioOutput, FormatFollowsTheExtension) {
  EXPECT_EQ(audio_format_for_path("a/b.wav"), AudioFileFormat::kWav);
  EXPECT_EQ(audio_format_for_path("SONG.WAV"), AudioFileFormat::kWav);
  EXPECT_EQ(audio_format_for_path("x.Flac"), AudioFileFormat::kFlac);
  EXPECT_EQ(audio_format_for_path("x.ogg"), AudioFileFormat::kOgg);
  EXPECT_EQ(audio_format_for_path("x.oga"), AudioFileFormat::kOgg);
  EXPECT_EQ(audio_format_for_path("x.opus"), AudioFileFormat::kOpus);
  EXPECT_EQ(audio_format_for_path("x.MP3"), AudioFileFormat::kMp3);
  expect_error([] { audio_format_for_path("notes.txt"); }, ErrorCode::kInvalidArgument, "'.txt'");
  expect_error([] { audio_format_for_path("song.wav.txt"); }, ErrorCode::kInvalidArgument, "'.txt'");
  expect_error([] { audio_format_for_path("song"); }, ErrorCode::kInvalidArgument, "no extension");
  expect_error([] { audio_format_for_path("x.aac"); }, ErrorCode::kInvalidArgument, ".wav, .flac");
  EXPECT_EQ(parse_audio_format("vorbis"), AudioFileFormat::kOgg);
  expect_error([] { parse_audio_format("aac"); }, ErrorCode::kInvalidArgument, "aac");
  EXPECT_EQ(parse_normalization("loudness"), Normalization::kLoudness);
  expect_error([] { parse_normalization("lufs"); }, ErrorCode::kInvalidArgument, "lufs");
}

TEST(AudioOutput, EveryFormatHasItsMagicAndReadsBack) {
  const std::string dir = testing::make_temp_dir("audio-out");
  for (int channels : {1, 2}) {
    GenerationResult r = make_result(2, channels, kRate + 640 * 3, 0.5f);
    r.leading_padding[1] = 1280;  // item 1 starts later: the padding is not written
    for (AudioFileFormat f : kFormats)
      for (int index : {0, 1}) {
        SCOPED_TRACE(std::string(audio_format_name(f)) + " channels " + std::to_string(channels) +
                     " item " + std::to_string(index));
        AudioWriteOptions o;
        o.format = f;
        const std::string path = dir + "/a" + std::to_string(channels) + std::to_string(index) + ext(f);
        write_audio_file(path, r, index, o);
        const std::string bytes = read_file(path);
        EXPECT_EQ(bytes, encode_audio(r, index, o)) << "the file and encode_audio differ";
        expect_magic(bytes, f);
        const Decoded d = decode(path);
        const int64_t n = r.samples - r.leading_padding[index];
        EXPECT_EQ(d.channels, channels);
        if (f == AudioFileFormat::kOpus) {  // resampled to 48 kHz
          EXPECT_EQ(d.sample_rate, 48000);
          EXPECT_EQ(d.frames, n * 3 / 2);
        } else {
          EXPECT_EQ(d.sample_rate, kRate);
          EXPECT_EQ(d.frames, n);
        }
        // The content survives the codec: in step with the (peak-normalised) input.
        const std::vector<float> in = item(r, index);
        if (f != AudioFileFormat::kOpus && d.frames == n) {
          for (int c = 0; c < channels; ++c)
            EXPECT_GT(correlation(in.data() + c * n, d.planar.data() + c * n, n), 0.98) << "channel " << c;
        }
        const double ratio = rms_of_mean(d.planar, channels) / (rms_of_mean(in, channels) * kMinus1dB / max_abs(in));
        EXPECT_NEAR(ratio, 1.0, 0.05) << "level after the codec";
        if (f == AudioFileFormat::kMp3) {  // 320 kb/s constant bit rate, as audiocraft's audio_write
          const double kbps = bytes.size() * 8.0 / (static_cast<double>(n) / kRate) / 1000.0;
          EXPECT_GT(kbps, 300);
          EXPECT_LT(kbps, 360);
        }
      }
  }
  EXPECT_TRUE(no_temporaries(dir));
}

TEST(AudioOutput, LosslessFormatsAreSampleExactPcm16) {
  const std::string dir = testing::make_temp_dir("audio-out");
  const GenerationResult r = make_result(1, 2, 20000, 1.75f);  // peak beyond 1, as the issue saw
  const std::vector<float> in = item(r, 0);
  const float gain = kMinus1dB / max_abs(in);
  std::vector<Decoded> d;
  for (AudioFileFormat f : {AudioFileFormat::kWav, AudioFileFormat::kFlac}) {
    write_audio_file(dir + "/x" + ext(f), r, 0, {.format = f});
    d.push_back(decode(dir + "/x" + ext(f)));
  }
  ASSERT_EQ(d[0].pcm.size(), in.size());
  EXPECT_EQ(d[0].pcm, d[1].pcm) << "FLAC and WAV hold different samples";
  const int64_t n = r.samples;
  int off_by_one = 0;
  for (int c = 0; c < 2; ++c)
    for (int64_t t = 0; t < n; ++t) {
      // audiocraft's i16_pcm: round(x * 2^15), half to even
      const long expected = std::lrint(static_cast<double>(in[c * n + t] * gain) * 32768.0);
      const long got = d[0].pcm[t * 2 + c];
      ASSERT_LE(std::labs(got - expected), 1) << "sample " << t << " channel " << c;
      off_by_one += got != expected;
    }
  EXPECT_LT(off_by_one, n / 100) << "more than 1% of the samples are 1 LSB off";
  EXPECT_EQ(d[0].format & SF_FORMAT_SUBMASK, SF_FORMAT_PCM_16);
  EXPECT_EQ(d[1].format & SF_FORMAT_SUBMASK, SF_FORMAT_PCM_16);
}

TEST(AudioOutput, PeakStrategyLeavesOneDbOfHeadroomForLoudAndQuietInput) {
  const std::string dir = testing::make_temp_dir("audio-out");
  for (float amp : {1.75f, 0.05f}) {
    const GenerationResult r = make_result(1, 1, kRate, amp);
    write_audio_file(dir + "/p.wav", r, 0, {.format = AudioFileFormat::kWav});
    const Decoded d = decode(dir + "/p.wav");
    EXPECT_NEAR(max_abs(d.planar), kMinus1dB, 1.0 / 32767) << amp;
    // float WAV: normalised too, exactly
    write_audio_file(dir + "/p32.wav", r, 0, {.sample_format = SampleFormat::kFloat32});
    const Decoded f = decode(dir + "/p32.wav");
    EXPECT_EQ(f.format & SF_FORMAT_SUBMASK, SF_FORMAT_FLOAT);
    EXPECT_NEAR(max_abs(f.planar), kMinus1dB, 1e-6) << amp;
    const std::vector<float> in = item(r, 0);
    for (size_t i = 0; i < in.size(); i += 97)
      ASSERT_NEAR(f.planar[i], in[i] * kMinus1dB / max_abs(in), 1e-6) << i;
  }
  // the old wrapper writes the same file as the default options
  const GenerationResult r = make_result(1, 1, 8000, 1.5f);
  write_audio_file(dir + "/old.wav", r, 0, SampleFormat::kPcm16);
  EXPECT_EQ(read_file(dir + "/old.wav"), encode_audio(r, 0, {}));
}

TEST(AudioOutput, LoudnessStrategyHitsItsTargetMeasuredWithLibebur128) {
  const std::string dir = testing::make_temp_dir("audio-out");
  for (int channels : {1, 2})
    for (float amp : {0.02f, 0.3f, 1.5f})
      for (AudioFileFormat f : {AudioFileFormat::kWav, AudioFileFormat::kFlac, AudioFileFormat::kOgg}) {
        SCOPED_TRACE(std::to_string(channels) + " channels, amplitude " + std::to_string(amp) + ", " +
                     audio_format_name(f));
        const GenerationResult r = make_result(1, channels, 3 * kRate, amp);
        const std::string path = dir + "/l" + ext(f);
        write_audio_file(path, r, 0, {.format = f, .normalize = Normalization::kLoudness});
        EXPECT_NEAR(measure_lufs(decode(path)), -14.0, 0.5);
      }
  // Another target, float WAV: -23 LUFS, samples within [-1, 1].
  const GenerationResult r = make_result(1, 2, 3 * kRate, 3.0f);
  AudioWriteOptions o{.sample_format = SampleFormat::kFloat32, .normalize = Normalization::kLoudness};
  o.loudness_headroom_db = 23;
  write_audio_file(dir + "/l23.wav", r, 0, o);
  const Decoded d = decode(dir + "/l23.wav");
  EXPECT_NEAR(measure_lufs(d), -23.0, 0.5);
  EXPECT_LE(max_abs(d.planar), 1.0f);
  // A loud target clips at +-1 (audiocraft's _clip_wav), float output included.
  o.loudness_headroom_db = 0;
  write_audio_file(dir + "/l0.wav", r, 0, o);
  EXPECT_LE(max_abs(decode(dir + "/l0.wav").planar), 1.0f);
  // Below audiocraft's energy floor (RMS 2e-3) the audio is not rescaled.
  const GenerationResult quiet = make_result(1, 1, kRate, 1e-3f);
  o.loudness_headroom_db = 14;
  write_audio_file(dir + "/q.wav", quiet, 0, o);
  const Decoded q = decode(dir + "/q.wav");
  EXPECT_EQ(q.planar, item(quiet, 0));
}

TEST(AudioOutput, RmsAndClipStrategies) {
  const std::string dir = testing::make_temp_dir("audio-out");
  for (int channels : {1, 2}) {
    const GenerationResult r = make_result(1, channels, kRate, 0.4f);
    AudioWriteOptions o{.sample_format = SampleFormat::kFloat32, .normalize = Normalization::kRms};
    write_audio_file(dir + "/r.wav", r, 0, o);
    const Decoded d = decode(dir + "/r.wav");
    EXPECT_NEAR(rms_of_mean(d.planar, channels), std::pow(10.0, -18.0 / 20.0), 1e-4) << channels;
    // pcm16 too, within quantisation
    write_audio_file(dir + "/r16.wav", r, 0, {.normalize = Normalization::kRms});
    EXPECT_NEAR(rms_of_mean(decode(dir + "/r16.wav").planar, channels), std::pow(10.0, -18.0 / 20.0), 1e-3);
  }
  // rms with 3 dB headroom on a peaky signal: clamped to [-1, 1]
  const GenerationResult r = make_result(1, 1, kRate, 0.4f);
  AudioWriteOptions o{.sample_format = SampleFormat::kFloat32, .normalize = Normalization::kRms};
  o.rms_headroom_db = 3;
  write_audio_file(dir + "/r3.wav", r, 0, o);
  EXPECT_FLOAT_EQ(max_abs(decode(dir + "/r3.wav").planar), 1.0f);
  // clip: clamped at -1 dBFS, everything below untouched
  const GenerationResult loud = make_result(1, 1, kRate, 1.75f);
  write_audio_file(dir + "/c.wav", loud, 0, {.sample_format = SampleFormat::kFloat32, .normalize = Normalization::kClip});
  const Decoded c = decode(dir + "/c.wav");
  const std::vector<float> in = item(loud, 0);
  int clamped = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (std::fabs(in[i]) >= kMinus1dB) {
      ASSERT_FLOAT_EQ(std::fabs(c.planar[i]), kMinus1dB) << i;
      ++clamped;
    } else {
      ASSERT_EQ(c.planar[i], in[i]) << i;
    }
  }
  EXPECT_GT(clamped, 0);
  // none: float untouched (beyond 1), PCM16 saturates instead of wrapping around
  write_audio_file(dir + "/n32.wav", loud, 0, {.sample_format = SampleFormat::kFloat32, .normalize = Normalization::kNone});
  EXPECT_EQ(decode(dir + "/n32.wav").planar, in);
  write_audio_file(dir + "/n16.wav", loud, 0, {.normalize = Normalization::kNone});
  const Decoded n16 = decode(dir + "/n16.wav");
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] > 1.0f) {
      ASSERT_EQ(n16.pcm[i], 32767) << i;
    } else if (in[i] < -1.0f) {
      ASSERT_LE(n16.pcm[i], -32767) << i;
    }
  }
}

TEST(AudioOutput, SilenceStaysSilentAndNanIsAnError) {
  GenerationResult r = make_result(1, 1, 16000, 0.0f);
  for (Normalization n : {Normalization::kPeak, Normalization::kRms, Normalization::kLoudness}) {
    const std::string dir = testing::make_temp_dir("audio-out");
    write_audio_file(dir + "/s.wav", r, 0, {.sample_format = SampleFormat::kFloat32, .normalize = n});
    EXPECT_EQ(max_abs(decode(dir + "/s.wav").planar), 0.0f) << normalization_name(n);
  }
  r.audio[100] = std::nanf("");
  for (Normalization n : {Normalization::kPeak, Normalization::kClip, Normalization::kRms, Normalization::kLoudness})
    expect_error([&] { encode_audio(r, 0, {.normalize = n}); }, ErrorCode::kInvalidArgument, "NaN");
}

TEST(AudioOutput, TagsReadBackInEveryFormat) {
  const std::string dir = testing::make_temp_dir("audio-out");
  const GenerationResult r = make_result(1, 2, kRate / 2, 0.5f);
  const std::string comment = R"({"prompt":"lo-fi beat with rain and piano, 90 bpm, mellow","seed":4242})";
  for (AudioFileFormat f : kFormats) {
    SCOPED_TRACE(audio_format_name(f));
    AudioWriteOptions o{.format = f};
    o.tags = {{"title", "lo-fi beat with rain and piano, 90 bpm, mellow, café"},
              {"artist", "facebook/musicgen-small"},
              {"software", "musicgen.cpp 9.9"},
              {"comment", comment}};
    const std::string path = dir + "/t" + ext(f);
    write_audio_file(path, r, 0, o);
    Decoded d = decode(path);
    EXPECT_EQ(d.tags[SF_STR_TITLE], "lo-fi beat with rain and piano, 90 bpm, mellow, café");
    EXPECT_EQ(d.tags[SF_STR_ARTIST], "facebook/musicgen-small");
    EXPECT_EQ(d.tags[SF_STR_COMMENT], comment);
    if (f != AudioFileFormat::kMp3) {  // libsndfile writes no software frame to ID3
      EXPECT_EQ(d.tags[SF_STR_SOFTWARE].rfind("musicgen.cpp 9.9", 0), 0u) << d.tags[SF_STR_SOFTWARE];
    }
    const std::string bytes = read_file(path);
    if (f == AudioFileFormat::kWav) {
      EXPECT_NE(bytes.find("LIST"), std::string::npos);
      EXPECT_NE(bytes.find("INFOINAM"), std::string::npos);
    } else if (f == AudioFileFormat::kMp3) {
      EXPECT_NE(bytes.find("TIT2"), std::string::npos) << "no ID3v2 title frame";
    } else {
      const bool found = bytes.find("TITLE=lo-fi beat") != std::string::npos ||
                         bytes.find("title=lo-fi beat") != std::string::npos;
      EXPECT_TRUE(found) << "no Vorbis comment";
    }
  }
  // ID3 text is ISO-8859-1: what it cannot hold becomes '?'
  AudioWriteOptions o{.format = AudioFileFormat::kMp3};
  o.tags = {{"title", "piano \xe6\x97\xa5 night"}};
  write_audio_file(dir + "/u.mp3", r, 0, o);
  EXPECT_EQ(decode(dir + "/u.mp3").tags[SF_STR_TITLE], "piano ? night");
  o.tags = {{"mood", "x"}};
  expect_error([&] { encode_audio(r, 0, o); }, ErrorCode::kInvalidArgument, "unknown audio tag 'mood'");
}

TEST(AudioOutput, SameInputGivesTheSameBytes) {
  const GenerationResult r = make_result(1, 2, kRate, 0.5f);
  for (AudioFileFormat f : kFormats) {
    AudioWriteOptions o{.format = f, .normalize = Normalization::kLoudness};
    o.tags = {{"title", "x"}};
    const std::string a = encode_audio(r, 0, o);
    const std::string b = encode_audio(r, 0, o);
    EXPECT_EQ(a, b) << audio_format_name(f);
    o.tags = {{"title", "y"}};
    EXPECT_NE(a, encode_audio(r, 0, o)) << audio_format_name(f);
  }
  // float WAV has no PEAK chunk (it holds the time of writing)
  EXPECT_EQ(encode_audio(r, 0, {.sample_format = SampleFormat::kFloat32}).find("PEAK"), std::string::npos);
}

TEST(AudioOutput, BadRequestsAreOneLineErrorsAndLeaveNoFile) {
  const std::string dir = testing::make_temp_dir("audio-out");
  const GenerationResult r = make_result(2, 1, 6400, 0.5f);
  expect_error([&] { encode_audio(r, 2, {}); }, ErrorCode::kInvalidArgument, "out of range");
  expect_error([&] { encode_audio(r, -1, {}); }, ErrorCode::kInvalidArgument, "out of range");
  expect_error([&] { encode_audio(r, 0, {.format = AudioFileFormat::kFlac, .sample_format = SampleFormat::kFloat32}); },
               ErrorCode::kInvalidArgument, "WAV only");
  expect_error([&] { write_audio_file(dir + "/no/such/dir/x.wav", r, 0, AudioWriteOptions{}); }, ErrorCode::kIo,
               "does not exist");
  GenerationResult empty = r;  // all padding: no samples (FLAC and MP3 would be 0-byte files)
  empty.leading_padding = {6400, 6400};
  expect_error([&] { encode_audio(empty, 0, {.format = AudioFileFormat::kFlac}); }, ErrorCode::kInvalidArgument,
               "the audio is empty");
  expect_error([&] { encode_audio(empty, 1, {.format = AudioFileFormat::kMp3}); }, ErrorCode::kInvalidArgument,
               "the audio is empty");
  write_audio_file(dir + "/empty.wav", empty, 0, AudioWriteOptions{});  // a WAV can be empty
  EXPECT_EQ(decode(dir + "/empty.wav").frames, 0);
  fs::remove(dir + "/empty.wav");
  GenerationResult bad = r;
  bad.audio.resize(10);
  expect_error([&] { encode_audio(bad, 0, {}); }, ErrorCode::kInvalidArgument, "does not match");
  // an existing file is replaced whole
  write_bytes(dir + "/x.flac", std::string(100000, 'z'));
  write_audio_file(dir + "/x.flac", r, 0, {.format = AudioFileFormat::kFlac});
  EXPECT_EQ(read_file(dir + "/x.flac"), encode_audio(r, 0, {.format = AudioFileFormat::kFlac}));
  EXPECT_TRUE(no_temporaries(dir));
}

// ---- the command line ------------------------------------------------------------------------

struct CliRun {
  int exit_code = -1;
  std::string out, err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CliRun run_cli(const std::vector<std::string>& args) {
  static int counter = 0;
  const std::string dir = testing::make_temp_dir("cli-io");
  const std::string out = dir + "/stdout" + std::to_string(counter), err = dir + "/stderr" + std::to_string(counter);
  ++counter;
  std::string cmd = quote(MUSICGEN_CLI);
  for (const auto& a : args) {
    cmd += ' ';
    cmd += quote(a);
  }
  cmd += " > ";
  cmd += quote(out);
  cmd += " 2> ";
  cmd += quote(err);
  cmd += " < /dev/null";
  const int status = std::system(cmd.c_str());
  CliRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

std::vector<std::string> gen_args(const std::string& output, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"generate", "--model", testing::fixture_dir("tiny-a"), "--prompt",
                                "happy rock", "--max-new-tokens", "20", "--output", output};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::string printed_seed(const std::string& err) {
  std::smatch m;
  if (!std::regex_search(err, m, std::regex("(^|\n)seed: ([0-9]+)\n"))) return "";
  return m[2];
}

TEST(CliAudio, FormatFollowsTheExtensionOrFormat) {
  const std::string dir = testing::make_temp_dir("cli-audio");
  for (AudioFileFormat f : kFormats) {
    SCOPED_TRACE(audio_format_name(f));
    const std::string path = dir + "/song" + ext(f);
    const CliRun r = run_cli(gen_args(path, {"--quiet"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "") << "nothing goes to stdout with a file output";
    expect_magic(read_file(path), f);
    const Decoded d = decode(path);
    EXPECT_EQ(d.frames, (f == AudioFileFormat::kOpus ? 3 * 17 * 640 / 2 : 17 * 640));
  }
  // upper case, and --format over the extension
  ASSERT_EQ(run_cli(gen_args(dir + "/LOUD.FLAC", {"--quiet"})).exit_code, 0);
  expect_magic(read_file(dir + "/LOUD.FLAC"), AudioFileFormat::kFlac);
  ASSERT_EQ(run_cli(gen_args(dir + "/really.wav", {"--format", "ogg", "--quiet"})).exit_code, 0);
  expect_magic(read_file(dir + "/really.wav"), AudioFileFormat::kOgg);
  ASSERT_EQ(run_cli(gen_args(dir + "/noext", {"--format", "mp3", "--quiet"})).exit_code, 0);
  expect_magic(read_file(dir + "/noext"), AudioFileFormat::kMp3);
  EXPECT_TRUE(no_temporaries(dir));
}

TEST(CliAudio, UnknownExtensionIsAnErrorBeforeTheModelLoads) {
  const std::string dir = testing::make_temp_dir("cli-audio");
  const std::string empty_model = testing::make_temp_dir("not-a-model");  // loading it would fail
  for (const std::string name : {"notes.txt", "song.aac", "song"}) {
    const CliRun r = run_cli({"generate", "--model", empty_model, "--prompt", "x", "--output", dir + "/" + name});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("musicgen: error: cannot tell the audio format of", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/" + name));
  }
  EXPECT_TRUE(fs::is_empty(dir));
  for (const auto& [args, needle] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--format", "aac"}, "unknown audio format 'aac'"},
           {{"--normalize", "lufs"}, "--normalize must be peak, loudness, rms, clip or none"},
           {{"--sample-format", "f32", "--format", "flac"}, "--sample-format f32 applies to WAV output only"}}) {
    std::vector<std::string> a = {"generate", "--model", empty_model, "--prompt", "x", "--output", dir + "/x.wav"};
    a.insert(a.end(), args.begin(), args.end());
    const CliRun r = run_cli(a);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(CliAudio, SeedsAreRandomPrintedStoredAndReproducible) {
  const std::string dir = testing::make_temp_dir("cli-audio");
  const CliRun a = run_cli(gen_args(dir + "/a.flac"));
  const CliRun b = run_cli(gen_args(dir + "/b.flac"));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const std::string seed_a = printed_seed(a.err), seed_b = printed_seed(b.err);
  ASSERT_NE(seed_a, "") << a.err;
  ASSERT_NE(seed_b, "") << b.err;
  EXPECT_NE(seed_a, seed_b) << "two runs without --seed used the same seed";
  EXPECT_NE(decode(dir + "/a.flac").pcm, decode(dir + "/b.flac").pcm) << "two runs without --seed gave the same take";
  // the seed is in the tags, and --seed with it gives the same file, byte for byte
  const json meta = json::parse(decode(dir + "/a.flac").tags[SF_STR_COMMENT]);
  EXPECT_EQ(std::to_string(meta.at("seed").get<uint64_t>()), seed_a);
  const CliRun again = run_cli(gen_args(dir + "/again.flac", {"--seed", seed_a}));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(printed_seed(again.err), seed_a);
  EXPECT_EQ(read_file(dir + "/again.flac"), read_file(dir + "/a.flac"));
  // and twice with --seed, in a format with a random stream serial in libsndfile
  for (const char* name : {"/s1.ogg", "/s2.ogg"})
    ASSERT_EQ(run_cli(gen_args(dir + name, {"--seed", "77", "--quiet"})).exit_code, 0);
  EXPECT_EQ(read_file(dir + "/s1.ogg"), read_file(dir + "/s2.ogg"));
  // --quiet prints nothing, the seed included
  const CliRun quiet = run_cli(gen_args(dir + "/q.wav", {"--quiet"}));
  EXPECT_EQ(quiet.err, "");
}

TEST(CliAudio, TagsAndCodesJsonCarryTheTake) {
  const std::string dir = testing::make_temp_dir("cli-audio");
  for (AudioFileFormat f : kFormats) {
    SCOPED_TRACE(audio_format_name(f));
    const std::string path = dir + "/t" + ext(f), codes = dir + "/t" + ext(f) + ".json";
    const CliRun r = run_cli(gen_args(path, {"--seed", "31337", "--codes-out", codes, "--quiet"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Decoded d = decode(path);
    EXPECT_EQ(d.tags.at(SF_STR_TITLE), "happy rock");
    EXPECT_EQ(d.tags.at(SF_STR_ARTIST), "tiny-a");
    if (f != AudioFileFormat::kMp3) {
      EXPECT_EQ(d.tags.at(SF_STR_SOFTWARE).rfind("musicgen.cpp ", 0), 0u);
    }
    const json meta = json::parse(d.tags.at(SF_STR_COMMENT));
    EXPECT_EQ(meta.at("prompt"), "happy rock");
    EXPECT_EQ(meta.at("seed"), 31337);
    EXPECT_EQ(meta.at("model"), "tiny-a");
    EXPECT_EQ(meta.at("weights"), "f32");
    EXPECT_NEAR(meta.at("duration_s").get<double>(), 17 * 640 / 32000.0, 1e-9);
    EXPECT_EQ(meta.at("software").get<std::string>().rfind("musicgen.cpp ", 0), 0u);
    EXPECT_FALSE(meta.contains("revision")) << "a local checkpoint has no revision";
    const json c = json::parse(read_file(codes));
    EXPECT_EQ(c.at("prompts"), json::array({"happy rock"}));
    for (const char* key : {"seed", "model", "weights", "duration_s", "software"})
      EXPECT_EQ(c.at(key), meta.at(key)) << key;
    EXPECT_EQ(c.at("codes").size(), 1u);
  }
  // a batch: each file names its own prompt and item
  const CliRun r = run_cli({"generate", "--model", testing::fixture_dir("tiny-a"), "--prompt", "jazz", "--prompt",
                            "métal", "--max-new-tokens", "10", "--output", dir + "/b.mp3", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json m1 = json::parse(decode(dir + "/b_1.mp3").tags.at(SF_STR_COMMENT));
  EXPECT_EQ(m1.at("prompt"), "métal");
  EXPECT_EQ(m1.at("batch_index"), 1);
  EXPECT_EQ(decode(dir + "/b_1.mp3").tags.at(SF_STR_TITLE), "métal");
}

TEST(CliAudio, NormalizeOptionReachesItsTargets) {
  const std::string dir = testing::make_temp_dir("cli-audio");
  auto run = [&](const std::string& name, std::vector<std::string> extra) {
    extra.insert(extra.end(), {"--seed", "5", "--quiet"});
    std::vector<std::string> a = {"generate", "--model", testing::fixture_dir("tiny-a"), "--prompt", "x",
                                  "--duration", "2", "--output", dir + "/" + name};
    a.insert(a.end(), extra.begin(), extra.end());
    const CliRun r = run_cli(a);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return decode(dir + "/" + name);
  };
  const Decoded peak = run("peak.wav", {});
  EXPECT_NEAR(max_abs(peak.planar), kMinus1dB, 1.0 / 32767);
  const Decoded peak32 = run("peak32.wav", {"--sample-format", "f32"});
  EXPECT_NEAR(max_abs(peak32.planar), kMinus1dB, 1e-6);
  const Decoded none32 = run("none32.wav", {"--sample-format", "f32", "--normalize", "none"});
  const Decoded loud = run("loud.flac", {"--normalize", "loudness"});
  const double none_lufs = measure_lufs(none32);
  // the tiny model's raw output is far from -14 LUFS; the option brings it there (unless the
  // clamp at 1 had to cut a lot, which the peak-to-loudness ratio rules out here)
  EXPECT_GT(std::fabs(none_lufs + 14.0), 1.0) << none_lufs;
  EXPECT_NEAR(measure_lufs(loud), -14.0, 0.5);
  const Decoded rms = run("rms.wav", {"--normalize", "rms", "--sample-format", "f32"});
  EXPECT_NEAR(rms_of_mean(rms.planar, 1), std::pow(10.0, -18.0 / 20.0), 1e-3);
  const Decoded clip = run("clip.wav", {"--normalize", "clip", "--sample-format", "f32"});
  EXPECT_LE(max_abs(clip.planar), kMinus1dB);
}

TEST(CliAudio, HelpNamesTheOutputOptions) {
  const CliRun r = run_cli({"generate", "--help"});
  ASSERT_EQ(r.exit_code, 0);
  for (const char* part : {"--format", "--normalize", "peak", "loudness", "rms", "clip", ".flac", ".ogg",
                           ".opus", ".mp3", "--sample-format", "--seed"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part;
}

TEST(CliAudio, DashWritesAWavStreamAndNothingElseToStdout) {
  const std::string dir = testing::make_temp_dir("cli-audio");
  const CliRun piped = run_cli(gen_args("-", {"--seed", "9"}));  // not quiet: messages go to stderr
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(printed_seed(piped.err), "9");
  expect_magic(piped.out, AudioFileFormat::kWav);
  write_bytes(dir + "/piped.wav", piped.out);
  const Decoded d = decode(dir + "/piped.wav");
  EXPECT_EQ(d.frames, 17 * 640);
  EXPECT_EQ(d.sample_rate, 32000);
  EXPECT_EQ(d.channels, 1);
  // the same bytes as the file output
  ASSERT_EQ(run_cli(gen_args(dir + "/file.wav", {"--seed", "9", "--quiet"})).exit_code, 0);
  EXPECT_EQ(piped.out, read_file(dir + "/file.wav"));
  // --format picks another stream
  const CliRun flac = run_cli(gen_args("-", {"--format", "flac", "--quiet"}));
  ASSERT_EQ(flac.exit_code, 0) << flac.err;
  expect_magic(flac.out, AudioFileFormat::kFlac);
}

}  // namespace
}  // namespace musicgen
