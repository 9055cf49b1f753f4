// Which tensors take the requested weight type, in one place: the model constructors load their
// Linear layers with these types and `musicgen quantize` writes the same types, so a quantized
// file always matches what loading the checkpoint would build. docs/QUANTIZATION.md explains
// each exception with its measurement.
#pragma once

#include <string>

#include "nn/linear.h"

namespace musicgen {

// Decoder layers' Linear weights (self- and cross-attention, fc1, fc2).
inline WeightStorage decoder_layer_storage(WeightStorage requested) { return requested; }
// The K LM heads.
WeightStorage lm_head_storage(WeightStorage requested);
// The T5 encoder's Linear weights.
WeightStorage t5_storage(WeightStorage requested);

// The storage a checkpoint tensor gets: one of the above for the matrices they cover, kF32 (the
// checkpoint's own float type, converted at load) for everything else: embeddings, norms,
// biases, enc_to_dec_proj, relative attention bias, the whole EnCodec.
WeightStorage tensor_storage(const std::string& name, WeightStorage requested);

}  // namespace musicgen
