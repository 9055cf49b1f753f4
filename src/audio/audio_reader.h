// Reading audio prompts and melody files: decoding (libsndfile: WAV, FLAC, OGG/Vorbis, Opus,
// MP3, ...), sample-rate conversion (libsoxr, SOXR_HQ, the same settings as Python
// `soxr.resample`), channel mixing, and slicing by seconds. Every problem with a user's file throws
// musicgen::Error with a one-line message; nothing aborts. docs/AUDIO_INPUT.md describes the rules.
//
// Thread safety: all functions are reentrant (no shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace musicgen {

// Planar float audio: samples[c * frames + t], c < channels, t < frames.
struct AudioBuffer {
  std::vector<float> samples;
  int channels = 0;
  int64_t frames = 0;
  int sample_rate = 0;

  float* channel(int c) { return samples.data() + static_cast<size_t>(c) * frames; }
  const float* channel(int c) const { return samples.data() + static_cast<size_t>(c) * frames; }
};

// Limits on what load_audio accepts (anything beyond is treated as a wrong or absurd file).
inline constexpr int kMinSampleRate = 1000;    // Hz
inline constexpr int kMaxSampleRate = 768000;  // Hz
inline constexpr int kMaxChannels = 64;
inline constexpr int64_t kMaxDurationSeconds = 3600;
// At most one hour of 48 kHz stereo decoded in total (frames × channels), about 1.3 GiB of floats.
inline constexpr int64_t kMaxTotalSamples = int64_t{3600} * 48000 * 2;

// Decodes a whole file to float in [-1, 1] (integer PCM is scaled by libsndfile; float files
// are returned untouched). Throws Error:
//   kNotFound        the path does not exist
//   kInvalidArgument a directory, an unreadable or unsupported file (e.g. text named .wav),
//                    zero channels, zero frames, a sample rate outside [1 kHz, 768 kHz],
//                    more than 64 channels, longer than one hour, or too many samples in total
//   kIo              a decoding error in the middle of the file
// Also refused (kInvalidArgument): a path that is not a regular file (a FIFO never blocks), NaN
// or infinite samples, and a WAV whose data chunk claims more bytes than the file holds
// (truncated).
AudioBuffer load_audio(const std::string& path);
// Only the part [start_s, start_s + duration_s) (no duration: to the end), decoding no further
// than its end: an hour-long file costs only what the part needs. The same samples as
// slice_seconds(load_audio(path), start_s, duration_s), with its errors.
AudioBuffer load_audio(const std::string& path, double start_s, std::optional<double> duration_s);

// Output length of resample(): round-half-up of frames · out_rate / in_rate, in integers:
//   floor((2 · frames · out_rate + in_rate) / (2 · in_rate)).
// This is the length libsoxr produces after flushing, and so what Python soxr.resample returns.
int64_t resampled_length(int64_t frames, int in_rate, int out_rate);

// Converts to target_rate with libsoxr (SOXR_HQ, float32 I/O, each channel independently),
// fed exactly like Python `soxr.resample(x, in_rate, out_rate, 'HQ')`. Returns a copy when the
// rate already matches. Throws Error(kInvalidArgument) for a rate outside [1 kHz, 768 kHz].
AudioBuffer resample(const AudioBuffer& in, int target_rate);

// Channel rules: mono target = mean over all channels; stereo target from mono = duplicate;
// same count = unchanged; a target of 2 from more than 2 channels = mean to mono, then duplicate.
// Only 1 or 2 target channels are supported (Error(kInvalidArgument) otherwise).
AudioBuffer to_channels(const AudioBuffer& in, int channels);

// load_audio → to_channels → resample (mixing first, as the reference fixtures do).
AudioBuffer load_for_model(const std::string& path, int sample_rate, int channels);

// Seconds → sample index: the time is taken to the microsecond (llround(seconds · 1e6)), then
// index = floor(us · rate / 1e6) in integer arithmetic, so 0.1 s at 32 kHz is exactly 3200.
// Throws Error(kInvalidArgument) for a negative or non-finite time.
int64_t seconds_to_samples(double seconds, int sample_rate);

// The part [start, start + duration) of `in`, clamped to the end of the audio; no duration =
// until the end. Indices via seconds_to_samples. Throws Error(kInvalidArgument) when the start
// lies at or after the end, or when the slice would be empty.
AudioBuffer slice_seconds(const AudioBuffer& in, double start_s,
                          std::optional<double> duration_s = std::nullopt);

}  // namespace musicgen
