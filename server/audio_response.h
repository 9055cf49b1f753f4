// Every byte of audio the server sends is made here (docs/SERVER.md "Formats"): whole files, and
// the pieces of a streamed response. One place, so the encoder can be swapped for the library's
// encode_audio() without touching the HTTP code.
#pragma once

#include <cstdint>
#include <string>

#include "musicgen/musicgen.h"

namespace musicgen::server {

enum class ResponseFormat { kWav, kPcm, kFlac, kOgg, kMp3 };
enum class Normalize { kPeak, kClip };

struct AudioEncoding {
  ResponseFormat format = ResponseFormat::kWav;
  SampleFormat sample_format = SampleFormat::kPcm16;
  // kPeak: as the CLI (pcm16 divided by the peak when the peak exceeds 1); kClip: samples clipped
  // to [-1, 1], as a stream is (a stream cannot know its peak in advance).
  Normalize normalize = Normalize::kPeak;
};

// Parses "wav", "pcm", "flac", "ogg", "mp3"; false for anything else.
bool parse_response_format(const std::string& name, ResponseFormat* out);
// Throws Error(kUnsupported) for a format this build cannot encode yet.
void check_encodable(const AudioEncoding& e);
// The MIME type of a whole response or stream.
std::string content_type(const AudioEncoding& e);

// Batch item `index` as a complete file (wav: the bytes the CLI writes for the same settings).
// temp_dir: a private folder for the writer's temporary file.
std::string encode_item(const GenerationResult& r, int index, const AudioEncoding& e,
                        const std::string& temp_dir);

// Streaming: the WAV header of a stream of unknown length (sizes 0xFFFFFFFF); empty for pcm.
std::string stream_header(const AudioEncoding& e, int channels, int sample_rate);
// Interleaved little-endian samples of item `index` of planar [batch, channels, count] audio,
// clipped to [-1, 1] for pcm16 (frames [skip, count) of the piece: the leading padding).
std::string stream_samples(const float* audio, int batch, int channels, int64_t count, int index,
                           int64_t skip, const AudioEncoding& e);

}  // namespace musicgen::server
