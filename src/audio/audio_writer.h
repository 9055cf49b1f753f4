// Encoding audio files: WAV (PCM16 or float32), FLAC, Ogg Vorbis, Ogg Opus and MP3 through
// libsndfile (virtual I/O, so the file is built in memory), with audiocraft's audio_write
// normalisation strategies (loudness through libebur128) and native tags (WAV LIST/INFO, Vorbis
// comments, ID3v2). The public API (write_audio_file, encode_audio) maps onto this layer.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace musicgen {

enum class EncodeFormat { kWav, kFlac, kOgg, kOpus, kMp3 };

// audiocraft.data.audio_utils.normalize_audio with normalize=True, loudness_compressor=False:
//   none:     untouched (an integer format still saturates at +-1 instead of wrapping)
//   clip:     clamped to +-10^(-peak_clip_headroom_db/20)
//   peak:     scaled so that max |x| = 10^(-peak_clip_headroom_db/20) (silence stays silence)
//   rms:      scaled so that the RMS of the channel mean is 10^(-rms_headroom_db/20), then
//             clamped to +-1
//   loudness: scaled to -loudness_headroom_db LUFS integrated loudness (ITU-R BS.1770-4, EBU
//             R128 gating, libebur128), then clamped to +-1; audio whose RMS is below 2e-3, or
//             too short or quiet to have a gated block, is not rescaled (only clamped)
enum class NormalizeStrategy { kNone, kClip, kPeak, kRms, kLoudness };

struct NormalizeParams {
  NormalizeStrategy strategy = NormalizeStrategy::kPeak;
  float peak_clip_headroom_db = 1.0f;
  float rms_headroom_db = 18.0f;
  float loudness_headroom_db = 14.0f;
};

struct EncodeOptions {
  EncodeFormat format = EncodeFormat::kWav;
  bool wav_float = false;  // WAV only: float32 samples instead of PCM16
  NormalizeParams normalize;
  // Keys: title, copyright, software, artist, comment, date, album, license, tracknumber, genre
  // (libsndfile's string types). An unknown key is Error(kInvalidArgument).
  std::vector<std::pair<std::string, std::string>> tags;
};

// Normalises planar [channels, frames] audio in place. Throws Error(kInvalidArgument) when a
// strategy other than none meets a NaN or infinite sample.
void normalize_audio(float* planar, int channels, int64_t frames, int sample_rate,
                     const NormalizeParams& params);

// Integrated loudness in LUFS of planar [channels, frames] audio (libebur128; channels as
// left, right, centre, ... with unit weights; mono is not treated as dual mono). -infinity when
// no 400 ms block passes the gates (silence, or shorter than 400 ms).
double integrated_loudness(const float* planar, int channels, int64_t frames, int sample_rate);

// The sample rate an Opus file of this audio is written at: the rate itself when Opus takes it
// (8, 12, 16, 24 or 48 kHz), else 48 kHz (resampled with libsoxr, high quality).
int opus_sample_rate(int sample_rate);

// The complete file, in memory. planar: [channels, frames]. Ogg streams get a serial number
// derived from their content, so the same audio and tags give the same bytes.
std::string encode_audio_bytes(const float* planar, int channels, int64_t frames,
                               int sample_rate, const EncodeOptions& options);

// Writes `bytes` to `path + ".tmp-PID"` and renames it onto `path` (never a partial file).
// Throws Error(kIo) naming the path.
void write_file_atomically(const std::string& path, const std::string& bytes);

// The format a file name's extension names (.wav .flac .ogg .oga .opus .mp3, any case).
// Throws Error(kInvalidArgument) for any other extension or none.
EncodeFormat encode_format_for_path(const std::string& path);
// "wav", "flac", "ogg", "opus", "mp3".
const char* encode_format_name(EncodeFormat format);
// Parses those names (and "vorbis" for ogg); Error(kInvalidArgument) otherwise.
EncodeFormat parse_encode_format(const std::string& name);

}  // namespace musicgen
