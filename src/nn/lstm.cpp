#include "nn/lstm.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"

namespace musicgen::nn {
namespace {

inline float sigmoid(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}

}  // namespace

Lstm::Lstm(int input_size, int hidden_size, std::vector<LstmLayerWeights> layers)
    : input_(input_size), hidden_(hidden_size) {
  if (input_ < 1 || hidden_ < 1 || layers.empty())
    fail(ErrorCode::kInvalidModel, "LSTM: sizes must be positive and there must be a layer");
  const size_t gates = 4 * static_cast<size_t>(hidden_);
  for (size_t l = 0; l < layers.size(); ++l) {
    const size_t in = l == 0 ? input_ : hidden_;
    LstmLayerWeights& w = layers[l];
    if (w.w_ih.size() != gates * in || w.w_hh.size() != gates * hidden_ || w.b_ih.size() != gates ||
        w.b_hh.size() != gates)
      fail(ErrorCode::kInvalidModel, "LSTM layer " + std::to_string(l) + ": inconsistent sizes");
    layers_.push_back({WeightMatrix(w.w_ih, static_cast<int64_t>(gates), static_cast<int64_t>(in)),
                       WeightMatrix(w.w_hh, static_cast<int64_t>(gates), hidden_),
                       std::move(w.b_ih), std::move(w.b_hh)});
  }
}

LstmLayerWeights Lstm::layer_weights(int l) const {
  const Layer& w = layers_.at(static_cast<size_t>(l));
  return {w.w_ih.unpacked(), w.w_hh.unpacked(), w.b_ih, w.b_hh};
}

Lstm::State Lstm::initial_state(int64_t batch) const {
  State s;
  s.batch = batch;
  s.h.assign(layers_.size(), std::vector<float>(static_cast<size_t>(batch * hidden_), 0.0f));
  s.c = s.h;
  return s;
}

Tensor Lstm::forward(const Tensor& x, ThreadPool* pool) const {
  State state = initial_state(x.shape.size() == 3 ? x.shape[0] : 0);
  return forward(x, pool, &state);
}

Tensor Lstm::forward(const Tensor& x, ThreadPool* pool, State* state) const {
  if (x.shape.size() != 3 || x.shape[2] != input_)
    fail(ErrorCode::kInvalidArgument,
         "LSTM: expected input [B, T, " + std::to_string(input_) + "], got " + shape_str(x.shape));
  const int64_t batch = x.shape[0], steps = x.shape[1];
  if (state->batch != batch || state->h.size() != layers_.size())
    fail(ErrorCode::kInvalidArgument, "LSTM: the state is for " + std::to_string(state->batch) +
                                          " items, the input has " + std::to_string(batch));
  const int64_t h = hidden_, g4 = 4 * h;
  Tensor seq_in;  // the current layer's input when it is not x
  Tensor out;
  std::vector<float> xproj(static_cast<size_t>(batch * steps * g4));  // [B, T, 4H]
  std::vector<float> hproj(static_cast<size_t>(batch * g4));          // [B, 4H]
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& w = layers_[l];
    const Tensor& in = l == 0 ? x : seq_in;
    const int64_t in_size = in.shape[2];
    std::vector<float>& hs = state->h[l];  // [B, H]
    std::vector<float>& cs = state->c[l];  // [B, H]
    // x_t · W_ihᵀ + b_ih for every step at once.
    w.w_ih.multiply(in.ptr(), in_size, w.b_ih.data(), xproj.data(), g4, batch * steps, pool);
    out = Tensor({batch, steps, h});  // [B, T, H]
    for (int64_t t = 0; t < steps; ++t) {
      // h_{t−1} · W_hhᵀ + b_hh, all batch items against one read of W_hh.
      w.w_hh.multiply(hs.data(), h, w.b_hh.data(), hproj.data(), g4, batch, pool);
      for (int64_t b = 0; b < batch; ++b) {
        const float* xg = xproj.data() + (b * steps + t) * g4;
        const float* hg = hproj.data() + b * g4;
        float* hb = hs.data() + b * h;
        float* cb = cs.data() + b * h;
        for (int64_t j = 0; j < h; ++j) {
          const float ig = sigmoid(hg[j] + xg[j]);
          const float fg = sigmoid(hg[h + j] + xg[h + j]);
          const float gg = std::tanh(hg[2 * h + j] + xg[2 * h + j]);
          const float og = sigmoid(hg[3 * h + j] + xg[3 * h + j]);
          cb[j] = fg * cb[j] + ig * gg;
          hb[j] = og * std::tanh(cb[j]);
        }
        std::copy(hb, hb + h, out.ptr() + (b * steps + t) * h);
      }
    }
    if (l + 1 < layers_.size()) seq_in = std::move(out);
  }
  return out;
}

}  // namespace musicgen::nn
