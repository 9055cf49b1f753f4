#include "audio/audio_reader.h"

#include <sndfile.h>
#include <soxr.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <memory>
#include <sstream>
#include <system_error>

#include "core/error.h"
#include "core/mapped_file.h"

namespace musicgen {
namespace {

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

struct SoxrDeleter {
  void operator()(soxr* s) const { soxr_delete(s); }
};
using SoxrPtr = std::unique_ptr<soxr, SoxrDeleter>;

// libsndfile's messages end with a period; drop it so the message reads as one sentence.
std::string sndfile_reason(SNDFILE* f) {
  std::string r = sf_strerror(f);
  while (!r.empty() && (r.back() == '.' || r.back() == ' ' || r.back() == '\n')) r.pop_back();
  return r;
}

std::string format_seconds(double s) {
  std::ostringstream os;
  os.precision(6);
  os << s;
  return os.str();
}

void check_rate(int rate, const std::string& what) {
  if (rate < kMinSampleRate || rate > kMaxSampleRate)
    fail(ErrorCode::kInvalidArgument,
         what + " sample rate " + std::to_string(rate) + " Hz is outside the supported range " +
             std::to_string(kMinSampleRate) + ".." + std::to_string(kMaxSampleRate) +
             " Hz; convert the audio to a common rate such as 32000 or 44100 Hz");
}

void check_size(const std::string& path, int64_t frames, int channels, int rate) {
  if (frames > kMaxDurationSeconds * rate)
    fail(ErrorCode::kInvalidArgument, "audio file '" + path + "' is longer than one hour (" +
                                          format_seconds(static_cast<double>(frames) / rate) +
                                          " s); cut the part you need with an audio editor first");
  if (frames * channels > kMaxTotalSamples)
    fail(ErrorCode::kInvalidArgument, "audio file '" + path + "' is too large to load (" +
                                          std::to_string(frames) + " frames x " +
                                          std::to_string(channels) +
                                          " channels); cut or downmix the part you need first");
}

// Resamples one channel exactly as Python soxr.resample (csoxr_divide_proc) does: one soxr
// instance, input fed in chunks of floor(48000 · in / out) frames into a buffer of
// floor(n · out / in) + 1 frames, then one flush call.
std::vector<float> resample_channel(const float* x, int64_t n, int in_rate, int out_rate) {
  soxr_error_t err = nullptr;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  SoxrPtr s(soxr_create(in_rate, out_rate, 1, &err, &io, &quality, nullptr));
  if (err != nullptr || !s)
    fail(ErrorCode::kIo, std::string("cannot create the resampler (libsoxr: ") +
                             (err ? err : "unknown error") + ")");

  const size_t ilen = static_cast<size_t>(n);
  const size_t olen = static_cast<size_t>(static_cast<double>(ilen) * out_rate / in_rate + 1);
  const size_t chunk = std::max<size_t>(1, static_cast<size_t>(48000.0 * in_rate / out_rate));
  std::vector<float> y(olen, 0.0f);
  size_t out_pos = 0, done = 0;
  for (size_t i = 0; i < ilen && err == nullptr; i += chunk) {
    err = soxr_process(s.get(), x + i, std::min(chunk, ilen - i), nullptr, y.data() + out_pos,
                       olen - out_pos, &done);
    out_pos += done;
  }
  if (err == nullptr) {
    err = soxr_process(s.get(), nullptr, 0, nullptr, y.data() + out_pos, olen - out_pos, &done);
    out_pos += done;
  }
  if (err != nullptr) fail(ErrorCode::kIo, std::string("resampling failed (libsoxr: ") + err + ")");
  // libsoxr's flush ends the output at round(n · out / in); the buffer never limits it.
  y.resize(out_pos);
  return y;
}

// libsndfile accepts a WAV whose data chunk claims more bytes than the file holds and silently
// reads what is there; its log says "data : 2000 (should be 1000)". Such a file is truncated.
// The streaming placeholders 0 and 0xFFFFFFFF (a WAV written to a pipe) are not errors.
void check_truncated_wav(SNDFILE* f, const std::string& path) {
  char log[8192] = {0};
  sf_command(f, SFC_GET_LOG_INFO, log, sizeof(log) - 1);
  const char* p = std::strstr(log, "\ndata : ");
  if (p == nullptr) return;
  unsigned long long claimed = 0, actual = 0;
  if (std::sscanf(p, "\ndata : %llu (should be %llu)", &claimed, &actual) != 2) return;
  if (claimed > actual && claimed != 0xFFFFFFFFull && claimed != 0)
    fail(ErrorCode::kInvalidArgument,
         "audio file '" + path + "' is truncated: its data chunk claims " +
             std::to_string(claimed) + " bytes, the file holds " + std::to_string(actual) +
             "; export or copy the file again");
}

}  // namespace

AudioBuffer load_audio(const std::string& path) { return load_audio(path, 0.0, std::nullopt); }

AudioBuffer load_audio(const std::string& path, double start_s, std::optional<double> duration_s) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st))
    fail(ErrorCode::kNotFound, "audio file '" + path + "' does not exist; check the path");
  if (std::filesystem::is_directory(st))
    fail(ErrorCode::kInvalidArgument,
         "'" + path + "' is a directory, not an audio file; pass a WAV, FLAC, OGG or MP3 file");
  // Regular files only, opened without blocking (a FIFO gives an error, not a hang).
  const int fd = open_regular_file(path, nullptr);

  SF_INFO info{};
  SndfilePtr f(sf_open_fd(fd, SFM_READ, &info, /*close_desc=*/SF_TRUE));
  if (!f)
    fail(ErrorCode::kInvalidArgument, "cannot read '" + path + "' as audio (" +
                                          sndfile_reason(nullptr) +
                                          "); use a WAV, FLAC, OGG/Vorbis, Opus or MP3 file");
  if (info.channels <= 0)
    fail(ErrorCode::kInvalidArgument,
         "audio file '" + path + "' declares no channels; the file is damaged, export it again");
  if (info.channels > kMaxChannels)
    fail(ErrorCode::kInvalidArgument,
         "audio file '" + path + "' has " + std::to_string(info.channels) + " channels (at most " +
             std::to_string(kMaxChannels) + " supported); downmix it to mono or stereo first");
  check_rate(info.samplerate, "audio file '" + path + "':");
  if (info.frames <= 0)
    fail(ErrorCode::kInvalidArgument,
         "audio file '" + path + "' is empty (0 samples); pass a file that contains audio");
  check_truncated_wav(f.get(), path);
  const int rate = info.samplerate;
  const int64_t start = seconds_to_samples(start_s, rate);
  const int64_t end = duration_s.has_value()
                          ? start + std::max<int64_t>(0, seconds_to_samples(*duration_s, rate))
                          : INT64_MAX;
  if (duration_s.has_value() && end <= start)
    fail(ErrorCode::kInvalidArgument,
         "duration " + format_seconds(*duration_s) + " s selects no samples at " +
             std::to_string(rate) + " Hz; use a longer duration");
  // The declared length is only a hint (compressed streams may be off); the checks are repeated
  // on what is actually kept.
  if (!duration_s.has_value()) check_size(path, info.frames, info.channels, rate);

  const int channels = info.channels;
  constexpr sf_count_t kBlock = 65536;
  std::vector<float> inter;
  // Reserve for the declared length, but not more than 256 MiB up front: a lying header (e.g. a
  // FLAC STREAMINFO) must not make a small file allocate a lot.
  inter.reserve(static_cast<size_t>(std::min<int64_t>(
      std::min<int64_t>(info.frames, end - std::min(end, start)) * channels, int64_t{64} << 20)));
  std::vector<float> block(static_cast<size_t>(kBlock) * channels);
  int64_t frames = 0;  // decoded so far, from the beginning of the file
  while (frames < end) {
    const sf_count_t want = static_cast<sf_count_t>(std::min<int64_t>(kBlock, end - frames));
    const sf_count_t got = sf_readf_float(f.get(), block.data(), want);
    if (got <= 0) break;
    // The part of this block inside [start, end).
    const int64_t from = std::max<int64_t>(start, frames), to = frames + got;
    frames += got;
    if (to <= from) continue;
    const auto first = block.begin() + (from - (to - got)) * channels;
    const auto last = block.begin() + got * channels;
    for (auto it = first; it != last; ++it)
      if (!std::isfinite(*it))
        fail(ErrorCode::kInvalidArgument,
             "audio file '" + path + "' contains a NaN or infinite sample near " +
                 format_seconds(static_cast<double>(from) / rate) +
                 " s; the file is damaged, export it again");
    inter.insert(inter.end(), first, last);
    check_size(path, static_cast<int64_t>(inter.size()) / channels, channels, rate);
  }
  if (sf_error(f.get()) != SF_ERR_NO_ERROR)
    fail(ErrorCode::kIo, "decoding audio file '" + path + "' failed after " +
                             std::to_string(frames) + " frames (" + sndfile_reason(f.get()) +
                             "); the file may be truncated or damaged");
  if (frames == 0)
    fail(
        ErrorCode::kInvalidArgument,
        "audio file '" + path + "' contains no decodable samples; pass a file that contains audio");
  const int64_t kept = static_cast<int64_t>(inter.size()) / channels;
  if (start > 0 && start >= frames)
    fail(ErrorCode::kInvalidArgument,
         "start time " + format_seconds(start_s) + " s is at or past the end of the audio (" +
             format_seconds(static_cast<double>(frames) / rate) +
             " s long); choose an earlier start");
  if (kept == 0)
    fail(ErrorCode::kInvalidArgument,
         "duration " + format_seconds(duration_s.value_or(0.0)) + " s selects no samples at " +
             std::to_string(rate) + " Hz; use a longer duration");

  AudioBuffer out;
  out.channels = channels;
  out.frames = kept;
  out.sample_rate = rate;
  out.samples.resize(inter.size());
  for (int c = 0; c < channels; ++c) {
    float* dst = out.channel(c);
    for (int64_t t = 0; t < kept; ++t) dst[t] = inter[static_cast<size_t>(t) * channels + c];
  }
  return out;
}

int64_t resampled_length(int64_t frames, int in_rate, int out_rate) {
  // 2 · frames · out_rate stays below 2^63 for frames < 6e12 at 768 kHz.
  return (2 * frames * out_rate + in_rate) / (2 * static_cast<int64_t>(in_rate));
}

AudioBuffer resample(const AudioBuffer& in, int target_rate) {
  check_rate(target_rate, "target");
  check_rate(in.sample_rate, "input");
  if (in.sample_rate == target_rate) return in;
  if (in.frames <= 0 || in.channels <= 0)
    fail(ErrorCode::kInvalidArgument, "cannot resample empty audio; pass audio with samples");

  AudioBuffer out;
  out.channels = in.channels;
  out.sample_rate = target_rate;
  out.frames = resampled_length(in.frames, in.sample_rate, target_rate);
  out.samples.assign(static_cast<size_t>(out.frames) * out.channels, 0.0f);
  for (int c = 0; c < in.channels; ++c) {
    std::vector<float> y = resample_channel(in.channel(c), in.frames, in.sample_rate, target_rate);
    if (static_cast<int64_t>(y.size()) != out.frames)
      fail(ErrorCode::kIo, "the resampler returned " + std::to_string(y.size()) +
                               " frames instead of " + std::to_string(out.frames) +
                               "; this libsoxr build is not supported, please report it");
    std::copy(y.begin(), y.end(), out.channel(c));
  }
  return out;
}

AudioBuffer to_channels(const AudioBuffer& in, int channels) {
  if (channels != 1 && channels != 2)
    fail(ErrorCode::kInvalidArgument,
         "only mono or stereo output is supported, not " + std::to_string(channels) + " channels");
  if (in.channels <= 0)
    fail(ErrorCode::kInvalidArgument, "audio without channels cannot be converted");
  if (in.channels == channels) return in;

  AudioBuffer out;
  out.channels = channels;
  out.frames = in.frames;
  out.sample_rate = in.sample_rate;
  out.samples.resize(static_cast<size_t>(channels) * in.frames);
  float* mono = out.channel(0);
  if (in.channels == 1) {
    std::copy(in.channel(0), in.channel(0) + in.frames, mono);
  } else {
    // Mean over channels: sum in channel order, then divide (numpy/torch mean of float32).
    const float n = static_cast<float>(in.channels);
    for (int64_t t = 0; t < in.frames; ++t) {
      float sum = 0.0f;
      for (int c = 0; c < in.channels; ++c) sum += in.channel(c)[t];
      mono[t] = sum / n;
    }
  }
  if (channels == 2) std::copy(mono, mono + in.frames, out.channel(1));
  return out;
}

AudioBuffer load_for_model(const std::string& path, int sample_rate, int channels) {
  return resample(to_channels(load_audio(path), channels), sample_rate);
}

int64_t seconds_to_samples(double seconds, int sample_rate) {
  if (!std::isfinite(seconds) || seconds < 0.0)
    fail(ErrorCode::kInvalidArgument,
         "time " + format_seconds(seconds) + " s is invalid; use a number of seconds >= 0");
  if (seconds > 1e6)
    fail(ErrorCode::kInvalidArgument,
         "time " + format_seconds(seconds) + " s is too large; use at most 1000000 s");
  const int64_t us = std::llround(seconds * 1e6);
  return us * sample_rate / 1000000;
}

AudioBuffer slice_seconds(const AudioBuffer& in, double start_s, std::optional<double> duration_s) {
  const int64_t start = seconds_to_samples(start_s, in.sample_rate);
  const double length_s = in.sample_rate > 0 ? static_cast<double>(in.frames) / in.sample_rate : 0;
  if (start >= in.frames)
    fail(ErrorCode::kInvalidArgument,
         "start time " + format_seconds(start_s) + " s is at or past the end of the audio (" +
             format_seconds(length_s) + " s long); choose an earlier start");
  int64_t end = in.frames;
  if (duration_s.has_value())
    end = std::min(in.frames, start + seconds_to_samples(*duration_s, in.sample_rate));
  if (end <= start)
    fail(ErrorCode::kInvalidArgument,
         "duration " + format_seconds(duration_s.value_or(0.0)) + " s selects no samples at " +
             std::to_string(in.sample_rate) + " Hz; use a longer duration");

  AudioBuffer out;
  out.channels = in.channels;
  out.frames = end - start;
  out.sample_rate = in.sample_rate;
  out.samples.resize(static_cast<size_t>(out.channels) * out.frames);
  for (int c = 0; c < in.channels; ++c)
    std::copy(in.channel(c) + start, in.channel(c) + end, out.channel(c));
  return out;
}

}  // namespace musicgen
