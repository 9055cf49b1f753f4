// Every byte of audio the server sends is made here (docs/SERVER.md "Formats"): whole files, and
// the pieces of a streamed response, all through the library's encode_audio() (the CLI's encoder:
// the same normalisation, 16-bit rounding and container), so a response holds the samples the
// CLI writes for the same settings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "musicgen/musicgen.h"

namespace musicgen::server {

enum class ResponseFormat { kWav, kPcm, kFlac, kOgg, kOpus, kMp3 };

struct AudioEncoding {
  ResponseFormat format = ResponseFormat::kWav;
  SampleFormat sample_format = SampleFormat::kPcm16;  // wav and pcm only
  // audiocraft's audio_write strategies, as the CLI's --normalize (default peak). A stream can
  // only clip or leave the samples alone (it cannot know the whole take's peak or loudness in
  // advance); its default is clip.
  Normalization normalize = Normalization::kPeak;
};

// Parses "wav", "pcm", "flac", "ogg", "opus", "mp3"; false for anything else.
bool parse_response_format(const std::string& name, ResponseFormat* out);
// Throws Error(kInvalidArgument) for a combination that cannot be served (f32 samples in a
// compressed format; a stream in a compressed format or with a whole-take normalisation).
void check_encodable(const AudioEncoding& e, bool stream);
// The MIME type of a whole response or stream.
std::string content_type(const AudioEncoding& e);

// Batch item `index` as a complete file (the bytes encode_audio gives for the same settings; pcm:
// the WAV file's data chunk).
std::string encode_item(const GenerationResult& r, int index, const AudioEncoding& e);

// Streaming: the WAV header of a stream of unknown length (sizes 0xFFFFFFFF); empty for pcm.
std::string stream_header(const AudioEncoding& e, int channels, int sample_rate);
// Interleaved little-endian samples of item `index` of planar [batch, channels, count] audio
// (frames [skip, count) of the piece: the leading padding), normalised (clip or none) and
// rounded exactly as encode_item does it for the whole take.
std::string stream_samples(const float* audio, int batch, int channels, int64_t count, int index,
                           int64_t skip, const AudioEncoding& e);

}  // namespace musicgen::server
