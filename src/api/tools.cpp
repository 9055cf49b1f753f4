// Implements include/musicgen/tools.h on top of src/format (random checkpoints, headers).
#include "musicgen/tools.h"

#include <filesystem>
#include <regex>
#include <set>

#include "format/random_checkpoint.h"
#include "format/safetensors.h"

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
  r.overwrite = o.overwrite;
  r.threads = o.threads;
  r.progress = o.progress;
  return r;
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
  if (options.threads < 0) fail(ErrorCode::kInvalidArgument, "threads must be >= 0 (0 = all cores)");
  write_random_checkpoint(to_internal(options));
}

CheckpointStats checkpoint_stats(const std::string& dir) {
  const TensorStore store = TensorStore::open_checkpoint(dir);
  static const std::regex kStep(
      R"(decoder\.model\.decoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|encoder_attn\.(q|out)_proj|fc1|fc2)\.weight|decoder\.lm_heads\.\d+\.weight)");
  CheckpointStats s;
  std::set<std::string> files;
  for (const std::string& name : store.names()) {
    const TensorInfo* t = store.find(name);
    const int64_t n = shape_numel(t->shape);
    s.total_params += n;
    if (name.rfind("text_encoder.", 0) == 0) s.text_encoder_params += n;
    else if (name.rfind("audio_encoder.", 0) == 0) s.audio_codec_params += n;
    else s.decoder_params += n;
    if (std::regex_match(name, kStep)) s.decoder_step_params += n;
    if (t->file) files.insert(t->file->path());
  }
  for (const std::string& f : files) s.file_bytes += std::filesystem::file_size(f);
  return s;
}

}  // namespace musicgen
