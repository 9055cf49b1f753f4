// EnCodec (the 32 kHz codec MusicGen uses), following HF transformers' EncodecModel:
// SEANet encoder → residual vector quantizer → SEANet decoder, non-causal, reflect padding,
// weight-normalised convolutions (folded once at load), no input normalisation.
//
// Public tensors use PyTorch layouts ([B, C, T]); internally activations are time-major
// ([B, T, C], see nn/conv.h). The model is immutable after construction: every method is const
// and may be called concurrently from several threads (each call allocates its own scratch).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "nn/codec_spec.h"
#include "nn/conv.h"
#include "nn/lstm.h"
#include "nn/packed_matmul.h"

namespace musicgen {

class ThreadPool;

class EncodecModel {
 public:
  // Loads (and validates, in one error naming every bad tensor) the codec tensors under `prefix`
  // from `store`. Accepts both weight-norm namings (conv.weight_g/weight_v and
  // conv.parametrizations.weight.original0/original1); ignores training-only buffers.
  // Throws Error(kInvalidModel) when the checkpoint does not match `cfg`.
  EncodecModel(const EncodecConfig& cfg, const TensorStore& store,
               const std::string& prefix = "audio_encoder.");

  // Every tensor the codec reads, with its expected shape (derived from cfg).
  static std::vector<TensorSpec> tensor_specs(const EncodecConfig& cfg,
                                              const std::string& prefix = "audio_encoder.");

  const EncodecConfig& config() const { return cfg_; }
  int hop_length() const { return hop_; }  // samples per frame (640 for 32 kHz)
  int num_quantizers() const { return cfg_.num_quantizers; }
  int codebook_size() const { return cfg_.codebook_size; }

  // codes [batch][n_q][frames] → audio [batch, 1, frames·hop]. Uses the first n_q codebooks
  // (1 <= n_q <= num_quantizers). Throws Error(kInvalidArgument) for out-of-range codes or sizes.
  // pool may be nullptr (single thread); the result does not depend on the thread count.
  Tensor decode(const std::vector<int32_t>& codes, int batch, int n_q, int frames,
                ThreadPool* pool) const;
  // RVQ decode only: Σ_q embed_q[codes[b][q][t]] → latent [batch, hidden, frames].
  Tensor quantizer_decode(const std::vector<int32_t>& codes, int batch, int n_q, int frames) const;
  // SEANet decoder only: latent [B, hidden, T] → audio [B, 1, T·hop].
  //
  // After the LSTM (which needs the whole sequence, at the frame rate) the decoder is
  // convolutions whose receptive field spans under 2 frames, so it runs in chunks of
  // chunk_frames frames, each with kDecodeHaloFrames of context on both sides whose output is
  // dropped: memory for the audio-rate activations is bounded by the chunk (about 40 MB for
  // musicgen's 32 kHz codec) instead of growing with the duration (470 MB for 30 s), and the
  // result is bitwise the same as one pass over the whole sequence (tests/test_encodec.cpp).
  // chunk_frames <= 0: one pass.
  static constexpr int64_t kDecodeChunkFrames = 256;
  static constexpr int64_t kDecodeHaloFrames = 8;
  Tensor decode_latent(const Tensor& latent, ThreadPool* pool,
                       int64_t chunk_frames = kDecodeChunkFrames) const;

  // The decoder (quantizer_decode + decode_latent) as a backend-neutral description with views
  // of this model's layers (nn/codec_spec.h), for other backends (gpu/vulkan_codec.h). Valid
  // while this model lives.
  CodecDecoderSpec decoder_spec() const;

  // Mono audio [batch][samples] at the codec's sampling rate → codes
  // [batch][num_quantizers][frames], frames = ceil(samples / hop) (nested ceil per stride),
  // written to *frames_out. Throws Error(kInvalidArgument) for empty input.
  std::vector<int32_t> encode(const float* audio, int batch, int64_t samples, ThreadPool* pool,
                              int* frames_out) const;
  // SEANet encoder only: audio [batch][samples] → latent [batch, hidden, frames].
  Tensor encode_latent(const float* audio, int batch, int64_t samples, ThreadPool* pool) const;
  // RVQ encode only: latent [B, hidden, T] → codes [B][num_quantizers][T]. Nearest codebook
  // vector by squared L2 (first index on ties), the residual passed to the next level.
  std::vector<int32_t> quantizer_encode(const Tensor& latent, ThreadPool* pool) const;

 private:
  friend class EncodecStreamDecoder;  // models/encodec_stream.h: the same layers, frame by frame

  struct ResBlock {
    nn::Conv1d conv1;  // block.1: dim → dim/compress, residual_kernel_size, dilation
    nn::Conv1d conv2;  // block.3: dim/compress → dim, kernel 1
  };
  struct EncoderStage {
    std::vector<ResBlock> res;
    nn::Conv1d down;  // after an ELU: dim → 2·dim, kernel 2r, stride r
  };
  struct DecoderStage {
    nn::ConvTranspose1d up;  // after an ELU: dim → dim/2, kernel 2r, stride r
    std::vector<ResBlock> res;
  };

  // x [B, T, dim] → x + conv2(ELU(conv1(ELU(x)))), in time chunks.
  static Tensor res_block(const ResBlock& block, const Tensor& x, ThreadPool* pool);
  // x ← LSTM(x) + x, in place.
  static void lstm_skip(const nn::Lstm& lstm, Tensor& x, ThreadPool* pool);
  // Time-major forward passes: [B, T, hidden] → [B, T·hop, 1] and [B, L, 1] → [B, T, hidden].
  Tensor decoder_forward(Tensor z, ThreadPool* pool, int64_t chunk_frames) const;
  // The convolutions after the LSTM: [B, T, C] at the frame rate → [B, T·hop, 1].
  Tensor decoder_convs(Tensor x, ThreadPool* pool) const;
  Tensor encoder_forward(Tensor audio, ThreadPool* pool) const;
  void check_codes(const std::vector<int32_t>& codes, int batch, int n_q, int frames) const;

  EncodecConfig cfg_;
  int hop_ = 0;

  nn::Conv1d enc_first_;
  std::vector<EncoderStage> enc_stages_;
  nn::Lstm enc_lstm_;
  nn::Conv1d enc_last_;

  nn::Conv1d dec_first_;
  nn::Lstm dec_lstm_;
  std::vector<DecoderStage> dec_stages_;
  nn::Conv1d dec_last_;

  std::vector<std::vector<float>> codebooks_;        // [num_quantizers][codebook_size · dim]
  std::vector<std::vector<float>> codebook_sqnorm_;  // [num_quantizers][codebook_size]
};

}  // namespace musicgen
