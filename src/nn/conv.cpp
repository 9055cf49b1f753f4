#include "nn/conv.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "nn/activation.h"

namespace musicgen::nn {
namespace {

// ceil(a / b) for b > 0 and any sign of a.
int64_t ceil_div(int64_t a, int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

// Floats of scratch per chunk (256 KiB): the chunk's padded input, products and output stay in L2.
constexpr int64_t kChunkFloats = 64 * 1024;

void check_input(const Tensor& x, int channels, const char* layer) {
  if (x.shape.size() != 3 || x.shape[2] != channels || x.shape[1] < 1)
    fail(ErrorCode::kInvalidArgument, std::string(layer) + ": expected input [B, T, " +
                                          std::to_string(channels) + "] with T >= 1, got " +
                                          shape_str(x.shape));
}

}  // namespace

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
  std::vector<float> rows(weight.size());
  for (int co = 0; co < out_; ++co)
    for (int ci = 0; ci < in_; ++ci)
      for (int j = 0; j < kernel_; ++j)
        rows[(static_cast<size_t>(co) * kernel_ + j) * in_ + ci] =
            weight[(static_cast<size_t>(co) * in_ + ci) * kernel_ + j];
  weight_ = WeightMatrix(rows, out_, static_cast<int64_t>(kernel_) * in_);
}

std::vector<float> Conv1d::weight() const {
  // [out, k, in] → [out, in, k]
  const std::vector<float> rows = weight_.unpacked();
  std::vector<float> w(rows.size());
  for (int co = 0; co < out_; ++co)
    for (int ci = 0; ci < in_; ++ci)
      for (int j = 0; j < kernel_; ++j)
        w[(static_cast<size_t>(co) * in_ + ci) * kernel_ + j] =
            rows[(static_cast<size_t>(co) * kernel_ + j) * in_ + ci];
  return w;
}

int64_t Conv1d::output_length(int64_t length) const {
  const int k_eff = (kernel_ - 1) * dilation_ + 1;
  const auto [pl, pr] = conv1d_paddings(length, k_eff, stride_);
  return (length + pl + pr - k_eff) / stride_ + 1;
}

int64_t Conv1d::chunk_rows() const {
  // About 256 KiB of padded input and output per chunk, whole 6-row micro-tiles.
  const int64_t per_row = static_cast<int64_t>(stride_) * in_ + out_;
  return std::clamp<int64_t>((kChunkFloats / per_row) / 6 * 6, 48, 4096);
}

void Conv1d::forward_rows(const float* x, int64_t length, int64_t o0, int64_t o1, float* y,
                          PreActivation pre, std::vector<float>* scratch) const {
  const int64_t k_eff = static_cast<int64_t>(kernel_ - 1) * dilation_ + 1;
  const auto [pl, pr] = conv1d_paddings(length, static_cast<int>(k_eff), stride_);
  const int64_t rows = o1 - o0;
  const int64_t window = static_cast<int64_t>(kernel_) * in_;
  // Padded (and pre-activated) input rows [o0·s, (o1−1)·s + k_eff) of the padded sequence.
  const int64_t p0 = o0 * stride_;
  const int64_t n_pad = (rows - 1) * stride_ + k_eff;
  if (pl == 0 && pr == 0 && pre == PreActivation::kNone && dilation_ == 1) {
    // Nothing to pad or activate (kernel 1 here): the input rows are the windows.
    weight_.multiply(x + p0 * in_, static_cast<int64_t>(stride_) * in_,
                     bias_.empty() ? nullptr : bias_.data(), y, out_, rows, nullptr);
    return;
  }
  const size_t pad_floats = static_cast<size_t>(n_pad * in_);
  const size_t col_floats = dilation_ != 1 ? static_cast<size_t>(rows * window) : 0;
  if (scratch->size() < pad_floats + col_floats) scratch->resize(pad_floats + col_floats);
  float* padded = scratch->data();
  for (int64_t r = 0; r < n_pad; ++r) {
    float* dst = padded + r * in_;
    const int64_t src = reflect_source_row(p0 + r, length, pl, pr);
    if (src < 0) {
      std::fill(dst, dst + in_, 0.0f);
    } else if (pre == PreActivation::kElu) {
      elu(x + src * in_, dst, in_);
    } else {
      std::memcpy(dst, x + src * in_, sizeof(float) * in_);
    }
  }
  // A = the windows. With dilation 1 each window is a contiguous run of the padded rows.
  const float* a = padded;
  int64_t lda = static_cast<int64_t>(stride_) * in_;
  if (dilation_ != 1) {
    float* cols = padded + pad_floats;
    for (int64_t t = 0; t < rows; ++t)
      for (int j = 0; j < kernel_; ++j)
        std::memcpy(cols + t * window + static_cast<int64_t>(j) * in_,
                    padded + (t * stride_ + static_cast<int64_t>(j) * dilation_) * in_,
                    sizeof(float) * in_);
    a = cols;
    lda = window;
  }
  weight_.multiply(a, lda, bias_.empty() ? nullptr : bias_.data(), y, out_, rows, nullptr);
}

void Conv1d::forward_item(const float* x, int64_t length, float* y, ThreadPool* pool,
                          PreActivation pre) const {
  const int64_t t_out = output_length(length);
  parallel_chunks(pool, t_out, chunk_rows(),
                  [&](int64_t o0, int64_t o1, std::vector<float>* scratch) {
                    forward_rows(x, length, o0, o1, y + o0 * out_, pre, scratch);
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
  std::vector<float> rows(weight.size());
  for (int ci = 0; ci < in_; ++ci)
    for (int co = 0; co < out_; ++co)
      for (int j = 0; j < kernel_; ++j)
        rows[(static_cast<size_t>(j) * out_ + co) * in_ + ci] =
            weight[(static_cast<size_t>(ci) * out_ + co) * kernel_ + j];
  weight_ = WeightMatrix(rows, static_cast<int64_t>(kernel_) * out_, in_);
}

std::vector<float> ConvTranspose1d::weight() const {
  // [k, out, in] → [in, out, k]
  const std::vector<float> rows = weight_.unpacked();
  std::vector<float> w(rows.size());
  for (int ci = 0; ci < in_; ++ci)
    for (int co = 0; co < out_; ++co)
      for (int j = 0; j < kernel_; ++j)
        w[(static_cast<size_t>(ci) * out_ + co) * kernel_ + j] =
            rows[(static_cast<size_t>(j) * out_ + co) * in_ + ci];
  return w;
}

int64_t ConvTranspose1d::output_length(int64_t length) const {
  return (length - 1) * stride_ + kernel_ - (kernel_ - stride_);
}

void ConvTranspose1d::forward_rows(const float* x, int64_t length, int64_t o0, int64_t o1, float* y,
                                   PreActivation pre, std::vector<float>* scratch) const {
  const int64_t padding_total = kernel_ - stride_;
  const int64_t pad_left = padding_total - padding_total / 2;
  const int64_t taps = static_cast<int64_t>(kernel_) * out_;
  // Raw output step p = o + pad_left receives tap p − t·stride of every input step t with
  // 0 <= p − t·stride < kernel. The chunk's input steps [t0, t1]:
  const int64_t t0 = std::max<int64_t>(0, ceil_div(o0 + pad_left - kernel_ + 1, stride_));
  const int64_t t1 = std::min<int64_t>(length - 1, (o1 - 1 + pad_left) / stride_);
  const int64_t steps = t1 - t0 + 1;
  const size_t in_floats = pre == PreActivation::kNone ? 0 : static_cast<size_t>(steps * in_);
  if (scratch->size() < in_floats + steps * taps) scratch->resize(in_floats + steps * taps);
  const float* xin = x + t0 * in_;
  if (pre == PreActivation::kElu) {
    elu(xin, scratch->data(), steps * in_);
    xin = scratch->data();
  }
  float* cols = scratch->data() + in_floats;  // [steps, kernel·out]
  weight_.multiply(xin, in_, nullptr, cols, taps, steps, nullptr);
  // Overlap-add in increasing t, then the bias.
  for (int64_t o = o0; o < o1; ++o) {
    const int64_t p = o + pad_left;
    const int64_t tf = std::max<int64_t>(0, ceil_div(p - kernel_ + 1, stride_));
    const int64_t tl = std::min<int64_t>(length - 1, p / stride_);
    float* dst = y + (o - o0) * out_;
    std::fill(dst, dst + out_, 0.0f);
    for (int64_t t = tf; t <= tl; ++t)
      kernels::add(dst, cols + (t - t0) * taps + (p - t * stride_) * out_, out_);
    if (!bias_.empty()) kernels::add(dst, bias_.data(), out_);
  }
}

Tensor ConvTranspose1d::forward(const Tensor& x, ThreadPool* pool, PreActivation pre) const {
  check_input(x, in_, "ConvTranspose1d");
  const int64_t batch = x.shape[0], length = x.shape[1];
  const int64_t t_out = output_length(length);
  // About 256 KiB of tap contributions per chunk (at least 32 input steps, so the one or two
  // steps recomputed at each chunk edge cost little).
  const int64_t in_steps =
      std::clamp<int64_t>(kChunkFloats / (static_cast<int64_t>(kernel_) * out_), 32, 1024);
  const int64_t chunk = in_steps * stride_;
  Tensor y({batch, t_out, out_});  // [B, T_out, out]
  for (int64_t b = 0; b < batch; ++b) {
    const float* xb = x.ptr() + b * length * in_;
    float* yb = y.ptr() + b * t_out * out_;
    parallel_chunks(pool, t_out, chunk, [&](int64_t o0, int64_t o1, std::vector<float>* scratch) {
      forward_rows(xb, length, o0, o1, yb + o0 * out_, pre, scratch);
    });
  }
  return y;
}

void parallel_chunks(ThreadPool* pool, int64_t n, int64_t chunk,
                     const std::function<void(int64_t, int64_t, std::vector<float>*)>& fn) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  auto run = [&](int64_t c0, int64_t c1) {
    std::vector<float> scratch;
    for (int64_t c = c0; c < c1; ++c) fn(c * chunk, std::min(n, (c + 1) * chunk), &scratch);
  };
  if (pool == nullptr || pool->size() == 1 || chunks == 1)
    run(0, chunks);
  else
    pool->parallel_for(chunks, run);
}

}  // namespace musicgen::nn
