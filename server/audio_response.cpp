#include "audio_response.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "musicgen/error.h"

namespace musicgen::server {
namespace {

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xFF));
  s.push_back(static_cast<char>(v >> 8));
}

// libsndfile's float -> PCM16 conversion (normalised floats, no clipping mode): lrintf(v * 0x7FFF).
int16_t to_pcm16(float v) {
  v = std::clamp(v, -1.0f, 1.0f);
  return static_cast<int16_t>(std::lrintf(v * 32767.0f));
}

void append_sample(std::string& out, float v, SampleFormat f) {
  if (f == SampleFormat::kPcm16) {
    put_u16(out, static_cast<uint16_t>(to_pcm16(v)));
  } else {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    put_u32(out, bits);
  }
}

// A fresh file name in the server's private folder for the WAV writer (which writes files only).
std::string temp_wav_path(const std::string& dir) {
  static std::atomic<uint64_t> counter{0};
  return (std::filesystem::path(dir) / ("musicgen-serve-" + std::to_string(::getpid()) + "-" +
                 std::to_string(counter.fetch_add(1)) + ".wav"))
      .string();
}

}  // namespace

bool parse_response_format(const std::string& name, ResponseFormat* out) {
  if (name == "wav") *out = ResponseFormat::kWav;
  else if (name == "pcm") *out = ResponseFormat::kPcm;
  else if (name == "flac") *out = ResponseFormat::kFlac;
  else if (name == "ogg") *out = ResponseFormat::kOgg;
  else if (name == "mp3") *out = ResponseFormat::kMp3;
  else return false;
  return true;
}

void check_encodable(const AudioEncoding& e) {
  if (e.format == ResponseFormat::kFlac || e.format == ResponseFormat::kOgg ||
      e.format == ResponseFormat::kMp3)
    fail(ErrorCode::kUnsupported,
         "response_format flac, ogg and mp3 are not supported in this build yet; use wav or pcm");
}

std::string content_type(const AudioEncoding& e) {
  switch (e.format) {
    case ResponseFormat::kWav: return "audio/wav";
    case ResponseFormat::kFlac: return "audio/flac";
    case ResponseFormat::kOgg: return "audio/ogg";
    case ResponseFormat::kMp3: return "audio/mpeg";
    case ResponseFormat::kPcm: break;
  }
  return e.sample_format == SampleFormat::kPcm16 ? "audio/L16" : "application/octet-stream";
}

std::string encode_item(const GenerationResult& r, int index, const AudioEncoding& e,
                        const std::string& temp_dir) {
  check_encodable(e);
  if (index < 0 || index >= r.batch) fail(ErrorCode::kInvalidArgument, "batch index out of range");
  const int64_t skip =
      index < static_cast<int>(r.leading_padding.size()) ? r.leading_padding[index] : 0;
  const int64_t n = r.samples - skip;
  const float* item = r.audio.data() + static_cast<size_t>(index) * r.channels * r.samples;
  if (e.format == ResponseFormat::kPcm) {
    // The WAV file's data chunk: the same peak normalisation (or clipping) as the file.
    float peak = 0.0f;
    for (size_t i = 0; i < static_cast<size_t>(r.channels) * r.samples; ++i)
      peak = std::max(peak, std::fabs(item[i]));
    const float scale = e.sample_format == SampleFormat::kPcm16 &&
                                e.normalize == Normalize::kPeak && peak > 1.0f
                            ? 1.0f / peak
                            : 1.0f;
    std::string out;
    out.reserve(static_cast<size_t>(n) * r.channels * 4);
    for (int64_t t = skip; t < r.samples; ++t)
      for (int c = 0; c < r.channels; ++c) {
        float v = item[static_cast<size_t>(c) * r.samples + t];
        append_sample(out, scale == 1.0f ? v : v / peak, e.sample_format);
      }
    return out;
  }
  // WAV: the library's writer, as the CLI uses it (identical bytes for identical settings).
  const GenerationResult* src = &r;
  GenerationResult clipped;
  if (e.normalize == Normalize::kClip && e.sample_format == SampleFormat::kPcm16) {
    clipped = r;
    for (float& v : clipped.audio) v = std::clamp(v, -1.0f, 1.0f);
    src = &clipped;
  }
  const std::string path = temp_wav_path(temp_dir);
  try {
    write_audio_file(path, *src, index, e.sample_format);
  } catch (...) {
    std::remove(path.c_str());
    throw;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  in.close();
  std::remove(path.c_str());
  if (!in && !in.eof()) fail(ErrorCode::kIo, "reading back the encoded audio failed");
  return bytes.str();
}

std::string stream_header(const AudioEncoding& e, int channels, int sample_rate) {
  if (e.format != ResponseFormat::kWav) return {};
  const bool f32 = e.sample_format == SampleFormat::kFloat32;
  const uint16_t bits = f32 ? 32 : 16;
  const uint16_t block = static_cast<uint16_t>(channels * bits / 8);
  std::string h = "RIFF";
  put_u32(h, 0xFFFFFFFFu);  // unknown length (a stream): readers take "until the end"
  h += "WAVEfmt ";
  put_u32(h, 16);
  put_u16(h, f32 ? 3 : 1);  // WAVE_FORMAT_IEEE_FLOAT or PCM
  put_u16(h, static_cast<uint16_t>(channels));
  put_u32(h, static_cast<uint32_t>(sample_rate));
  put_u32(h, static_cast<uint32_t>(sample_rate) * block);
  put_u16(h, block);
  put_u16(h, bits);
  h += "data";
  put_u32(h, 0xFFFFFFFFu);
  return h;
}

std::string stream_samples(const float* audio, int batch, int channels, int64_t count, int index,
                           int64_t skip, const AudioEncoding& e) {
  (void)batch;
  std::string out;
  if (skip >= count) return out;
  out.reserve(static_cast<size_t>(count - skip) * channels * 4);
  const float* item = audio + static_cast<size_t>(index) * channels * count;
  for (int64_t t = skip; t < count; ++t)
    for (int c = 0; c < channels; ++c)
      append_sample(out, item[static_cast<size_t>(c) * count + t], e.sample_format);
  return out;
}

}  // namespace musicgen::server
