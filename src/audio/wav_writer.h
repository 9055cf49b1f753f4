// Plain WAV files for tests and tools (audio_writer.h has the formats, normalisation and tags of
// the public write_audio_file). Files are written to a temporary name in the same directory and
// renamed into place, so a failure never leaves a partial file.
#pragma once

#include <string>
#include <vector>

namespace musicgen {

enum class WavFormat { kPcm16, kFloat32 };

// samples: [channels, frames] planar float. PCM16 output is peak-normalised only when the peak
// exceeds 1.0 (never hard-clipped); Float32 writes the values untouched.
// Throws Error(kIo) with the path if the file cannot be written.
void write_wav(const std::string& path, const float* samples, int channels, int64_t frames,
               int sample_rate, WavFormat format);

// Reads a WAV/FLAC/OGG/... file as planar float [channels, frames] (for tests and tools).
std::vector<float> read_audio(const std::string& path, int* channels, int64_t* frames,
                              int* sample_rate);

}  // namespace musicgen
