#include "format/hf_config.h"

#include <regex>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"

namespace musicgen {

namespace fs = std::filesystem;
using json = nlohmann::json;

int EncodecConfig::hop_length() const {
  int hop = 1;
  for (int r : upsampling_ratios) hop *= r;
  return hop;
}

int EncodecConfig::frame_rate() const {
  const int hop = hop_length();
  return (sampling_rate + hop - 1) / hop;
}

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

class Reader {
 public:
  Reader(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

  template <typename T>
  void get(const char* key, T* out) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    try {
      *out = j_[key].get<T>();
    } catch (const json::exception&) {
      bad(key, "has the wrong type");
    }
  }
  // Integers: a JSON integer, or a float with an integral value (Python's 24.0), within int range;
  // 1.5 or 1e20 is an error (a conversion would truncate or be undefined).
  void get(const char* key, int* out) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    *out = to_int(j_[key], key);
  }
  void get(const char* key, std::vector<int>* out) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    if (!j_[key].is_array()) bad(key, "has the wrong type");
    out->clear();
    for (const json& v : j_[key]) out->push_back(to_int(v, key));
  }
  int to_int(const json& v, const char* key) const {
    if (v.is_number_integer()) {
      if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t{INT32_MAX}
                                 : v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX)
        bad(key, "is out of range");
      return static_cast<int>(v.get<int64_t>());
    }
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (!(d >= INT32_MIN && d <= INT32_MAX)) bad(key, "is out of range");
      if (d != std::floor(d)) bad(key, "must be an integer");
      return static_cast<int>(d);
    }
    if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
    bad(key, "has the wrong type");
  }
  void positive(const char* key, int* out) const {
    get(key, out);
    if (*out <= 0) bad(key, "must be positive, got " + std::to_string(*out));
  }
  [[noreturn]] void bad(const std::string& key, const std::string& what) const {
    fail(ErrorCode::kInvalidModel, where_ + ": '" + key + "' " + what + "; fix config.json");
  }

 private:
  const json& j_;
  std::string where_;
};

void parse_t5(const json& j, const std::string& where, T5Config* c) {
  Reader r(j, where + " text_encoder");
  r.positive("vocab_size", &c->vocab_size);
  r.positive("d_model", &c->d_model);
  r.positive("d_kv", &c->d_kv);
  r.positive("d_ff", &c->d_ff);
  r.get("num_layers", &c->num_layers);  // 0 runs in HF: embeddings, then the final norm
  if (c->num_layers < 0) r.bad("num_layers", "must be >= 0, got " + std::to_string(c->num_layers));
  r.positive("num_heads", &c->num_heads);
  r.positive("relative_attention_num_buckets", &c->relative_attention_num_buckets);
  r.positive("relative_attention_max_distance", &c->relative_attention_max_distance);
  r.get("layer_norm_epsilon", &c->layer_norm_epsilon);
  std::string ff = "relu";
  r.get("feed_forward_proj", &ff);
  if (ff != "relu") r.bad("feed_forward_proj", "is '" + ff + "', only 'relu' (t5-base) is supported");
}

void parse_encodec(const json& j, const std::string& where, EncodecConfig* c) {
  Reader r(j, where + " audio_encoder");
  r.positive("sampling_rate", &c->sampling_rate);
  // It sizes every audio buffer; EnCodec models run at 24 or 32 kHz.
  if (c->sampling_rate > 768000) r.bad("sampling_rate", "is above 768000 Hz");
  r.positive("audio_channels", &c->audio_channels);
  r.get("normalize", &c->normalize);
  r.positive("hidden_size", &c->hidden_size);
  r.positive("num_filters", &c->num_filters);
  r.get("num_residual_layers", &c->num_residual_layers);
  if (c->num_residual_layers < 0)
    r.bad("num_residual_layers", "must be >= 0, got " + std::to_string(c->num_residual_layers));
  r.get("upsampling_ratios", &c->upsampling_ratios);
  r.positive("kernel_size", &c->kernel_size);
  r.positive("last_kernel_size", &c->last_kernel_size);
  r.positive("residual_kernel_size", &c->residual_kernel_size);
  r.positive("dilation_growth_rate", &c->dilation_growth_rate);
  r.get("use_causal_conv", &c->use_causal_conv);
  r.get("pad_mode", &c->pad_mode);
  r.positive("compress", &c->compress);
  r.positive("num_lstm_layers", &c->num_lstm_layers);
  r.positive("codebook_size", &c->codebook_size);
  c->codebook_dim = c->hidden_size;
  r.get("codebook_dim", &c->codebook_dim);
  r.get("use_conv_shortcut", &c->use_conv_shortcut);
  if (c->upsampling_ratios.empty()) r.bad("upsampling_ratios", "is empty");
  int64_t hop = 1;
  for (int v : c->upsampling_ratios) {
    if (v <= 0) r.bad("upsampling_ratios", "has a non-positive ratio");
    hop *= v;
    // The codec's strided convolutions have kernels of 2 · ratio (an int).
    if (hop > INT32_MAX / 2) r.bad("upsampling_ratios", "has a product out of range");
  }
  // The codec's layer widths are num_filters · 2^i for i up to the number of ratios, and its
  // dilations dilation_growth_rate^j for j below num_residual_layers: both must be ints.
  int64_t width = c->num_filters;
  for (size_t i = 0; i < c->upsampling_ratios.size(); ++i)
    if ((width *= 2) > INT32_MAX / 2)
      r.bad("num_filters", "times 2^(number of upsampling_ratios) is out of range");
  int64_t dilation = 1;
  for (int j = 1; j < c->num_residual_layers && j < 64; ++j)
    if ((dilation *= c->dilation_growth_rate) > INT32_MAX)
      r.bad("dilation_growth_rate", "to the power num_residual_layers - 1 is out of range");
  if (c->normalize) r.bad("normalize", "is true; only EnCodec without normalisation is supported");
  if (c->use_causal_conv) r.bad("use_causal_conv", "is true; only the non-causal codec is supported");
  if (c->pad_mode != "reflect") r.bad("pad_mode", "is '" + c->pad_mode + "', expected 'reflect'");
  if (c->use_conv_shortcut) r.bad("use_conv_shortcut", "is true; only identity shortcuts are supported");
  if (c->codebook_dim != c->hidden_size) r.bad("codebook_dim", "differs from hidden_size");
  // HF's residual width is dim // compress, whatever the remainder; only a width of 0 fails.
  if (c->num_filters / c->compress < 1)
    r.bad("compress", "exceeds num_filters, so the residual blocks would have 0 channels");
  std::string norm_type = "weight_norm";
  r.get("norm_type", &norm_type);
  if (norm_type != "weight_norm")
    r.bad("norm_type", "is '" + norm_type + "'; only 'weight_norm' (every MusicGen codec) is supported");
  if (j.contains("chunk_length_s") && !j["chunk_length_s"].is_null())
    r.bad("chunk_length_s", "is set; only the unchunked codec (chunk_length_s null, as in every "
                            "MusicGen checkpoint) is supported");
  // HF EncodecConfig.num_quantizers = int(1000 * target_bandwidths[-1] // (frame_rate * 10)).
  std::vector<double> bandwidths = {2.2};
  r.get("target_bandwidths", &bandwidths);
  if (bandwidths.empty()) r.bad("target_bandwidths", "is empty");
  const double quantizers = std::floor(1000.0 * bandwidths.back() / (c->frame_rate() * 10.0));
  if (!(quantizers <= INT32_MAX)) r.bad("target_bandwidths", "gives a quantizer count out of range");
  c->num_quantizers = static_cast<int>(quantizers);
  if (c->num_quantizers <= 0) r.bad("target_bandwidths", "gives no quantizers");
}

void parse_decoder(const json& j, const std::string& where, DecoderConfig* c) {
  Reader r(j, where + " decoder");
  r.positive("vocab_size", &c->vocab_size);
  r.positive("max_position_embeddings", &c->max_position_embeddings);
  r.positive("num_hidden_layers", &c->num_hidden_layers);
  r.positive("ffn_dim", &c->ffn_dim);
  r.positive("num_attention_heads", &c->num_attention_heads);
  r.positive("hidden_size", &c->hidden_size);
  r.positive("num_codebooks", &c->num_codebooks);
  r.positive("audio_channels", &c->audio_channels);
  r.get("pad_token_id", &c->pad_token_id);
  r.get("bos_token_id", &c->bos_token_id);
  r.get("activation_function", &c->activation_function);
  if (c->activation_function != "gelu")
    r.bad("activation_function", "is '" + c->activation_function + "', expected 'gelu'");
  if (c->hidden_size % c->num_attention_heads != 0)
    r.bad("num_attention_heads", "does not divide hidden_size");
  if (c->audio_channels != 1 && c->audio_channels != 2) r.bad("audio_channels", "must be 1 or 2");
  if (c->num_codebooks % c->audio_channels != 0)
    r.bad("num_codebooks", "is not a multiple of audio_channels");
  // HF's sinusoid divides by hidden_size / 2 - 1 (NaN below 4); an odd width gets a zero column,
  // as the engine's add_positions does.
  if (c->hidden_size < 4) r.bad("hidden_size", "must be >= 4 (the sinusoid table is NaN below)");
  bool scale_embedding = false;
  r.get("scale_embedding", &scale_embedding);
  if (scale_embedding)
    r.bad("scale_embedding", "is true; only unscaled embeddings (every MusicGen checkpoint) are supported");
}

}  // namespace

namespace {
MusicgenConfig config_from_json(const json& j, const std::string& where, const json* gj,
                                const std::string& gen_where);
}  // namespace

MusicgenConfig load_musicgen_config(const std::string& dir) {
  if (!fs::exists(dir))
    fail(ErrorCode::kNotFound, "model directory '" + dir +
                                   "' does not exist; pass --model a directory holding "
                                   "config.json, spiece.model and the weights");
  if (!fs::is_directory(dir))
    fail(ErrorCode::kNotFound, "'" + dir + "' is not a directory; pass --model a checkpoint directory");
  const fs::path config_path = fs::path(dir) / "config.json";
  if (!fs::exists(config_path))
    fail(ErrorCode::kNotFound, "no config.json in '" + dir +
                                   "'; pass --model a Hugging Face MusicGen checkpoint directory");
  const json j = read_json(config_path);
  const fs::path gen_path = fs::path(dir) / "generation_config.json";
  const bool has_gen = fs::exists(gen_path);
  const json gj = has_gen ? read_json(gen_path) : json();
  return config_from_json(j, config_path.string(), has_gen ? &gj : nullptr, gen_path.string());
}

MusicgenConfig parse_musicgen_config(const std::string& config_json,
                                     const std::string& generation_config_json,
                                     const std::string& where) {
  auto parse = [&](const std::string& text, const char* name) {
    try {
      return json::parse(text);
    } catch (const json::exception& e) {
      fail(ErrorCode::kInvalidModel, where + ": " + name + " is not valid JSON (" + e.what() + ")");
    }
  };
  const json j = parse(config_json, "config.json");
  const bool has_gen = !generation_config_json.empty();
  const json gj = has_gen ? parse(generation_config_json, "generation_config.json") : json();
  return config_from_json(j, where + " (config.json)", has_gen ? &gj : nullptr,
                          where + " (generation_config.json)");
}

namespace {
MusicgenConfig config_from_json(const json& j, const std::string& where, const json* gj,
                                const std::string& gen_where) {
  if (!j.is_object()) fail(ErrorCode::kInvalidModel, where + " is not a JSON object");
  MusicgenConfig c;
  // A model_type that is not a string is "not a MusicGen model", not a JSON type error.
  if (j.contains("model_type") && j["model_type"].is_string())
    c.model_type = j["model_type"].get<std::string>();
  if (c.model_type != "musicgen" && c.model_type != "musicgen_melody")
    fail(ErrorCode::kInvalidModel, where + ": model_type '" + c.model_type +
                                       "' is not a MusicGen model (expected 'musicgen' or "
                                       "'musicgen_melody'); point --model at a MusicGen checkpoint");
  c.melody = c.model_type == "musicgen_melody";
  if (c.melody) {
    Reader r(j, where);
    r.positive("num_chroma", &c.num_chroma);
    r.positive("chroma_length", &c.chroma_length);
  }
  for (const char* part : {"text_encoder", "audio_encoder", "decoder"})
    if (!j.contains(part) || !j[part].is_object())
      fail(ErrorCode::kInvalidModel, where + ": the '" + std::string(part) +
                                         "' section is missing; re-download the checkpoint");
  parse_t5(j["text_encoder"], where, &c.text_encoder);
  parse_encodec(j["audio_encoder"], where, &c.audio_encoder);
  parse_decoder(j["decoder"], where, &c.decoder);
  if (c.audio_encoder.audio_channels != 1)
    fail(ErrorCode::kInvalidModel, where + ": audio_encoder.audio_channels must be 1");
  if (c.audio_encoder.codebook_size < c.decoder.vocab_size)
    fail(ErrorCode::kInvalidModel, where + ": decoder vocab_size exceeds the codec's codebook_size");
  // HF decodes the first num_codebooks quantizers, so fewer codebooks than quantizers run (audio
  // prompts then fail in HF and are refused in Session::generate); more cannot be decoded.
  if (c.decoder.num_codebooks / c.decoder.audio_channels > c.audio_encoder.num_quantizers)
    fail(ErrorCode::kInvalidModel,
         where + ": decoder num_codebooks per channel (" +
             std::to_string(c.decoder.num_codebooks / c.decoder.audio_channels) +
             ") exceeds the codec's quantizer count (" +
             std::to_string(c.audio_encoder.num_quantizers) + ", from target_bandwidths)");

  GenerationDefaults& g = c.generation;
  g.decoder_start_token_id = c.decoder.bos_token_id;
  g.pad_token_id = c.decoder.pad_token_id;
  if (gj != nullptr) {
    Reader r(*gj, gen_where);
    r.get("do_sample", &g.do_sample);
    r.get("guidance_scale", &g.guidance_scale);
    r.get("max_length", &g.max_length);
    if (g.max_length < 1) r.bad("max_length", "must be positive, got " + std::to_string(g.max_length));
    r.get("top_k", &g.top_k);
    r.get("top_p", &g.top_p);
    r.get("temperature", &g.temperature);
    r.get("decoder_start_token_id", &g.decoder_start_token_id);
    r.get("pad_token_id", &g.pad_token_id);
  }
  if (g.decoder_start_token_id != c.decoder.vocab_size || g.pad_token_id != c.decoder.vocab_size)
    fail(ErrorCode::kInvalidModel,
         where + ": the special token (decoder_start_token_id / pad_token_id) must equal the "
                 "decoder vocab_size " + std::to_string(c.decoder.vocab_size));
  return c;
}

}  // namespace

bool is_decoder_step_weight(const std::string& tensor_name) {
  static const std::regex kStep(
      R"(decoder\.model\.decoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|encoder_attn\.(q|out)_proj|fc1|fc2)\.weight|decoder\.lm_heads\.\d+\.weight)");
  return std::regex_match(tensor_name, kStep);
}

}  // namespace musicgen
