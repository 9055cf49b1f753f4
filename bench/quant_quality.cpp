// The error table of docs/QUANTIZATION.md for one checkpoint: every weight type against float32
// (tests/quant_quality.h defines the measurements), guided greedy decoding of a batch of two
// prompts, with the text encoded by each type's own T5.
//
// Usage: quant_quality --model DIR [--steps 200] [--threads 2] [--types bf16,q8,q4]
#include <cstdio>
#include <cstdlib>
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

int main(int argc, char** argv) {
  std::string model, types = "bf16,q8,q4";
  int steps = 200, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") model = v;
    else if (a == "--steps") steps = std::atoi(v.c_str());
    else if (a == "--threads") threads = std::atoi(v.c_str());
    else if (a == "--types") types = v;
    else {
      std::fprintf(stderr, "usage: quant_quality --model DIR [--steps N] [--threads T] [--types bf16,q8,q4]\n");
      return 2;
    }
  }
  try {
    ThreadPool pool(threads);
    const MusicgenConfig cfg = load_musicgen_config(model);
    const TensorStore store = TensorStore::open_checkpoint(model);
    const T5Tokenizer tok(model + "/spiece.model");
    const TokenBatch tokens = tok.encode_batch({"80s pop track with bassy drums and synth", "calm piano"});
    const T5Encoder t5_ref(cfg.text_encoder, store);
    const MusicgenDecoder ref(cfg.decoder, cfg.text_encoder.d_model, store, 0, DecoderLoadOptions{WeightStorage::kF32, &pool});
    const Tensor t5_out_ref = t5_ref.forward(tokens.ids, tokens.mask, tokens.batch, tokens.length, &pool);
    const Tensor text_ref = ref.project_text(t5_out_ref, tokens.mask, &pool);
    std::printf("| type | logits rel. error mean / max | top-50 overlap | argmax agreement (teacher-forced) | greedy codes equal (free-running) | first divergence | T5 rel. max error |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    std::stringstream ss(types);
    std::string name;
    while (std::getline(ss, name, ',')) {
      const WeightStorage type = name == "bf16" ? WeightStorage::kBF16
                                 : name == "q4" ? WeightStorage::kQ4
                                                : WeightStorage::kQ8;
      const T5Encoder t5(cfg.text_encoder, store, "text_encoder.", LinearLoadOptions{t5_storage(type), &pool});
      const MusicgenDecoder dec(cfg.decoder, cfg.text_encoder.d_model, store, 0, DecoderLoadOptions{type, &pool});
      const Tensor t5_out = t5.forward(tokens.ids, tokens.mask, tokens.batch, tokens.length, &pool);
      const Tensor text = dec.project_text(t5_out, tokens.mask, &pool);
      const quality::Metrics m = quality::measure(ref, dec, text_ref, text, tokens.mask, steps, 3.0f, 50, &pool);
      std::printf("| %s | %.4f / %.4f | %.3f | %.3f | %.3f | %d | %.4f |\n", name.c_str(),
                  m.logits_rel_err_mean, m.logits_rel_err_max, m.topk_overlap, m.argmax_agree,
                  m.greedy_agree, m.first_divergence,
                  quality::relative_max_error(t5_out.data, t5_out_ref.data));
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quant_quality: %s\n", e.what());
    return 1;
  }
  return 0;
}
