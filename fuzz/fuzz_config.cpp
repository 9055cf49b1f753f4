// config.json + generation_config.json (parse_musicgen_config, the parser the loader and the
// quantized-file reader use). The input is split at the first NUL byte: config.json before it,
// generation_config.json after it (none when there is no NUL).
#include <cstring>
#include <string>

#include "format/hf_config.h"
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
  } catch (const musicgen::Error&) {
  }
  return 0;
}
