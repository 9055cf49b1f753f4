// Mapping between the public WeightType and the engine's WeightStorage, and the rule for the
// type a quantized file loads with.
#pragma once

#include <string>

#include "core/error.h"
#include "musicgen/musicgen.h"
#include "nn/linear.h"

namespace musicgen {

inline WeightStorage to_storage(WeightType t) {
  switch (t) {
    case WeightType::kF32: return WeightStorage::kF32;
    case WeightType::kBF16: return WeightStorage::kBF16;
    case WeightType::kQ8: return WeightStorage::kQ8;
    case WeightType::kQ4: return WeightStorage::kQ4;
  }
  return WeightStorage::kF32;
}

// The storage a quantized file holds (its header's "weights"), checked against the requested
// type: kF32 (the default) or the same type.
inline WeightStorage quantized_file_storage(const std::string& stored, WeightType requested,
                                            const std::string& path) {
  WeightStorage s;
  if (stored == "f32") s = WeightStorage::kF32;
  else if (stored == "bf16") s = WeightStorage::kBF16;
  else if (stored == "q8") s = WeightStorage::kQ8;
  else if (stored == "q4") s = WeightStorage::kQ4;
  else
    fail(ErrorCode::kInvalidModel, "musicgen quantized file '" + path + "' holds unknown weight type '" +
                                       stored + "'; quantize the checkpoint again with this build");
  if (requested != WeightType::kF32 && to_storage(requested) != s)
    fail(ErrorCode::kInvalidArgument,
         "'" + path + "' holds " + stored + " weights and cannot be loaded as " +
             weight_storage_name(to_storage(requested)) +
             "; load it with its own type, or quantize the original checkpoint to that type");
  return s;
}

}  // namespace musicgen
