// What `musicgen generate` tells the user while it works: the load line, the hint about faster
// weight types, and generation progress in seconds of audio.
#pragma once

#include <cstdio>
#include <string>

#include "musicgen/musicgen.h"

namespace musicgen::cli {

// "loaded facebook/musicgen-small (f32 weights, cpu) in 0.84 s: 24 layers, hidden 1024, ..."
std::string load_line(const std::string& model_name, const ModelInfo& info, double load_s);

// With f32 weights on the CPU: one line saying how much faster --weights q8 decodes, from the
// measured table of docs/PERFORMANCE.md (and on which machine); "" otherwise.
std::string faster_weights_hint(const ModelInfo& info);

// Generation progress for ProgressCallback. On a terminal: one bar redrawn in place ("\r") at most
// 10 times a second, in seconds of audio, with percent and, once a rate is measured, the ETA. On
// anything else: a plain line (no "\r") when generation starts, every `interval_s` seconds and at
// the end.
class GenerationProgress {
 public:
  // audio_s: seconds of audio the whole run produces (for the display); terminal: draw a bar.
  GenerationProgress(double audio_s, bool terminal, std::FILE* out = stderr,
                     double interval_s = 5.0);
  // For GenerationOptions::progress; always returns true.
  bool update(int step, int total_steps);

 private:
  void print(int step, int total, double now, bool final);

  double audio_s_;
  bool terminal_;
  std::FILE* out_;
  double interval_s_;
  double start_ = 0, last_print_ = -1;
  int first_step_ = 0;
  bool started_ = false;
};

}  // namespace musicgen::cli
