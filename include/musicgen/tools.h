// Public: developer tools behind `musicgen make-random-model` and `musicgen bench`: random
// checkpoints with the official shapes (no downloads) and facts about a checkpoint's tensors.
// All functions throw musicgen::Error with a one-line message.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "musicgen/error.h"
#include "musicgen/musicgen.h"

namespace musicgen {

struct RandomModelShape {
  std::string name;         // e.g. "small", "stereo-medium", "melody"
  std::string description;  // the checkpoint it mirrors
  bool test_only = false;   // a reduced shape for tests, not an official checkpoint
};

// Shapes accepted by make_random_model, official ones first.
std::vector<RandomModelShape> random_model_shapes();

struct RandomModelOptions {
  std::string shape = "small";  // a name from random_model_shapes()
  std::string out_dir;          // created atomically; must not exist unless overwrite
  uint64_t seed = 0;            // same seed, shape and options: byte-identical files
  std::string dtype = "f32";    // storage type of every tensor: f32, f16 or bf16
  bool heavy_tails = false;     // 1% of each matrix's input columns scaled x20 (outliers)
  // File format: "safetensors" (model.safetensors) or "bin" (pytorch_model.bin, torch.save's
  // zip format, as facebook/musicgen-medium publishes it).
  std::string format = "safetensors";
  // With f32: the decoder's values rounded to IEEE half, as the official mono checkpoints store
  // them (F16-trained weights upcast to F32), so benchmarks see what users load; false: full
  // float32 random values.
  bool f16_exact_decoder = true;
  // More than 1: that many shards and an index (model-0000X-of-0000N.safetensors +
  // model.safetensors.index.json, or pytorch_model-0000X-of-0000N.bin + pytorch_model.bin.index.json
  // as facebook/musicgen-large), split at tensor boundaries into parts of about equal size.
  int shards = 1;
  bool overwrite = false;       // replace an existing out_dir
  int threads = 0;              // 0: all hardware threads; does not change the output
  // Called as tensor data is written: bytes so far and in total.
  std::function<void(uint64_t done_bytes, uint64_t total_bytes)> progress;
};

// Size in bytes of the model.safetensors that make_random_model would write.
uint64_t random_model_bytes(const RandomModelOptions& options);

// Writes config.json, generation_config.json, model.safetensors or pytorch_model.bin, or their
// shards and index (every tensor of the official
// checkpoint, Hugging Face names and shapes, random values) and a small spiece.model into
// out_dir. Streams tensor by tensor; writes into a temporary directory renamed at the end, so
// out_dir is complete or absent.
void make_random_model(const RandomModelOptions& options);

struct CheckpointStats {
  int64_t total_params = 0;
  int64_t text_encoder_params = 0;  // text_encoder.*
  int64_t decoder_params = 0;       // decoder.*, enc_to_dec_proj.*, audio_enc_to_dec_proj.*
  int64_t audio_codec_params = 0;   // audio_encoder.*
  // Weights that one decoder step reads in full: per layer the self-attention q/k/v/out, the
  // cross-attention q/out (its k/v act on the text once per generation), fc1, fc2; and the LM
  // heads. Embedding rows (K per step) and the KV cache are not counted.
  int64_t decoder_step_params = 0;
  // Their bytes in the weight type the model is loaded with (quantization blocks and scales
  // included, the documented per-tensor exceptions applied).
  uint64_t decoder_step_weight_bytes = 0;
  std::string weights;          // that weight type: "f32", "bf16", "q8" or "q4"
  bool quantized_file = false;  // a `musicgen quantize` file rather than a checkpoint directory
  uint64_t file_bytes = 0;      // the checkpoint's files on disk
};

// Reads only the headers of a checkpoint directory or a quantized file (whatever Model::load
// takes). `weights` is the type the checkpoint would be loaded with; a quantized file has its own
// (a different non-f32 request throws, as Model::load does).
CheckpointStats checkpoint_stats(const std::string& path, WeightType weights = WeightType::kF32);

}  // namespace musicgen
