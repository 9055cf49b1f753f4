// The README's library example, as written, in a program of its own: it loads "musicgen-small"
// (from the Hugging Face cache; `musicgen pull small` first) and writes beat.wav.
// scripts/consumer_check.sh checks that the snippet below is README.md's, line for line.
#include <cstdio>

#include "musicgen/musicgen.h"

int main() {
  try {
    // --- README.md, "Library" ---
auto model = musicgen::Model::load("musicgen-small");   // immutable, share it
musicgen::Session session(model, {.threads = 2});       // one per thread
musicgen::GenerationOptions opt;
opt.prompts = {"lo-fi hip hop beat"};
opt.duration_s = 10;
musicgen::GenerationResult r = session.generate(opt);   // r.audio: [batch, channels, samples]
musicgen::write_audio_file("beat.wav", r, 0, musicgen::SampleFormat::kPcm16);
    // ---
    std::printf("wrote beat.wav: %d frames, %lld samples at %d Hz\n", r.frames,
                static_cast<long long>(r.samples), r.sample_rate);
  } catch (const musicgen::Error& e) {
    std::fprintf(stderr, "consumer: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
