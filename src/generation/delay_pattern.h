// MusicGen's delay pattern (HF build_delay_pattern_mask / apply_delay_pattern_mask).
// Codebook k is delayed by d_k = k / channels steps; a sequence of M steps holds N = M - Kc
// frames (Kc = codebooks per channel). Step 0 and the cells outside each codebook's window hold
// the special token (= vocab_size).
#pragma once

#include <cstdint>
#include <vector>

namespace musicgen {

class DelayPattern {
 public:
  // num_codebooks K, channels 1 or 2, total sequence length M (HF max_length).
  DelayPattern(int num_codebooks, int channels, int max_length, int special_token);

  int num_codebooks() const { return K_; }
  int max_length() const { return M_; }
  int frames() const { return M_ - Kc_; }  // N
  int delay(int k) const { return k / channels_; }
  // True where the cell (k, step) is forced to the special token.
  bool forced(int k, int step) const;
  // The smallest max_length with a non-degenerate pattern (HF: M >= 2*Kc - 1) and >= 1 frame.
  static int min_max_length(int num_codebooks, int channels);

  // seq [B, K, M] -> codes [B, K, N]: codes[b][k][t] = seq[b][k][t + 1 + d_k].
  std::vector<int32_t> undelay(const std::vector<int32_t>& seq, int batch) const;

 private:
  int K_, channels_, Kc_, M_, special_;
};

}  // namespace musicgen
