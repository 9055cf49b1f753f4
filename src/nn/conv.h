// 1-D convolutions as EnCodec's SEANet uses them (HF EncodecConv1d / EncodecConvTranspose1d,
// non-causal, reflect padding), computed as matrix products against weights packed once
// (nn/packed_matmul.h).
//
// Activation layout: time-major, [B, T, C] row-major (one row of C channels per time step, batch
// items one after another). In this layout the receptive window of an output step is a contiguous
// run of k·C floats of the padded input, so a dilation-1 convolution needs no im2col copy: the
// padded input itself is the matrix A with row stride stride·C. Layers work in time chunks (a few
// hundred steps) so the padded copy and the products stay in cache, and split the chunks over
// the thread pool.
//
// Weights are given in PyTorch layout with weight norm already folded (W = g·v/‖v‖) and are
// reordered once at construction. Layers are immutable; forward() may run concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "nn/activation.h"
#include "nn/packed_matmul.h"

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
  int kernel_size() const { return kernel_; }
  // Output steps for an input of `length` steps (after the reference's padding).
  int64_t output_length(int64_t length) const;

  // x [B, T, in] → [B, output_length(T), out]. `pre` is applied to the input first (the ELU that
  // precedes most SEANet convolutions). pool may be nullptr.
  Tensor forward(const Tensor& x, ThreadPool* pool, PreActivation pre = PreActivation::kNone) const;
  // One batch item: x [length, in] → y [output_length(length), out], in time chunks that keep
  // the padded windows in cache, the chunks split over the pool.
  void forward_item(const float* x, int64_t length, float* y, ThreadPool* pool,
                    PreActivation pre = PreActivation::kNone) const;
  // Output rows [o0, o1) of the convolution of x [length, in] into y (row stride out), on this
  // thread. `scratch` is reused between calls. Every row is computed the same way whatever the
  // chunking.
  void forward_rows(const float* x, int64_t length, int64_t o0, int64_t o1, float* y,
                    PreActivation pre, std::vector<float>* scratch) const;
  // A good number of output rows per chunk for forward_rows.
  int64_t chunk_rows() const;

  // The layer's parameters, for backends that lay them out their own way (nn/codec_spec.h):
  // the folded weight in PyTorch layout [out, in, kernel] (unpacked: a copy) and the bias.
  int stride() const { return stride_; }
  int dilation() const { return dilation_; }
  std::vector<float> weight() const;
  const std::vector<float>& bias() const { return bias_; }

 private:
  int in_ = 0, out_ = 0, kernel_ = 0, stride_ = 1, dilation_ = 1;
  WeightMatrix weight_;      // [out, kernel·in]: row co is the window, time-major
  std::vector<float> bias_;  // [out] or empty
};

class ConvTranspose1d {
 public:
  ConvTranspose1d() = default;
  // weight [in, out, kernel] (PyTorch ConvTranspose1d layout, folded), bias [out] or empty.
  ConvTranspose1d(const std::vector<float>& weight, std::vector<float> bias, int in_channels,
                  int out_channels, int kernel_size, int stride);

  int in_channels() const { return in_; }
  int out_channels() const { return out_; }
  int kernel_size() const { return kernel_; }
  int stride() const { return stride_; }
  // The folded weight in PyTorch layout [in, out, kernel] (unpacked: a copy) and the bias.
  std::vector<float> weight() const;
  const std::vector<float>& bias() const { return bias_; }
  // (length − 1)·stride + kernel, minus the trimmed padding_total = kernel − stride
  // (pad_right = padding_total/2 from the end, the rest from the start): length·stride.
  int64_t output_length(int64_t length) const;

  // x [B, T, in] → [B, output_length(T), out]. Per time chunk: one matmul giving every tap's
  // contribution of the chunk's input steps [steps, kernel·out], then an overlap-add of the kept
  // (untrimmed) rows plus the bias. `pre` is applied to the input first.
  Tensor forward(const Tensor& x, ThreadPool* pool, PreActivation pre = PreActivation::kNone) const;

 private:
  void forward_rows(const float* x, int64_t length, int64_t o0, int64_t o1, float* y,
                    PreActivation pre, std::vector<float>* scratch) const;

  int in_ = 0, out_ = 0, kernel_ = 0, stride_ = 1;
  WeightMatrix weight_;      // [kernel·out, in]: row j·out + co holds W[:, co, j]
  std::vector<float> bias_;  // [out] or empty
};

// Splits [0, n) into chunks of `chunk` and runs fn(begin, end, scratch) over the pool, each
// worker reusing one scratch buffer.
void parallel_chunks(ThreadPool* pool, int64_t n, int64_t chunk,
                     const std::function<void(int64_t, int64_t, std::vector<float>*)>& fn);

}  // namespace musicgen::nn
