// Parsing of a Hugging Face MusicGen checkpoint's config.json and generation_config.json into
// plain structs. Every value the engine uses is checked here, so the models can trust them.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace musicgen {

struct T5Config {
  int vocab_size = 32128;
  int d_model = 768;
  int d_kv = 64;
  int d_ff = 3072;
  int num_layers = 12;
  int num_heads = 12;
  int relative_attention_num_buckets = 32;
  int relative_attention_max_distance = 128;
  float layer_norm_epsilon = 1e-6f;
};

struct EncodecConfig {
  int sampling_rate = 32000;
  int audio_channels = 1;
  bool normalize = false;
  int hidden_size = 128;   // latent width = codebook_dim
  int num_filters = 64;
  int num_residual_layers = 1;
  std::vector<int> upsampling_ratios = {8, 5, 4, 4};  // decoder order
  int kernel_size = 7;
  int last_kernel_size = 7;
  int residual_kernel_size = 3;
  int dilation_growth_rate = 2;
  bool use_causal_conv = false;
  std::string pad_mode = "reflect";
  int compress = 2;
  int num_lstm_layers = 2;
  int codebook_size = 2048;
  int codebook_dim = 128;
  bool use_conv_shortcut = false;
  int num_quantizers = 4;  // derived from target_bandwidths[0] and the frame rate, as HF does
  int hop_length() const;  // product of upsampling_ratios
  int frame_rate() const;  // ceil(sampling_rate / hop_length)
};

struct DecoderConfig {
  int vocab_size = 2048;
  int max_position_embeddings = 2048;
  int num_hidden_layers = 24;
  int ffn_dim = 4096;
  int num_attention_heads = 16;
  int hidden_size = 1024;
  int num_codebooks = 4;
  int audio_channels = 1;
  int pad_token_id = 2048;
  int bos_token_id = 2048;
  std::string activation_function = "gelu";
  int head_dim() const { return hidden_size / num_attention_heads; }
};

struct GenerationDefaults {
  bool do_sample = true;
  float guidance_scale = 3.0f;
  int max_length = 1500;
  int top_k = 50;
  float top_p = 1.0f;
  float temperature = 1.0f;
  int decoder_start_token_id = 2048;
  int pad_token_id = 2048;
};

struct MusicgenConfig {
  std::string model_type;  // "musicgen" or "musicgen_melody"
  // Melody checkpoints condition on chroma + text prepended to the decoder input (no
  // cross-attention).
  bool melody = false;
  int num_chroma = 12;
  int chroma_length = 235;  // chroma frames of 30 s at hop 4096
  T5Config text_encoder;
  EncodecConfig audio_encoder;
  DecoderConfig decoder;
  GenerationDefaults generation;
};

// Reads DIR/config.json and DIR/generation_config.json (optional). Throws Error(kNotFound) if
// config.json is missing, Error(kInvalidModel) for malformed or unsupported values (including
// model types other than "musicgen" and "musicgen_melody").
// Whether a checkpoint tensor is one of the matrices a decoder step reads in full: per layer the
// self-attention q/k/v/out, the cross-attention q/out (its k/v act on the text once per
// generation), fc1, fc2; and the LM heads (`musicgen info`, `checkpoint_stats`).
bool is_decoder_step_weight(const std::string& tensor_name);

MusicgenConfig load_musicgen_config(const std::string& dir);
// The same from the texts of config.json and generation_config.json (empty: absent), as a
// musicgen quantized file embeds them; `where` names the source in messages.
MusicgenConfig parse_musicgen_config(const std::string& config_json,
                                     const std::string& generation_config_json,
                                     const std::string& where);

}  // namespace musicgen
