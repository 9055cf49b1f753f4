#include "nn/conv.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace musicgen::nn {
namespace {

// ceil(a / b) for b > 0 and any sign of a.
int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

void parallel_rows(ThreadPool* pool, int64_t rows, int64_t row_width,
                   const std::function<void(int64_t, int64_t)>& fn) {
  if (pool == nullptr || pool->size() == 1 || rows * row_width < (1 << 15)) {
    fn(0, rows);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, row_width));
  pool->parallel_for(rows, fn, grain);
}

void check_input(const Tensor& x, int channels, const char* layer) {
  if (x.shape.size() != 3 || x.shape[2] != channels || x.shape[1] < 1)
    fail(ErrorCode::kInvalidArgument, std::string(layer) + ": expected input [B, T, " +
                                          std::to_string(channels) + "] with T >= 1, got " +
                                          shape_str(x.shape));
}

}  // namespace

void gemm_nt(const float* a, int64_t lda, const float* w, const float* bias, float* c, int64_t ldc,
             int64_t m, int64_t n, int64_t k, ThreadPool* pool) {
  const int threads = pool == nullptr ? 1 : pool->size();
  if (threads == 1 || m * n * k < (1 << 16)) {
    kernels::matmul_nt(a, lda, w, bias, c, ldc, m, n, k, nullptr);
    return;
  }
  // matmul_nt splits output columns in blocks of 16; with few columns, split rows instead. Each
  // element is computed the same way wherever it falls, so either split is deterministic.
  if (n >= 64 * threads || m < 8 * threads) {
    kernels::matmul_nt(a, lda, w, bias, c, ldc, m, n, k, pool);
    return;
  }
  pool->parallel_for(
      m,
      [&](int64_t r0, int64_t r1) {
        kernels::matmul_nt(a + r0 * lda, lda, w, bias, c + r0 * ldc, ldc, r1 - r0, n, k, nullptr);
      },
      8);
}

void elu_inplace(float* x, int64_t n, ThreadPool* pool) {
  constexpr int64_t kChunk = 1 << 14;
  if (pool == nullptr || pool->size() == 1 || n < 2 * kChunk) {
    kernels::elu(x, x, n);
    return;
  }
  pool->parallel_for(
      n, [&](int64_t b, int64_t e) { kernels::elu(x + b, x + b, e - b); }, kChunk);
}

int64_t reflect_source_row(int64_t padded_row, int64_t length, int64_t pad_left,
                           int64_t pad_right) {
  const int64_t max_pad = std::max(pad_left, pad_right);
  // The reference's short-input workaround: reflect over the input followed by zeros.
  const int64_t extended = length <= max_pad ? max_pad + 1 : length;
  int64_t j = padded_row - pad_left;
  if (j < 0)
    j = -j;
  else if (j >= extended)
    j = 2 * (extended - 1) - j;
  return j < length ? j : -1;
}

std::pair<int64_t, int64_t> conv1d_paddings(int64_t length, int kernel_eff, int stride) {
  const int64_t padding_total = kernel_eff - stride;
  // HF _get_extra_padding_for_conv1d: n_frames = ceil((L − k + pt)/s + 1) − 1.
  const int64_t n_frames = ceil_div(length - kernel_eff + padding_total, stride);
  const int64_t ideal_length = n_frames * stride + kernel_eff - padding_total;
  const int64_t extra = ideal_length - length;
  const int64_t pad_right = padding_total / 2;
  const int64_t pad_left = padding_total - pad_right;
  return {pad_left, pad_right + extra};
}

// ---------------------------------------------------------------------------------------------
// Conv1d

Conv1d::Conv1d(const std::vector<float>& weight, std::vector<float> bias, int in_channels,
               int out_channels, int kernel_size, int stride, int dilation)
    : in_(in_channels),
      out_(out_channels),
      kernel_(kernel_size),
      stride_(stride),
      dilation_(dilation),
      bias_(std::move(bias)) {
  const int64_t k_eff = static_cast<int64_t>(kernel_ - 1) * dilation_ + 1;
  if (in_ < 1 || out_ < 1 || kernel_ < 1 || stride_ < 1 || dilation_ < 1 || k_eff < stride_ ||
      weight.size() != static_cast<size_t>(out_) * in_ * kernel_ ||
      (!bias_.empty() && bias_.size() != static_cast<size_t>(out_)))
    fail(ErrorCode::kInvalidModel, "Conv1d: inconsistent weight/bias sizes or hyper-parameters");
  // [out, in, k] → [out, k, in]
  weight_.resize(weight.size());
  for (int co = 0; co < out_; ++co)
    for (int ci = 0; ci < in_; ++ci)
      for (int j = 0; j < kernel_; ++j)
        weight_[(static_cast<size_t>(co) * kernel_ + j) * in_ + ci] =
            weight[(static_cast<size_t>(co) * in_ + ci) * kernel_ + j];
}

int64_t Conv1d::output_length(int64_t length) const {
  const int k_eff = (kernel_ - 1) * dilation_ + 1;
  const auto [pl, pr] = conv1d_paddings(length, k_eff, stride_);
  return (length + pl + pr - k_eff) / stride_ + 1;
}

void Conv1d::forward_item(const float* x, int64_t length, float* y, ThreadPool* pool,
                          PreActivation pre, bool accumulate) const {
  const int k_eff = (kernel_ - 1) * dilation_ + 1;
  const auto [pl, pr] = conv1d_paddings(length, k_eff, stride_);
  const int64_t padded_len = length + pl + pr;
  const int64_t t_out = (padded_len - k_eff) / stride_ + 1;
  const int64_t window = static_cast<int64_t>(kernel_) * in_;

  // The padded (and pre-activated) input, [padded_len, in].
  std::vector<float> padded;
  const float* xp = x;
  if (pl != 0 || pr != 0 || pre != PreActivation::kNone) {
    padded.resize(static_cast<size_t>(padded_len) * in_);
    parallel_rows(pool, padded_len, in_, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* dst = padded.data() + r * in_;
        const int64_t src = reflect_source_row(r, length, pl, pr);
        if (src < 0) {
          std::fill(dst, dst + in_, 0.0f);
        } else {
          const float* s = x + src * in_;
          if (pre == PreActivation::kElu)
            kernels::elu(s, dst, in_);
          else
            std::memcpy(dst, s, sizeof(float) * in_);
        }
      }
    });
    xp = padded.data();
  }

  // A = the windows. With dilation 1 each window is a contiguous run of the padded input.
  const float* a = xp;
  int64_t lda = static_cast<int64_t>(stride_) * in_;
  std::vector<float> cols;
  if (dilation_ != 1) {
    cols.resize(static_cast<size_t>(t_out) * window);
    parallel_rows(pool, t_out, window, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        for (int j = 0; j < kernel_; ++j)
          std::memcpy(cols.data() + t * window + static_cast<int64_t>(j) * in_,
                      xp + (t * stride_ + static_cast<int64_t>(j) * dilation_) * in_,
                      sizeof(float) * in_);
    });
    a = cols.data();
    lda = window;
  }

  const float* bias = bias_.empty() ? nullptr : bias_.data();
  if (!accumulate) {
    gemm_nt(a, lda, weight_.data(), bias, y, out_, t_out, out_, window, pool);
    return;
  }
  std::vector<float> tmp(static_cast<size_t>(t_out) * out_);
  gemm_nt(a, lda, weight_.data(), bias, tmp.data(), out_, t_out, out_, window, pool);
  parallel_rows(pool, t_out, out_, [&](int64_t r0, int64_t r1) {
    kernels::add(y + r0 * out_, tmp.data() + r0 * out_, (r1 - r0) * out_);
  });
}

Tensor Conv1d::forward(const Tensor& x, ThreadPool* pool, PreActivation pre) const {
  check_input(x, in_, "Conv1d");
  const int64_t batch = x.shape[0], length = x.shape[1];
  const int64_t t_out = output_length(length);
  Tensor y({batch, t_out, out_});  // [B, T_out, out]
  for (int64_t b = 0; b < batch; ++b)
    forward_item(x.ptr() + b * length * in_, length, y.ptr() + b * t_out * out_, pool, pre);
  return y;
}

// ---------------------------------------------------------------------------------------------
// ConvTranspose1d

ConvTranspose1d::ConvTranspose1d(const std::vector<float>& weight, std::vector<float> bias,
                                 int in_channels, int out_channels, int kernel_size, int stride)
    : in_(in_channels),
      out_(out_channels),
      kernel_(kernel_size),
      stride_(stride),
      bias_(std::move(bias)) {
  if (in_ < 1 || out_ < 1 || kernel_ < 1 || stride_ < 1 || kernel_ < stride_ ||
      weight.size() != static_cast<size_t>(out_) * in_ * kernel_ ||
      (!bias_.empty() && bias_.size() != static_cast<size_t>(out_)))
    fail(ErrorCode::kInvalidModel,
         "ConvTranspose1d: inconsistent weight/bias sizes or hyper-parameters");
  // [in, out, k] → [k, out, in]
  weight_.resize(weight.size());
  for (int ci = 0; ci < in_; ++ci)
    for (int co = 0; co < out_; ++co)
      for (int j = 0; j < kernel_; ++j)
        weight_[(static_cast<size_t>(j) * out_ + co) * in_ + ci] =
            weight[(static_cast<size_t>(ci) * out_ + co) * kernel_ + j];
}

int64_t ConvTranspose1d::output_length(int64_t length) const {
  return (length - 1) * stride_ + kernel_ - (kernel_ - stride_);
}

Tensor ConvTranspose1d::forward(const Tensor& x, ThreadPool* pool) const {
  check_input(x, in_, "ConvTranspose1d");
  const int64_t batch = x.shape[0], length = x.shape[1];
  const int64_t padding_total = kernel_ - stride_;
  const int64_t pad_right = padding_total / 2;
  const int64_t pad_left = padding_total - pad_right;
  const int64_t t_out = output_length(length);
  const int64_t taps = static_cast<int64_t>(kernel_) * out_;
  Tensor y({batch, t_out, out_});                           // [B, T_out, out]
  std::vector<float> cols(static_cast<size_t>(length) * taps);  // [T, kernel·out]
  for (int64_t b = 0; b < batch; ++b) {
    gemm_nt(x.ptr() + b * length * in_, in_, weight_.data(), nullptr, cols.data(), taps, length,
            taps, in_, pool);
    float* yb = y.ptr() + b * t_out * out_;
    // Overlap-add: raw output step p = o + pad_left receives tap p − t·stride of every input step
    // t with 0 <= p − t·stride < kernel, summed in increasing t, then the bias.
    parallel_rows(pool, t_out, taps, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const int64_t p = o + pad_left;
        const int64_t t_first = std::max<int64_t>(0, ceil_div(p - kernel_ + 1, stride_));
        const int64_t t_last = std::min<int64_t>(length - 1, p / stride_);
        float* dst = yb + o * out_;
        std::fill(dst, dst + out_, 0.0f);
        for (int64_t t = t_first; t <= t_last; ++t)
          kernels::add(dst, cols.data() + t * taps + (p - t * stride_) * out_, out_);
        if (!bias_.empty()) kernels::add(dst, bias_.data(), out_);
      }
    });
  }
  return y;
}

}  // namespace musicgen::nn
