// Implements include/musicgen/tools.h on top of src/format (random checkpoints, headers).
#include "musicgen/tools.h"

#include <filesystem>
#include <set>

#include "api/weight_types.h"
#include "format/hf_config.h"
#include "format/quantized_file.h"
#include "format/random_checkpoint.h"
#include "format/safetensors.h"
#include "kernels/quant.h"
#include "models/weight_policy.h"

namespace musicgen {

namespace {

DType parse_storage_dtype(const std::string& s) {
  if (s == "f32") return DType::kF32;
  if (s == "f16") return DType::kF16;
  if (s == "bf16") return DType::kBF16;
  fail(ErrorCode::kInvalidArgument, "dtype must be f32, f16 or bf16, got '" + s + "'");
}

RandomCheckpointOptions to_internal(const RandomModelOptions& o) {
  RandomCheckpointOptions r;
  r.shape = o.shape;
  r.out_dir = o.out_dir;
  r.seed = o.seed;
  r.dtype = parse_storage_dtype(o.dtype);
  r.heavy_tails = o.heavy_tails;
  if (o.format != "safetensors" && o.format != "bin")
    fail(ErrorCode::kInvalidArgument, "format must be safetensors or bin, got '" + o.format + "'");
  r.torch_bin = o.format == "bin";
  r.f16_exact_decoder = o.f16_exact_decoder;
  r.shards = o.shards;
  r.overwrite = o.overwrite;
  r.threads = o.threads;
  r.progress = o.progress;
  return r;
}

// Bytes of an [n, k] matrix in a storage type (kernels/quant.h block layout).
uint64_t storage_bytes(WeightStorage s, int64_t n, int64_t k) {
  kernels::QType q;
  switch (s) {
    case WeightStorage::kF32:
      return static_cast<uint64_t>(n * k) * 4;
    case WeightStorage::kBF16:
      q = kernels::QType::kBF16;
      break;
    case WeightStorage::kQ8:
      q = kernels::QType::kQ8;
      break;
    case WeightStorage::kQ4:
      q = kernels::QType::kQ4;
      break;
    default:
      return 0;
  }
  return kernels::q_data_bytes(q, n, k) + kernels::q_scale_bytes(q, n, k);
}

}  // namespace

std::vector<RandomModelShape> random_model_shapes() {
  std::vector<RandomModelShape> out;
  for (const RandomShape& s : random_shapes()) out.push_back({s.name, s.description, s.test_only});
  return out;
}

uint64_t random_model_bytes(const RandomModelOptions& options) {
  const RandomShape* shape = find_random_shape(options.shape);
  if (shape == nullptr) fail(ErrorCode::kInvalidArgument, "unknown shape '" + options.shape + "'");
  return random_checkpoint_bytes(*shape, parse_storage_dtype(options.dtype));
}

void make_random_model(const RandomModelOptions& options) {
  if (options.threads < 0)
    fail(ErrorCode::kInvalidArgument, "threads must be >= 0 (0 = all cores)");
  write_random_checkpoint(to_internal(options));
}

CheckpointStats checkpoint_stats(const std::string& path, WeightType weights) {
  CheckpointStats s;
  TensorStore store;
  WeightStorage requested = to_storage(weights);
  if (is_quantized_file(path)) {
    QuantizedFile q = read_quantized_file(path, /*verify_data=*/false);
    requested = quantized_file_storage(q.info.weights, weights, path);
    store = std::move(q.store);
    s.quantized_file = true;
    s.file_bytes = q.file_bytes;
  } else {
    store = TensorStore::open_checkpoint(path);
  }
  s.weights = weight_storage_name(requested);
  std::set<std::string> files;
  for (const std::string& name : store.names()) {
    const TensorInfo* t = store.find(name);
    const int64_t n = shape_numel(t->shape);
    s.total_params += n;
    if (name.rfind("text_encoder.", 0) == 0)
      s.text_encoder_params += n;
    else if (name.rfind("audio_encoder.", 0) == 0)
      s.audio_codec_params += n;
    else
      s.decoder_params += n;
    if (is_decoder_step_weight(name)) {
      // A step matrix of another rank (a 0-d lm_heads.0.weight) is a checkpoint that cannot run.
      if (t->shape.size() != 2)
        fail(ErrorCode::kInvalidModel, "tensor '" + name + "' in " + path + " has shape " +
                                           shape_str(t->shape) +
                                           ", a matrix was expected; re-export the checkpoint");
      s.decoder_step_params += n;
      // A quantized file stores the bytes a step reads; a checkpoint is converted at load.
      s.decoder_step_weight_bytes +=
          s.quantized_file
              ? t->nbytes
              : storage_bytes(tensor_storage(name, requested), t->shape.at(0), t->shape.at(1));
    }
    if (!s.quantized_file && t->file) files.insert(t->file->path());
  }
  for (const std::string& f : files) s.file_bytes += std::filesystem::file_size(f);
  return s;
}

}  // namespace musicgen
