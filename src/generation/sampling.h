// Logits processing in Hugging Face's order (guidance, then temperature, top-k, top-p when
// sampling), and token choice from our own seeded random stream.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace musicgen {

struct SamplingParams {
  bool do_sample = true;       // false: greedy (argmax of the guided logits)
  float guidance_scale = 3.0f; // > 1 enables classifier-free guidance
  float temperature = 1.0f;
  int top_k = 50;              // 0 disables
  float top_p = 1.0f;          // 1 disables
};

// A seeded random stream, identical on every platform (mt19937_64 is fully specified; the
// conversion to [0, 1) is ours).
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  std::mt19937_64 engine_;
};

// guided = uncond + (cond - uncond) * scale (HF ClassifierFreeGuidanceLogitsProcessor).
void apply_guidance(const float* cond, const float* uncond, float scale, float* out, int n);
// HF TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper in that order (each only when
// enabled), in place. Removed entries become -inf.
void apply_warpers(float* scores, int n, const SamplingParams& params);
// Index of the largest value (first on ties, like torch.argmax).
int argmax(const float* scores, int n);
// softmax(scores) then one draw with uniform u in [0, 1).
int sample(const float* scores, int n, double u);

}  // namespace musicgen
