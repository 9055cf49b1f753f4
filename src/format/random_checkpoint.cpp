// Value distributions (the tiny reference fixtures use the same ones, tools/reference/README.md):
//
//   Linear weights [out, in] (T5, decoder, projections, LM heads)   N(0, 1/in)
//     --heavy-tails: max(1, in/100) input columns (1%) scaled x20
//   biases (projections, codec convs)                                0.1 N(0,1)
//   LayerNorm weight / bias, T5 RMSNorm weight                       1 + 0.1 N(0,1) / 0.1 N(0,1)
//   T5 token embedding, relative attention bias                      N(0,1)
//   decoder token embeddings (K tables are summed)                   0.5 N(0,1)
//   decoder embed_positions.weights                                  HF's sinusoid table
//   EnCodec weight_v                                                 N(0, 1/fan_in)
//   EnCodec weight_g                                                 ||v|| per dim-0 slice (W = v);
//                                                                    last conv x0.25 (output level)
//   EnCodec LSTM weights and biases                                  U(-1/sqrt(h), 1/sqrt(h))
//   codebooks (embed, and embed_avg = embed)                         N(0,1); cluster_size, inited =
//   1
#include "format/random_checkpoint.h"

#include "format/torch_writer.h"

#include <sentencepiece_trainer.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/thread_pool.h"

namespace musicgen {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ----------------------------------------------------------------------------------------------
// Shapes
// ----------------------------------------------------------------------------------------------

namespace {

RandomShape official(const char* name, const char* description, int hidden, int layers, int heads,
                     int codebooks, int channels, bool melody) {
  RandomShape s;
  s.name = name;
  s.description = description;
  s.hidden = hidden;
  s.layers = layers;
  s.heads = heads;
  s.codebooks = codebooks;
  s.audio_channels = channels;
  s.melody = melody;
  return s;
}

RandomShape test_tiny(const char* name, int codebooks, int channels, bool melody) {
  RandomShape s;
  s.name = name;
  s.description = "reduced shape for tests (official vocabulary, tiny widths)";
  s.codebooks = codebooks;
  s.audio_channels = channels;
  s.melody = melody;
  s.test_only = true;
  s.hidden = 64;
  s.layers = 2;
  s.heads = 4;
  s.t5_d_model = 32;
  s.t5_d_kv = 8;
  s.t5_heads = 4;
  s.t5_d_ff = 64;
  s.t5_layers = 2;
  s.t5_vocab = 512;
  s.codec_filters = 4;
  s.codec_hidden = 16;
  return s;
}

}  // namespace

const std::vector<RandomShape>& random_shapes() {
  static const std::vector<RandomShape> kShapes = {
      official("small", "facebook/musicgen-small: 591M params, 2.4 GB in f32", 1024, 24, 16, 4, 1,
               false),
      official("medium", "facebook/musicgen-medium: 2.0B params, 8.0 GB", 1536, 48, 24, 4, 1,
               false),
      official("large", "facebook/musicgen-large: 3.4B params, 13.7 GB", 2048, 48, 32, 4, 1, false),
      official("stereo-small", "facebook/musicgen-stereo-small: 608M params, 2.4 GB", 1024, 24, 16,
               8, 2, false),
      official("stereo-medium", "facebook/musicgen-stereo-medium: 2.0B params, 8.1 GB", 1536, 48,
               24, 8, 2, false),
      official("stereo-large", "facebook/musicgen-stereo-large: 3.5B params, 13.9 GB", 2048, 48, 32,
               8, 2, false),
      official("melody", "facebook/musicgen-melody: 1.6B params, 6.2 GB", 1536, 48, 24, 4, 1, true),
      official("melody-large", "facebook/musicgen-melody-large: 2.6B params, 10.5 GB", 2048, 48, 32,
               4, 1, true),
      official("stereo-melody", "facebook/musicgen-stereo-melody: 1.6B params, 6.3 GB", 1536, 48,
               24, 8, 2, true),
      official("stereo-melody-large", "facebook/musicgen-stereo-melody-large: 2.7B params, 10.6 GB",
               2048, 48, 32, 8, 2, true),
      test_tiny("test-tiny", 4, 1, false),
      test_tiny("test-tiny-stereo", 8, 2, false),
      test_tiny("test-tiny-melody", 4, 1, true),
  };
  return kShapes;
}

const RandomShape* find_random_shape(const std::string& name) {
  for (const RandomShape& s : random_shapes())
    if (s.name == name) return &s;
  return nullptr;
}

// ----------------------------------------------------------------------------------------------
// Tensor plan
// ----------------------------------------------------------------------------------------------

namespace {

class Planner {
 public:
  explicit Planner(DType dtype) : dtype_(dtype) {}

  PlannedTensor& add(const std::string& name, Shape shape, InitKind init, double scale = 1.0) {
    PlannedTensor t;
    t.decl = TensorDecl{name, dtype_, std::move(shape)};
    t.init = init;
    t.scale = scale;
    t.source = name;
    if (init == InitKind::kLinear) t.fan_in = t.decl.shape.at(1);
    out_.push_back(std::move(t));
    return out_.back();
  }
  void linear(const std::string& name, int64_t out, int64_t in) {
    add(name, {out, in}, InitKind::kLinear);
  }
  void layer_norm(const std::string& prefix) {
    add(prefix + ".weight", {hidden_}, InitKind::kOnePlus, 0.1);
    add(prefix + ".bias", {hidden_}, InitKind::kNormal, 0.1);
  }
  // A weight-normed conv: v [d0, d1, k], g [d0, 1, 1], bias [bias_dim].
  void conv(const std::string& prefix, int64_t d0, int64_t d1, int64_t k, int64_t fan_in,
            int64_t bias_dim, double gain = 1.0) {
    PlannedTensor& v = add(prefix + ".conv.weight_v", {d0, d1, k}, InitKind::kConvV);
    v.fan_in = fan_in;
    const Shape v_shape = v.decl.shape;
    PlannedTensor& g = add(prefix + ".conv.weight_g", {d0, 1, 1}, InitKind::kConvG, gain);
    g.source = prefix + ".conv.weight_v";
    g.source_shape = v_shape;
    g.source_fan_in = fan_in;
    add(prefix + ".conv.bias", {bias_dim}, InitKind::kNormal, 0.1);
  }
  void set_hidden(int64_t h) { hidden_ = h; }
  std::vector<PlannedTensor> take() { return std::move(out_); }

 private:
  DType dtype_;
  int64_t hidden_ = 0;
  std::vector<PlannedTensor> out_;
};

void plan_decoder(const RandomShape& s, Planner& p) {
  const int64_t H = s.hidden, V = s.vocab;
  const std::string d = "decoder.model.decoder.";
  p.set_hidden(H);
  for (int k = 0; k < s.codebooks; ++k)
    p.add(d + "embed_tokens." + std::to_string(k) + ".weight", {V + 1, H}, InitKind::kNormal, 0.5);
  p.add(d + "embed_positions.weights", {2048, H}, InitKind::kSinusoid);
  for (int i = 0; i < s.layers; ++i) {
    const std::string l = d + "layers." + std::to_string(i) + ".";
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"})
      p.linear(l + "self_attn." + proj + ".weight", H, H);
    p.layer_norm(l + "self_attn_layer_norm");
    if (!s.melody) {
      for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"})
        p.linear(l + "encoder_attn." + proj + ".weight", H, H);
      p.layer_norm(l + "encoder_attn_layer_norm");
    }
    p.linear(l + "fc1.weight", 4 * H, H);
    p.linear(l + "fc2.weight", H, 4 * H);
    p.layer_norm(l + "final_layer_norm");
  }
  p.layer_norm(d + "layer_norm");
  for (int k = 0; k < s.codebooks; ++k)
    p.linear("decoder.lm_heads." + std::to_string(k) + ".weight", V, H);
  p.linear("enc_to_dec_proj.weight", H, s.t5_d_model);
  p.add("enc_to_dec_proj.bias", {H}, InitKind::kNormal, 0.1);
  if (s.melody) {
    p.linear("audio_enc_to_dec_proj.weight", H, 12);
    p.add("audio_enc_to_dec_proj.bias", {H}, InitKind::kNormal, 0.1);
  }
}

void plan_t5(const RandomShape& s, Planner& p) {
  const int64_t D = s.t5_d_model, inner = static_cast<int64_t>(s.t5_heads) * s.t5_d_kv;
  const std::string e = "text_encoder.encoder.";
  // save_pretrained stores the tied embedding once, as shared.weight (tests/fixtures/tiny-a).
  p.add("text_encoder.shared.weight", {s.t5_vocab, D}, InitKind::kNormal, 1.0);
  for (int i = 0; i < s.t5_layers; ++i) {
    const std::string b = e + "block." + std::to_string(i) + ".layer.";
    p.linear(b + "0.SelfAttention.q.weight", inner, D);
    p.linear(b + "0.SelfAttention.k.weight", inner, D);
    p.linear(b + "0.SelfAttention.v.weight", inner, D);
    p.linear(b + "0.SelfAttention.o.weight", D, inner);
    if (i == 0)
      p.add(b + "0.SelfAttention.relative_attention_bias.weight", {32, s.t5_heads},
            InitKind::kNormal, 1.0);
    p.add(b + "0.layer_norm.weight", {D}, InitKind::kOnePlus, 0.1);
    p.linear(b + "1.DenseReluDense.wi.weight", s.t5_d_ff, D);
    p.linear(b + "1.DenseReluDense.wo.weight", D, s.t5_d_ff);
    p.add(b + "1.layer_norm.weight", {D}, InitKind::kOnePlus, 0.1);
  }
  p.add(e + "final_layer_norm.weight", {D}, InitKind::kOnePlus, 0.1);
}

// With W = v everywhere, the random codec's output has an RMS of about 1.3 (musicgen-small shape,
// measured); this scales the last convolution's weight_g (the output is linear in it) to bring it
// near 0.3, like the fixtures' calibration, so a PCM16 file does not clip.
constexpr double kCodecOutputGain = 0.25;

void plan_encodec(const RandomShape& s, Planner& p) {
  const int64_t F = s.codec_filters, Hc = s.codec_hidden;
  const std::vector<int64_t> ratios = {8, 5, 4, 4};  // decoder order
  auto resblock = [&](const std::string& prefix, int64_t dim) {
    const int64_t hid = dim / 2;  // compress 2
    p.conv(prefix + ".block.1", hid, dim, 3, dim * 3, hid);
    p.conv(prefix + ".block.3", dim, hid, 1, hid, dim);
  };
  auto lstm = [&](const std::string& prefix, int64_t dim) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(dim));
    for (int l = 0; l < 2; ++l) {
      const std::string sfx = "_l" + std::to_string(l);
      p.add(prefix + ".lstm.weight_ih" + sfx, {4 * dim, dim}, InitKind::kUniform, bound);
      p.add(prefix + ".lstm.weight_hh" + sfx, {4 * dim, dim}, InitKind::kUniform, bound);
      p.add(prefix + ".lstm.bias_ih" + sfx, {4 * dim}, InitKind::kUniform, bound);
      p.add(prefix + ".lstm.bias_hh" + sfx, {4 * dim}, InitKind::kUniform, bound);
    }
  };
  // Encoder: conv, then per ratio (reversed) resblock, ELU, strided conv; LSTM, ELU, conv.
  {
    const std::string e = "audio_encoder.encoder.layers.";
    int n = 0;
    p.conv(e + std::to_string(n++), F, 1, 7, 7, F);
    int64_t dim = F;
    for (auto it = ratios.rbegin(); it != ratios.rend(); ++it) {
      resblock(e + std::to_string(n++), dim);
      ++n;  // ELU
      p.conv(e + std::to_string(n++), 2 * dim, dim, 2 * *it, dim * 2 * *it, 2 * dim);
      dim *= 2;
    }
    lstm(e + std::to_string(n++), dim);
    ++n;  // ELU
    p.conv(e + std::to_string(n++), Hc, dim, 7, dim * 7, Hc);
  }
  // Decoder: conv, LSTM, per ratio ELU, transposed conv, resblock; ELU, conv.
  {
    const std::string d = "audio_encoder.decoder.layers.";
    int n = 0;
    int64_t dim = F * 16;
    p.conv(d + std::to_string(n++), dim, Hc, 7, Hc * 7, dim);
    lstm(d + std::to_string(n++), dim);
    for (int64_t r : ratios) {
      ++n;  // ELU
      // ConvTranspose1d: v [in, out, k], g [in, 1, 1], bias [out]; each output sample sees
      // in * k / stride weights.
      p.conv(d + std::to_string(n++), dim, dim / 2, 2 * r, dim * (2 * r) / r, dim / 2);
      dim /= 2;
      resblock(d + std::to_string(n++), dim);
    }
    ++n;  // ELU
    p.conv(d + std::to_string(n++), 1, dim, 7, dim * 7, 1, kCodecOutputGain);
  }
  for (int q = 0; q < s.codec_quantizers; ++q) {
    const std::string c = "audio_encoder.quantizer.layers." + std::to_string(q) + ".codebook.";
    const int64_t cs = s.codec_codebook_size;
    p.add(c + "embed", {cs, Hc}, InitKind::kNormal, 1.0);
    p.add(c + "embed_avg", {cs, Hc}, InitKind::kNormal, 1.0).source = c + "embed";
    p.add(c + "cluster_size", {cs}, InitKind::kConst, 1.0);
    p.add(c + "inited", {1}, InitKind::kConst, 1.0);
  }
}

}  // namespace

std::vector<PlannedTensor> plan_random_checkpoint(const RandomShape& shape, DType dtype) {
  Planner p(dtype);
  plan_t5(shape, p);
  plan_decoder(shape, p);
  plan_encodec(shape, p);
  std::vector<PlannedTensor> out = p.take();
  std::sort(out.begin(), out.end(), [](const PlannedTensor& a, const PlannedTensor& b) {
    return a.decl.name < b.decl.name;
  });
  return out;
}

uint64_t random_checkpoint_bytes(const RandomShape& shape, DType dtype) {
  std::vector<TensorDecl> decls;
  for (const PlannedTensor& t : plan_random_checkpoint(shape, dtype)) decls.push_back(t.decl);
  uint64_t n = SafetensorsWriter::header_bytes(decls, {{"format", "pt"}}).size();
  for (const TensorDecl& d : decls) n += d.nbytes();
  return n;
}

// ----------------------------------------------------------------------------------------------
// Config files
// ----------------------------------------------------------------------------------------------

namespace {

const char* torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF16:
      return "float16";
    case DType::kBF16:
      return "bfloat16";
    default:
      return "float32";
  }
}

// The PretrainedConfig fields that transformers 4.40.2 writes into every sub-config.
json base_config() {
  return json{{"_name_or_path", ""},
              {"add_cross_attention", false},
              {"architectures", nullptr},
              {"bad_words_ids", nullptr},
              {"begin_suppress_tokens", nullptr},
              {"bos_token_id", nullptr},
              {"chunk_size_feed_forward", 0},
              {"cross_attention_hidden_size", nullptr},
              {"decoder_start_token_id", nullptr},
              {"diversity_penalty", 0.0},
              {"do_sample", false},
              {"early_stopping", false},
              {"encoder_no_repeat_ngram_size", 0},
              {"eos_token_id", nullptr},
              {"exponential_decay_length_penalty", nullptr},
              {"finetuning_task", nullptr},
              {"forced_bos_token_id", nullptr},
              {"forced_eos_token_id", nullptr},
              {"id2label", {{"0", "LABEL_0"}, {"1", "LABEL_1"}}},
              {"is_decoder", false},
              {"is_encoder_decoder", false},
              {"label2id", {{"LABEL_0", 0}, {"LABEL_1", 1}}},
              {"length_penalty", 1.0},
              {"max_length", 20},
              {"min_length", 0},
              {"no_repeat_ngram_size", 0},
              {"num_beam_groups", 1},
              {"num_beams", 1},
              {"num_return_sequences", 1},
              {"output_attentions", false},
              {"output_hidden_states", false},
              {"output_scores", false},
              {"pad_token_id", nullptr},
              {"prefix", nullptr},
              {"problem_type", nullptr},
              {"pruned_heads", json::object()},
              {"remove_invalid_values", false},
              {"repetition_penalty", 1.0},
              {"return_dict", true},
              {"return_dict_in_generate", false},
              {"sep_token_id", nullptr},
              {"suppress_tokens", nullptr},
              {"task_specific_params", nullptr},
              {"temperature", 1.0},
              {"tf_legacy_loss", false},
              {"tie_encoder_decoder", false},
              {"tie_word_embeddings", true},
              {"tokenizer_class", nullptr},
              {"top_k", 50},
              {"top_p", 1.0},
              {"torch_dtype", nullptr},
              {"torchscript", false},
              {"typical_p", 1.0},
              {"use_bfloat16", false}};
}

json t5_config(const RandomShape& s) {
  json j = base_config();
  j.update(json{{"classifier_dropout", 0.0},
                {"d_ff", s.t5_d_ff},
                {"d_kv", s.t5_d_kv},
                {"d_model", s.t5_d_model},
                {"dense_act_fn", "relu"},
                {"dropout_rate", 0.1},
                {"eos_token_id", 1},
                {"feed_forward_proj", "relu"},
                {"initializer_factor", 1.0},
                {"is_encoder_decoder", true},
                {"is_gated_act", false},
                {"layer_norm_epsilon", 1e-6},
                {"model_type", "t5"},
                {"n_positions", 512},
                {"num_decoder_layers", s.t5_layers},
                {"num_heads", s.t5_heads},
                {"num_layers", s.t5_layers},
                {"pad_token_id", 0},
                {"relative_attention_max_distance", 128},
                {"relative_attention_num_buckets", 32},
                {"use_cache", true},
                {"vocab_size", s.t5_vocab}});
  return j;
}

json encodec_config(const RandomShape& s) {
  json j = base_config();
  j.update(json{{"audio_channels", 1},
                {"chunk_length_s", nullptr},
                {"codebook_dim", s.codec_hidden},
                {"codebook_size", s.codec_codebook_size},
                {"compress", 2},
                {"dilation_growth_rate", 2},
                {"hidden_size", s.codec_hidden},
                {"kernel_size", 7},
                {"last_kernel_size", 7},
                {"model_type", "encodec"},
                {"norm_type", "weight_norm"},
                {"normalize", false},
                {"num_filters", s.codec_filters},
                {"num_lstm_layers", 2},
                {"num_residual_layers", 1},
                {"overlap", nullptr},
                {"pad_mode", "reflect"},
                {"residual_kernel_size", 3},
                {"sampling_rate", 32000},
                {"target_bandwidths", {2.2}},
                {"trim_right_ratio", 1.0},
                {"upsampling_ratios", {8, 5, 4, 4}},
                {"use_causal_conv", false},
                {"use_conv_shortcut", false}});
  return j;
}

json decoder_config(const RandomShape& s) {
  json j = base_config();
  j.update(json{{"activation_dropout", 0.0},
                {"activation_function", "gelu"},
                {"attention_dropout", 0.0},
                {"audio_channels", s.audio_channels},
                {"bos_token_id", s.vocab},
                {"dropout", 0.1},
                {"ffn_dim", 4 * s.hidden},
                {"hidden_size", s.hidden},
                {"initializer_factor", 0.02},
                {"layerdrop", 0.0},
                {"max_position_embeddings", 2048},
                {"model_type", s.melody ? "musicgen_melody_decoder" : "musicgen_decoder"},
                {"num_attention_heads", s.heads},
                {"num_codebooks", s.codebooks},
                {"num_hidden_layers", s.layers},
                {"pad_token_id", s.vocab},
                {"scale_embedding", false},
                {"tie_word_embeddings", false},
                {"use_cache", true},
                {"vocab_size", s.vocab}});
  return j;
}

}  // namespace

std::string random_config_json(const RandomShape& s, DType dtype) {
  json j;
  j["architectures"] = {s.melody ? "MusicgenMelodyForConditionalGeneration"
                                 : "MusicgenForConditionalGeneration"};
  j["audio_encoder"] = encodec_config(s);
  j["decoder"] = decoder_config(s);
  j["text_encoder"] = t5_config(s);
  j["model_type"] = s.melody ? "musicgen_melody" : "musicgen";
  j["is_encoder_decoder"] = !s.melody;
  if (s.melody) {
    j["num_chroma"] = 12;
    j["chroma_length"] = 235;
  }
  j["torch_dtype"] = torch_dtype_name(dtype);
  j["transformers_version"] = "4.40.2";
  return j.dump(2) + "\n";
}

std::string random_generation_config_json(const RandomShape& s) {
  const json j = {{"bos_token_id", s.vocab},
                  {"decoder_start_token_id", s.vocab},
                  {"do_sample", true},
                  {"guidance_scale", 3.0},
                  {"max_length", 1500},
                  {"pad_token_id", s.vocab},
                  {"transformers_version", "4.40.2"}};
  return j.dump(2) + "\n";
}

// ----------------------------------------------------------------------------------------------
// Tokenizer
// ----------------------------------------------------------------------------------------------

namespace {

// Music descriptions built from word lists: every genre with a rotating choice of mood,
// instruments and tempo, so the vocabulary covers typical prompts.
std::vector<std::string> tokenizer_corpus() {
  static const char* kGenres[] = {
      "pop",       "rock",      "jazz",     "blues",         "funk",       "disco",
      "techno",    "house",     "ambient",  "classical",     "orchestral", "folk",
      "country",   "reggae",    "hip hop",  "lofi",          "metal",      "punk",
      "soul",      "trance",    "dubstep",  "drum and bass", "bossa nova", "latin",
      "cinematic", "synthwave", "chiptune", "gospel",        "indie",      "electronic"};
  static const char* kMoods[] = {"upbeat",   "calm",        "dark",   "happy",
                                 "sad",      "epic",        "dreamy", "energetic",
                                 "relaxing", "melancholic", "groovy", "mysterious"};
  static const char* kParts[] = {"with bassy drums and synth",
                                 "with a walking bass and soft piano",
                                 "with loud guitars and heavy drums",
                                 "with strings brass and timpani",
                                 "with vinyl crackle and mellow keys",
                                 "with a catchy synth lead",
                                 "with fingerpicked acoustic guitar",
                                 "with slap bass and bright horns",
                                 "with a driving kick and hypnotic arpeggio",
                                 "with warm pads and gentle bells",
                                 "with a saxophone solo",
                                 "with choir vocals and organ",
                                 "with claps and whistling",
                                 "with a deep sub bass and crisp hi hats"};
  static const char* kTempos[] = {"at 90 bpm",  "at 120 bpm", "at 128 bpm",       "at 140 bpm",
                                  "slow tempo", "fast tempo", "in the 80s style", "for a film"};
  std::vector<std::string> out;
  const int ng = sizeof(kGenres) / sizeof(*kGenres), nm = sizeof(kMoods) / sizeof(*kMoods);
  const int np = sizeof(kParts) / sizeof(*kParts), nt = sizeof(kTempos) / sizeof(*kTempos);
  for (int i = 0; i < ng * 6; ++i)
    out.push_back(std::string(kMoods[(i * 7) % nm]) + " " + kGenres[i % ng] + " track " +
                  kParts[(i * 5) % np] + " " + kTempos[(i * 3) % nt]);
  return out;
}

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& v_;
  size_t i_ = 0;
};

}  // namespace

std::string train_tiny_spiece_model() {
  const std::vector<std::string> corpus = tokenizer_corpus();
  VectorIterator it(corpus);
  std::string model;
  sentencepiece::SetRandomGeneratorSeed(1);
  const std::unordered_map<std::string, std::string> args = {{"model_type", "unigram"},
                                                             {"vocab_size", "256"},
                                                             {"hard_vocab_limit", "false"},
                                                             {"pad_id", "0"},
                                                             {"eos_id", "1"},
                                                             {"unk_id", "2"},
                                                             {"bos_id", "-1"},
                                                             {"pad_piece", "<pad>"},
                                                             {"eos_piece", "</s>"},
                                                             {"unk_piece", "<unk>"},
                                                             {"character_coverage", "1.0"},
                                                             {"num_threads", "1"},
                                                             {"minloglevel", "2"}};
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!status.ok() || model.empty())
    fail(ErrorCode::kIo, "training the tokenizer failed: " + status.ToString());
  return model;
}

// ----------------------------------------------------------------------------------------------
// Values
// ----------------------------------------------------------------------------------------------

namespace {

inline uint64_t mix64(uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint64_t stream_key(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  return mix64(h ^ mix64(seed + 0x9e3779b97f4a7c15ULL));
}

// Uniform in (0, 1] from element counter i of a stream.
inline float uniform01(uint64_t key, uint64_t i) {
  const uint64_t x = mix64(key + (i + 1) * 0x9e3779b97f4a7c15ULL);
  return (static_cast<float>(x >> 40) + 1.0f) * (1.0f / 16777216.0f);
}

// Standard normals for elements [begin, end) of a stream (Box-Muller over element pairs, so the
// value of element i does not depend on where a chunk starts).
void normals(uint64_t key, int64_t begin, int64_t end, float* out) {
  constexpr float kTwoPi = 6.28318530717958647692f;
  auto pair_values = [key](int64_t pair, float* z0, float* z1) {
    const float u1 = uniform01(key, 2 * pair), u2 = uniform01(key, 2 * pair + 1);
    const float r = std::sqrt(-2.0f * std::log(u1));
    *z0 = r * std::cos(kTwoPi * u2);
    *z1 = r * std::sin(kTwoPi * u2);
  };
  int64_t i = begin;
  float z0, z1;
  if (i < end && (i & 1)) {
    pair_values(i >> 1, &z0, &z1);
    out[i++ - begin] = z1;
  }
  for (; i + 1 < end; i += 2) pair_values(i >> 1, &out[i - begin], &out[i + 1 - begin]);
  if (i < end) {
    pair_values(i >> 1, &z0, &z1);
    out[i - begin] = z0;
  }
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN
  x += 0x7fff + ((x >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(x >> 16);
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t ax = x & 0x7fffffff;
  if (ax >= 0x7f800000) return static_cast<uint16_t>(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
  if (ax >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // overflows to inf
  if (ax < 0x38800000) {  // subnormal half (or zero): round ax * 2^24 to an integer
    float a;
    std::memcpy(&a, &ax, 4);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
  }
  uint32_t m = ax + 0xfff + ((ax >> 13) & 1);  // round to nearest even at bit 13
  m -= 0x38000000;                             // rebias exponent 127 -> 15
  return static_cast<uint16_t>(sign | (m >> 13));
}

// Rounds a value to what the stored dtype keeps (so weight_g matches the stored weight_v).
float round_to(DType dtype, float v) {
  if (dtype == DType::kBF16) return bf16_to_f32(f32_to_bf16(v));
  if (dtype == DType::kF16) return f16_to_f32(f32_to_f16(v));
  return v;
}

class ValueGenerator {
 public:
  ValueGenerator(uint64_t seed, bool heavy_tails) : seed_(seed), heavy_tails_(heavy_tails) {}

  // Prepares per-tensor state (outlier columns, weight-norm norms).
  void begin(const PlannedTensor& t, DType dtype, ThreadPool* pool) {
    t_ = &t;
    key_ = stream_key(seed_, t.source);
    outlier_.clear();
    g_.clear();
    if (t.init == InitKind::kLinear && heavy_tails_) {
      const int64_t in = t.decl.shape.at(1);
      outlier_.assign(in, 0);
      const int64_t n = std::max<int64_t>(1, in / 100);
      const uint64_t k = stream_key(seed_ ^ 0x5eedULL, t.source);
      for (int64_t j = 0; j < n; ++j) outlier_[mix64(k + j) % in] = 1;
    }
    if (t.init == InitKind::kSinusoid) {
      const int64_t half = t.decl.shape.at(1) / 2;
      inv_freq_.resize(half);
      const float step = static_cast<float>(std::log(10000.0) / static_cast<double>(half - 1));
      for (int64_t j = 0; j < half; ++j) inv_freq_[j] = std::exp(static_cast<float>(j) * -step);
    }
    if (t.init == InitKind::kConvG) {
      // g = ||v|| over all dims but 0, from v as stored.
      const int64_t d0 = t.source_shape.at(0), rest = shape_numel(t.source_shape) / d0;
      const uint64_t vkey = stream_key(seed_, t.source);
      const double std_v = 1.0 / std::sqrt(static_cast<double>(t.source_fan_in));
      g_.assign(d0, 0.0f);
      pool->parallel_for(d0, [&](int64_t a, int64_t b) {
        std::vector<float> row(rest);
        for (int64_t o = a; o < b; ++o) {
          normals(vkey, o * rest, (o + 1) * rest, row.data());
          double ss = 0;
          for (float z : row) {
            const double v = round_to(dtype, static_cast<float>(z * std_v));
            ss += v * v;
          }
          g_[o] = static_cast<float>(std::sqrt(ss) * t.scale);
        }
      });
    }
  }

  // Elements [begin, end) of the current tensor as float32.
  void fill(int64_t begin, int64_t end, float* out) const {
    const PlannedTensor& t = *t_;
    switch (t.init) {
      case InitKind::kLinear: {
        normals(key_, begin, end, out);
        const float std_w = static_cast<float>(1.0 / std::sqrt(static_cast<double>(t.fan_in)));
        const int64_t in = t.decl.shape.at(1);
        for (int64_t i = begin; i < end; ++i) {
          float v = out[i - begin] * std_w;
          if (!outlier_.empty() && outlier_[i % in]) v *= 20.0f;
          out[i - begin] = v;
        }
        break;
      }
      case InitKind::kConvV: {
        normals(key_, begin, end, out);
        const float std_v = static_cast<float>(1.0 / std::sqrt(static_cast<double>(t.fan_in)));
        for (int64_t i = begin; i < end; ++i) out[i - begin] *= std_v;
        break;
      }
      case InitKind::kNormal:
        normals(key_, begin, end, out);
        for (int64_t i = begin; i < end; ++i) out[i - begin] *= static_cast<float>(t.scale);
        break;
      case InitKind::kOnePlus:
        normals(key_, begin, end, out);
        for (int64_t i = begin; i < end; ++i)
          out[i - begin] = 1.0f + out[i - begin] * static_cast<float>(t.scale);
        break;
      case InitKind::kUniform:
        for (int64_t i = begin; i < end; ++i)
          out[i - begin] =
              static_cast<float>(t.scale * (2.0 * uniform01(key_, static_cast<uint64_t>(i)) - 1.0));
        break;
      case InitKind::kConst:
        std::fill(out, out + (end - begin), static_cast<float>(t.scale));
        break;
      case InitKind::kSinusoid: {
        // [cos(p * f_0..f_{half-1}), sin(p * f_0..f_{half-1})] per position p (HF get_embedding).
        const int64_t width = t.decl.shape.at(1), half = width / 2;
        for (int64_t i = begin; i < end; ++i) {
          const int64_t p = i / width, j = i % width;
          const float angle = static_cast<float>(p) * inv_freq_[j % half];
          out[i - begin] = j < half ? std::cos(angle) : std::sin(angle);
        }
        break;
      }
      case InitKind::kConvG:
        for (int64_t i = begin; i < end; ++i) out[i - begin] = g_[i];
        break;
    }
  }

 private:
  uint64_t seed_;
  bool heavy_tails_;
  const PlannedTensor* t_ = nullptr;
  uint64_t key_ = 0;
  std::vector<uint8_t> outlier_;
  std::vector<float> inv_freq_;
  std::vector<float> g_;
};

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) fail(ErrorCode::kIo, "cannot write '" + path.string() + "' (disk full?)");
}

struct TempDirGuard {
  fs::path path;
  ~TempDirGuard() {
    if (!path.empty()) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

}  // namespace

void write_random_checkpoint(const RandomCheckpointOptions& o) {
  const RandomShape* shape = find_random_shape(o.shape);
  if (shape == nullptr) {
    std::string names;
    for (const RandomShape& s : random_shapes()) names += (names.empty() ? "" : ", ") + s.name;
    fail(ErrorCode::kInvalidArgument, "unknown shape '" + o.shape + "'; choose one of " + names);
  }
  if (o.dtype != DType::kF32 && o.dtype != DType::kF16 && o.dtype != DType::kBF16)
    fail(ErrorCode::kInvalidArgument, "dtype must be f32, f16 or bf16");
  if (o.out_dir.empty()) fail(ErrorCode::kInvalidArgument, "an output directory is required");
  const fs::path out = fs::absolute(fs::path(o.out_dir)).lexically_normal();
  const fs::path target = out.has_filename() ? out : out.parent_path();
  const fs::path parent = target.parent_path();
  if (!fs::is_directory(parent))
    fail(ErrorCode::kIo, "cannot create '" + target.string() + "': directory '" + parent.string() +
                             "' does not exist; create it first");
  if (fs::exists(target) && !o.overwrite)
    fail(ErrorCode::kIo, "'" + target.string() +
                             "' already exists; remove it, choose another --out, or pass --force");
  if (fs::exists(target) && !fs::is_directory(target))
    fail(ErrorCode::kIo,
         "'" + target.string() + "' exists and is not a directory; choose another --out");

  const std::vector<PlannedTensor> plan = plan_random_checkpoint(*shape, o.dtype);
  const uint64_t total = random_checkpoint_bytes(*shape, o.dtype);
  uint64_t data_total = 0;
  for (const PlannedTensor& t : plan) data_total += t.decl.nbytes();
  struct statvfs vfs {};
  if (::statvfs(parent.c_str(), &vfs) == 0) {
    const uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (avail < total + (64ULL << 20))
      fail(ErrorCode::kIo,
           "not enough disk space in '" + parent.string() + "': the checkpoint needs " +
               std::to_string((total + (1ULL << 20) - 1) >> 20) + " MiB, " +
               std::to_string(avail >> 20) + " MiB free; free space or use --dtype bf16");
  }

  TempDirGuard tmp{parent /
                   ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()))};
  std::error_code ec;
  fs::remove_all(tmp.path, ec);
  if (!fs::create_directory(tmp.path, ec) || ec)
    fail(ErrorCode::kIo, "cannot create '" + tmp.path.string() + "': " + ec.message());

  write_text(tmp.path / "config.json", random_config_json(*shape, o.dtype));
  write_text(tmp.path / "generation_config.json", random_generation_config_json(*shape));
  write_text(tmp.path / "spiece.model", train_tiny_spiece_model());

  // Files: one, or `shards` parts split at tensor boundaries (a part closes once it holds its
  // share of the bytes) and an index, named as transformers' save_pretrained names them.
  if (o.shards < 1 || o.shards > 99 || static_cast<size_t>(o.shards) > plan.size())
    fail(ErrorCode::kInvalidArgument, "shards must be between 1 and 99");
  std::vector<std::vector<TensorDecl>> parts(1);
  {
    uint64_t in_part = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
      const uint64_t share = data_total / o.shards;
      if (static_cast<int>(parts.size()) < o.shards && in_part >= share && !parts.back().empty()) {
        parts.emplace_back();
        in_part = 0;
      }
      parts.back().push_back(plan[i].decl);
      in_part += plan[i].decl.nbytes();
    }
  }
  const int n_parts = static_cast<int>(parts.size());
  auto file_name = [&](int p) {
    const std::string stem = o.torch_bin ? "pytorch_model" : "model";
    const std::string ext = o.torch_bin ? ".bin" : ".safetensors";
    if (n_parts == 1) return stem + ext;
    char buf[32];
    std::snprintf(buf, sizeof(buf), "-%05d-of-%05d", p + 1, n_parts);
    return stem + buf + ext;
  };
  if (n_parts > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", data_total}}},
                            {"weight_map", nlohmann::json::object()}};
    for (int p = 0; p < n_parts; ++p)
      for (const TensorDecl& d : parts[p]) index["weight_map"][d.name] = file_name(p);
    write_text(tmp.path / (o.torch_bin ? "pytorch_model.bin.index.json" : "model.safetensors.index.json"),
               index.dump(2) + "\n");
  }
  // One writer at a time, in plan order.
  struct Sink {
    std::unique_ptr<SafetensorsWriter> st;
    std::unique_ptr<TorchZipWriter> pt;
    void write(const void* d, size_t n) { st ? st->write(d, n) : pt->write(d, n); }
    void finish() { st ? st->finish() : pt->finish(); }
  };
  int part = -1;
  size_t left_in_part = 0;
  Sink writer;
  auto next_part = [&] {
    ++part;
    left_in_part = parts[part].size();
    const std::string path = (tmp.path / file_name(part)).string();
    writer = Sink{};
    if (o.torch_bin)
      writer.pt = std::make_unique<TorchZipWriter>(path, parts[part]);
    else
      writer.st = std::make_unique<SafetensorsWriter>(path, parts[part]);
  };
  ThreadPool pool(o.threads);
  ValueGenerator gen(o.seed, o.heavy_tails);
  constexpr int64_t kChunk = int64_t{1} << 22;  // elements per write
  std::vector<float> values;
  std::vector<uint16_t> half;
  uint64_t done = 0;
  for (const PlannedTensor& t : plan) {
    if (left_in_part == 0) {
      if (part >= 0) writer.finish();
      next_part();
    }
    --left_in_part;
    gen.begin(t, o.dtype, &pool);
    const std::string& tn = t.decl.name;
    const bool round_f16 = o.f16_exact_decoder && o.dtype == DType::kF32 &&
                           t.init != InitKind::kSinusoid &&
                           (tn.rfind("decoder.", 0) == 0 || tn.rfind("enc_to_dec_proj.", 0) == 0 ||
                            tn.rfind("audio_enc_to_dec_proj.", 0) == 0);
    const int64_t n = shape_numel(t.decl.shape);
    for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
      const int64_t c1 = std::min(n, c0 + kChunk), m = c1 - c0;
      values.resize(m);
      if (o.dtype != DType::kF32) half.resize(m);
      pool.parallel_for(
          m,
          [&](int64_t a, int64_t b) {
            gen.fill(c0 + a, c0 + b, values.data() + a);
            if (round_f16)
              for (int64_t i = a; i < b; ++i) values[i] = f16_to_f32(f32_to_f16(values[i]));
            if (o.dtype == DType::kBF16)
              for (int64_t i = a; i < b; ++i) half[i] = f32_to_bf16(values[i]);
            else if (o.dtype == DType::kF16)
              for (int64_t i = a; i < b; ++i) half[i] = f32_to_f16(values[i]);
          },
          4096);
      if (o.dtype == DType::kF32)
        writer.write(values.data(), m * sizeof(float));
      else
        writer.write(half.data(), m * sizeof(uint16_t));
      done += m * dtype_size(o.dtype);
      if (o.progress) o.progress(done, data_total);
    }
  }
  writer.finish();

  // Move into place: the target appears complete or not at all.
  if (fs::exists(target)) {
    const fs::path old =
        parent / ("." + target.filename().string() + ".old-" + std::to_string(::getpid()));
    fs::rename(target, old, ec);
    if (ec) fail(ErrorCode::kIo, "cannot replace '" + target.string() + "': " + ec.message());
    fs::rename(tmp.path, target, ec);
    if (ec) {
      fs::rename(old, target);
      fail(ErrorCode::kIo,
           "cannot move the checkpoint into '" + target.string() + "': " + ec.message());
    }
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp.path, target, ec);
    if (ec)
      fail(ErrorCode::kIo,
           "cannot move the checkpoint into '" + target.string() + "': " + ec.message());
  }
  tmp.path.clear();
}

}  // namespace musicgen
