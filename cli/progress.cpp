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
  // docs/PERFORMANCE.md, "Results (2026-11-25, the 2-core development machine)": musicgen-small,
  // guidance 3, 500 steps: plain f32 9.04, q8 24.84 decoder steps/s (2.7x), on a 2-core AMD EPYC
  // (Zen 3) with AVX2 and no AVX-512. Its "Re-measured on a quiet machine" (2026-12-04, 2-core
  // AMD EPYC with AVX-512): f32 keeping f16-exact matrices as f16, 1.53x plain f32.
  std::string hint =
      "hint: --weights q8 ran the decoder about 2.7x faster than plain f32 (24.8 vs 9.0 steps/s, "
      "musicgen-small) on a 2-core AVX2 machine";
  if (info.decoder_exact_f16 > 0)
    hint += "; the f16-exact storage this f32 load uses measured 1.53x over plain f32 on a 2-core "
            "AVX-512 machine, so expect less";
  return hint + " (docs/PERFORMANCE.md); accuracy: docs/QUANTIZATION.md";
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
