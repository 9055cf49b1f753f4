// The public audio writers (musicgen.h): a result's batch item, its padding skipped, encoded by
// the audio layer (src/audio/audio_writer.h).
#include <algorithm>

#include "audio/audio_writer.h"
#include "core/error.h"
#include "musicgen/musicgen.h"

namespace musicgen {

namespace {

EncodeFormat to_encode_format(AudioFileFormat f) {
  switch (f) {
    case AudioFileFormat::kWav: return EncodeFormat::kWav;
    case AudioFileFormat::kFlac: return EncodeFormat::kFlac;
    case AudioFileFormat::kOgg: return EncodeFormat::kOgg;
    case AudioFileFormat::kOpus: return EncodeFormat::kOpus;
    case AudioFileFormat::kMp3: return EncodeFormat::kMp3;
  }
  fail(ErrorCode::kInvalidArgument, "unknown AudioFileFormat value");
}

AudioFileFormat from_encode_format(EncodeFormat f) {
  switch (f) {
    case EncodeFormat::kWav: return AudioFileFormat::kWav;
    case EncodeFormat::kFlac: return AudioFileFormat::kFlac;
    case EncodeFormat::kOgg: return AudioFileFormat::kOgg;
    case EncodeFormat::kOpus: return AudioFileFormat::kOpus;
    case EncodeFormat::kMp3: return AudioFileFormat::kMp3;
  }
  return AudioFileFormat::kWav;
}

NormalizeStrategy to_strategy(Normalization n) {
  switch (n) {
    case Normalization::kNone: return NormalizeStrategy::kNone;
    case Normalization::kClip: return NormalizeStrategy::kClip;
    case Normalization::kPeak: return NormalizeStrategy::kPeak;
    case Normalization::kRms: return NormalizeStrategy::kRms;
    case Normalization::kLoudness: return NormalizeStrategy::kLoudness;
  }
  fail(ErrorCode::kInvalidArgument, "unknown Normalization value");
}

}  // namespace

std::string encode_audio(const GenerationResult& r, int index, const AudioWriteOptions& o) {
  if (index < 0 || index >= r.batch)
    fail(ErrorCode::kInvalidArgument, "batch index " + std::to_string(index) + " is out of range (batch of " +
                                          std::to_string(r.batch) + ")");
  if (r.channels <= 0 || r.samples < 0 ||
      r.audio.size() != static_cast<size_t>(r.batch) * r.channels * static_cast<size_t>(r.samples))
    fail(ErrorCode::kInvalidArgument, "the result's audio does not match its batch, channels and samples");
  if (o.sample_format == SampleFormat::kFloat32 && o.format != AudioFileFormat::kWav)
    fail(ErrorCode::kInvalidArgument, std::string("float32 samples are for WAV only; ") +
                                          audio_format_name(o.format) + " files use their codec's samples");
  const int64_t skip = index < static_cast<int>(r.leading_padding.size())
                           ? std::clamp<int64_t>(r.leading_padding[index], 0, r.samples)
                           : 0;
  const int64_t n = r.samples - skip;
  std::vector<float> planar(static_cast<size_t>(r.channels) * n);
  for (int c = 0; c < r.channels; ++c)
    std::copy_n(r.audio.data() + (static_cast<size_t>(index) * r.channels + c) * r.samples + skip, n,
                planar.data() + static_cast<size_t>(c) * n);
  EncodeOptions e;
  e.format = to_encode_format(o.format);
  e.wav_float = o.sample_format == SampleFormat::kFloat32;
  e.normalize.strategy = to_strategy(o.normalize);
  e.normalize.peak_clip_headroom_db = o.peak_clip_headroom_db;
  e.normalize.rms_headroom_db = o.rms_headroom_db;
  e.normalize.loudness_headroom_db = o.loudness_headroom_db;
  e.tags = o.tags;
  return encode_audio_bytes(planar.data(), r.channels, n, r.sample_rate, e);
}

void write_audio_file(const std::string& path, const GenerationResult& r, int index,
                      const AudioWriteOptions& o) {
  write_file_atomically(path, encode_audio(r, index, o));
}

void write_audio_file(const std::string& path, const GenerationResult& r, int index, SampleFormat format) {
  AudioWriteOptions o;
  o.sample_format = format;
  write_audio_file(path, r, index, o);
}

AudioFileFormat audio_format_for_path(const std::string& path) {
  return from_encode_format(encode_format_for_path(path));
}

const char* audio_format_name(AudioFileFormat format) {
  return encode_format_name(to_encode_format(format));
}

AudioFileFormat parse_audio_format(const std::string& name) {
  return from_encode_format(parse_encode_format(name));
}

const char* normalization_name(Normalization n) {
  switch (n) {
    case Normalization::kNone: return "none";
    case Normalization::kClip: return "clip";
    case Normalization::kPeak: return "peak";
    case Normalization::kRms: return "rms";
    case Normalization::kLoudness: return "loudness";
  }
  return "?";
}

Normalization parse_normalization(const std::string& name) {
  for (Normalization n : {Normalization::kPeak, Normalization::kLoudness, Normalization::kRms,
                          Normalization::kClip, Normalization::kNone})
    if (name == normalization_name(n)) return n;
  fail(ErrorCode::kInvalidArgument,
       "unknown normalisation '" + name + "'; use peak, loudness, rms, clip or none");
}

}  // namespace musicgen
