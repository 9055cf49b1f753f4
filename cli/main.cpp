// The `musicgen` command. Uses only the public API (include/musicgen/).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>
#include <chrono>

#include "audio_output.h"
#include "bench_command.h"
#include "command_util.h"
#include "hub_commands.h"
#include "musicgen/hub.h"
#include "musicgen/musicgen.h"
#include "musicgen/quantize.h"
#include "output_files.h"
#include "progress.h"
#include "quantize_command.h"
#include "random_model_command.h"
#include "serve_command.h"

namespace fs = std::filesystem;
using musicgen::Error;
using musicgen::ErrorCode;
using musicgen::cli::ArgReader;
using musicgen::cli::CommandUsageError;
using musicgen::cli::VersionRequested;
using musicgen::cli::command_usage;

namespace {

constexpr const char* kVersion = "0.1.0";
constexpr long long kMaxInt = std::numeric_limits<int>::max();

void print_main_help() {
  std::printf(
      "musicgen %s - MusicGen text-to-music inference on the CPU\n\n"
      "Usage: musicgen <command> [options]\n\n"
      "Commands:\n"
      "  generate            generate music from text prompts or unconditionally\n"
      "  bench               measure speed, real-time factors and memory of a checkpoint\n"
      "  make-random-model   write a checkpoint with official shapes and random weights\n"
      "  quantize            convert a checkpoint into one quantized file (q8, q4, bf16)\n"
      "  pull                download a model from the Hugging Face Hub into the shared cache\n"
      "  list                list the models in the cache (revisions, sizes)\n"
      "  info                describe a model: architecture, parameters, memory per weight type\n"
      "  devices             list the GPUs (Vulkan adapters) --device can name\n"
      "  serve               serve models over HTTP: an API and a web page (docs/SERVER.md)\n\n"
      "Run 'musicgen <command> --help' for the options of a command. Every command takes\n"
      "--opt=value as well as --opt value, the short flags -m -p -o -d -s -t -w for --model,\n"
      "--prompt, --output, --duration, --seed, --threads and --weights where it has them, and\n"
      "--version.\n\n"
      "Options:\n"
      "  --help, -h      show this help\n"
      "  --version       print the version, git commit, compiler and the CPU instruction set\n",
      kVersion);
}

void print_generate_help() {
  std::printf(
      "Usage: musicgen generate --model MODEL [--prompt TEXT]... --output FILE.wav [options]\n\n"
      "Generates music with a MusicGen checkpoint in the Hugging Face layout (config.json,\n"
      "generation_config.json, model.safetensors, spiece.model). Without --prompt the music is\n"
      "unconditional. Several --prompt options make a batch: one file per prompt.\n\n"
      "Options:\n"
      "  -m, --model MODEL       a checkpoint directory, a `musicgen quantize` file, a hub repo id\n"
      "                          org/name[@revision], or a short name (small, medium, large,\n"
      "                          melody, stereo-small, ...); hub models are downloaded once into\n"
      "                          the shared cache (required)\n"
      "  -w, --weights TYPE      f32 (default), bf16, q8 or q4: matrices converted at load\n"
      "                          (docs/QUANTIZATION.md); a quantized file keeps its own type\n"
      "  --device DEV            where the decoder runs: cpu (default), vulkan (first discrete\n"
      "                          GPU), vulkan:N (musicgen devices lists them) or auto (a discrete\n"
      "                          GPU when present, else the CPU)\n"
      "  --no-exact-f16          with f32: keep float32 matrices whose values are all exact in\n"
      "                          f16 as float32 (default: as f16, same results, half the bytes)\n"
      "  --kv-cache auto|q8      the decoder's attention cache: auto (float32 with f32 weights,\n"
      "                          f16 otherwise) or q8 (int8, half the bytes of f16, faster for\n"
      "                          long songs at a small measured error: docs/QUANTIZATION.md; CPU)\n"
      "  -p, --prompt TEXT       a text prompt; repeat for a batch (default: unconditional)\n"
      "  --samples N             batch size of an unconditional run (default 1)\n"
      "  -o, --output FILE       output file (required): .wav, .flac, .ogg (Vorbis), .opus (48 kHz)\n"
      "                          or .mp3 (320 kb/s); '-' writes a WAV stream to standard output.\n"
      "                          A batch writes FILE_0.wav, FILE_1.wav, ...\n"
      "  -d, --duration SECONDS  total length of the output, audio prompt included (default:\n"
      "                          generation_config.json's max_length, 1500 steps = 29.92 s for the\n"
      "                          official checkpoints); beyond 30 s a sliding window continues the\n"
      "                          music (audiocraft's long-form algorithm)\n"
      "  --max-new-tokens N      length in decoder steps after the prompt, as Hugging Face counts\n"
      "                          them (without a prompt N steps give N-3 frames of 20 ms); excludes\n"
      "                          --duration\n"
      "  --extend-stride S       long-form: seconds each new 30 s window advances (default 18)\n"
      "  --audio-prompt FILE     continue this audio (WAV, FLAC, OGG, MP3; any rate, mixed or\n"
      "                          duplicated to the model's channels); repeat for a batch, one per\n"
      "                          --prompt, or give one for all. The output starts with the prompt\n"
      "  --prompt-start S        use the audio prompt from S seconds (default 0)\n"
      "  --prompt-duration S     use S seconds of the audio prompt (default: to its end)\n"
      "  --melody FILE           melody checkpoints: follow this melody's chroma; repeat for a\n"
      "                          batch or give one for all (default: no melody)\n"
      "  --guidance G            classifier-free guidance scale, >= 1; 1 disables it\n"
      "                          (default: generation_config.json, 3.0 for official checkpoints)\n"
      "  --top-k K               sample among the K most likely codes, K >= 1 (default 50)\n"
      "  --top-p P               nucleus sampling mass in (0, 1] (default 1 = off)\n"
      "  --temperature T         sampling temperature > 0 (default 1.0)\n"
      "  --greedy                always take the most likely code (no sampling); excludes\n"
      "                          --top-k, --top-p and --temperature\n"
      "  -s, --seed S            random seed (default: a random one, printed and stored in the\n"
      "                          file's tags); the same seed gives the same music\n"
      "  -t, --threads N         worker threads (default: all cores); does not change results\n"
      "  --format F              wav, flac, ogg, opus or mp3, whatever the extension (default: from\n"
      "                          the extension; WAV for '-')\n"
      "  --normalize N           peak (default: largest sample at -1 dBFS), loudness (-14 LUFS),\n"
      "                          rms (-18 dB RMS), clip (clamp at -1 dBFS) or none: audiocraft's\n"
      "                          audio_write strategies; f32 output is normalised the same way\n"
      "  --sample-format F       WAV samples: pcm16 (default) or f32\n"
      "  --codes-out FILE.json   also write the generated codes as {\"codes\": [batch][codebook][frame]}\n"
      "                          with the prompts, seed, model and the other tags of the audio\n"
      "  --progress              show progress (the default): a bar in seconds of audio with\n"
      "                          percent and ETA on a terminal, else a plain line every 5 s;\n"
      "                          also forces the download bar of a hub model\n"
      "  --no-progress           no progress bar or lines (the load line and summary stay)\n"
      "  --quiet, -q             nothing on stderr but errors\n"
      "  --version               version, commit, compiler and CPU instruction set\n"
      "  --help, -h              show this help\n\n"
      "Examples:\n"
      "  musicgen generate --model small --prompt \"lo-fi hip hop beat\" \\\n"
      "      --duration 10 --output beat.wav\n"
      "  musicgen generate --model small --prompt \"jazz trio\" \\\n"
      "      --prompt \"epic orchestral\" --duration 5 --output batch.wav   # batch_0.wav, batch_1.wav\n"
      "  musicgen generate --model small --duration 8 --output free.wav  # unconditional\n"
      "  musicgen generate --model small --audio-prompt intro.wav --prompt-duration 5 \\\n"
      "      --prompt \"funky bass\" --duration 15 --output more.wav          # continue 5 s of intro.wav\n"
      "  musicgen generate --model stereo-small --prompt \"ambient pads\" \\\n"
      "      --duration 10 --output pads.wav                                 # a stereo checkpoint\n"
      "  musicgen generate --model melody --melody tune.mp3 --prompt \"8-bit\" \\\n"
      "      --duration 10 --output chiptune.wav                             # melody conditioning\n"
      "  musicgen generate --model small --prompt \"slow blues\" --duration 75 \\\n"
      "      --output long.wav                                               # longer than 30 s\n");
}


std::string item_path(const std::string& output, int index, int batch) {
  if (batch == 1) return output;
  const fs::path p(output);
  const std::string stem = p.stem().string() + "_" + std::to_string(index);
  return (p.parent_path() / (stem + p.extension().string())).string();
}

// Writes the codes to `path` (a temporary of the OutputSet, renamed by its commit).
// The take's fields (prompts, seed, model, ...) follow the codes, as the audio files' tags hold them.
void write_codes_json(const std::string& path, const musicgen::GenerationResult& r,
                      const std::vector<std::string>& prompts, const musicgen::cli::TakeInfo& take) {
  std::ofstream out(path);
  if (!out) throw Error(ErrorCode::kIo, "cannot write '" + path + "'");
  out << "{\"codes\": [";
  for (int b = 0; b < r.batch; ++b) {
    out << (b ? ", [" : "[");
    for (int k = 0; k < r.num_codebooks; ++k) {
      out << (k ? ", [" : "[");
      for (int t = 0; t < r.frames; ++t)
        out << (t ? ", " : "") << r.codes[(static_cast<size_t>(b) * r.num_codebooks + k) * r.frames + t];
      out << "]";
    }
    out << "]";
  }
  out << "]";
  auto meta = musicgen::cli::take_metadata(take, "", static_cast<double>(r.samples) / r.sample_rate);
  meta.erase("prompt");
  out << ", \"prompts\": " << nlohmann::json(prompts).dump();
  for (const auto& [key, value] : meta.items()) out << ", " << nlohmann::json(key).dump() << ": " << value.dump();
  out << "}\n";
  out.close();
  if (!out) throw Error(ErrorCode::kIo, "writing the codes to '" + path + "' failed (disk full?)");
}

int cmd_generate(const std::vector<std::string>& args) {
  std::string model_dir, output, codes_out, sample_format = "pcm16", audio_format, normalize = "peak";
  std::optional<uint64_t> seed;
  musicgen::GenerationOptions opt;
  musicgen::LoadOptions load_options;
  int threads = 0;
  bool quiet = false;
  std::optional<bool> show_progress;  // --progress / --no-progress
  std::vector<std::string> sampling_flags;  // given with --greedy: a contradiction
  std::optional<int> samples;
  std::vector<std::string> audio_prompt_paths, melody_paths;
  double prompt_start = 0.0;
  std::optional<double> prompt_duration;
  for (ArgReader r(args); r.next();) {
    if (r.is("--help", "-h")) {
      print_generate_help();
      return 0;
    } else if (r.is("--model")) model_dir = r.value();
    else if (r.is("--weights")) load_options.weights = musicgen::parse_weight_type(r.weight_type());
    else if (r.is("--device")) load_options.device = r.value();
    else if (r.is("--no-exact-f16")) load_options.exact_f16 = false;
    else if (r.is("--kv-cache")) load_options.kv_cache = r.kv_cache();
    else if (r.is("--prompt")) opt.prompts.push_back(r.value());
    else if (r.is("--output", "-o")) output = r.value();
    else if (r.is("--duration")) opt.duration_s = r.number();
    else if (r.is("--max-new-tokens")) opt.max_new_tokens = static_cast<int>(r.integer_in(1, kMaxInt));
    else if (r.is("--guidance")) opt.guidance_scale = static_cast<float>(r.number());
    else if (r.is("--top-k")) {
      sampling_flags.push_back(r.flag());
      opt.top_k = static_cast<int>(r.integer_in(1, kMaxInt));
    } else if (r.is("--top-p")) {
      sampling_flags.push_back(r.flag());
      opt.top_p = static_cast<float>(r.number());
    } else if (r.is("--temperature")) {
      sampling_flags.push_back(r.flag());
      opt.temperature = static_cast<float>(r.number());
    }
    else if (r.is("--seed")) seed = static_cast<uint64_t>(r.integer_in(0, std::numeric_limits<long long>::max()));
    else if (r.is("--greedy")) opt.greedy = true;
    else if (r.is("--threads")) threads = r.threads();
    else if (r.is("--samples")) samples = static_cast<int>(r.integer_in(1, 64));
    else if (r.is("--sample-format")) sample_format = r.value();
    else if (r.is("--format")) audio_format = r.value();
    else if (r.is("--normalize")) normalize = r.value();
    else if (r.is("--codes-out")) codes_out = r.value();
    else if (r.is("--audio-prompt")) audio_prompt_paths.push_back(r.value());
    else if (r.is("--prompt-start")) prompt_start = r.number();
    else if (r.is("--prompt-duration")) prompt_duration = r.number();
    else if (r.is("--melody")) melody_paths.push_back(r.value());
    else if (r.is("--extend-stride")) opt.extend_stride_s = r.number();
    else if (r.is("--quiet", "-q")) quiet = true;
    else if (r.is("--progress")) show_progress = true;
    else if (r.is("--no-progress")) show_progress = false;
    else r.unknown();
  }
  if (opt.greedy.value_or(false) && !sampling_flags.empty())
    command_usage("--greedy always takes the most likely code, so " + sampling_flags.front() +
                  " would be ignored; give either --greedy or the sampling options");
  if (model_dir.empty()) command_usage("--model MODEL is required");
  if (output.empty()) command_usage("--output FILE.wav is required");
  if (samples && !opt.prompts.empty()) command_usage("--samples applies to unconditional runs; give no --prompt");
  if (samples) opt.unconditional_samples = *samples;
  if (opt.duration_s && opt.max_new_tokens) command_usage("give either --duration or --max-new-tokens, not both");
  if (opt.duration_s && *opt.duration_s <= 0) command_usage("--duration must be positive, got " + std::to_string(*opt.duration_s));
  if (opt.top_k && *opt.top_k < 1) command_usage("--top-k must be >= 1, got " + std::to_string(*opt.top_k));
  if (opt.top_p && !(*opt.top_p > 0 && *opt.top_p <= 1)) command_usage("--top-p must be in (0, 1]");
  if (opt.temperature && *opt.temperature <= 0) command_usage("--temperature must be > 0");
  if (opt.guidance_scale && *opt.guidance_scale < 1) command_usage("--guidance must be >= 1 (1 disables guidance)");
  if (prompt_start < 0) command_usage("--prompt-start must be >= 0");
  if (prompt_duration && *prompt_duration <= 0) command_usage("--prompt-duration must be positive");
  if ((prompt_start > 0 || prompt_duration) && audio_prompt_paths.empty())
    command_usage("--prompt-start and --prompt-duration need --audio-prompt");
  if (opt.extend_stride_s <= 0 || opt.extend_stride_s >= 30)
    command_usage("--extend-stride must be between 0 and 30 seconds (exclusive)");
  if (!opt.prompts.empty() && audio_prompt_paths.size() > 1 && audio_prompt_paths.size() != opt.prompts.size())
    command_usage("give one --audio-prompt per --prompt, or a single one for all");
  if (samples && !audio_prompt_paths.empty()) command_usage("--samples cannot be combined with --audio-prompt");

  const int batch = !opt.prompts.empty() ? static_cast<int>(opt.prompts.size())
                    : audio_prompt_paths.size() > 1 ? static_cast<int>(audio_prompt_paths.size())
                                                    : opt.unconditional_samples;
  // Every output is checked before any work (docs/SECURITY.md, cli/output_files.h).
  if (output == "-" && batch > 1)
    command_usage("--output - writes one audio stream to stdout; a batch of " +
                  std::to_string(batch) + " needs a file name");
  musicgen::cli::OutputSet outputs;
  for (int b = 0; b < batch; ++b) outputs.add(item_path(output, b, batch), "--output");
  const size_t codes_index = codes_out.empty() ? 0 : outputs.add(codes_out, "--codes-out");
  for (const auto& p : audio_prompt_paths) outputs.check_not_input(p, "the audio prompt");
  for (const auto& p : melody_paths) outputs.check_not_input(p, "the melody");
  if (fs::exists(model_dir)) outputs.check_not_input(model_dir, "a model");
  // Output format, normalisation and seed (cli/audio_output.h), checked before any work.
  musicgen::AudioWriteOptions write_options =
      musicgen::cli::audio_write_options(output, audio_format, normalize, sample_format);
  opt.seed = seed ? *seed : musicgen::cli::random_seed();

  // Read the audio inputs before loading the model: a bad file fails fast.
  for (const auto& p : audio_prompt_paths)
    opt.audio_prompts.push_back(musicgen::load_audio_file(p, prompt_start, prompt_duration));
  for (const auto& p : melody_paths) opt.melodies.push_back(musicgen::load_audio_file(p));

  const std::string model_ref = model_dir;
  musicgen::ResolveOptions resolve_options;  // a directory as is; hub models via the cache
  if (quiet || show_progress == false) resolve_options.progress = musicgen::ProgressDisplay::kNever;
  else if (show_progress == true) resolve_options.progress = musicgen::ProgressDisplay::kAlways;
  if (!fs::is_regular_file(model_dir))  // a file is a `musicgen quantize` output: load it as is
    model_dir = musicgen::resolve_model(model_dir, resolve_options);
  outputs.check_not_input(model_dir, "a model");
  const double t0 = musicgen::cli::now_seconds();
  load_options.threads = threads;
  auto model = musicgen::Model::load(model_dir, load_options);
  const double load_s = musicgen::cli::now_seconds() - t0;
  const musicgen::ModelInfo& info = model->info();
  if (!quiet) {
    std::fprintf(stderr, "%s\n",
                 musicgen::cli::load_line(musicgen::cli::model_display_name(model_ref, model_dir),
                                          info, load_s)
                     .c_str());
    if (const std::string hint = musicgen::cli::faster_weights_hint(info); !hint.empty())
      std::fprintf(stderr, "%s\n", hint.c_str());
  }
  musicgen::Session session(model, {.threads = threads});
  const musicgen::cli::TakeInfo take = musicgen::cli::take_info(
      model_ref, model_dir, load_options.weights, opt.seed, std::string("musicgen.cpp ") + kVersion);
  if (!quiet) std::fprintf(stderr, "seed: %llu\n", static_cast<unsigned long long>(opt.seed));
  const double gen_start = musicgen::cli::now_seconds();
  // Seconds of audio this run writes, for the progress display (the exact figure comes at the end).
  double audio_total_s = 0;
  if (opt.duration_s) {
    audio_total_s = *opt.duration_s;
  } else if (info.frame_rate > 0) {
    const int frames = opt.max_new_tokens ? *opt.max_new_tokens - (info.num_codebooks - 1)
                                          : info.default_max_length - info.num_codebooks;
    audio_total_s = std::max(0, frames) / static_cast<double>(info.frame_rate);
  }
  std::optional<musicgen::cli::GenerationProgress> progress;
  if (!quiet && show_progress != false) {
    progress.emplace(audio_total_s, ::isatty(STDERR_FILENO) != 0);
    opt.progress = [&](int step, int total) { return progress->update(step, total); };
  }
  musicgen::GenerationResult r = session.generate(opt);
  const double total_s = musicgen::cli::now_seconds() - gen_start;

  // Temporaries first; they replace the targets together only when all are written.
  if (r.batch != batch)
    throw Error(ErrorCode::kInvalidArgument, "the model returned " + std::to_string(r.batch) +
                                                 " items for a batch of " + std::to_string(batch));
  std::vector<std::string> written;
  for (int b = 0; b < r.batch; ++b) {
    const std::string prompt = b < static_cast<int>(opt.prompts.size()) ? opt.prompts[b] : "";
    const int64_t pad = b < static_cast<int>(r.leading_padding.size()) ? r.leading_padding[b] : 0;
    write_options.tags = musicgen::cli::take_tags(take, prompt, static_cast<double>(r.samples - pad) / r.sample_rate,
                                                  b, r.batch, write_options.format);
    musicgen::write_audio_file(outputs.temp_path(b), r, b, write_options);
    written.push_back(outputs.target(b) == "-" ? "<stdout>" : item_path(output, b, r.batch));
  }
  if (!codes_out.empty()) write_codes_json(outputs.temp_path(codes_index), r, opt.prompts, take);
  outputs.commit();
  if (!quiet) {
    const double audio_s = static_cast<double>(r.samples) / r.sample_rate;
    const auto& t = r.timings;
    std::fprintf(stderr,
                 "done: %d x %.2f s of audio (%d frames)\n"
                 "  load %.2f s | text encoding %.3f s | decoder %d steps in %.2f s (%.1f steps/s) | "
                 "audio decoding %.2f s\n"
                 "  real-time factor %.2f (generation time / audio duration, whole batch)\n",
                 r.batch, audio_s, r.frames, load_s, t.text_encode_s, t.decode_steps, t.decode_s,
                 t.decode_steps / std::max(1e-9, t.decode_s), t.audio_decode_s,
                 total_s / std::max(1e-9, audio_s));
    for (const auto& p : written) std::fprintf(stderr, "wrote %s\n", p.c_str());
    if (!codes_out.empty()) std::fprintf(stderr, "wrote %s\n", codes_out.c_str());
  }
  return 0;
}

}  // namespace

static int cmd_devices(const std::vector<std::string>& args) {
  for (ArgReader r(args); r.next();) {
    if (r.is("--help", "-h")) {
      std::printf("Usage: musicgen devices\n\nLists the Vulkan adapters (GPUs, and Mesa's lavapipe "
                  "on the CPU) that --device vulkan:N names.\n");
      return 0;
    }
    r.unknown();
  }
  const auto devices = musicgen::list_devices();
  if (devices.empty()) {
    std::printf("no Vulkan adapter found; install the GPU's Vulkan driver (mesa-vulkan-drivers, or "
                "the vendor's)\n");
    return 1;
  }
  std::printf("%-10s %-40s %-11s %10s  %-12s %s\n", "device", "name", "type", "memory", "driver",
              "vulkan");
  for (const auto& d : devices)
    std::printf("%-10s %-40s %-11s %7.1f GiB  %-12s %s\n", d.id.c_str(), d.name.c_str(),
                d.type.c_str(), static_cast<double>(d.memory_bytes) / (1ull << 30),
                d.driver_version.c_str(), d.api_version.c_str());
  return 0;
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string help = "musicgen --help";
  try {
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
      print_main_help();
      return args.empty() ? 2 : 0;
    }
    if (args[0] == "--version") throw VersionRequested{};
    const std::string cmd = args[0];
    args.erase(args.begin());
    if (cmd == "generate") {
      help = "musicgen generate --help";
      return cmd_generate(args);
    }
    if (cmd == "pull") return musicgen::cli::cmd_pull(args);
    if (cmd == "list") return musicgen::cli::cmd_list(args);
    if (cmd == "info") return musicgen::cli::cmd_info(args);
    if (cmd == "devices") return cmd_devices(args);
    if (cmd == "bench") return musicgen::cli::run_bench(args);
    if (cmd == "make-random-model") return musicgen::cli::run_make_random_model(args);
    if (cmd == "quantize") return musicgen::cli::run_quantize(args);
    if (cmd == "serve") {
      help = "musicgen serve --help";
      return musicgen::cli::run_serve(args);
    }
    command_usage("unknown command '" + cmd + "'");
  } catch (const VersionRequested&) {
    std::printf("%s", musicgen::cli::version_text().c_str());
    return 0;
  } catch (const CommandUsageError& e) {
    std::fprintf(stderr, "musicgen: error: %s (see '%s')\n", e.message.c_str(), help.c_str());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "musicgen: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "musicgen: error: out of memory; try a shorter duration or a smaller batch\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "musicgen: internal error: %s\n", e.what());
    return 1;
  }
}
