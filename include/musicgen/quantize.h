// Public: converting a checkpoint into a musicgen quantized file (docs/MODEL_FORMAT.md), the
// engine behind `musicgen quantize`. Model::load reads the file without converting anything.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "musicgen/musicgen.h"

namespace musicgen {

struct QuantizeOptions {
  WeightType weights = WeightType::kQ8;  // type of the decoder's and text encoder's matrices
  int threads = 0;                       // 0: all hardware threads; does not change the output
  // Called after each tensor with the tensors done and their total.
  std::function<void(int done, int total)> progress;
};

// "f32", "bf16", "q8", "q4"; parse_weight_type throws Error(kInvalidArgument) for anything else.
const char* weight_type_name(WeightType type);
WeightType parse_weight_type(const std::string& name);

// Validates the checkpoint directory `model_dir` as Model::load does, then writes every tensor
// (matrices in `weights`, the rest as stored), config.json, generation_config.json and the
// tokenizer into `out_file`, atomically (a temporary file renamed at the end). The same inputs
// give byte-identical files. Throws Error.
void quantize_model(const std::string& model_dir, const std::string& out_file,
                    const QuantizeOptions& options = {});

}  // namespace musicgen
