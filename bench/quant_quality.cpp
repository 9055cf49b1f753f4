// The error table of docs/QUANTIZATION.md for one checkpoint: every weight type against float32
// (tests/quant_quality.h defines the measurements), guided greedy decoding of a batch of two
// prompts, with the text encoded by each type's own T5.
//
// Usage: quant_quality --model DIR [--steps 200] [--threads 2] [--types bf16,q8,q4]
//                      (a type may be f32, and TYPE+kv8 adds the q8 KV cache: f32+kv8,q8+kv8)
//                      [--t5 f32]   (f32: every type reads the float32 text encoder's output,
//                                    isolating the decoder's error)
//        quant_quality --model DIR --per-matrix [--outlier-acts]
//            the error of each matrix product alone, y = x·Wᵀ for every converted matrix of the
//            checkpoint, x = 8 rows of N(0, 1) (with --outlier-acts 1% of the input channels
//            scaled x20, as trained transformers' activations have): no error compounding.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "models/musicgen_decoder.h"
#include "models/t5_encoder.h"
#include "models/weight_policy.h"
#include "quant_quality.h"
#include "tokenizer/t5_tokenizer.h"

using namespace musicgen;

namespace {

// ‖a − b‖₂ / ‖b‖₂.
double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

std::string group_of(const std::string& name) {
  if (name.rfind("text_encoder.", 0) == 0) return "T5 matrices";
  if (name.find("lm_heads") != std::string::npos) return "LM heads";
  if (name.find(".fc1.") != std::string::npos) return "decoder fc1";
  if (name.find(".fc2.") != std::string::npos) return "decoder fc2";
  return "decoder attention";
}

int per_matrix(const std::string& model, bool outlier_acts, int threads) {
  ThreadPool pool(threads);
  const TensorStore store = TensorStore::open_checkpoint(model);
  struct Acc {
    double sum = 0, max = 0;
    int n = 0;
  };
  std::map<std::string, std::map<std::string, Acc>> table;  // group -> type -> error
  const int rows = 8;
  for (const std::string& name : store.names()) {
    if (tensor_storage(name, WeightStorage::kQ8) == WeightStorage::kF32) continue;
    const std::string base = name.substr(0, name.size() - 7);  // strip ".weight"
    const Linear ref = Linear::load(store, base, false);
    const int64_t k = ref.in_features(), n = ref.out_features();
    std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>()(name)));
    std::normal_distribution<float> nd;
    std::vector<float> x(rows * k), y0(rows * n), y1(rows * n);
    for (auto& v : x) v = nd(rng);
    if (outlier_acts)
      for (int64_t c = 0; c < std::max<int64_t>(1, k / 100); ++c) {
        const int64_t col = (c * 7919) % k;
        for (int r = 0; r < rows; ++r) x[r * k + col] *= 20.0f;
      }
    ref.forward(x.data(), rows, y0.data(), &pool);
    for (WeightStorage t : {WeightStorage::kBF16, WeightStorage::kQ8, WeightStorage::kQ4}) {
      const Linear q = Linear::load(store, base, false, LinearLoadOptions{t, &pool});
      q.forward(x.data(), rows, y1.data(), &pool);
      Acc& a = table[group_of(name)][weight_storage_name(t)];
      const double e = rel_l2(y1.data(), y0.data(), y0.size());
      a.sum += e;
      a.max = std::max(a.max, e);
      ++a.n;
    }
  }
  std::printf("| matrices | bf16 mean / worst | q8 mean / worst | q4 mean / worst |\n|---|---|---|---|\n");
  for (auto& [group, types] : table) {
    std::printf("| %s (%d) |", group.c_str(), types["q8"].n);
    for (const char* t : {"bf16", "q8", "q4"})
      std::printf(" %.4f / %.4f |", types[t].sum / types[t].n, types[t].max);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, types = "bf16,q8,q4";
  int steps = 200, threads = 2;
  bool t5_f32 = false;
  bool per = false, outliers = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--per-matrix") {
      per = true;
      continue;
    }
    if (a == "--outlier-acts") {
      outliers = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", a.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--model") model = v;
    else if (a == "--steps") steps = std::atoi(v.c_str());
    else if (a == "--threads") threads = std::atoi(v.c_str());
    else if (a == "--types") types = v;
    else if (a == "--t5") t5_f32 = v == "f32";
    else {
      std::fprintf(stderr, "usage: quant_quality --model DIR [--steps N] [--threads T] [--types bf16,q8,q4]\n");
      return 2;
    }
  }
  try {
    if (per) return per_matrix(model, outliers, threads);
    ThreadPool pool(threads);
    const MusicgenConfig cfg = load_musicgen_config(model);
    const TensorStore store = TensorStore::open_checkpoint(model);
    const T5Tokenizer tok(model + "/spiece.model");
    const TokenBatch tokens = tok.encode_batch({"80s pop track with bassy drums and synth", "calm piano"});
    const T5Encoder t5_ref(cfg.text_encoder, store);
    const MusicgenDecoder ref(cfg.decoder, cfg.text_encoder.d_model, store, 0, DecoderLoadOptions{WeightStorage::kF32, &pool});
    const Tensor t5_out_ref = t5_ref.forward(tokens.ids, tokens.mask, tokens.batch, tokens.length, &pool);
    const Tensor text_ref = ref.project_text(t5_out_ref, tokens.mask, &pool);
    std::printf("| type | logits rel. error mean / max | top-50 overlap | argmax agreement (teacher-forced) | greedy codes equal (free-running) | first divergence | T5 output rel. error L2 / max |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    std::stringstream ss(types);
    std::string name;
    while (std::getline(ss, name, ',')) {
      // "TYPE+kv8": the weight type with the q8 KV cache (DecoderLoadOptions::kv_q8).
      const bool kv8 = name.size() > 4 && name.compare(name.size() - 4, 4, "+kv8") == 0;
      const std::string wname = kv8 ? name.substr(0, name.size() - 4) : name;
      const WeightStorage type = wname == "bf16"  ? WeightStorage::kBF16
                                 : wname == "q4"  ? WeightStorage::kQ4
                                 : wname == "f32" ? WeightStorage::kF32
                                                  : WeightStorage::kQ8;
      const WeightStorage t5_type = t5_f32 ? WeightStorage::kF32 : t5_storage(type);
      const T5Encoder t5(cfg.text_encoder, store, "text_encoder.", LinearLoadOptions{t5_type, &pool});
      DecoderLoadOptions dec_options{type, &pool};
      dec_options.kv_q8 = kv8;
      const MusicgenDecoder dec(cfg.decoder, cfg.text_encoder.d_model, store, 0, dec_options);
      const Tensor t5_out = t5.forward(tokens.ids, tokens.mask, tokens.batch, tokens.length, &pool);
      const Tensor text = dec.project_text(t5_out, tokens.mask, &pool);
      const quality::Metrics m = quality::measure(ref, dec, text_ref, text, tokens.mask, steps, 3.0f, 50, &pool);
      std::printf("| %s | %.4f / %.4f | %.3f | %.3f | %.3f | %d | %.4f / %.4f |\n", name.c_str(),
                  m.logits_rel_err_mean, m.logits_rel_err_max, m.topk_overlap, m.argmax_agree,
                  m.greedy_agree, m.first_divergence,
                  rel_l2(t5_out.data.data(), t5_out_ref.data.data(), t5_out.data.size()),
                  quality::relative_max_error(t5_out.data, t5_out_ref.data));
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quant_quality: %s\n", e.what());
    return 1;
  }
  return 0;
}
