// 1-D convolutions as EnCodec's SEANet uses them (HF EncodecConv1d / EncodecConvTranspose1d,
// non-causal, reflect padding), computed as matrix products with kernels::matmul_nt.
//
// Activation layout: time-major, [B, T, C] row-major (one row of C channels per time step, batch
// items one after another). In this layout the receptive window of an output step is a contiguous
// run of k·C floats of the padded input, so a dilation-1 convolution needs no im2col copy: the
// padded input itself is the matrix A with row stride stride·C.
//
// Weights are given in PyTorch layout with weight norm already folded (W = g·v/‖v‖) and are
// reordered once at construction. Layers are immutable; forward() may run concurrently.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace musicgen {
class ThreadPool;
}

namespace musicgen::nn {

// What to apply to a layer's input before it is convolved (fused into the padding copy).
enum class PreActivation { kNone, kElu };

// The reflect padding of HF EncodecConv1d._pad1d: rows [pad_left + L + pad_right) where row i
// maps to input row reflect(i - pad_left). When L <= max(pad_left, pad_right) the reference first
// appends max_pad - L + 1 zero rows, reflects, then drops those rows from the end, so the right
// padding mirrors zeros; this reproduces that. Returns the source row, or -1 for a zero row.
int64_t reflect_source_row(int64_t padded_row, int64_t length, int64_t pad_left, int64_t pad_right);

// The non-causal paddings of HF EncodecConv1d for an input of `length` steps:
// (pad_left, pad_right + extra) with padding_total = k_eff − stride, pad_right = padding_total/2,
// pad_left = padding_total − pad_right and `extra` the right padding that makes the last window
// full (so the output length is ceil(length / stride) for k = 2·stride).
std::pair<int64_t, int64_t> conv1d_paddings(int64_t length, int kernel_eff, int stride);

class Conv1d {
 public:
  Conv1d() = default;
  // weight [out, in, kernel] (PyTorch Conv1d layout, folded), bias [out] or empty.
  Conv1d(const std::vector<float>& weight, std::vector<float> bias, int in_channels,
         int out_channels, int kernel_size, int stride = 1, int dilation = 1);

  int in_channels() const { return in_; }
  int out_channels() const { return out_; }
  // Output steps for an input of `length` steps (after the reference's padding).
  int64_t output_length(int64_t length) const;

  // x [B, T, in] → [B, output_length(T), out]. `pre` is applied to the input first (the ELU that
  // precedes most SEANet convolutions). pool may be nullptr.
  Tensor forward(const Tensor& x, ThreadPool* pool, PreActivation pre = PreActivation::kNone) const;
  // The same on raw pointers: x [length, in] of one batch item, y [output_length(length), out].
  // If accumulate is true, y += conv(x) (y = y + (Σ + bias), the residual-add order).
  void forward_item(const float* x, int64_t length, float* y, ThreadPool* pool,
                    PreActivation pre = PreActivation::kNone, bool accumulate = false) const;

 private:
  int in_ = 0, out_ = 0, kernel_ = 0, stride_ = 1, dilation_ = 1;
  std::vector<float> weight_;  // [out, kernel, in]: row co is the window k·in, time-major
  std::vector<float> bias_;    // [out] or empty
};

class ConvTranspose1d {
 public:
  ConvTranspose1d() = default;
  // weight [in, out, kernel] (PyTorch ConvTranspose1d layout, folded), bias [out] or empty.
  ConvTranspose1d(const std::vector<float>& weight, std::vector<float> bias, int in_channels,
                  int out_channels, int kernel_size, int stride);

  int in_channels() const { return in_; }
  int out_channels() const { return out_; }
  // (length − 1)·stride + kernel, minus the trimmed padding_total = kernel − stride
  // (pad_right = padding_total/2 from the end, the rest from the start): length·stride.
  int64_t output_length(int64_t length) const;

  // x [B, T, in] → [B, output_length(T), out]: one matmul per item producing every tap's
  // contribution [T, kernel·out], then an overlap-add of the kept (untrimmed) rows plus the bias.
  Tensor forward(const Tensor& x, ThreadPool* pool) const;

 private:
  int in_ = 0, out_ = 0, kernel_ = 0, stride_ = 1;
  std::vector<float> weight_;  // [kernel, out, in]: row j·out + co holds W[:, co, j]
  std::vector<float> bias_;    // [out] or empty
};

// Shared helpers for the layers (time-major activations).
// C = A·Wᵀ + bias, split over the pool by output columns when there are many, else by rows.
void gemm_nt(const float* a, int64_t lda, const float* w, const float* bias, float* c, int64_t ldc,
             int64_t m, int64_t n, int64_t k, ThreadPool* pool);
// ELU (alpha 1) in place over n values, split over the pool.
void elu_inplace(float* x, int64_t n, ThreadPool* pool);

}  // namespace musicgen::nn
