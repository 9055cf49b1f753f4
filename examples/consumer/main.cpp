// The README's library example, as written, in a program of its own.
// Usage: consumer [MODEL] [OUTPUT.wav]  (defaults: musicgen-small, beat.wav)
#include <cstdio>
#include <string>

#include "musicgen/musicgen.h"

int main(int argc, char** argv) {
  const std::string model_ref = argc > 1 ? argv[1] : "musicgen-small";
  const std::string output = argc > 2 ? argv[2] : "beat.wav";
  try {
    // --- README.md, "Library" ---
    auto model = musicgen::Model::load(model_ref);          // immutable, share it
    musicgen::Session session(model, {.threads = 2});       // one per thread
    musicgen::GenerationOptions opt;
    opt.prompts = {"lo-fi hip hop beat"};
    opt.duration_s = 10;
    musicgen::GenerationResult r = session.generate(opt);   // r.audio: [batch, channels, samples]
    musicgen::write_audio_file(output, r, 0, musicgen::SampleFormat::kPcm16);
    // ---
    std::printf("wrote %s: %d frames, %lld samples at %d Hz\n", output.c_str(), r.frames,
                static_cast<long long>(r.samples), r.sample_rate);
  } catch (const musicgen::Error& e) {
    std::fprintf(stderr, "consumer: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
