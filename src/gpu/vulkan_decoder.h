// The Vulkan decoder backend: a DecoderSpec's weights copied to a GPU once (shared by every
// session of a model), and runners that keep one generation's KV cache and cross-attention K/V in
// device memory. A step (one position for every row) is recorded once as a command buffer and
// replayed: per step the host writes the tokens and the position (a few bytes) and reads back
// the logits [rows, K, V]; nothing else crosses the bus.
#pragma once

#include <memory>
#include <string>

#include "gpu/context.h"
#include "nn/decoder_spec.h"

namespace musicgen::gpu {

class VulkanDecoder {
 public:
  // Uploads the spec's weights (in their stored types). The spec's Linear/Norm views must stay
  // valid only during construction.
  VulkanDecoder(std::shared_ptr<Context> ctx, const DecoderSpec& spec);
  ~VulkanDecoder();
  VulkanDecoder(const VulkanDecoder&) = delete;
  VulkanDecoder& operator=(const VulkanDecoder&) = delete;

  std::unique_ptr<DecoderRunner> new_runner() const;
  Context& context() const { return *ctx_; }
  size_t weight_bytes() const { return weight_bytes_; }

  struct Impl;

 private:
  std::shared_ptr<Context> ctx_;
  std::unique_ptr<Impl> impl_;
  size_t weight_bytes_ = 0;
};

}  // namespace musicgen::gpu
