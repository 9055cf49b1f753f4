// EnCodec decoding while the codes arrive (streaming): frames are pushed as the generator
// completes them and every push returns the audio samples that are final given the frames so far.
// The concatenation of everything returned (pushes, then finish()) equals
// EncodecModel::decode(all codes) bit for bit.
//
// Why the output can be final before the end (EncodecModel's decoder, frame rate first):
//   RVQ sum (per frame) → first conv (kernel k, non-causal: output t reads latent frames up to
//   t + pad_right, reflect padding at both ends) → LSTM + skip (causal over frames: its (h, c)
//   is carried from push to push) → convolutions whose receptive field spans under 2 frames
//   (run on a window with kDecodeHaloFrames of context on both sides, as decode_latent does).
// So audio frame t is final once latent frame t + halo + pad_right exists; only the last
// pad_right + halo frames wait for finish(), which applies the first conv's right edge padding.
// Every kernel on the way computes a row the same way whatever the other rows (the convolutions'
// rows, the LSTM's input projection: nn/packed_matmul.h), hence the bitwise equality.
//
// Memory is bounded: only the frames still needed as context are kept.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "models/encodec.h"
#include "nn/lstm.h"

namespace musicgen {

class ThreadPool;

class EncodecStreamDecoder {
 public:
  // Audio frames emitted together at most once per this many new frames (after the first piece,
  // which comes after kFirstChunkFrames): 50 frames = 1 s of 32 kHz audio per piece, the first
  // after about half a second of frames (plus the halo and first-conv lookahead, 11 frames).
  static constexpr int64_t kFirstChunkFrames = 25;
  static constexpr int64_t kChunkFrames = 50;

  // Decodes `batch` items with the codec's first n_q codebooks. `codec` and `pool` (may be
  // nullptr) must outlive this object; the output does not depend on the thread count.
  EncodecStreamDecoder(const EncodecModel& codec, int batch, int n_q, ThreadPool* pool,
                       int64_t first_chunk_frames = kFirstChunkFrames,
                       int64_t chunk_frames = kChunkFrames);

  // codes [batch][n_q][count] for the next `count` frames. Returns the newly final audio,
  // [batch, samples] (samples a multiple of hop, possibly 0). Throws Error(kInvalidArgument) for
  // bad sizes or codes, or a push after finish().
  Tensor push(const std::vector<int32_t>& codes, int count);
  // Ends the stream: returns the remaining audio [batch, samples]. Throws Error(kInvalidArgument)
  // when no frame was pushed.
  Tensor finish();

  int64_t frames_pushed() const { return frames_; }
  int64_t samples_emitted() const { return emitted_ * hop_; }

 private:
  // When a piece is due (or at the end): runs the first conv and the LSTM over the latent frames
  // that have become usable, then emits the audio of post-LSTM frames [emitted_, last) (in
  // sub-chunks of at most kDecodeChunkFrames).
  Tensor advance(bool final);
  Tensor emit(int64_t last, bool final);

  const EncodecModel& codec_;
  ThreadPool* pool_;
  int batch_, n_q_;
  int64_t first_chunk_, chunk_;
  int64_t hop_, dim_, ch_;           // samples per frame, latent width, LSTM width
  int64_t pad_left_, pad_right_;     // the first conv's padding
  int64_t frames_ = 0;               // latent frames pushed
  int64_t latent_base_ = 0;          // frame index of latent_[b] row 0
  std::vector<std::vector<float>> latent_;  // [B][rows · dim], time-major
  int64_t conv_done_ = 0;            // first-conv/LSTM output frames computed
  nn::Lstm::State lstm_state_;
  int64_t post_base_ = 0;            // frame index of post_[b] row 0
  std::vector<std::vector<float>> post_;    // [B][rows · ch], after LSTM + skip
  int64_t emitted_ = 0;              // audio frames emitted
  bool finished_ = false;
};

}  // namespace musicgen
