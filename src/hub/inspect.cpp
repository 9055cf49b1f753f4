// list_cached_models (a scan of the cache folder) and inspect_model (config.json and the weight
// files' headers of a checkpoint: architecture, parameters per part and dtype, weight memory estimates).
#include <algorithm>
#include <atomic>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "core/error.h"
#include "core/mapped_file.h"
#include "format/hf_config.h"
#include "format/quantized_file.h"
#include "format/safetensors.h"
#include "format/torch_checkpoint.h"
#include "hub/cache.h"
#include "hub/hub_config.h"
#include "kernels/quant.h"
#include "musicgen/hub.h"

namespace musicgen {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json read_json(const fs::path& path) {
  const std::string text = read_regular_file(path.string(), kMaxJsonFileBytes);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(ErrorCode::kInvalidModel, "'" + path.string() + "' is not valid JSON (" + e.what() +
                                       "); re-download the checkpoint");
  }
}

std::string model_type_of(const fs::path& snapshot) {
  std::error_code ec;
  if (!fs::is_regular_file(snapshot / "config.json", ec)) return "";
  try {
    const json j =
        json::parse(read_regular_file((snapshot / "config.json").string(), kMaxJsonFileBytes));
    return j.is_object() && j.contains("model_type") && j["model_type"].is_string()
               ? j["model_type"].get<std::string>()
               : "";
  } catch (const std::exception&) {
    return "";
  }
}

uint64_t tree_size(const fs::path& dir, bool skip_incomplete) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (skip_incomplete && it->path().extension() == ".incomplete") continue;
    std::error_code e2;
    if (fs::is_regular_file(it->path(), e2))
      total += fs::file_size(it->path(), e2);  // follows links
  }
  return total;
}

// An integer of the config, or 0 when it is absent, not a number, not integral or out of int
// range (1e20 must not be converted: that is undefined behaviour). `info` describes, the loader
// judges.
int get_int(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
  const double d = j[key].get<double>();
  if (!(d >= INT32_MIN && d <= INT32_MAX) || d != std::floor(d)) return 0;
  return static_cast<int>(d);
}

// Header entries (name, dtype, parameters) of one safetensors file.
struct HeaderEntry {
  std::string name, dtype;
  uint64_t parameters = 0;
};

std::vector<HeaderEntry> read_safetensors_header(const fs::path& path) {
  auto corrupt = [&](const std::string& what) -> std::vector<HeaderEntry> {
    fail(ErrorCode::kInvalidModel, "corrupt safetensors file '" + path.string() + "': " + what +
                                       "; re-download the checkpoint");
  };
  uint64_t file_size = 0;
  const int fd = open_regular_file(path.string(), &file_size);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  uint8_t len_bytes[8];
  if (file_size < 8 || ::pread(fd, len_bytes, 8, 0) != 8) return corrupt("shorter than 8 bytes");
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | len_bytes[i];  // little-endian u64
  // The length is not echoed: for a file that is not safetensors it would be its first 8 bytes.
  if (len > (uint64_t{100} << 20) || len > file_size - 8)
    return corrupt("the header length exceeds the file (not a safetensors file?)");
  std::string header(len, '\0');
  if (::pread(fd, header.data(), len, 8) != static_cast<ssize_t>(len))
    return corrupt("truncated header");
  json j;
  try {
    j = json::parse(header);
  } catch (const json::exception&) {
    return corrupt("header is not valid JSON");
  }
  if (!j.is_object()) return corrupt("header is not a JSON object");
  std::vector<HeaderEntry> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const json& e = *it;
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e["shape"].is_array() ||
        !e["dtype"].is_string())
      return corrupt("entry '" + it.key() + "' lacks dtype or shape");
    HeaderEntry h{it.key(), e["dtype"].get<std::string>(), 1};
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned()) return corrupt("entry '" + it.key() + "' has a bad dimension");
      h.parameters *= d.get<uint64_t>();
    }
    out.push_back(std::move(h));
  }
  return out;
}

std::string part_of(const std::string& tensor) {
  if (tensor.rfind("text_encoder.", 0) == 0) return "text encoder (T5)";
  if (tensor.rfind("audio_encoder.", 0) == 0) return "audio codec (EnCodec)";
  if (tensor.rfind("decoder.", 0) == 0 || tensor.find("enc_to_dec_proj.") != std::string::npos)
    return "decoder (with text projection)";
  return "other";
}

// The repo id of a hub cache snapshot folder .../models--{org}--{name}/snapshots/{commit}[/...].
std::string repo_id_of_path(const std::string& path) {
  for (fs::path p = fs::path(path).lexically_normal(); p.has_parent_path() && p != p.parent_path();
       p = p.parent_path()) {
    if (p.parent_path().filename() == "snapshots") {
      const std::string id = hub::repo_id_from_folder(p.parent_path().parent_path().filename().string());
      if (!id.empty()) return id;
    }
  }
  return "";
}

// "cc-by-nc-4.0" -> "CC-BY-NC 4.0"; other identifiers as written.
std::string license_display(std::string id) {
  while (!id.empty() && (id.back() == ' ' || id.back() == '\r' || id.back() == '"' || id.back() == '\''))
    id.pop_back();
  while (!id.empty() && (id.front() == ' ' || id.front() == '"' || id.front() == '\'')) id.erase(0, 1);
  if (id == "cc-by-nc-4.0") return "CC-BY-NC 4.0 (non-commercial use only)";
  return id;
}

// The "license:" field of a model card's YAML front matter ("" if none).
std::string license_of_model_card(const fs::path& readme) {
  std::error_code ec;
  if (!fs::is_regular_file(readme, ec)) return "";
  std::string text;
  try {
    text = read_regular_file(readme.string(), kMaxJsonFileBytes);
  } catch (const Error&) {
    return "";
  }
  if (text.rfind("---", 0) != 0) return "";
  const size_t end = text.find("\n---", 3);
  size_t pos = 0;
  while (pos < end && pos != std::string::npos) {
    const size_t nl = text.find('\n', pos);
    const std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (line.rfind("license:", 0) == 0) return license_display(line.substr(8));
    pos = nl == std::string::npos ? nl : nl + 1;
  }
  return "";
}

std::string license_of(const std::string& dir, const json& config, const std::string& repo_id) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    const std::string card = license_of_model_card(fs::path(dir) / "README.md");
    if (!card.empty()) return card;
  }
  if (config.is_object() && config.contains("license") && config["license"].is_string())
    return license_display(config["license"].get<std::string>());
  if (repo_id.rfind("facebook/musicgen", 0) == 0) return license_display("cc-by-nc-4.0");
  return "";
}

}  // namespace

std::vector<CachedModel> list_cached_models(const ResolveOptions& options) {
  const std::string cache = hub_cache_dir(options);
  std::vector<CachedModel> out;
  std::error_code ec;
  if (!fs::is_directory(cache, ec)) return out;
  for (fs::directory_iterator it(cache, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string folder = it->path().filename().string();
    const std::string repo_id = hub::repo_id_from_folder(folder);
    std::error_code e2;
    if (repo_id.empty() || !fs::is_directory(it->path(), e2)) continue;
    CachedModel m;
    m.repo_id = repo_id;
    m.path = it->path().string();
    m.size_bytes = tree_size(it->path() / "blobs", true);
    // refs/ (names may contain '/', e.g. refs/pr/1) -> commit
    std::map<std::string, std::vector<std::string>> refs_by_commit;
    const fs::path refs = it->path() / "refs";
    for (fs::recursive_directory_iterator r(refs, e2), rend; !e2 && r != rend; r.increment(e2)) {
      std::error_code e3;
      if (!fs::is_regular_file(r->path(), e3)) continue;
      const std::string name = fs::relative(r->path(), refs, e3).string();
      if (auto commit = hub::read_ref(it->path().string(), name))
        refs_by_commit[*commit].push_back(name);
    }
    const fs::path snapshots = it->path() / "snapshots";
    for (fs::directory_iterator s(snapshots, e2), send; !e2 && s != send; s.increment(e2)) {
      std::error_code e3;
      if (!fs::is_directory(s->path(), e3)) continue;
      CachedRevision rev;
      rev.commit = s->path().filename().string();
      rev.path = s->path().string();
      rev.refs = refs_by_commit[rev.commit];
      std::sort(rev.refs.begin(), rev.refs.end());
      rev.size_bytes = tree_size(s->path(), false);
      rev.missing = hub::missing_checkpoint_files(rev.path);
      if (rev.missing.empty()) {
        try {
          rev.weights_format = TensorStore::find_weight_files(rev.path).format;
        } catch (const Error&) {
        }
      }
      if (m.model_type.empty() || !rev.refs.empty()) {
        const std::string t = model_type_of(s->path());
        if (!t.empty()) m.model_type = t;
      }
      m.revisions.push_back(std::move(rev));
    }
    // Named revisions first ("main" before others), then by commit.
    std::sort(m.revisions.begin(), m.revisions.end(),
              [](const CachedRevision& a, const CachedRevision& b) {
                auto rank = [](const CachedRevision& r) {
                  return std::find(r.refs.begin(), r.refs.end(), "main") != r.refs.end() ? 0
                         : r.refs.empty()                                                ? 2
                                                                                         : 1;
                };
                if (rank(a) != rank(b)) return rank(a) < rank(b);
                return a.commit < b.commit;
              });
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(),
            [](const CachedModel& a, const CachedModel& b) { return a.repo_id < b.repo_id; });
  return out;
}

CheckpointSummary inspect_model(const std::string& reference, const ResolveOptions& options) {
  const std::string dir = resolve_model(reference, options);
  const fs::path d(dir);
  CheckpointSummary s;
  s.directory = dir;
  if (const ModelReference ref = parse_model_reference(reference); ref.source == ModelSource::kHub)
    s.repo_id = ref.repo_id;
  if (s.repo_id.empty()) s.repo_id = repo_id_of_path(fs::absolute(d).string());
  std::error_code ec;
  // A `musicgen quantize` file: the same summary from its header (no tensor data is read).
  std::optional<QuantizedFile> quantized;
  json config;
  if (is_quantized_file(dir)) {
    quantized = read_quantized_file(dir, /*verify_data=*/false);
    // `musicgen quantize` records the repo id ("org/name") of a hub snapshot it was made from.
    const std::string& src = quantized->info.source;
    if (s.repo_id.empty() && src.find('/') != std::string::npos && src.front() != '/')
      s.repo_id = src;
    try {
      config = json::parse(quantized->info.config_json);
    } catch (const json::exception& e) {
      fail(ErrorCode::kInvalidModel, "the config.json inside '" + dir + "' is not valid JSON (" +
                                         e.what() + "); quantize the checkpoint again");
    }
  } else {
    if (fs::is_regular_file(d, ec))
      fail(ErrorCode::kInvalidModel, "'" + dir + "' is a file but not a musicgen quantized file; " +
                                         "give a checkpoint directory or a file written by " +
                                         "musicgen quantize");
    if (!fs::is_regular_file(d / "config.json", ec))
      fail(ErrorCode::kNotFound, "no config.json in '" + dir +
                                     "'; point at a Hugging Face MusicGen "
                                     "checkpoint directory");
    config = read_json(d / "config.json");
  }
  s.license = license_of(dir, config, s.repo_id);
  // Fields of the wrong JSON type read as absent (json::value() would throw a type error).
  auto member = [&](const char* key) {
    return config.is_object() && config.contains(key) ? config[key] : json();
  };
  s.model_type = member("model_type").is_string() ? member("model_type").get<std::string>() : "";
  const json text = member("text_encoder");
  const json dec = member("decoder");
  const json codec = member("audio_encoder");
  s.text_encoder_layers = get_int(text, "num_layers");
  s.text_encoder_hidden = get_int(text, "d_model");
  s.text_encoder_heads = get_int(text, "num_heads");
  s.text_vocab_size = get_int(text, "vocab_size");
  s.decoder_layers = get_int(dec, "num_hidden_layers");
  s.decoder_hidden = get_int(dec, "hidden_size");
  s.decoder_heads = get_int(dec, "num_attention_heads");
  s.decoder_ffn = get_int(dec, "ffn_dim");
  s.num_codebooks = get_int(dec, "num_codebooks");
  s.audio_channels = get_int(dec, "audio_channels");
  if (s.audio_channels == 0 && s.decoder_layers > 0) s.audio_channels = 1;  // HF's default
  s.codebook_size = get_int(codec, "codebook_size");
  s.sample_rate = get_int(codec, "sampling_rate");
  if (codec.is_object() && codec.contains("upsampling_ratios") &&
      codec["upsampling_ratios"].is_array() && s.sample_rate > 0) {
    double hop = 1;
    for (const auto& r : codec["upsampling_ratios"])
      if (r.is_number() && r.get<double>() >= 1) hop *= r.get<double>();
    const double rate = std::ceil(static_cast<double>(s.sample_rate) / hop);
    s.frame_rate = rate <= INT32_MAX ? static_cast<int>(rate) : 0;
  }

  std::map<std::string, WeightGroup> groups;
  auto add_entry = [&](const HeaderEntry& e) {
    WeightGroup& g = groups[part_of(e.name)];
    g.parameters += e.parameters;
    g.dtype_params[e.dtype] += e.parameters;
    s.total_parameters += e.parameters;
  };
  std::vector<fs::path> weights;
  if (quantized) {
    s.weights_format = "musicgen-quantized";
    s.quantized_weights = quantized->info.weights;
    s.weight_files.push_back(d.filename().string());
    for (const std::string& name : quantized->store.names()) {
      const TensorInfo* t = quantized->store.find(name);
      add_entry({name, dtype_name(t->dtype), static_cast<uint64_t>(shape_numel(t->shape))});
    }
    s.file_bytes = quantized->file_bytes;
  } else {
  // The weight files, as the engine picks them (format/safetensors.h).
  const TensorStore::WeightFiles wf = TensorStore::find_weight_files(dir);
  s.weights_format = wf.format;
  if (!wf.index.empty()) s.weight_files.push_back(fs::path(wf.index).filename().string());
  for (const auto& f : wf.files) {
    weights.push_back(f);
    s.weight_files.push_back(fs::path(f).filename().string());
  }
  for (const auto& w : weights) {
    std::vector<HeaderEntry> entries;
    if (wf.format == "pytorch") {
      for (const TensorInfo& t : read_torch_checkpoint(w.string()).tensors)
        entries.push_back({t.name, dtype_name(t.dtype), static_cast<uint64_t>(shape_numel(t.shape))});
    } else {
      entries = read_safetensors_header(w);
    }
    for (const auto& e : entries) add_entry(e);
  }
  }
  for (const char* name :
       {"text encoder (T5)", "decoder (with text projection)", "audio codec (EnCodec)", "other"}) {
    auto it = groups.find(name);
    if (it == groups.end()) continue;
    it->second.name = name;
    s.parts.push_back(it->second);
  }
  if (!quantized) {
    std::vector<fs::path> files = weights;
    if (const TensorStore::WeightFiles wf = TensorStore::find_weight_files(dir); !wf.index.empty())
      files.push_back(wf.index);
    for (const char* f : {"config.json", "generation_config.json", "spiece.model"})
      if (fs::is_regular_file(d / f, ec)) files.push_back(d / f);
    for (const auto& f : files) {
      std::error_code e2;
      s.file_bytes += fs::file_size(f, e2);  // follows snapshot links to the blobs
    }
  }
  if (!quantized) {
    // Which decoder step matrices an f32 load would keep as f16 (the loader's own test: every
    // value comes back bit-equal from half). Two threads scan each F32 matrix.
    const TensorStore store = TensorStore::open_checkpoint(dir);
    for (const std::string& name : store.names()) {
      if (!is_decoder_step_weight(name)) continue;
      const TensorInfo* t = store.find(name);
      if (t->shape.size() != 2) continue;
      ++s.step_matrices;
      if (t->dtype == DType::kF16) {
        ++s.step_matrices_f16_exact;
        continue;
      }
      if (t->dtype != DType::kF32) continue;
      const int64_t n = shape_numel(t->shape);
      std::atomic<bool> exact{true};
      std::thread other(kernels::convert_f32_to_f16_if_exact, t->data, n / 2, n, nullptr, &exact);
      kernels::convert_f32_to_f16_if_exact(t->data, 0, n / 2, nullptr, &exact);
      other.join();
      if (exact.load()) ++s.step_matrices_f16_exact;
      // Not needed again: drop the pages from the resident set.
      if (t->file) MappedFile::release(t->data, t->nbytes);
    }
  }
  // q8: 32 int8 values + one f16 scale per block (34 B / 32); q4: 32 4-bit values + scale (18 B /
  // 32).
  const std::pair<const char*, double> types[] = {
      {"f32", 4.0}, {"bf16", 2.0}, {"q8", 34.0 / 32}, {"q4", 18.0 / 32}};
  for (const auto& [name, bpp] : types)
    s.memory.push_back(
        {name, bpp,
         static_cast<uint64_t>(std::llround(bpp * static_cast<double>(s.total_parameters)))});
  return s;
}

std::string format_download_size(uint64_t bytes) { return hub::format_bytes(bytes); }

}  // namespace musicgen
