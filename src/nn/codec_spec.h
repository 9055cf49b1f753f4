// The seam between the audio codec's decoder and the backends that run it (like
// nn/decoder_spec.h for the transformer decoder).
//
// A model describes its codec decoder (codes → audio) as a CodecDecoderSpec: the residual vector
// quantizer's codebooks, then a SEANet decoder built from the layers of nn/conv.h and nn/lstm.h:
//
//   z   = Σ_q codebook_q[codes_q]                       (frame rate, [B, T, hidden])
//   x   = first(z);  x = LSTM(x) + x                    (frame rate)
//   per stage: x = up(ELU(x)); per res block: x = x + conv2(ELU(conv1(ELU(x))))
//   audio = last(ELU(x))                                 ([B, T·hop, 1])
//
// Every convolution pads (reflect) and trims exactly as nn::Conv1d / nn::ConvTranspose1d do.
// After the LSTM the layers' receptive field spans under 2 frames, so a backend may run them in
// chunks of chunk_frames frames with halo_frames of context on each side (dropped), which gives
// the one-pass result (EncodecModel::decode_latent does the same on the CPU).
//
// The spec holds views: the layers it points to must outlive the backend's construction only
// (a backend copies the weights it needs).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "nn/conv.h"
#include "nn/lstm.h"

namespace musicgen {

// x + conv2(ELU(conv1(ELU(x)))); conv2 has kernel 1.
struct CodecResBlockSpec {
  const nn::Conv1d* conv1 = nullptr;
  const nn::Conv1d* conv2 = nullptr;
};

// up(ELU(x)), then the residual blocks in order.
struct CodecUpStageSpec {
  const nn::ConvTranspose1d* up = nullptr;
  std::vector<CodecResBlockSpec> res;
};

struct CodecDecoderSpec {
  int hidden = 0;                      // latent (codebook) width
  int hop = 0;                         // audio samples per frame (product of the up strides)
  int codebook_size = 0;               // valid codes are [0, codebook_size)
  std::vector<ConstTensor> codebooks;  // num_quantizers x [codebook_size, hidden]
  const nn::Conv1d* first = nullptr;   // hidden → C
  const nn::Lstm* lstm = nullptr;      // C → C, with the skip (x + LSTM(x))
  std::vector<CodecUpStageSpec> stages;
  const nn::Conv1d* last = nullptr;  // after an ELU: → 1 channel
  int64_t chunk_frames = 256;        // <= 0: one pass
  int64_t halo_frames = 8;
};

}  // namespace musicgen
