#include "models/encodec_stream.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/ops.h"

namespace musicgen {

EncodecStreamDecoder::EncodecStreamDecoder(const EncodecModel& codec, int batch, int n_q,
                                           ThreadPool* pool, int64_t first_chunk_frames,
                                           int64_t chunk_frames)
    : codec_(codec),
      pool_(pool),
      batch_(batch),
      n_q_(n_q),
      first_chunk_(first_chunk_frames),
      chunk_(chunk_frames),
      hop_(codec.hop_length()),
      dim_(codec.config().hidden_size),
      ch_(codec.dec_first_.out_channels()) {
  if (batch < 1 || n_q < 1 || n_q > codec.num_quantizers())
    fail(ErrorCode::kInvalidArgument,
         "EnCodec stream: batch must be >= 1 and the codebooks 1 to " +
             std::to_string(codec.num_quantizers()) + ", got batch " + std::to_string(batch) +
             " and " + std::to_string(n_q) + " codebooks");
  if (first_chunk_frames < 1 || chunk_frames < 1)
    fail(ErrorCode::kInvalidArgument, "EnCodec stream: chunk sizes must be at least 1 frame");
  if (codec.dec_first_.stride() != 1)
    fail(ErrorCode::kInvalidModel, "EnCodec stream: the decoder's first conv must have stride 1");
  const nn::Conv1d& first = codec.dec_first_;
  const int k_eff = (first.kernel_size() - 1) * first.dilation() + 1;
  // Stride 1: no extra padding whatever the length.
  const auto [pl, pr] = nn::conv1d_paddings(1 << 20, k_eff, 1);
  pad_left_ = pl;
  pad_right_ = pr;
  latent_.resize(batch);
  post_.resize(batch);
  lstm_state_ = codec.dec_lstm_.initial_state(batch);
}

Tensor EncodecStreamDecoder::push(const std::vector<int32_t>& codes, int count) {
  if (finished_)
    fail(ErrorCode::kInvalidArgument, "EnCodec stream: push after finish(); start a new stream");
  if (count < 1 || codes.size() != static_cast<size_t>(batch_) * n_q_ * count)
    fail(ErrorCode::kInvalidArgument,
         "EnCodec stream: expected codes [" + std::to_string(batch_) + ", " +
             std::to_string(n_q_) + ", count >= 1], got " + std::to_string(codes.size()) +
             " codes for " + std::to_string(count) + " frames");
  const int vocab = codec_.codebook_size();
  for (size_t i = 0; i < codes.size(); ++i)
    if (codes[i] < 0 || codes[i] >= vocab)
      fail(ErrorCode::kInvalidArgument,
           "EnCodec stream: code " + std::to_string(codes[i]) + " at index " + std::to_string(i) +
               " is outside the codebook [0, " + std::to_string(vocab) + ")");
  // RVQ sum, as EncodecModel::quantizer_decode: 0 + e_0 + e_1 + ... in codebook order.
  for (int b = 0; b < batch_; ++b) {
    std::vector<float>& z = latent_[b];
    const size_t old = z.size();
    z.resize(old + static_cast<size_t>(count * dim_), 0.0f);
    for (int q = 0; q < n_q_; ++q)
      for (int t = 0; t < count; ++t) {
        const int32_t code = codes[(static_cast<size_t>(b) * n_q_ + q) * count + t];
        kernels::add(z.data() + old + t * dim_, codec_.codebooks_[q].data() + code * dim_, dim_);
      }
  }
  frames_ += count;
  return advance(false);
}

Tensor EncodecStreamDecoder::finish() {
  if (finished_) fail(ErrorCode::kInvalidArgument, "EnCodec stream: finish() called twice");
  if (frames_ == 0)
    fail(ErrorCode::kInvalidArgument, "EnCodec stream: finish() before any frame was pushed");
  finished_ = true;
  return advance(true);
}

Tensor EncodecStreamDecoder::advance(bool final) {
  // First conv: output t reads latent frames [t − pad_left, t + pad_right] (reflected at the
  // sequence's ends). Before the end only outputs whose window lies inside the frames so far are
  // final; a stream shorter than the padding behaves differently (the reference reflects over
  // appended zeros), so nothing is computed until it is longer.
  int64_t o1 = conv_done_;
  if (final)
    o1 = frames_;
  else if (frames_ > std::max(pad_left_, pad_right_))
    o1 = std::max(conv_done_, frames_ - pad_right_);
  // The convolutions after the LSTM: audio frame t needs post-LSTM frames up to t + halo. The
  // first conv and the LSTM wait until a piece is due, so their weights are read once per
  // piece rather than once per frame (the LSTM's input projection is a 16 MB matrix).
  const int64_t halo = EncodecModel::kDecodeHaloFrames;
  const int64_t want = emitted_ == 0 ? first_chunk_ : chunk_;
  if (!final && std::max(emitted_, o1 - halo) - emitted_ < want) return Tensor({batch_, 0});
  if (o1 > conv_done_) {
    const nn::Conv1d& first = codec_.dec_first_;
    const int64_t rows = o1 - conv_done_;
    // The kept latent rows start at latent_base_ (0, or pad_left_ before conv_done_): in these
    // local coordinates no output row computed here reaches a padding row except at the true
    // ends of the sequence, so every row equals the whole-sequence computation.
    const int64_t length = frames_ - latent_base_, l0 = conv_done_ - latent_base_;
    Tensor x({batch_, rows, ch_});  // [B, rows, ch]
    for (int b = 0; b < batch_; ++b) {
      const float* z = latent_[b].data();
      float* y = x.ptr() + b * rows * ch_;
      nn::parallel_chunks(pool_, rows, first.chunk_rows(),
                          [&](int64_t r0, int64_t r1, std::vector<float>* scratch) {
                            first.forward_rows(z, length, l0 + r0, l0 + r1, y + r0 * ch_,
                                               nn::PreActivation::kNone, scratch);
                          });
    }
    // LSTM + skip (EncodecModel::lstm_skip), continuing from the carried state.
    Tensor y = codec_.dec_lstm_.forward(x, pool_, &lstm_state_);
    kernels::add(y.ptr(), x.ptr(), y.numel());
    for (int b = 0; b < batch_; ++b)
      post_[b].insert(post_[b].end(), y.ptr() + b * rows * ch_, y.ptr() + (b + 1) * rows * ch_);
    conv_done_ = o1;
    // Keep the latent rows the next outputs read: from conv_done_ − pad_left_.
    const int64_t base = std::max<int64_t>(0, conv_done_ - pad_left_);
    if (base > latent_base_) {
      for (std::vector<float>& z : latent_)
        z.erase(z.begin(), z.begin() + (base - latent_base_) * dim_);
      latent_base_ = base;
    }
  }
  const int64_t last = final ? conv_done_ : std::max<int64_t>(emitted_, conv_done_ - halo);
  if (last == emitted_) return Tensor({batch_, 0});
  return emit(last, final);
}

Tensor EncodecStreamDecoder::emit(int64_t last, bool final) {
  const int64_t halo = EncodecModel::kDecodeHaloFrames;
  const int64_t total = (last - emitted_) * hop_;
  Tensor audio({batch_, total});
  for (int64_t a = emitted_; a < last; a += EncodecModel::kDecodeChunkFrames) {
    const int64_t b = std::min(last, a + EncodecModel::kDecodeChunkFrames);
    const int64_t a0 = std::max<int64_t>(0, a - halo);
    const int64_t b0 = final ? std::min(conv_done_, b + halo) : b + halo;
    Tensor part({batch_, b0 - a0, ch_});
    for (int i = 0; i < batch_; ++i)
      std::copy_n(post_[i].data() + (a0 - post_base_) * ch_, (b0 - a0) * ch_,
                  part.ptr() + i * (b0 - a0) * ch_);
    const Tensor y = codec_.decoder_convs(std::move(part), pool_);  // [B, (b0 − a0)·hop, 1]
    for (int i = 0; i < batch_; ++i)
      std::copy_n(y.ptr() + i * (b0 - a0) * hop_ + (a - a0) * hop_, (b - a) * hop_,
                  audio.ptr() + i * total + (a - emitted_) * hop_);
  }
  emitted_ = last;
  // Keep the post-LSTM rows the next chunk's halo reads: from emitted_ − halo.
  const int64_t base = std::max<int64_t>(0, emitted_ - halo);
  if (base > post_base_) {
    for (std::vector<float>& p : post_) p.erase(p.begin(), p.begin() + (base - post_base_) * ch_);
    post_base_ = base;
  }
  return audio;
}

}  // namespace musicgen
