// Accuracy of the reduced-precision weight types on the fixture checkpoints, against the float32
// model: the tolerances docs/QUANTIZATION.md states, enforced. Also: the storage types load as
// documented (which tensors are converted), and the thread count does not change results.
#include <cstdio>

#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "models/musicgen_decoder.h"
#include "models/t5_encoder.h"
#include "models/weight_policy.h"
#include "quant_quality.h"
#include "test_util.h"
#include "tokenizer/t5_tokenizer.h"

namespace musicgen {
namespace {

struct Tolerance {
  WeightStorage type;
  double logits_rel_err_mean;  // at most
  double logits_rel_err_max;   // at most
  double topk_overlap;         // at least
  double argmax_agree;         // at least (teacher-forced)
  double t5_rel_err;           // at most
};

// docs/QUANTIZATION.md, "Tolerances enforced by the tests".
constexpr Tolerance kTolerances[] = {
    {WeightStorage::kBF16, 0.01, 0.03, 0.97, 0.97, 0.01},
    {WeightStorage::kQ8, 0.03, 0.06, 0.95, 0.93, 0.01},
    {WeightStorage::kQ4, 0.20, 0.35, 0.90, 0.70, 0.01},
};

constexpr int kSteps = 200;

struct Fixture {
  MusicgenConfig cfg;
  TensorStore store;
  std::unique_ptr<T5Tokenizer> tok;
};

Fixture open(const std::string& name) {
  const std::string dir = testing::fixture_dir(name);
  Fixture f{load_musicgen_config(dir), TensorStore::open_checkpoint(dir), nullptr};
  f.tok = std::make_unique<T5Tokenizer>(dir + "/spiece.model");
  return f;
}

// Projected text of the prompts through `t5` and `dec`.
Tensor project(const Fixture& f, const T5Encoder& t5, const MusicgenDecoder& dec,
               const TokenBatch& tokens, ThreadPool* pool) {
  const Tensor text = t5.forward(tokens.ids, tokens.mask, tokens.batch, tokens.length, pool);
  (void)f;
  return dec.project_text(text, tokens.mask, pool);
}

// The float32 model of a fixture and its projected text for two prompts: what every reduced type
// is measured against.
struct Reference {
  explicit Reference(const std::string& name)
      : f(open(name)),
        tokens(f.tok->encode_batch({"80s pop track with bassy drums and synth", "calm piano"})),
        t5(f.cfg.text_encoder, f.store),
        dec(f.cfg.decoder, f.cfg.text_encoder.d_model, f.store),
        text(project(f, t5, dec, tokens, &pool)) {}
  Fixture f;
  ThreadPool pool{2};
  TokenBatch tokens;
  T5Encoder t5;
  MusicgenDecoder dec;
  Tensor text;
};

class QuantQuality : public ::testing::TestWithParam<std::string> {};

TEST_P(QuantQuality, WithinTheDocumentedTolerances) {
  Reference r(GetParam());
  const Fixture& f = r.f;
  ThreadPool& pool = r.pool;
  const TokenBatch& tokens = r.tokens;
  const T5Encoder& t5_ref = r.t5;
  const MusicgenDecoder& ref = r.dec;
  const Tensor& text_ref = r.text;
  const Tensor t5_out_ref = t5_ref.forward(tokens.ids, tokens.mask, tokens.batch, tokens.length, &pool);
  for (const Tolerance& tol : kTolerances) {
    const char* name = weight_storage_name(tol.type);
    const T5Encoder t5(f.cfg.text_encoder, f.store, "text_encoder.",
                       LinearLoadOptions{t5_storage(tol.type), &pool});
    const MusicgenDecoder dec(f.cfg.decoder, f.cfg.text_encoder.d_model, f.store, 0,
                              DecoderLoadOptions{tol.type, &pool});
    const Tensor t5_out = t5.forward(tokens.ids, tokens.mask, tokens.batch, tokens.length, &pool);
    const double t5_err = quality::relative_max_error(t5_out.data, t5_out_ref.data);
    const Tensor text = project(f, t5, dec, tokens, &pool);
    const quality::Metrics m = quality::measure(ref, dec, text_ref, text, tokens.mask, kSteps, 3.0f,
                                                50, &pool);
    std::printf("%s %s: logits rel err mean %.4f max %.4f, top-50 overlap %.3f, argmax %.3f, "
                "greedy codes %.3f (first divergence %d), T5 rel err %.4f\n",
                GetParam().c_str(), name, m.logits_rel_err_mean, m.logits_rel_err_max,
                m.topk_overlap, m.argmax_agree, m.greedy_agree, m.first_divergence, t5_err);
    EXPECT_LE(m.logits_rel_err_mean, tol.logits_rel_err_mean) << name;
    EXPECT_LE(m.logits_rel_err_max, tol.logits_rel_err_max) << name;
    EXPECT_GE(m.topk_overlap, tol.topk_overlap) << name;
    EXPECT_GE(m.argmax_agree, tol.argmax_agree) << name;
    EXPECT_LE(t5_err, tol.t5_rel_err) << name;
  }
}

// The q8 KV cache (DecoderLoadOptions::kv_q8) with float32 and q8 weights, against the float32
// model with its float32 cache: docs/QUANTIZATION.md, "The q8 KV cache".
TEST_P(QuantQuality, Q8KvCacheWithinItsTolerances) {
  Reference r(GetParam());
  const Fixture& f = r.f;
  ThreadPool& pool = r.pool;
  const TokenBatch& tokens = r.tokens;
  struct Case {
    WeightStorage weights;
    double mean, max, overlap, argmax;
  };
  // f32 weights: the cache's error alone; q8 weights: no worse than q8's own tolerances.
  for (const Case& c : {Case{WeightStorage::kF32, 0.01, 0.03, 0.97, 0.97},
                        Case{WeightStorage::kQ8, 0.03, 0.06, 0.95, 0.93}}) {
    const char* name = weight_storage_name(c.weights);
    const T5Encoder t5(f.cfg.text_encoder, f.store, "text_encoder.",
                       LinearLoadOptions{t5_storage(c.weights), &pool});
    DecoderLoadOptions o{c.weights, &pool};
    o.kv_q8 = true;
    const MusicgenDecoder dec(f.cfg.decoder, f.cfg.text_encoder.d_model, f.store, 0, o);
    EXPECT_STREQ(dec.kv_cache_type(), "q8");
    const Tensor text = project(f, t5, dec, tokens, &pool);
    const quality::Metrics m = quality::measure(r.dec, dec, r.text, text, tokens.mask, kSteps, 3.0f,
                                                50, &pool);
    std::printf("%s %s weights + q8 KV cache: logits rel err mean %.4f max %.4f, top-50 overlap "
                "%.3f, argmax %.3f, greedy codes %.3f (first divergence %d)\n",
                GetParam().c_str(), name, m.logits_rel_err_mean, m.logits_rel_err_max,
                m.topk_overlap, m.argmax_agree, m.greedy_agree, m.first_divergence);
    EXPECT_LE(m.logits_rel_err_mean, c.mean) << name;
    EXPECT_LE(m.logits_rel_err_max, c.max) << name;
    EXPECT_GE(m.topk_overlap, c.overlap) << name;
    EXPECT_GE(m.argmax_agree, c.argmax) << name;
    // Not the exact path: the cache does move the logits.
    EXPECT_GT(m.logits_rel_err_mean, 0.0) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, QuantQuality, ::testing::Values("tiny-a", "tiny-b"));

TEST(QuantLoad, StorageTypesFollowThePolicy) {
  const Fixture f = open("tiny-a");
  EXPECT_EQ(tensor_storage("decoder.model.decoder.layers.3.fc1.weight", WeightStorage::kQ4),
            WeightStorage::kQ4);
  EXPECT_EQ(tensor_storage("decoder.model.decoder.layers.0.encoder_attn.k_proj.weight",
                           WeightStorage::kQ8),
            WeightStorage::kQ8);
  EXPECT_EQ(tensor_storage("decoder.lm_heads.2.weight", WeightStorage::kQ8), lm_head_storage(WeightStorage::kQ8));
  EXPECT_EQ(tensor_storage("text_encoder.encoder.block.5.layer.1.DenseReluDense.wo.weight",
                           WeightStorage::kQ4),
            t5_storage(WeightStorage::kQ4));
  for (const char* kept : {"decoder.model.decoder.embed_tokens.0.weight", "enc_to_dec_proj.weight",
                           "decoder.model.decoder.layers.0.fc1.bias",
                           "decoder.model.decoder.layers.0.self_attn_layer_norm.weight",
                           "text_encoder.shared.weight",
                           "audio_encoder.decoder.layers.0.conv.weight_v"})
    EXPECT_EQ(tensor_storage(kept, WeightStorage::kQ4), WeightStorage::kF32) << kept;
}

TEST(QuantLoad, ResultsIndependentOfThreadCount) {
  const Fixture f = open("tiny-b");
  ThreadPool p1(1), p3(3);
  for (WeightStorage type : {WeightStorage::kBF16, WeightStorage::kQ8, WeightStorage::kQ4}) {
    const MusicgenDecoder d1(f.cfg.decoder, f.cfg.text_encoder.d_model, f.store, 0,
                             DecoderLoadOptions{type, &p1});
    const MusicgenDecoder d3(f.cfg.decoder, f.cfg.text_encoder.d_model, f.store, 0,
                             DecoderLoadOptions{type, &p3});
    const int B = 2, K = f.cfg.decoder.num_codebooks, n = 5;
    DecoderState s1 = d1.new_state(B, 16), s3 = d3.new_state(B, 16);
    std::vector<int32_t> tokens(B * K * n);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37) % f.cfg.decoder.vocab_size);
    std::vector<float> l1, l3;
    d1.forward(s1, tokens.data(), n, true, &l1, &p1);
    d3.forward(s3, tokens.data(), n, true, &l3, &p3);
    EXPECT_EQ(l1, l3) << weight_storage_name(type);
    d1.forward(s1, tokens.data(), 1, false, &l1, &p1);  // a cached step over the 16-bit cache
    d3.forward(s3, tokens.data(), 1, false, &l3, &p3);
    EXPECT_EQ(l1, l3) << weight_storage_name(type);
  }
  // The q8 KV cache too.
  DecoderLoadOptions o1{WeightStorage::kQ8, &p1}, o3{WeightStorage::kQ8, &p3};
  o1.kv_q8 = o3.kv_q8 = true;
  const MusicgenDecoder d1(f.cfg.decoder, f.cfg.text_encoder.d_model, f.store, 0, o1);
  const MusicgenDecoder d3(f.cfg.decoder, f.cfg.text_encoder.d_model, f.store, 0, o3);
  const int B = 2, K = f.cfg.decoder.num_codebooks, n = 5;
  DecoderState s1 = d1.new_state(B, 16), s3 = d3.new_state(B, 16);
  ASSERT_TRUE(s1.kv_q8);
  std::vector<int32_t> tokens(B * K * n);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 41) % f.cfg.decoder.vocab_size);
  std::vector<float> l1, l3;
  for (int step = 0; step < 3; ++step) {
    d1.forward(s1, tokens.data(), step == 0 ? n : 1, step == 0, &l1, &p1);
    d3.forward(s3, tokens.data(), step == 0 ? n : 1, step == 0, &l3, &p3);
    EXPECT_EQ(l1, l3) << "q8 KV cache, step " << step;
  }
}

}  // namespace
}  // namespace musicgen
