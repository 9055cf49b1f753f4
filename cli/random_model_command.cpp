#include "random_model_command.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>

#include "command_util.h"
#include "musicgen/tools.h"

namespace musicgen::cli {

namespace {

void print_help() {
  std::printf(
      "Usage: musicgen make-random-model --shape SHAPE --out DIR [options]\n\n"
      "Writes a MusicGen checkpoint in the Hugging Face layout (config.json,\n"
      "generation_config.json, model.safetensors, spiece.model) with the official tensor names\n"
      "and shapes of SHAPE and random values, for benchmarks and smoke tests without downloads.\n"
      "The music it makes is noise. The tokenizer is a small SentencePiece model (T5 ids: pad 0,\n"
      "eos 1, unk 2), not t5-base's.\n\n"
      "Options:\n"
      "  --shape SHAPE     checkpoint shape (required), one of:\n");
  for (const RandomModelShape& s : random_model_shapes())
    std::printf("                      %-20s %s\n", s.name.c_str(), s.description.c_str());
  std::printf(
      "  --out DIR         output directory (required); written to a temporary directory next to\n"
      "                    it and renamed, so DIR is complete or absent\n"
      "  --seed S          random seed (default 0); same seed and options: identical bytes\n"
      "  --dtype T         storage type f32 (default), f16 or bf16\n"
      "  --format F        safetensors (default: model.safetensors) or bin (pytorch_model.bin,\n"
      "                    torch.save's zip format, as facebook/musicgen-medium publishes it)\n"
      "  --no-f16-exact    with f32: draw full float32 decoder values (default: rounded to\n"
      "                    f16 values, as the official checkpoints' decoder weights are)\n"
      "  --shards N        N files and an index (as facebook/musicgen-large: --format bin\n"
      "                    --shards 2); default 1\n"
      "  --heavy-tails     scale 1%% of each matrix's input columns x20 (outlier channels, for\n"
      "                    honest quantization error measurements)\n"
      "  --force           replace DIR if it exists\n"
      "  --threads N       worker threads (default: all cores); does not change the output\n"
      "  --quiet           no progress output\n"
      "  --help, -h        show this help\n\n"
      "Sizes are of f32 storage; --dtype bf16 or f16 halves them.\n\n"
      "Example:\n"
      "  musicgen make-random-model --shape small --out models/random-small\n"
      "  musicgen generate --model models/random-small --prompt \"lo-fi beat\" --duration 5 "
      "--output noise.wav\n");
}

}  // namespace

int run_make_random_model(const std::vector<std::string>& args) {
  RandomModelOptions opt;
  opt.shape.clear();
  bool quiet = false;
  try {
    for (ArgReader r(args); r.next();) {
      if (r.is("--help", "-h")) {
        print_help();
        return 0;
      } else if (r.is("--shape")) {
        opt.shape = r.value();
      } else if (r.is("--out", "-o")) {
        opt.out_dir = r.value();
      } else if (r.is("--seed")) {
        opt.seed = static_cast<uint64_t>(r.integer_in(0, std::numeric_limits<long long>::max()));
      } else if (r.is("--dtype")) {
        opt.dtype = r.value();
        if (opt.dtype != "f32" && opt.dtype != "f16" && opt.dtype != "bf16")
          command_usage("--dtype must be f32, f16 or bf16, got '" + opt.dtype + "'");
      } else if (r.is("--format")) {
        opt.format = r.value();
        if (opt.format != "safetensors" && opt.format != "bin")
          command_usage("--format must be safetensors or bin, got '" + opt.format + "'");
      } else if (r.is("--no-f16-exact")) {
        opt.f16_exact_decoder = false;
      } else if (r.is("--shards")) {
        opt.shards = static_cast<int>(r.integer_in(1, 99));
      } else if (r.is("--heavy-tails")) {
        opt.heavy_tails = true;
      } else if (r.is("--force")) {
        opt.overwrite = true;
      } else if (r.is("--threads")) {
        opt.threads = r.threads();
      } else if (r.is("--quiet", "-q")) {
        quiet = true;
      } else {
        r.unknown();
      }
    }
    if (opt.shape.empty()) command_usage("--shape is required (see --help for the shapes)");
    bool known = false;
    std::string names;
    for (const RandomModelShape& s : random_model_shapes()) {
      known = known || s.name == opt.shape;
      names += (names.empty() ? "" : ", ") + s.name;
    }
    if (!known) command_usage("unknown --shape '" + opt.shape + "'; choose one of " + names);
    if (opt.out_dir.empty()) command_usage("--out DIR is required");
  } catch (const CommandUsageError& e) {
    std::fprintf(stderr, "musicgen: error: %s (see 'musicgen make-random-model --help')\n",
                 e.message.c_str());
    return 2;
  }

  const double t0 = now_seconds();
  const bool tty = ::isatty(STDERR_FILENO);
  double last = t0;
  bool started = false;
  if (!quiet) {
    // The first line waits for the first chunk, so option errors stay the only output.
    opt.progress = [&](uint64_t done, uint64_t total) {
      const double now = now_seconds();
      if (!started) {
        started = true;
        std::fprintf(stderr, "writing %s (shape %s, %s, seed %llu%s): %s\n", opt.out_dir.c_str(),
                     opt.shape.c_str(), opt.dtype.c_str(),
                     static_cast<unsigned long long>(opt.seed),
                     opt.heavy_tails ? ", heavy tails" : "",
                     human_bytes(static_cast<double>(random_model_bytes(opt))).c_str());
      }
      if (done < total && now - last < (tty ? 0.5 : 10.0)) return;
      last = now;
      std::fprintf(stderr, "%s%5.1f%%  %s / %s  %.0f MiB/s%s", tty ? "\r" : "",
                   100.0 * static_cast<double>(done) / static_cast<double>(total),
                   human_bytes(static_cast<double>(done)).c_str(),
                   human_bytes(static_cast<double>(total)).c_str(),
                   static_cast<double>(done) / (1 << 20) / std::max(1e-9, now - t0),
                   tty && done < total ? "   " : "\n");
    };
  }
  make_random_model(opt);
  if (!quiet) std::fprintf(stderr, "wrote %s in %.1f s\n", opt.out_dir.c_str(), now_seconds() - t0);
  return 0;
}

}  // namespace musicgen::cli
