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
//   // or any format, normalisation and tags:
//   musicgen::write_audio_file("out.flac", r, 0, {.format = musicgen::AudioFileFormat::kFlac});
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
#include <utility>
#include <vector>

#include "musicgen/error.h"

namespace musicgen {

enum class SampleFormat { kPcm16, kFloat32 };

struct ModelInfo {
  std::string model_type;       // "musicgen" or "musicgen_melody"
  bool melody = false;          // takes a melody (chroma) condition
  int num_codebooks = 0;        // K
  int audio_channels = 0;       // 1 mono, 2 stereo
  int sample_rate = 0;          // 32000
  int frame_rate = 0;           // 50 frames per second
  int hidden_size = 0;
  int num_heads = 0;            // decoder attention heads
  int num_layers = 0;
  int vocab_size = 0;
  // The self-attention KV cache's element type: "f32", "f16" or "q8" (LoadOptions::kv_cache);
  // "" on a GPU (its own cache).
  std::string kv_cache;
  // The decoder matrices one step streams, how many are stored as exact f16
  // (LoadOptions::exact_f16: half-representable values kept as half, same results), and their
  // bytes as stored.
  int decoder_matrices = 0;
  int decoder_exact_f16 = 0;
  uint64_t decoder_step_bytes = 0;
  // Storage type of the matrices as loaded: "f32", "bf16", "q8" or "q4" (a quantized file: its
  // own type).
  std::string weights = "f32";
  // generation_config.json values (the defaults of GenerationOptions' unset fields).
  bool default_do_sample = true;
  float default_guidance_scale = 3.0f;
  int default_top_k = 50;
  float default_top_p = 1.0f;
  float default_temperature = 1.0f;
  int default_max_length = 1500;
  // Where the decoder runs: "cpu" or "vulkan:N <adapter name>".
  std::string device = "cpu";
  uint64_t device_weight_bytes = 0;  // decoder weights held in GPU memory (0 on the CPU)
};

// Storage type of the model's matrices (docs/QUANTIZATION.md: what each costs in accuracy, and
// the tensors that stay float32 whatever the type).
enum class WeightType {
  kF32,   // float32: exact (the parity tests' path)
  kBF16,  // bfloat16: half the bytes
  kQ8,    // 8-bit blocks of 32 with an f16 scale: ~1/4 the bytes
  kQ4,    // 4-bit blocks of 32 with an f16 scale and minimum: ~1/6 the bytes
};

enum class KvCache { kAuto, kQ8 };

struct LoadOptions {
  // Type of the decoder's and text encoder's matrices, converted once at load from a checkpoint
  // directory. A quantized file (`musicgen quantize`) loads with the type it stores: leave this
  // at kF32 or name that same type.
  WeightType weights = WeightType::kF32;
  // Threads that convert the weights at load; 0: all hardware threads.
  int threads = 0;
  // Where the decoder runs: "cpu", "vulkan" (the first discrete GPU, else the first adapter),
  // "vulkan:N" (adapter N of list_devices()), or "auto" (a discrete GPU when present, else the
  // CPU). Asking for Vulkan where it is missing is an Error(kDevice), never a silent fallback.
  std::string device = "cpu";
  // With kF32: matrices whose values are all exactly representable in IEEE half (the official
  // F16-trained weights, F16 checkpoints) are kept as half and converted in the kernel: the same
  // results bit for bit, half the bytes read per decoder step. false: plain float32.
  bool exact_f16 = true;
  // The decoder's self-attention KV cache. kAuto: float32 with f32 weights (the exact path),
  // IEEE half with the others. kQ8: int8 with one float scale per cached row of each head, half
  // the bytes of the half cache (at 30 s of musicgen-small: 74 instead of 147 MB read per step),
  // at the error docs/QUANTIZATION.md measures. CPU only: with a GPU device it is an
  // Error(kInvalidArgument).
  KvCache kv_cache = KvCache::kAuto;
};

// A compute adapter, as `musicgen devices` lists it.
struct DeviceInfo {
  std::string id;    // "vulkan:0"
  std::string name;  // "NVIDIA H200"
  std::string type;  // "discrete", "integrated", "cpu" (lavapipe), ...
  uint64_t memory_bytes = 0;  // largest device-local heap
  std::string driver_version, api_version;
};
// The Vulkan adapters of this system. Throws Error(kDevice) with the reason when this build has no
// Vulkan backend, or the system no loader or driver.
std::vector<DeviceInfo> list_devices();

class Model {
 public:
  // Loads a Hugging Face MusicGen checkpoint directory (config.json, generation_config.json,
  // model.safetensors, pytorch_model.bin or a sharded index of either, spiece.model), or a
  // single file written by
  // `musicgen quantize` (docs/MODEL_FORMAT.md). Weights are memory-mapped and validated.
  // `path` is any model reference (musicgen/hub.h): a folder or file, a hub repo id
  // ("facebook/musicgen-small[@revision]") or a short name ("small", "musicgen-small"), the
  // latter two read from the hub cache. Load never downloads: a hub model that is not cached is
  // Error(kNotFound) naming `musicgen pull`; musicgen::resolve_model downloads.
  // Throws Error.
  static std::shared_ptr<const Model> load(const std::string& path, const LoadOptions& options = {});
  ~Model();
  const ModelInfo& info() const;
  // Peak bytes this model and its sessions have held in GPU memory so far (0 on the CPU).
  uint64_t device_memory_peak() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  Model();
  std::unique_ptr<Impl> impl_;
};

// Planar float audio: samples[c * frames + t]. Any sample rate and channel count: the engine
// resamples (libsoxr) and mixes/duplicates channels to what the model needs.
struct AudioData {
  int sample_rate = 0;
  int channels = 0;
  int64_t frames = 0;
  std::vector<float> samples;
};

// Reads WAV, FLAC, OGG/Vorbis, Opus or MP3 (libsndfile). Throws Error for a missing, unreadable,
// empty or absurd file.
AudioData load_audio_file(const std::string& path);
// Only the part [start_s, start_s + duration_s) of the file (no duration: to its end), decoding
// no further than that part's end: equal to slice_audio(load_audio_file(path), start_s,
// duration_s) at a fraction of the cost for a short part of a long file.
AudioData load_audio_file(const std::string& path, double start_s,
                          std::optional<double> duration_s);
// The part [start_s, start_s + duration_s) of `audio` (no duration: until the end), with sample
// indices computed in integers. Throws Error(kInvalidArgument) for an empty or out-of-range slice.
AudioData slice_audio(const AudioData& audio, double start_s, std::optional<double> duration_s);

// Progress after each decoder step; return false to cancel (generate then throws
// Error(kCancelled)). With long-form generation, steps count across all windows.
using ProgressCallback = std::function<bool(int step, int total_steps)>;
// Streaming: called on the generating thread with each new piece of audio as soon as it is
// final, in order: planar float [batch, channels, count] holding samples [start, start + count)
// of every batch item (the same layout and values as GenerationResult::audio, leading padding
// included). The pieces concatenate to GenerationResult::audio exactly (bit for bit). Return
// false to cancel (generate then throws Error(kCancelled)).
using AudioCallback = std::function<bool(const float* audio, int batch, int channels,
                                         int64_t start, int64_t count)>;

// Streaming: called on the generating thread with each new piece of audio as soon as it is
// final, in order: planar float [batch, channels, count] holding samples [start, start + count)
// of every batch item (the same layout and values as GenerationResult::audio, leading padding
// included). The pieces concatenate to GenerationResult::audio exactly (bit for bit). Return
// false to cancel (generate then throws Error(kCancelled)).
using AudioCallback = std::function<bool(const float* audio, int batch, int channels,
                                         int64_t start, int64_t count)>;

struct GenerationOptions {
  // Text prompts, one batch item each. Empty: unconditional generation.
  std::vector<std::string> prompts;
  // Batch size of an unconditional request (ignored when prompts are given).
  int unconditional_samples = 1;
  // Audio prompts to continue (HF generate(input_values=...)), one per batch item, or one shared
  // by every item. Prompts of different lengths are left-padded with silence as HF's processor
  // does; the padding is removed from the output (GenerationResult::leading_padding). The output
  // holds the (re-synthesised) prompt followed by the continuation.
  std::vector<AudioData> audio_prompts;
  // Melody checkpoints only: the melody to follow (chroma), one per batch item or one shared.
  // None: the "no melody" condition of the reference.
  std::vector<AudioData> melodies;
  // Length: at most one of these. duration_s is the total length of the output (audio prompt
  // included): floor(duration * frame_rate) frames; longer than 30 s runs audiocraft's sliding
  // window. max_new_tokens counts decoder steps after the prompt exactly as HF does (without a
  // prompt N steps give N - 3 frames). Neither: generation_config.json's max_length (1500 steps).
  std::optional<double> duration_s;
  std::optional<int> max_new_tokens;
  // Long-form: each new 30 s window is prompted by the previous window's last 30 - stride
  // seconds (audiocraft's extend_stride, default 18 s).
  double extend_stride_s = 18.0;
  // Unset fields take generation_config.json's values (else HF's defaults).
  std::optional<float> guidance_scale;  // >= 1; 1 disables classifier-free guidance
  std::optional<float> temperature;     // > 0
  std::optional<int> top_k;             // >= 1
  std::optional<float> top_p;           // in (0, 1]
  std::optional<bool> greedy;           // true: argmax instead of sampling
  // Sampling seed: the same seed and options give the same music. Explicit in the library (0 by
  // default); the command line picks a random one unless --seed is given.
  uint64_t seed = 0;
  ProgressCallback progress;
  // Streaming (AudioCallback above): EnCodec decodes while the codes are generated; the first
  // piece (25 frames, 0.5 s) comes once 36 frames (0.72 s) are generated, then one piece per 50
  // frames (1 s), the rest when generation ends. Streaming always decodes on the CPU codec, also for a
  // model loaded on a Vulkan device (whose GPU codec agrees with it to ~1e-6, not bitwise), and
  // the result's audio is then those CPU-decoded pieces.
  AudioCallback on_audio;
};

struct Timings {
  double text_encode_s = 0;
  double decode_s = 0;       // decoder steps
  int decode_steps = 0;
  double audio_decode_s = 0; // EnCodec
  // The CPU thread pool during the decoder steps, summed over its threads (ThreadPool::Stats):
  // parallel regions entered, time running work, time from a region's start until a worker
  // started, and time waiting at a region's end for the slowest thread. 0 on a GPU or when the
  // steps ran in a shared Batcher.
  uint64_t decode_pool_calls = 0;
  double decode_pool_busy_s = 0, decode_pool_start_s = 0, decode_pool_barrier_s = 0;
};

struct GenerationResult {
  int batch = 0;
  // Per item, samples of left padding at the start of its audio (batches of audio prompts of
  // different lengths); write_audio_file skips them, as HF's processor.batch_decode does.
  std::vector<int64_t> leading_padding;
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

// ---- Writing audio (docs/USAGE.md: formats, normalisation, tags) ----

// WAV (PCM16 or float32), FLAC (16-bit), Ogg Vorbis, Ogg Opus (at 48 kHz: libopus takes 8, 12,
// 16, 24 or 48 kHz, so 32 kHz audio is resampled with libsoxr) and MP3 (320 kb/s CBR, as
// audiocraft's audio_write), all through libsndfile.
enum class AudioFileFormat { kWav, kFlac, kOgg, kOpus, kMp3 };

// audiocraft's audio_write strategies (audiocraft/data/audio_utils.py normalize_audio):
//   kNone:     samples untouched (PCM16 saturates at +-1)
//   kClip:     clamped to +-10^(-peak_clip_headroom_db/20)
//   kPeak:     scaled so that the largest |sample| is 10^(-peak_clip_headroom_db/20)
//   kRms:      scaled so that the RMS of the channels' mean is 10^(-rms_headroom_db/20), then
//              clamped to +-1
//   kLoudness: scaled to -loudness_headroom_db LUFS (ITU-R BS.1770-4 integrated loudness,
//              libebur128), then clamped to +-1; audio with an RMS below 2e-3 is not rescaled
// Float WAV output is normalised the same way.
enum class Normalization { kNone, kClip, kPeak, kRms, kLoudness };

struct AudioWriteOptions {
  AudioFileFormat format = AudioFileFormat::kWav;
  SampleFormat sample_format = SampleFormat::kPcm16;  // WAV only; others use their codec
  Normalization normalize = Normalization::kPeak;     // audiocraft defaults for its parameters
  float peak_clip_headroom_db = 1.0f, rms_headroom_db = 18.0f, loudness_headroom_db = 14.0f;
  // Stored as the format's native tags (WAV LIST/INFO, Vorbis comments in FLAC/Ogg/Opus, ID3v2
  // in MP3). Keys: title, comment, software, artist, album, date, genre, copyright, license,
  // tracknumber; any other key is Error(kInvalidArgument). MP3 text is ISO-8859-1 (characters
  // beyond it become '?'), and libsndfile writes no software tag to MP3.
  std::vector<std::pair<std::string, std::string>> tags = {};
};

// The file's bytes in memory (libsndfile virtual I/O), and the same written atomically (a
// temporary file in the same folder, renamed into place). Batch item `index`, its leading
// padding skipped. The same audio and options give the same bytes. Throws Error.
std::string encode_audio(const GenerationResult& r, int index, const AudioWriteOptions& o);
void write_audio_file(const std::string& path, const GenerationResult& r, int index,
                      const AudioWriteOptions& o);
// Writes batch item `index` as WAV with the default normalisation (peak, 1 dB headroom).
void write_audio_file(const std::string& path, const GenerationResult& result, int index,
                      SampleFormat format);
// Format from a file name's extension (.wav .flac .ogg .oga .opus .mp3, any case);
// Error(kInvalidArgument) for one it cannot write.
AudioFileFormat audio_format_for_path(const std::string& path);
// "wav", "flac", "ogg", "opus", "mp3" and back; parse_* throw Error(kInvalidArgument).
const char* audio_format_name(AudioFileFormat format);
AudioFileFormat parse_audio_format(const std::string& name);
// "none", "clip", "peak", "rms", "loudness" and back.
const char* normalization_name(Normalization normalization);
Normalization parse_normalization(const std::string& name);

}  // namespace musicgen
