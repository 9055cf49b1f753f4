// Multi-layer unidirectional LSTM (PyTorch nn.LSTM semantics: gate rows ordered i, f, g, o; both
// biases; zero initial h and c), as EnCodec's SEANet uses it.
//
// Activation layout: time-major [B, T, C] row-major, like nn/conv.h. Each layer's input projection
// for every step and batch item is one matrix product; the recurrence then runs step by step with
// all batch items sharing one read of W_hh per step. Immutable; forward() may run concurrently.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "nn/packed_matmul.h"

namespace musicgen {
class ThreadPool;
}

namespace musicgen::nn {

// One layer's parameters in PyTorch layout.
struct LstmLayerWeights {
  std::vector<float> w_ih;  // [4H, in]
  std::vector<float> w_hh;  // [4H, H]
  std::vector<float> b_ih;  // [4H]
  std::vector<float> b_hh;  // [4H]
};

class Lstm {
 public:
  Lstm() = default;
  // layers[0] takes input_size features, the others hidden_size.
  Lstm(int input_size, int hidden_size, std::vector<LstmLayerWeights> layers);

  int input_size() const { return input_; }
  int hidden_size() const { return hidden_; }
  int num_layers() const { return static_cast<int>(layers_.size()); }

  // x [B, T, input_size] → the last layer's hidden state at every step, [B, T, hidden_size].
  // pool may be nullptr.
  Tensor forward(const Tensor& x, ThreadPool* pool) const;

  // The recurrent state (h, c) of every layer, for running a sequence in pieces.
  struct State {
    int64_t batch = 0;
    std::vector<std::vector<float>> h, c;  // [layer][B·H]
  };
  // A zero state for `batch` items (what forward() starts from).
  State initial_state(int64_t batch) const;
  // forward() continued from *state, which is updated to the state after x's last step. Running
  // a sequence in pieces gives bitwise the same outputs as one forward() over the whole of it
  // (every input projection element is one FMA chain, nn/packed_matmul.h, whatever the rows).
  Tensor forward(const Tensor& x, ThreadPool* pool, State* state) const;
  // Layer l's parameters in PyTorch layout (a copy; for backends, nn/codec_spec.h).
  LstmLayerWeights layer_weights(int l) const;

 private:
  struct Layer {
    WeightMatrix w_ih, w_hh;        // [4H, in], [4H, H]
    std::vector<float> b_ih, b_hh;  // [4H]
  };
  int input_ = 0, hidden_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace musicgen::nn
