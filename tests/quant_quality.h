// Accuracy of a reduced-precision decoder against the float32 one, measured the way
// docs/QUANTIZATION.md reports it. Shared by tests/test_quant_quality.cpp (tolerances enforced on
// the fixtures) and bench/quant_quality.cpp (the table on full-size checkpoints).
//
// Both decoders run guided (classifier-free guidance, conditional and null streams), greedy:
//  - teacher-forced on the float32 decoder's greedy codes: per step and codebook, the relative
//    L2 error of the conditional logits, the overlap of the top-k sets of the guided logits and
//    whether their argmax agrees;
//  - free-running: each decoder follows its own greedy choices; the fraction of equal codes.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "generation/delay_pattern.h"
#include "models/musicgen_decoder.h"

namespace musicgen::quality {

struct Metrics {
  double logits_rel_err_mean = 0;  // mean over (step, item, codebook) of |q - f|_2 / |f|_2
  double logits_rel_err_max = 0;
  double topk_overlap = 0;         // mean |topk(q) ∩ topk(f)| / k of the guided logits
  double argmax_agree = 0;         // teacher-forced argmax agreement
  double greedy_agree = 0;         // free-running: fraction of equal codes
  int first_divergence = -1;       // first step whose free-running codes differ (-1: none)
};

inline std::vector<int> top_k(const float* x, int n, int k) {
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

inline int argmax_of(const float* x, int n) {
  return static_cast<int>(std::max_element(x, x + n) - x);
}

// text: projected text states [B, S, H] as each decoder sees them (the quantized model's own
// text encoder output for `text_q`), mask [B, S].
inline Metrics measure(const MusicgenDecoder& ref, const MusicgenDecoder& q, const Tensor& text_ref,
                       const Tensor& text_q, const std::vector<int32_t>& mask, int steps,
                       float guidance, int topk, ThreadPool* pool) {
  const DecoderConfig& cfg = ref.config();
  const int B = static_cast<int>(text_ref.dim(0)), K = cfg.num_codebooks, V = cfg.vocab_size;
  const int64_t S = text_ref.dim(1), H = text_ref.dim(2);
  const int rows = 2 * B, M = steps + 1, special = V;
  const DelayPattern pattern(K, cfg.audio_channels, M, special);
  topk = std::min(topk, V);
  auto text_state = [&](const MusicgenDecoder& d, const Tensor& text) {
    DecoderState st = d.new_state(rows, M);
    Tensor both({rows, S, H});
    std::copy(text.data.begin(), text.data.end(), both.data.begin());
    std::vector<int32_t> m(static_cast<size_t>(rows) * S, 0);
    std::copy(mask.begin(), mask.end(), m.begin());
    d.set_text(st, both, m, pool);
    return st;
  };
  auto guide = [&](const std::vector<float>& logits, int b, int k, std::vector<float>* out) {
    const float* c = logits.data() + (static_cast<size_t>(b) * K + k) * V;
    const float* u = logits.data() + (static_cast<size_t>(B + b) * K + k) * V;
    out->resize(V);
    for (int v = 0; v < V; ++v) (*out)[v] = u[v] + (c[v] - u[v]) * guidance;
  };
  Metrics r;
  double err_sum = 0, overlap_sum = 0, agree = 0;
  int64_t cells = 0;
  // Teacher-forced on the float32 greedy path.
  {
    DecoderState s0 = text_state(ref, text_ref), s1 = text_state(q, text_q);
    std::vector<int32_t> seq(static_cast<size_t>(B) * K * M, special), input(static_cast<size_t>(rows) * K);
    std::vector<float> l0, l1, g0, g1;
    for (int s = 0; s + 1 < M; ++s) {
      for (int row = 0; row < rows; ++row)
        for (int k = 0; k < K; ++k)
          input[row * K + k] = pattern.forced(k, s) ? special : seq[(static_cast<size_t>(row % B) * K + k) * M + s];
      ref.forward(s0, input.data(), 1, false, &l0, pool);
      q.forward(s1, input.data(), 1, false, &l1, pool);
      for (int b = 0; b < B; ++b)
        for (int k = 0; k < K; ++k) {
          const float* a = l1.data() + (static_cast<size_t>(b) * K + k) * V;
          const float* e = l0.data() + (static_cast<size_t>(b) * K + k) * V;
          double num = 0, den = 0;
          for (int v = 0; v < V; ++v) {
            num += (static_cast<double>(a[v]) - e[v]) * (static_cast<double>(a[v]) - e[v]);
            den += static_cast<double>(e[v]) * e[v];
          }
          const double rel = std::sqrt(num / std::max(den, 1e-30));
          err_sum += rel;
          r.logits_rel_err_max = std::max(r.logits_rel_err_max, rel);
          guide(l0, b, k, &g0);
          guide(l1, b, k, &g1);
          const auto t0 = top_k(g0.data(), V, topk), t1 = top_k(g1.data(), V, topk);
          std::vector<int> common;
          std::set_intersection(t0.begin(), t0.end(), t1.begin(), t1.end(), std::back_inserter(common));
          overlap_sum += static_cast<double>(common.size()) / topk;
          const int tok = argmax_of(g0.data(), V);
          agree += tok == argmax_of(g1.data(), V);
          ++cells;
          seq[(static_cast<size_t>(b) * K + k) * M + s + 1] = pattern.forced(k, s + 1) ? special : tok;
        }
    }
  }
  r.logits_rel_err_mean = err_sum / cells;
  r.topk_overlap = overlap_sum / cells;
  r.argmax_agree = agree / cells;
  // Free-running.
  {
    DecoderState s0 = text_state(ref, text_ref), s1 = text_state(q, text_q);
    std::vector<int32_t> seq0(static_cast<size_t>(B) * K * M, special), seq1 = seq0;
    std::vector<int32_t> in0(static_cast<size_t>(rows) * K), in1 = in0;
    std::vector<float> l0, l1, g;
    int64_t same = 0, total = 0;
    for (int s = 0; s + 1 < M; ++s) {
      for (int row = 0; row < rows; ++row)
        for (int k = 0; k < K; ++k) {
          const size_t c = (static_cast<size_t>(row % B) * K + k) * M + s;
          in0[row * K + k] = pattern.forced(k, s) ? special : seq0[c];
          in1[row * K + k] = pattern.forced(k, s) ? special : seq1[c];
        }
      ref.forward(s0, in0.data(), 1, false, &l0, pool);
      q.forward(s1, in1.data(), 1, false, &l1, pool);
      for (int b = 0; b < B; ++b)
        for (int k = 0; k < K; ++k) {
          if (pattern.forced(k, s + 1)) continue;
          const size_t c = (static_cast<size_t>(b) * K + k) * M + s + 1;
          guide(l0, b, k, &g);
          seq0[c] = argmax_of(g.data(), V);
          guide(l1, b, k, &g);
          seq1[c] = argmax_of(g.data(), V);
          same += seq0[c] == seq1[c];
          ++total;
          if (seq0[c] != seq1[c] && r.first_divergence < 0) r.first_divergence = s + 1;
        }
    }
    r.greedy_agree = total > 0 ? static_cast<double>(same) / total : 1.0;
  }
  return r;
}

// Max |a - e| / max |e| over two tensors of the same size (the text encoder's output).
inline double relative_max_error(const std::vector<float>& a, const std::vector<float>& e) {
  double num = 0, den = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    num = std::max(num, std::fabs(static_cast<double>(a[i]) - e[i]));
    den = std::max(den, std::fabs(static_cast<double>(e[i])));
  }
  return num / std::max(den, 1e-30);
}

}  // namespace musicgen::quality
