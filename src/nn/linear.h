// A Linear layer over float32 weights (PyTorch layout [out, in]), y = x · Wᵀ + b.
#pragma once

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "format/safetensors.h"
#include "kernels/matmul.h"

namespace musicgen {

struct Linear {
  ConstTensor weight;  // [out, in]
  ConstTensor bias;    // [out] or empty

  int64_t in_features() const { return weight.dim(1); }
  int64_t out_features() const { return weight.dim(0); }

  // x [rows, in] (row stride in_features) -> y [rows, out].
  void forward(const float* x, int64_t rows, float* y, ThreadPool* pool) const {
    kernels::matmul_nt(x, in_features(), weight.data, bias.empty() ? nullptr : bias.data, y,
                       out_features(), rows, out_features(), in_features(), pool);
  }

  static Linear load(const TensorStore& store, const std::string& name, bool has_bias) {
    Linear l;
    l.weight = store.get_f32(name + ".weight");
    if (has_bias) l.bias = store.get_f32(name + ".bias");
    return l;
  }
};

// LayerNorm / RMSNorm parameters.
struct Norm {
  ConstTensor weight;
  ConstTensor bias;  // empty for RMS norm
};

}  // namespace musicgen
