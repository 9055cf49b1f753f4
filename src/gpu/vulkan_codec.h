// The Vulkan codec decoder: EnCodec decoding (codes → audio) on a GPU from a backend-neutral
// CodecDecoderSpec (nn/codec_spec.h). The weights are copied to the device once; every decode()
// allocates its own activations, records one command buffer and waits for it:
//
//   RVQ embedding sum → first conv → LSTM (per layer: one input projection for all steps, then
//   one dispatch per step) + skip → ELU → per chunk of chunk_frames frames with halo_frames of
//   context on each side: the up-sampling stages (ELU, transposed conv, residual blocks) and the
//   final ELU + conv, whose kept rows are written straight into the audio.
//
// The audio-rate activations are bounded by the chunk (as on the CPU: EncodecModel::
// decode_latent), so device memory does not grow with the duration; only the frame-rate tensors
// (a few KB per frame) and the audio itself do; per batch item the chunk needs about 110 MB for
// musicgen's 32 kHz codec (256 + 2·8 frames). Results match the CPU's within float rounding
// (relative max error about 5e-7 on the fixtures, tests/test_vulkan_codec.cpp): the same
// summation orders, unfused. Shaders: gpu/shaders/codec_*.comp (README.md there).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "gpu/context.h"
#include "nn/codec_spec.h"

namespace musicgen::gpu {

class VulkanCodecDecoder {
 public:
  // Uploads the spec's weights; the layers the spec points to need to live only during
  // construction.
  VulkanCodecDecoder(std::shared_ptr<Context> ctx, const CodecDecoderSpec& spec);
  ~VulkanCodecDecoder();
  VulkanCodecDecoder(const VulkanCodecDecoder&) = delete;
  VulkanCodecDecoder& operator=(const VulkanCodecDecoder&) = delete;

  // codes [batch][n_q][frames] → audio [batch, 1, frames·hop], as EncodecModel::decode. Uses the
  // first n_q codebooks. Throws Error(kInvalidArgument) for out-of-range codes or sizes (the
  // CPU's messages). chunk_frames: frames per audio-rate chunk (0: the spec's; < 0: one pass).
  // Safe to call from several threads at once (each call has its own device buffers).
  Tensor decode(const std::vector<int32_t>& codes, int batch, int n_q, int frames,
                int64_t chunk_frames = 0) const;

  Context& context() const { return *ctx_; }
  size_t weight_bytes() const { return weight_bytes_; }
  int hop_length() const;

  struct Impl;

 private:
  std::shared_ptr<Context> ctx_;
  std::unique_ptr<Impl> impl_;
  size_t weight_bytes_ = 0;
};

}  // namespace musicgen::gpu
