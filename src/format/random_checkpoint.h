// Random MusicGen checkpoints in the exact Hugging Face layout (config.json,
// generation_config.json, model.safetensors, spiece.model) with the official shapes of every
// released checkpoint, for benchmarks and smoke tests without downloads.
//
// Values come from a counter-based RNG keyed by (seed, tensor name, element index), so any tensor
// or chunk can be produced independently, in parallel, and identically for any thread count.
// Scales keep activations sane (see the table in random_checkpoint.cpp). Writing streams tensor by
// tensor (a 3.3B-parameter checkpoint never sits in memory) into a temporary directory that is
// renamed into place at the end.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "format/safetensors.h"
#include "format/safetensors_writer.h"

namespace musicgen {

struct RandomShape {
  std::string name;
  std::string description;
  bool test_only = false;  // reduced shape for tests, not an official checkpoint
  // Decoder (spec §1.1).
  int hidden = 1024;
  int layers = 24;
  int heads = 16;
  int codebooks = 4;  // K
  int audio_channels = 1;
  bool melody = false;  // musicgen_melody: no cross-attention, chroma projection
  int vocab = 2048;
  // Text encoder (T5-base, spec §1.2).
  int t5_d_model = 768;
  int t5_d_kv = 64;
  int t5_heads = 12;
  int t5_d_ff = 3072;
  int t5_layers = 12;
  int t5_vocab = 32128;
  // Codec (EnCodec 32 kHz, spec §1.3).
  int codec_filters = 64;
  int codec_hidden = 128;
  int codec_codebook_size = 2048;
  int codec_quantizers = 4;
};

// Every shape, official ones first.
const std::vector<RandomShape>& random_shapes();
// nullptr if unknown.
const RandomShape* find_random_shape(const std::string& name);

enum class InitKind {
  kLinear,    // N(0, 1/fan_in), fan_in = shape[1]; heavy tails may scale outlier columns
  kNormal,    // scale * N(0, 1)
  kOnePlus,   // 1 + scale * N(0, 1)  (norm weights)
  kUniform,   // U(-scale, scale)
  kConst,     // scale
  kSinusoid,  // HF MusicgenSinusoidalPositionalEmbedding table
  kConvV,     // N(0, 1/fan_in), fan_in = in * k (conv) or in * k / stride (transposed)
  kConvG,     // per dim-0 slice L2 norm of `source` (the matching weight_v) times scale
};

struct PlannedTensor {
  TensorDecl decl;
  InitKind init = InitKind::kNormal;
  double scale = 1.0;
  int64_t fan_in = 0;  // kLinear / kConvV
  std::string source;  // RNG stream name (defaults to decl.name); kConvG: the weight_v
  Shape source_shape;  // kConvG: shape of `source`
  int64_t source_fan_in = 0;
};

struct RandomCheckpointOptions {
  std::string shape = "small";
  std::string out_dir;
  uint64_t seed = 0;
  DType dtype = DType::kF32;  // kF32, kF16 or kBF16
  bool heavy_tails = false;
  // Decoder (language model) float32 values rounded to IEEE half, as in the official mono
  // checkpoints (their F32 decoder tensors are upcast F16 weights); the sinusoid table excepted.
  bool f16_exact_decoder = true;
  bool torch_bin = false;  // pytorch_model*.bin (format/torch_writer.h) instead of safetensors
  int shards = 1;          // > 1: shards of about equal size and an index
  bool overwrite = false;  // replace an existing out_dir
  int threads = 0;         // 0: all hardware threads
  // Called after each chunk with the tensor data bytes written so far and their total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// Every tensor of the checkpoint, sorted by name (the order of the file).
std::vector<PlannedTensor> plan_random_checkpoint(const RandomShape& shape, DType dtype);
// Size of model.safetensors in bytes.
uint64_t random_checkpoint_bytes(const RandomShape& shape, DType dtype);
// config.json / generation_config.json text.
std::string random_config_json(const RandomShape& shape, DType dtype);
std::string random_generation_config_json(const RandomShape& shape);
// A small T5-style SentencePiece model (pad 0, eos 1, unk 2), serialized; deterministic.
std::string train_tiny_spiece_model();

// Writes the checkpoint. Throws Error(kInvalidArgument) for bad options, Error(kIo) when the
// directory exists (without overwrite), the disk is too small or writing fails; nothing is left
// behind on failure.
void write_random_checkpoint(const RandomCheckpointOptions& options);

}  // namespace musicgen
