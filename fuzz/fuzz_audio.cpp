// Audio input (load_audio: libsndfile decoding of WAV, FLAC, OGG, MP3 with our checks: channels,
// rate, length, NaN, truncated WAV), both the whole file and a one-second part, then the channel
// mix and the resampler the engine applies.
#include "audio/audio_reader.h"
#include "fuzz_common.h"
#include "musicgen/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  musicgen::fuzz::MemFile file(data, size);
  try {
    const musicgen::AudioBuffer part = musicgen::load_audio(file.path(), 0.0, 1.0);
    if (part.frames > 48000 * 2) __builtin_trap();  // the part must stay bounded
    musicgen::resample(musicgen::to_channels(part, 1), 32000);
  } catch (const musicgen::Error&) {
  }
  try {
    musicgen::load_audio(file.path());
  } catch (const musicgen::Error&) {
  }
  return 0;
}
