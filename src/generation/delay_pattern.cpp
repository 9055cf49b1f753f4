#include "generation/delay_pattern.h"

#include <algorithm>

namespace musicgen {

DelayPattern::DelayPattern(int num_codebooks, int channels, int max_length, int special_token)
    : K_(num_codebooks), channels_(channels), Kc_(num_codebooks / channels), M_(max_length),
      special_(special_token) {}

int DelayPattern::min_max_length(int num_codebooks, int channels) {
  const int kc = num_codebooks / channels;
  return std::max(2 * kc - 1, kc + 1);
}

bool DelayPattern::forced(int k, int step) const {
  const int d = delay(k);
  // HF: lower = tril (col <= row), upper = triu(diagonal = M - Kc + 1).
  return step <= d || step >= M_ - Kc_ + 1 + d;
}

std::vector<int32_t> DelayPattern::undelay(const std::vector<int32_t>& seq, int batch) const {
  const int n = frames();
  std::vector<int32_t> codes(static_cast<size_t>(batch) * K_ * n);
  for (int b = 0; b < batch; ++b)
    for (int k = 0; k < K_; ++k)
      for (int t = 0; t < n; ++t)
        codes[(static_cast<size_t>(b) * K_ + k) * n + t] =
            seq[(static_cast<size_t>(b) * K_ + k) * M_ + t + 1 + delay(k)];
  return codes;
}

}  // namespace musicgen
