// Whole greedy generations checked against the transformers goldens of the committed fixtures,
// through the public API on a chosen device ("cpu", "vulkan"): shared by the CPU suites
// (test_parity, test_modes) and the Vulkan suite (test_vulkan), so every device is held to the
// same reference.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/tensor.h"
#include "musicgen/musicgen.h"

namespace musicgen::testing {

// tests/fixtures/<name>/golden.json
nlohmann::json golden_json(const std::string& fixture);

// A run of golden.json "runs" (test_modes): audio continuation, stereo, melody.
struct ModeRun {
  std::string fixture, run;
  bool audio_prompt = false;
  bool melody = false;
};
void check_mode_run(const ModeRun& c, const std::string& device);

// The text runs of tiny-a / tiny-b (test_parity).
struct TextRun {
  std::string name;
  bool batch_prompts;  // both prompts, else only the first
  bool unconditional;
  float guidance;
};
void check_text_run(const std::string& fixture, const TextRun& run, const std::string& device);

// Item b of a golden [B, C, L] waveform, without its left padding.
AudioData golden_audio(const ConstTensor& t, int b, int64_t pad);

}  // namespace musicgen::testing
