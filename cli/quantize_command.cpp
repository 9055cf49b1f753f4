#include "quantize_command.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "command_util.h"
#include "musicgen/quantize.h"
#include "output_files.h"

namespace musicgen::cli {

namespace {

void print_help() {
  std::printf(
      "Usage: musicgen quantize --model MODEL --weights TYPE --out FILE [options]\n\n"
      "Converts a MusicGen checkpoint directory into one file whose matrices are already in\n"
      "TYPE, so that loading it maps the file and converts nothing (docs/MODEL_FORMAT.md).\n"
      "Use the file wherever a checkpoint directory goes: musicgen generate --model FILE.\n\n"
      "Options:\n"
      "  -m, --model MODEL     checkpoint directory in the Hugging Face layout, a hub repo id\n"
      "                        org/name[@revision] or a short name (small, ...), downloaded\n"
      "                        into the hub cache when absent (required)\n"
      "  -w, --weights TYPE    q8 (default), q4, bf16 or f32: type of the decoder's and text\n"
      "                        encoder's matrices (docs/QUANTIZATION.md lists what stays float32)\n"
      "  -o, --out FILE        output file (required; --output too), written atomically\n"
      "  -t, --threads N       worker threads (default: all cores); does not change the output\n"
      "  -q, --quiet           no progress output\n"
      "  --version             version, commit, compiler and CPU instruction set\n"
      "  -h, --help            show this help\n\n"
      "Example:\n"
      "  musicgen quantize --model small --weights q8 --out small-q8.mgq\n"
      "  musicgen generate --model small-q8.mgq --prompt \"lo-fi beat\" --duration 10 --output beat.wav\n");
}

}  // namespace

int run_quantize(const std::vector<std::string>& args) {
  std::string model, out, weights = "q8";
  QuantizeOptions opt;
  bool quiet = false;
  try {
    for (ArgReader r(args); r.next();) {
      if (r.is("--help", "-h")) {
        print_help();
        return 0;
      } else if (r.is("--model")) {
        model = r.value();
      } else if (r.is("--out", "--output")) {
        out = r.value();
      } else if (r.is("--weights")) {
        weights = r.weight_type();
      } else if (r.is("--threads")) {
        opt.threads = r.threads();
      } else if (r.is("--quiet", "-q")) {
        quiet = true;
      } else {
        r.unknown();
      }
    }
    if (model.empty()) command_usage("--model DIR is required");
    if (out.empty()) command_usage("--out FILE is required");
    if (out == "-") command_usage("--out must be a file; a quantized model cannot go to stdout");
  } catch (const CommandUsageError& e) {
    std::fprintf(stderr, "musicgen: error: %s (see 'musicgen quantize --help')\n", e.message.c_str());
    return 2;
  }
  opt.weights = parse_weight_type(weights);
  // The same model references as generate: a folder, a repo id or a short name (hub cache).
  model = resolve_model_argument(model, quiet);
  const double t0 = now_seconds();
  const bool tty = ::isatty(STDERR_FILENO);
  if (!quiet)
    opt.progress = [&](int done, int total) {
      if (tty || done == total)
        std::fprintf(stderr, "%stensor %d/%d%s", tty ? "\r" : "", done, total, done == total ? "\n" : "");
    };
  // The output rule (cli/output_files.h): never the source, never a device, written to a
  // temporary beside the target and renamed at the end.
  OutputSet outputs;
  outputs.add(out, "--out");
  outputs.check_not_input(model, "the source model");
  quantize_model(model, outputs.temp_path(0), opt);
  outputs.commit();
  if (!quiet)
    std::fprintf(stderr, "wrote %s (%s weights, %s) in %.1f s\n", out.c_str(), weights.c_str(),
                 human_bytes(static_cast<double>(std::filesystem::file_size(out))).c_str(),
                 now_seconds() - t0);
  return 0;
}

}  // namespace musicgen::cli
