#include "audio/wav_writer.h"

#include <sndfile.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "audio/audio_writer.h"
#include "core/error.h"

namespace musicgen {

void write_wav(const std::string& path, const float* samples, int channels, int64_t frames,
               int sample_rate, WavFormat format) {
  std::vector<float> x(samples, samples + static_cast<size_t>(channels) * frames);
  float peak = 0.0f;
  for (float v : x) peak = std::max(peak, std::fabs(v));
  if (format == WavFormat::kPcm16 && peak > 1.0f)
    for (float& v : x) v /= peak;
  EncodeOptions o;
  o.format = EncodeFormat::kWav;
  o.wav_float = format == WavFormat::kFloat32;
  o.normalize.strategy = NormalizeStrategy::kNone;
  write_file_atomically(path, encode_audio_bytes(x.data(), channels, frames, sample_rate, o));
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
