// musicgen.cpp public API.
//
// Usage:
//   auto model = musicgen::Model::load("path/to/musicgen-small");      // read-only, shareable
//   musicgen::Session session(model, {.threads = 2});                   // one per thread
//   musicgen::GenerationOptions opt;
//   opt.prompts = {"lo-fi hip hop beat"};
//   opt.duration_s = 10;
//   musicgen::GenerationResult r = session.generate(opt);
//   musicgen::write_audio_file("out.wav", r, 0, musicgen::SampleFormat::kPcm16);
//
// Thread safety: a Model is immutable after load and may be shared by any number of Sessions on
// any threads. A Session is not thread-safe: use one per thread.
//
// Errors: every problem caused by input (files, options, requests) throws musicgen::Error with a
// one-line message saying what is wrong and what to do; nothing aborts the process.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "musicgen/error.h"

namespace musicgen {

enum class SampleFormat { kPcm16, kFloat32 };

struct ModelInfo {
  std::string model_type;       // "musicgen"
  int num_codebooks = 0;        // K
  int audio_channels = 0;       // 1 mono, 2 stereo
  int sample_rate = 0;          // 32000
  int frame_rate = 0;           // 50 frames per second
  int hidden_size = 0;
  int num_layers = 0;
  int vocab_size = 0;
  // generation_config.json values (the defaults of GenerationOptions' unset fields).
  bool default_do_sample = true;
  float default_guidance_scale = 3.0f;
  int default_top_k = 50;
  float default_top_p = 1.0f;
  float default_temperature = 1.0f;
  int default_max_length = 1500;
};

class Model {
 public:
  // Loads a Hugging Face MusicGen checkpoint directory (config.json, generation_config.json,
  // model.safetensors or a sharded index, spiece.model). Weights are memory-mapped and
  // validated. Throws Error.
  static std::shared_ptr<const Model> load(const std::string& dir);
  ~Model();
  const ModelInfo& info() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  Model();
  std::unique_ptr<Impl> impl_;
};

// Progress after each decoder step; return false to cancel (generate then throws
// Error(kCancelled)).
using ProgressCallback = std::function<bool(int step, int total_steps)>;

struct GenerationOptions {
  // Text prompts, one batch item each. Empty: unconditional generation.
  std::vector<std::string> prompts;
  // Batch size of an unconditional request (ignored when prompts are given).
  int unconditional_samples = 1;
  // Length: exactly one of these may be set. duration_s gives round(duration * frame_rate)
  // frames; max_new_tokens counts decoder steps as HF does (N steps give N - 3 frames).
  // Neither: generation_config.json's max_length (1500 steps = 1496 frames).
  std::optional<double> duration_s;
  std::optional<int> max_new_tokens;
  // Unset fields take generation_config.json's values (else HF's defaults).
  std::optional<float> guidance_scale;  // >= 1; 1 disables classifier-free guidance
  std::optional<float> temperature;     // > 0
  std::optional<int> top_k;             // >= 1
  std::optional<float> top_p;           // in (0, 1]
  std::optional<bool> greedy;           // true: argmax instead of sampling
  uint64_t seed = 0;
  ProgressCallback progress;
};

struct Timings {
  double text_encode_s = 0;
  double decode_s = 0;       // decoder steps
  int decode_steps = 0;
  double audio_decode_s = 0; // EnCodec
};

struct GenerationResult {
  int batch = 0;
  int channels = 0;
  int frames = 0;          // N codec frames
  int sample_rate = 0;
  int64_t samples = 0;     // per channel = frames * hop
  int num_codebooks = 0;
  std::vector<float> audio;     // [batch, channels, samples]
  std::vector<int32_t> codes;   // [batch, K, frames], un-delayed
  Timings timings;
};

struct SessionOptions {
  int threads = 0;  // 0: all hardware threads
};

class Session {
 public:
  Session(std::shared_ptr<const Model> model, SessionOptions options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Validates options (throws Error(kInvalidArgument) naming the bad one), then generates.
  GenerationResult generate(const GenerationOptions& options);
  // Decodes codes [batch, K, frames] to audio with the model's codec.
  GenerationResult decode_codes(const std::vector<int32_t>& codes, int batch, int frames);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes batch item `index` of a result as a WAV file (atomically: temp file + rename).
void write_audio_file(const std::string& path, const GenerationResult& result, int index,
                      SampleFormat format);

}  // namespace musicgen
