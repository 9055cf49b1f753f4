#include "audio_response.h"

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

uint32_t get_u32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}
void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xFF));
  s.push_back(static_cast<char>(v >> 8));
}

AudioFileFormat file_format(ResponseFormat f) {
  switch (f) {
    case ResponseFormat::kFlac: return AudioFileFormat::kFlac;
    case ResponseFormat::kOgg: return AudioFileFormat::kOgg;
    case ResponseFormat::kOpus: return AudioFileFormat::kOpus;
    case ResponseFormat::kMp3: return AudioFileFormat::kMp3;
    case ResponseFormat::kWav:
    case ResponseFormat::kPcm: break;
  }
  return AudioFileFormat::kWav;
}

// The samples of a WAV file: its "data" chunk.
std::string wav_data(const std::string& wav) {
  if (wav.size() < 12 || wav.compare(0, 4, "RIFF") != 0 || wav.compare(8, 4, "WAVE") != 0)
    fail(ErrorCode::kIo, "internal: the WAV encoder wrote no RIFF/WAVE header");
  size_t at = 12;
  while (at + 8 <= wav.size()) {
    const uint32_t size = get_u32(wav, at + 4);
    if (wav.compare(at, 4, "data") == 0) {
      if (at + 8 + size > wav.size()) break;
      return wav.substr(at + 8, size);
    }
    at += 8 + size + (size & 1);
  }
  fail(ErrorCode::kIo, "internal: the WAV encoder wrote no data chunk");
}

AudioWriteOptions write_options(const AudioEncoding& e) {
  AudioWriteOptions o;
  o.format = file_format(e.format);
  o.sample_format = e.sample_format;
  o.normalize = e.normalize;
  return o;
}

}  // namespace

bool parse_response_format(const std::string& name, ResponseFormat* out) {
  if (name == "wav") *out = ResponseFormat::kWav;
  else if (name == "pcm") *out = ResponseFormat::kPcm;
  else if (name == "flac") *out = ResponseFormat::kFlac;
  else if (name == "ogg") *out = ResponseFormat::kOgg;
  else if (name == "opus") *out = ResponseFormat::kOpus;
  else if (name == "mp3") *out = ResponseFormat::kMp3;
  else return false;
  return true;
}

void check_encodable(const AudioEncoding& e, bool stream) {
  const bool uncompressed = e.format == ResponseFormat::kWav || e.format == ResponseFormat::kPcm;
  if (!uncompressed && e.sample_format == SampleFormat::kFloat32)
    fail(ErrorCode::kInvalidArgument, "sample_format f32 is for wav and pcm only");
  if (stream && !uncompressed)
    fail(ErrorCode::kInvalidArgument, "a stream is sent as wav or pcm; ask for one of those");
  if (stream && e.normalize != Normalization::kClip && e.normalize != Normalization::kNone)
    fail(ErrorCode::kInvalidArgument,
         std::string("a stream can only be normalised with clip or none (") +
             normalization_name(e.normalize) + " needs the whole take first)");
}

std::string content_type(const AudioEncoding& e) {
  switch (e.format) {
    case ResponseFormat::kWav: return "audio/wav";
    case ResponseFormat::kFlac: return "audio/flac";
    case ResponseFormat::kOgg: return "audio/ogg";
    case ResponseFormat::kOpus: return "audio/ogg; codecs=opus";
    case ResponseFormat::kMp3: return "audio/mpeg";
    case ResponseFormat::kPcm: break;
  }
  return e.sample_format == SampleFormat::kPcm16 ? "audio/L16" : "application/octet-stream";
}

std::string encode_item(const GenerationResult& r, int index, const AudioEncoding& e) {
  const std::string bytes = encode_audio(r, index, write_options(e));
  return e.format == ResponseFormat::kPcm ? wav_data(bytes) : bytes;
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
  if (skip >= count || index < 0 || index >= batch) return {};
  // The piece as a one-item take through the same encoder: clip and none act sample by sample,
  // so the pieces' samples are the whole take's.
  GenerationResult piece;
  piece.batch = 1;
  piece.channels = channels;
  piece.sample_rate = 32000;  // only the container's header field; its samples are the same
  piece.samples = count - skip;
  piece.audio.resize(static_cast<size_t>(channels) * piece.samples);
  const float* item = audio + static_cast<size_t>(index) * channels * count;
  for (int c = 0; c < channels; ++c)
    std::copy_n(item + static_cast<size_t>(c) * count + skip, piece.samples,
                piece.audio.data() + static_cast<size_t>(c) * piece.samples);
  AudioEncoding wav = e;
  wav.format = ResponseFormat::kWav;
  return wav_data(encode_audio(piece, 0, write_options(wav)));
}

}  // namespace musicgen::server
