#include "progress.h"

#include <algorithm>
#include <cmath>

#include "command_util.h"

namespace musicgen::cli {

std::string load_line(const std::string& model_name, const ModelInfo& info, double load_s) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), "loaded %s (%s weights, %s) in %.2f s: %d layers, hidden %d, %d codebooks, %s",
                model_name.c_str(), info.weights.c_str(), info.device.c_str(), load_s,
                info.num_layers, info.hidden_size, info.num_codebooks,
                info.audio_channels == 2 ? "stereo" : "mono");
  std::string line = buf;
  if (info.decoder_exact_f16 > 0)
    line += ", " + std::to_string(info.decoder_exact_f16) + "/" +
            std::to_string(info.decoder_matrices) + " decoder matrices exact in f16, kept as f16";
  if (info.kv_cache == "q8") line += ", q8 KV cache";
  return line;
}

std::string faster_weights_hint(const ModelInfo& info) {
  if (info.weights != "f32" || info.device != "cpu") return "";
  // docs/PERFORMANCE.md, "CPU: L2 prefetch, fused regions, the q8 KV cache (2026-12-05)":
  // musicgen-small, guidance 3, 200 steps, 2 threads on a 2-core AMD EPYC (Zen 4, AVX-512):
  // plain f32 21.04, f32 with f16-exact matrices kept as f16 38.65, q8 66.62 decoder steps/s.
  std::string hint;
  if (info.decoder_exact_f16 > 0)
    hint = "hint: --weights q8 ran the decoder about 1.7x faster than this f32 load (66.6 vs 38.7 "
           "steps/s, musicgen-small, f16-exact matrices kept as f16)";
  else
    hint = "hint: --weights q8 ran the decoder about 3.2x faster than plain f32 (66.6 vs 21.0 "
           "steps/s, musicgen-small)";
  return hint + " on a 2-core AVX-512 machine (docs/PERFORMANCE.md); accuracy: "
                "docs/QUANTIZATION.md";
}

GenerationProgress::GenerationProgress(double audio_s, bool terminal, std::FILE* out,
                                       double interval_s)
    : audio_s_(audio_s), terminal_(terminal), out_(out), interval_s_(interval_s) {}

bool GenerationProgress::update(int step, int total) {
  const double now = now_seconds();
  if (!started_) {
    started_ = true;
    start_ = now;
    first_step_ = step;
    print(step, total, now, step >= total);
    return true;
  }
  const bool final = step >= total;
  const double interval = terminal_ ? 0.1 : interval_s_;
  if (final || now - last_print_ >= interval) print(step, total, now, final);
  return true;
}

void GenerationProgress::print(int step, int total, double now, bool final) {
  last_print_ = now;
  const double frac = total > 0 ? std::clamp(static_cast<double>(step) / total, 0.0, 1.0) : 1.0;
  const double done_s = audio_s_ * frac;
  // The rate is known once a few steps after the first one took measurable time.
  std::string eta;
  const int steps_done = step - first_step_;
  const double elapsed = now - start_;
  if (!final && steps_done >= 2 && elapsed > 0.2) {
    const double rate = steps_done / elapsed;
    const double left = (total - step) / rate;
    char b[48];
    if (left >= 60)
      std::snprintf(b, sizeof(b), "ETA %dm%02ds", static_cast<int>(left) / 60,
                    static_cast<int>(left) % 60);
    else
      std::snprintf(b, sizeof(b), "ETA %.0f s", std::ceil(left));
    eta = b;
  }
  if (terminal_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kWidth - filled), '.');
    std::fprintf(out_, "\r[%s] %5.1f/%.1f s of audio %3.0f%%  %-12s", bar.c_str(), done_s,
                 audio_s_, 100 * frac, final ? "" : eta.c_str());
    if (final) std::fprintf(out_, "\n");
  } else if (final) {
    std::fprintf(out_, "generated %.1f s of audio in %.1f s\n", audio_s_, elapsed);
  } else {
    std::fprintf(out_, "generating: %.1f of %.1f s of audio (%.0f%%)%s%s\n", done_s, audio_s_,
                 100 * frac, eta.empty() ? "" : ", ", eta.c_str());
  }
  std::fflush(out_);
}

}  // namespace musicgen::cli
