// Implements include/musicgen/quantize.h: checkpoint directory -> musicgen quantized file.
#include "musicgen/quantize.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/weight_types.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "format/quantized_file.h"
#include "format/safetensors.h"
#include "kernels/quant.h"
#include "models/encodec.h"
#include "models/musicgen_decoder.h"
#include "models/t5_encoder.h"
#include "models/weight_policy.h"
#include "tokenizer/t5_tokenizer.h"

namespace musicgen {

namespace fs = std::filesystem;

const char* weight_type_name(WeightType type) { return weight_storage_name(to_storage(type)); }

WeightType parse_weight_type(const std::string& name) {
  if (name == "f32") return WeightType::kF32;
  if (name == "bf16") return WeightType::kBF16;
  if (name == "q8") return WeightType::kQ8;
  if (name == "q4") return WeightType::kQ4;
  fail(ErrorCode::kInvalidArgument, "weight type must be f32, bf16, q8 or q4, got '" + name + "'");
}

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kNotFound, "cannot read '" + path.string() + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

kernels::QType qtype(WeightStorage s) {
  return s == WeightStorage::kBF16 ? kernels::QType::kBF16
         : s == WeightStorage::kQ4 ? kernels::QType::kQ4
                                   : kernels::QType::kQ8;
}

}  // namespace

void quantize_model(const std::string& model_dir, const std::string& out_file,
                    const QuantizeOptions& options) {
  if (options.threads < 0) fail(ErrorCode::kInvalidArgument, "threads must be >= 0 (0 = all cores)");
  if (is_quantized_file(model_dir))
    fail(ErrorCode::kInvalidArgument, "'" + model_dir +
                                          "' is already a quantized file; quantize the original "
                                          "checkpoint directory");
  const WeightStorage requested = to_storage(options.weights);
  // Validate exactly what Model::load validates.
  const MusicgenConfig config = load_musicgen_config(model_dir);
  const fs::path dir(model_dir);
  T5Tokenizer check_tokenizer((dir / "spiece.model").string());
  const TensorStore store = TensorStore::open_checkpoint(model_dir);
  std::vector<TensorSpec> specs = T5Encoder::tensor_specs(config.text_encoder);
  const int num_chroma = config.melody ? config.num_chroma : 0;
  for (auto& s : MusicgenDecoder::tensor_specs(config.decoder, config.text_encoder.d_model, num_chroma))
    specs.push_back(std::move(s));
  for (auto& s : EncodecModel::tensor_specs(config.audio_encoder, "audio_encoder."))
    specs.push_back(std::move(s));
  validate_tensors(store, specs);

  QuantizedFileInfo info;
  info.weights = weight_storage_name(requested);
  info.config_json = read_file(dir / "config.json");
  if (fs::exists(dir / "generation_config.json"))
    info.generation_config_json = read_file(dir / "generation_config.json");
  info.tokenizer = read_file(dir / "spiece.model");
  // The folder name, or for a hub cache snapshot (models--{org}--{name}/snapshots/{commit}) the
  // repo id "org/name", so that `musicgen info FILE` can name the checkpoint and its licence.
  info.source = fs::path(model_dir).lexically_normal().filename().string();
  {
    const fs::path snap = fs::path(model_dir).lexically_normal();
    const std::string folder = snap.parent_path().parent_path().filename().string();
    if (snap.parent_path().filename() == "snapshots" && folder.rfind("models--", 0) == 0) {
      std::string id = folder.substr(8);
      if (const size_t sep = id.find("--"); sep != std::string::npos) id.replace(sep, 2, "/");
      info.source = id;
    }
  }

  const std::vector<std::string> names = store.names();
  std::vector<QuantizedTensorDecl> decls;
  std::vector<WeightStorage> kinds;
  for (const std::string& name : names) {
    const TensorInfo* t = store.find(name);
    WeightStorage s = tensor_storage(name, requested);
    if (t->shape.size() != 2 || (t->dtype != DType::kF32 && t->dtype != DType::kF16 &&
                                 t->dtype != DType::kBF16 && t->dtype != DType::kF64))
      s = WeightStorage::kF32;
    QuantizedTensorDecl d{name, t->dtype, t->shape, t->nbytes};
    if (s != WeightStorage::kF32) {
      const kernels::QType q = qtype(s);
      d.dtype = weight_storage_dtype(s);
      d.size = kernels::q_data_bytes(q, t->shape[0], t->shape[1]) +
               kernels::q_scale_bytes(q, t->shape[0], t->shape[1]);
    }
    decls.push_back(d);
    kinds.push_back(s);
  }
  ThreadPool pool(options.threads);
  QuantizedFileWriter writer(out_file, info, decls);
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorInfo* t = store.find(names[i]);
    if (kinds[i] == WeightStorage::kF32) {
      writer.write_tensor(t->data, t->nbytes);
    } else {
      const ConstTensor w = TensorStore::to_f32(*t);
      const kernels::QType q = qtype(kinds[i]);
      const int64_t n = t->shape[0], k = t->shape[1];
      const size_t data = kernels::q_data_bytes(q, n, k);
      buf.assign(decls[i].size, 0);
      kernels::quantize_matrix(q, w.data, n, k, buf.data(),
                               data < buf.size() ? reinterpret_cast<uint16_t*>(buf.data() + data) : nullptr,
                               &pool);
      writer.write_tensor(buf.data(), buf.size());
    }
    if (options.progress) options.progress(static_cast<int>(i + 1), static_cast<int>(names.size()));
  }
  writer.finish();
}

}  // namespace musicgen
