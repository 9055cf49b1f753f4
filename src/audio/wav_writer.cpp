#include "audio/wav_writer.h"

#include <sndfile.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace musicgen {

void write_wav(const std::string& path, const float* samples, int channels, int64_t frames,
               int sample_rate, WavFormat format) {
  const std::filesystem::path target(path);
  const std::filesystem::path dir =
      target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(dir))
    fail(ErrorCode::kIo, "cannot write '" + path + "': directory '" + dir.string() +
                             "' does not exist; create it or choose another --output");
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());

  std::vector<float> interleaved(static_cast<size_t>(frames) * channels);
  float peak = 0.0f;
  for (int c = 0; c < channels; ++c)
    for (int64_t t = 0; t < frames; ++t) {
      const float v = samples[c * frames + t];
      interleaved[t * channels + c] = v;
      peak = std::max(peak, std::fabs(v));
    }
  if (format == WavFormat::kPcm16 && peak > 1.0f)
    for (float& v : interleaved) v /= peak;

  SF_INFO info{};
  info.samplerate = sample_rate;
  info.channels = channels;
  info.format = SF_FORMAT_WAV | (format == WavFormat::kPcm16 ? SF_FORMAT_PCM_16 : SF_FORMAT_FLOAT);
  SNDFILE* f = sf_open(tmp.c_str(), SFM_WRITE, &info);
  if (f == nullptr)
    fail(ErrorCode::kIo, "cannot write '" + path + "': " + sf_strerror(nullptr) +
                             "; check the directory exists and is writable");
  // libsndfile scales floats in [-1, 1] to PCM16; no clipping is needed after normalisation.
  const sf_count_t written = sf_writef_float(f, interleaved.data(), frames);
  const int close_err = sf_close(f);
  if (written != frames || close_err != 0) {
    std::remove(tmp.c_str());
    fail(ErrorCode::kIo, "writing '" + path + "' failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail(ErrorCode::kIo, "cannot move the output into '" + path + "': " + std::strerror(err));
  }
}

std::vector<float> read_audio(const std::string& path, int* channels, int64_t* frames,
                              int* sample_rate) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (f == nullptr)
    fail(ErrorCode::kIo, "cannot read audio '" + path + "': " + sf_strerror(nullptr));
  std::vector<float> inter(static_cast<size_t>(info.frames) * info.channels);
  const sf_count_t got = sf_readf_float(f, inter.data(), info.frames);
  sf_close(f);
  if (got != info.frames) fail(ErrorCode::kIo, "audio file '" + path + "' is truncated");
  std::vector<float> planar(inter.size());
  for (int c = 0; c < info.channels; ++c)
    for (sf_count_t t = 0; t < info.frames; ++t)
      planar[c * info.frames + t] = inter[t * info.channels + c];
  *channels = info.channels;
  *frames = info.frames;
  *sample_rate = info.samplerate;
  return planar;
}

}  // namespace musicgen
