// Internal: the definition of Model::Impl (the loaded stages of a model) and the generation
// pipeline shared by Session and Batcher (include/musicgen/batcher.h).
#pragma once

#include <functional>
#include <memory>

#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "generation/generator.h"
#include "models/chroma.h"
#include "models/encodec.h"
#include "models/musicgen_decoder.h"
#include "models/t5_encoder.h"
#include "musicgen/musicgen.h"
#include "tokenizer/t5_tokenizer.h"
#ifdef MUSICGEN_HAVE_VULKAN
#include "gpu/vulkan_codec.h"
#include "gpu/vulkan_decoder.h"
#endif

namespace musicgen {

struct Model::Impl {
  MusicgenConfig config;
  ModelInfo info;
  TensorStore store;
  std::unique_ptr<T5Tokenizer> tokenizer;
  std::unique_ptr<T5Encoder> t5;
  std::unique_ptr<MusicgenDecoder> decoder;
  std::unique_ptr<EncodecModel> codec;
  std::unique_ptr<ChromaExtractor> chroma;  // melody checkpoints
#ifdef MUSICGEN_HAVE_VULKAN
  std::unique_ptr<gpu::VulkanDecoder> gpu_decoder;  // when the decoder runs on a GPU
  std::unique_ptr<gpu::VulkanCodecDecoder> gpu_codec;  // EnCodec decoding there too
#endif
  // EnCodec decoding on the model's device: codes [B][n_q][T] -> audio [B, 1, T * hop].
  Tensor decode_audio(const std::vector<int32_t>& codes, int batch, int n_q, int frames,
                      ThreadPool* pool) const {
#ifdef MUSICGEN_HAVE_VULKAN
    if (gpu_codec) return gpu_codec->decode(codes, batch, n_q, frames);
#endif
    return codec->decode(codes, batch, n_q, frames, pool);
  }
  // Whether the decoder runs on the CPU (MusicgenDecoder::forward_multi can batch it).
  bool cpu_decoder() const {
#ifdef MUSICGEN_HAVE_VULKAN
    if (gpu_decoder) return false;
#endif
    return true;
  }
  // A decoder runner on the model's device, for one generation of a session.
  std::unique_ptr<DecoderRunner> new_runner(ThreadPool* pool) const {
#ifdef MUSICGEN_HAVE_VULKAN
    if (gpu_decoder) return gpu_decoder->new_runner();
#endif
    return std::make_unique<CpuDecoderRunner>(*decoder, pool);
  }
};

// Runs one request's decoder loop somewhere else (the Batcher's shared batch) and returns its
// codes; throws what the loop throws (Error(kCancelled), ...).
using CodeGenHook = std::function<CodeGenResult(const CodeGenRequest&)>;

// Whether a request can join a shared decoder batch: a CPU decoder with cross-attention (not
// melody), no audio prompt, no melody, at most one window (not long-form). Invalid options are
// left to generate_with, which rejects them.
bool batchable(const Model::Impl& m, const GenerationOptions& options);

// Session::generate: validation, defaults, conditioning, the decoder loop, EnCodec. pool runs
// every stage of this call; with `hook` a batchable request's decoder loop runs through it.
GenerationResult generate_with(const Model::Impl& m, const GenerationOptions& options,
                               ThreadPool* pool, const CodeGenHook* hook);

}  // namespace musicgen
