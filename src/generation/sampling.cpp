#include "generation/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace musicgen {

void apply_guidance(const float* cond, const float* uncond, float scale, float* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = uncond[i] + (cond[i] - uncond[i]) * scale;
}

void apply_warpers(float* scores, int n, const SamplingParams& p) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (p.temperature != 1.0f)
    for (int i = 0; i < n; ++i) scores[i] = scores[i] / p.temperature;
  if (p.top_k > 0 && p.top_k < n) {
    std::vector<float> sorted(scores, scores + n);
    std::nth_element(sorted.begin(), sorted.begin() + (p.top_k - 1), sorted.end(), std::greater<>());
    const float kth = sorted[p.top_k - 1];
    for (int i = 0; i < n; ++i)
      if (scores[i] < kth) scores[i] = kNegInf;  // ties at the threshold are kept
  }
  if (p.top_p < 1.0f) {
    // Ascending sort; drop the prefix whose cumulative probability is <= 1 - top_p, always
    // keeping the largest entry.
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] < scores[b]; });
    float mx = kNegInf;
    for (int i = 0; i < n; ++i) mx = std::max(mx, scores[i]);
    std::vector<float> probs(n);
    float sum = 0.0f;
    for (int i = 0; i < n; ++i) {
      probs[i] = std::exp(scores[order[i]] - mx);
      sum += probs[i];
    }
    float cum = 0.0f;
    std::vector<int> remove;
    for (int i = 0; i < n - 1; ++i) {
      cum += probs[i] / sum;
      if (cum <= 1.0f - p.top_p) remove.push_back(order[i]);
    }
    for (int idx : remove) scores[idx] = kNegInf;
  }
}

int argmax(const float* scores, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (scores[i] > scores[best]) best = i;
  return best;
}

int sample(const float* scores, int n, double u) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < n; ++i) mx = std::max(mx, scores[i]);
  std::vector<double> probs(n);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    probs[i] = std::isinf(scores[i]) && scores[i] < 0 ? 0.0 : std::exp(static_cast<double>(scores[i] - mx));
    sum += probs[i];
  }
  const double target = u * sum;
  double cum = 0.0;
  int last = 0;
  for (int i = 0; i < n; ++i) {
    if (probs[i] <= 0.0) continue;
    last = i;
    cum += probs[i];
    if (cum > target) return i;
  }
  return last;
}

}  // namespace musicgen
