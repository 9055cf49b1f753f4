// config.json + generation_config.json (parse_musicgen_config, the parser the loader and the
// quantized-file reader use). The input is split at the first NUL byte: config.json before it,
// generation_config.json after it (none when there is no NUL). A config that parses then goes
// through the tensor-spec builders of the three models (the codec's layout arithmetic included),
// as Model::load does once the counts passed its check against the checkpoint's tensor count
// (emulated here with a limit of 1024 tensors).
#include <cstring>
#include <string>

#include "format/hf_config.h"
#include "models/encodec.h"
#include "models/musicgen_decoder.h"
#include "models/t5_encoder.h"
#include "musicgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* text = reinterpret_cast<const char*>(data);
  const void* nul = std::memchr(text, '\0', size);
  const size_t split = nul ? static_cast<const char*>(nul) - text : size;
  const std::string config(text, split);
  const std::string generation = nul ? std::string(text + split + 1, size - split - 1) : "";
  try {
    const musicgen::MusicgenConfig c = musicgen::parse_musicgen_config(config, generation, "fuzz");
    // Derived values the engine computes from a config it accepted must be computable.
    volatile int sink = c.audio_encoder.hop_length() + c.audio_encoder.frame_rate() +
                        c.decoder.head_dim();
    (void)sink;
    const int64_t kTensors = 1024;
    const int64_t counts[] = {c.text_encoder.num_layers, c.decoder.num_hidden_layers,
                              c.decoder.num_codebooks, c.audio_encoder.num_residual_layers,
                              c.audio_encoder.num_lstm_layers, c.audio_encoder.num_quantizers,
                              static_cast<int64_t>(c.audio_encoder.upsampling_ratios.size())};
    for (int64_t n : counts)
      if (n > kTensors) return 0;
    musicgen::T5Encoder::tensor_specs(c.text_encoder, "text_encoder.");
    musicgen::MusicgenDecoder::tensor_specs(c.decoder, c.text_encoder.d_model,
                                            c.melody ? c.num_chroma : 0);
    musicgen::EncodecModel::tensor_specs(c.audio_encoder, "audio_encoder.");
  } catch (const musicgen::Error&) {
  }
  return 0;
}
