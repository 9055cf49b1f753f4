// Definitions used in the output (also in docs/PERFORMANCE.md):
//   real-time factor (RTF) = compute time / duration of the audio it produced; below 1 is faster
//     than real time, lower is better.
//   decoder steps/s = decoder steps / decoder time (one step = one 20 ms frame of every codebook,
//     both guidance streams); real time is 50 steps/s.
//   achieved bandwidth = decoder weight bytes read per step x steps/s (weights only), against the
//     machine's measured read bandwidth (the same probe as bench/membw: vector loads, all threads).
//   floor fraction = (weight bytes + self-attention KV-cache bytes read per step, averaged over
//     the run) x steps/s / measured read bandwidth: 1 would be the memory floor.
#include "bench_command.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "command_util.h"
#include "core/thread_pool.h"
#include "kernels/cpu.h"
#include "kernels/read_bandwidth.h"
#include "musicgen/musicgen.h"
#include "musicgen/quantize.h"
#include "musicgen/tools.h"

namespace musicgen::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

constexpr const char* kRtfDefinition =
    "compute time / audio duration; below 1 is faster than real time; lower is better";
constexpr const char* kDefaultPrompt = "80s pop track with bassy drums and synth";

void print_help() {
  std::printf(
      "Usage: musicgen bench (--model PATH | --shape SHAPE) [options]\n\n"
      "Measures one checkpoint: load time, text encoding, decoder steps per second (median of\n"
      "repeated generations), audio decoding time, real-time factors, peak RSS, and the decoder's\n"
      "achieved weight bandwidth and the fraction of the memory floor (weight + KV-cache bytes\n"
      "per step against the machine's read bandwidth, measured as bench/membw does).\n\n"
      "Real-time factor (RTF) = compute time / duration of the audio produced: below 1 is faster\n"
      "than real time, lower is better. One decoder step is one 20 ms frame: real time is 50 "
      "steps/s.\n\n"
      "Options:\n"
      "  -m, --model MODEL   checkpoint directory, a file written by 'musicgen quantize', a hub\n"
      "                      repo id or a short name (as generate; -p -s -t -w work too)\n"
      "  --shape SHAPE       instead of --model: a random checkpoint of this shape (see\n"
      "                      'musicgen make-random-model --help'), created once and cached in\n"
      "                      --cache-dir\n"
      "  --cache-dir DIR     cache for --shape (default $MUSICGEN_CACHE_DIR, else\n"
      "                      $XDG_CACHE_HOME/musicgen, else ~/.cache/musicgen)\n"
      "  --weights T         weight type the checkpoint is loaded with: f32 (default), bf16, q8\n"
      "                      or q4 (a quantized file: its own type)\n"
      "  --device DEV        cpu (default), vulkan, vulkan:N or auto (musicgen generate --help)\n"
      "  --batch N           prompts generated together (default 1)\n"
      "  --no-exact-f16      with f32: keep f16-exact matrices in float32 (the plain path)\n"
      "  --kv-cache auto|q8  the attention cache type (musicgen generate --help)\n"
      "  --steps N           decoder steps per generation (default 500 = 9.94 s of audio)\n"
      "  --guidance G        classifier-free guidance scale (default 3; 1 disables it)\n"
      "  --threads N         worker threads (default: all cores)\n"
      "  --repeats N         timed generations; medians are reported (default 3)\n"
      "  --warmup-steps N    steps of an untimed generation first (default 16; 0 = none)\n"
      "  --prompt TEXT       text prompt (default \"%s\")\n"
      "  --greedy            argmax instead of top-k sampling\n"
      "  --seed S            sampling seed of the first repeat (default 0; repeat i uses S+i)\n"
      "  --bandwidth-mib N   buffer streamed to measure memory bandwidth (default 1024, as\n"
      "                      bench/membw; 0 = skip)\n"
      "  --json              print one JSON object on stdout instead of the table\n"
      "The instruction set of the CPU kernels is the best the CPU has (avx512, avx2 or scalar);\n"
      "MUSICGEN_ISA=avx2 (or scalar) in the environment forces a lower one, to compare.\n"
      "With 201 steps or more, the rates of the first and the last 100 steps are reported too\n"
      "(attention over the growing KV cache slows later steps).\n"
      "  --help, -h          show this help\n\n"
      "Examples:\n"
      "  musicgen bench --shape small --threads 2\n"
      "  musicgen bench --model models/musicgen-small --steps 500 --guidance 3 --json\n",
      kDefaultPrompt);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string default_cache_dir() {
  if (const char* d = std::getenv("MUSICGEN_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/musicgen";
  if (const char* d = std::getenv("HOME"); d && *d) return std::string(d) + "/.cache/musicgen";
  return (fs::temp_directory_path() / "musicgen-cache").string();
}

int64_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  return "unknown";
}

struct Run {
  double generate_s = 0, text_encode_s = 0, decode_s = 0, audio_decode_s = 0, audio_s = 0;
  int steps = 0;
  double first_100_steps_per_s = 0, last_100_steps_per_s = 0;  // 0: fewer than 201 steps
  // The thread pool during the steps (Timings::decode_pool_*).
  double pool_calls_per_step = 0, pool_wait_fraction = 0, pool_start_fraction = 0;
  double pool_region_fraction = 0;  // wall time inside parallel regions / decode time
};

constexpr int kEdgeSteps = 100;

}  // namespace

int run_bench(const std::vector<std::string>& args) {
  std::string model_dir, shape, cache_dir, weights_arg, prompt = kDefaultPrompt, device = "cpu";
  int batch = 1;
  int steps = 500, repeats = 3, threads = 0, warmup_steps = 16;
  long long bandwidth_mib = 1024;
  float guidance = 3.0f;
  bool as_json = false, greedy = false, exact_f16 = true;
  KvCache kv_cache = KvCache::kAuto;
  uint64_t seed = 0;
  try {
    for (ArgReader r(args); r.next();) {
      if (r.is("--help", "-h")) {
        print_help();
        return 0;
      } else if (r.is("--model")) {
        model_dir = r.value();
      } else if (r.is("--shape")) {
        shape = r.value();
      } else if (r.is("--cache-dir")) {
        cache_dir = r.value();
      } else if (r.is("--weights")) {
        weights_arg = r.weight_type();
      } else if (r.is("--device")) {
        device = r.value();
      } else if (r.is("--batch")) {
        batch = static_cast<int>(r.integer_in(1, 64));
      } else if (r.is("--steps")) {
        steps = static_cast<int>(r.integer_in(8, 2048));
      } else if (r.is("--guidance")) {
        guidance = static_cast<float>(r.number());
        if (guidance < 1.0f) command_usage("--guidance must be >= 1 (1 disables guidance)");
      } else if (r.is("--threads")) {
        threads = r.threads();
      } else if (r.is("--repeats")) {
        repeats = static_cast<int>(r.integer_in(1, 100));
      } else if (r.is("--warmup-steps")) {
        warmup_steps = static_cast<int>(r.integer_in(0, 2048));
      } else if (r.is("--prompt")) {
        prompt = r.value();
      } else if (r.is("--greedy")) {
        greedy = true;
      } else if (r.is("--seed")) {
        seed = static_cast<uint64_t>(r.integer_in(0, std::numeric_limits<long long>::max()));
      } else if (r.is("--bandwidth-mib")) {
        bandwidth_mib = r.integer_in(0, 65536);
      } else if (r.is("--json")) {
        as_json = true;
      } else if (r.is("--no-exact-f16")) {
        exact_f16 = false;
      } else if (r.is("--kv-cache")) {
        kv_cache = r.kv_cache();
      } else {
        r.unknown();
      }
    }
    if (model_dir.empty() == shape.empty())
      command_usage("give exactly one of --model PATH or --shape SHAPE");
    if (!shape.empty()) {
      bool known = false;
      for (const RandomModelShape& s : random_model_shapes()) known = known || s.name == shape;
      if (!known)
        command_usage("unknown --shape '" + shape + "'; see 'musicgen make-random-model --help'");
    }
  } catch (const CommandUsageError& e) {
    std::fprintf(stderr, "musicgen: error: %s (see 'musicgen bench --help')\n", e.message.c_str());
    return 2;
  }
  const int n_threads =
      threads > 0 ? threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  if (!shape.empty()) {
    const fs::path cache = cache_dir.empty() ? fs::path(default_cache_dir()) : fs::path(cache_dir);
    fs::create_directories(cache);
    model_dir = (cache / ("random-" + shape + "-seed0-f32")).string();
    if (!fs::exists(fs::path(model_dir) / "model.safetensors")) {
      RandomModelOptions ro;
      ro.shape = shape;
      ro.out_dir = model_dir;
      ro.threads = n_threads;
      ro.overwrite = fs::exists(model_dir);
      std::fprintf(stderr, "creating random %s checkpoint in %s (%s, once)\n", shape.c_str(),
                   model_dir.c_str(),
                   human_bytes(static_cast<double>(random_model_bytes(ro))).c_str());
      make_random_model(ro);
    }
  } else {
    model_dir = resolve_model_argument(model_dir, as_json);  // as generate: folders, repo ids, names
  }

  LoadOptions load_options;
  load_options.weights = weights_arg.empty() ? WeightType::kF32 : parse_weight_type(weights_arg);
  load_options.threads = n_threads;
  load_options.device = device;
  load_options.exact_f16 = exact_f16;
  load_options.kv_cache = kv_cache;
  const CheckpointStats stats = checkpoint_stats(model_dir, load_options.weights);
  const std::string& weights = stats.weights;
  const double t_load = now_seconds();
  std::shared_ptr<const Model> model = Model::load(model_dir, load_options);
  const double load_s = now_seconds() - t_load;
  const ModelInfo& info = model->info();
  Session session(model, {.threads = n_threads});

  GenerationOptions opt;
  opt.prompts.assign(static_cast<size_t>(batch), prompt);
  opt.guidance_scale = guidance;
  if (greedy) opt.greedy = true;
  if (warmup_steps > 0) {
    opt.max_new_tokens = std::max(warmup_steps, 2 * info.num_codebooks);
    session.generate(opt);
  }
  std::vector<Run> runs;
  opt.max_new_tokens = steps;
  std::vector<double> stamps;  // when each decoder step of the current repeat ended
  for (int r = 0; r < repeats; ++r) {
    opt.seed = seed + static_cast<uint64_t>(r);
    stamps.clear();
    stamps.reserve(static_cast<size_t>(steps) + 1);
    opt.progress = [&stamps](int, int) {
      stamps.push_back(now_seconds());
      return true;
    };
    const double t0 = now_seconds();
    const GenerationResult res = session.generate(opt);
    opt.progress = nullptr;
    Run run;
    // Steps 2..101 and the last 100 (the first step also fills the cross-attention cache).
    const size_t ns = stamps.size();
    if (ns >= 2 * kEdgeSteps + 1) {
      run.first_100_steps_per_s = kEdgeSteps / std::max(1e-12, stamps[kEdgeSteps] - stamps[0]);
      run.last_100_steps_per_s =
          kEdgeSteps / std::max(1e-12, stamps[ns - 1] - stamps[ns - 1 - kEdgeSteps]);
    }
    run.generate_s = now_seconds() - t0;
    run.text_encode_s = res.timings.text_encode_s;
    run.decode_s = res.timings.decode_s;
    run.steps = res.timings.decode_steps;
    run.audio_decode_s = res.timings.audio_decode_s;
    run.audio_s = static_cast<double>(res.samples) / res.sample_rate;
    {
      const Timings& t = res.timings;
      const double all = t.decode_pool_busy_s + t.decode_pool_start_s + t.decode_pool_barrier_s;
      run.pool_calls_per_step =
          static_cast<double>(t.decode_pool_calls) / std::max(1, t.decode_steps);
      run.pool_wait_fraction = all > 0 ? (t.decode_pool_start_s + t.decode_pool_barrier_s) / all : 0;
      run.pool_start_fraction = all > 0 ? t.decode_pool_start_s / all : 0;
      run.pool_region_fraction = t.decode_s > 0 ? all / n_threads / t.decode_s : 0;
    }
    runs.push_back(run);
    if (!as_json)
      std::fprintf(stderr, "repeat %d/%d: %.2f decoder steps/s, generate %.2f s\n", r + 1, repeats,
                   run.steps / std::max(1e-9, run.decode_s), run.generate_s);
  }
  const int64_t rss = peak_rss_bytes();  // before the bandwidth buffer

  auto med = [&](auto f) {
    std::vector<double> v;
    for (const Run& r : runs) v.push_back(f(r));
    return median(v);
  };
  const double steps_per_s =
      med([](const Run& r) { return r.steps / std::max(1e-12, r.decode_s); });
  const double text_s = med([](const Run& r) { return r.text_encode_s; });
  const double decode_s = med([](const Run& r) { return r.decode_s; });
  const double audio_dec_s = med([](const Run& r) { return r.audio_decode_s; });
  const double audio_s = runs.front().audio_s;
  const double audio_rtf = med([](const Run& r) { return r.audio_decode_s / r.audio_s; });
  const double e2e_rtf = med([](const Run& r) { return r.generate_s / r.audio_s; });
  const double generate_s = med([](const Run& r) { return r.generate_s; });
  const double first_rate = med([](const Run& r) { return r.first_100_steps_per_s; });
  const double last_rate = med([](const Run& r) { return r.last_100_steps_per_s; });
  // An f32 load that keeps exact-f16 matrices as half reads 2 bytes a weight for those: the
  // model's own count then; otherwise the checkpoint's figure for the type.
  const double weight_bytes_per_step =
      info.decoder_exact_f16 > 0 && info.decoder_step_bytes > 0
          ? static_cast<double>(info.decoder_step_bytes)
          : static_cast<double>(stats.decoder_step_weight_bytes);
  const double achieved_bw = weight_bytes_per_step * steps_per_s;
  // Self-attention reads every cached key and value of every layer and stream at each step: with
  // keys = position + 1, on average (steps + 1) / 2 positions, in the cache type the model
  // reports (q8: one byte a value plus a float scale per head row; a GPU reports none: 16-bit
  // unless the weights are f32). The text's cross-attention K/V (a few tokens) is left out.
  const int streams = batch * (guidance > 1.0f ? 2 : 1);
  const int head_dim = info.hidden_size / std::max(1, info.num_heads);
  const double kv_elem_bytes = info.kv_cache == "q8"                         ? 1.0 + 4.0 / head_dim
                               : info.kv_cache == "f32"                      ? 4.0
                               : info.kv_cache.empty() && weights == "f32"   ? 4.0
                                                                             : 2.0;
  const int run_steps = runs.front().steps;
  const double kv_bytes_per_step = static_cast<double>(info.num_layers) * 2.0 * streams *
                                   info.hidden_size * kv_elem_bytes * (run_steps + 1) / 2.0;
  const double floor_bw = (weight_bytes_per_step + kv_bytes_per_step) * steps_per_s;
  const std::string isa = kernels::isa_name(kernels::active_isa());
  double machine_bw = 0.0;
  kernels::ReadBandwidth probe;
  if (bandwidth_mib > 0) {
    ThreadPool probe_pool(n_threads);
    probe = kernels::measure_read_bandwidth(static_cast<size_t>(bandwidth_mib) << 20, probe_pool, 15);
    machine_bw = probe.median_bytes_per_s;
  }

  if (as_json) {
    json j;
    j["model"] = model_dir;
    if (!shape.empty()) j["shape"] = shape;
    j["weights"] = weights;
    j["device"] = info.device;
    j["batch"] = batch;
    j["gpu_weight_bytes"] = info.device_weight_bytes;
    j["gpu_peak_bytes"] = model->device_memory_peak();
    j["audio_seconds_per_s"] = batch * audio_s / std::max(1e-12, generate_s);
    j["threads"] = n_threads;
    j["isa"] = isa;
    j["steps"] = steps;
    j["guidance"] = guidance;
    j["sampling"] = greedy ? "greedy" : "top-k";
    j["repeats"] = repeats;
    j["warmup_steps"] = warmup_steps;
    j["decoder_steps_per_s"] = steps_per_s;
    j["decoder_exact_f16_matrices"] = info.decoder_exact_f16;
    j["decoder_matrices"] = info.decoder_matrices;
    j["kv_cache"] = info.kv_cache;
    // The thread pool in the steps: parallel regions per step, and the share of the threads'
    // time in them spent waking up or waiting for the slowest thread (ThreadPool::Stats).
    j["pool_regions_per_step"] = med([](const Run& r) { return r.pool_calls_per_step; });
    j["pool_wait_fraction"] = med([](const Run& r) { return r.pool_wait_fraction; });
    j["pool_start_fraction"] = med([](const Run& r) { return r.pool_start_fraction; });
    // Wall time inside parallel regions / decoder time: the rest runs on one thread (norms,
    // sampling, the calls' own setup).
    j["pool_region_fraction"] = med([](const Run& r) { return r.pool_region_fraction; });
    j["audio_decode_rtf"] = audio_rtf;
    j["end_to_end_rtf"] = e2e_rtf;
    j["peak_rss_bytes"] = rss;
    j["rtf_definition"] = kRtfDefinition;
    j["end_to_end_rtf_scope"] = "text encoding + decoder + audio decoding, model load excluded";
    j["load_s"] = load_s;
    j["text_encode_s"] = text_s;
    j["decode_s"] = decode_s;
    j["audio_decode_s"] = audio_dec_s;
    j["generate_s"] = generate_s;
    j["audio_seconds"] = audio_s;
    j["decoder_step_params"] = stats.decoder_step_params;
    j["decoder_weight_bytes_per_step"] = weight_bytes_per_step;
    j["achieved_weight_bandwidth_gb_s"] = achieved_bw / 1e9;
    j["machine_read_bandwidth_gb_s"] = machine_bw / 1e9;
    j["bandwidth_fraction"] = machine_bw > 0 ? achieved_bw / machine_bw : 0.0;
    j["kv_bytes_per_step_avg"] = kv_bytes_per_step;
    j["floor_bandwidth_gb_s"] = floor_bw / 1e9;
    j["floor_fraction"] = machine_bw > 0 ? floor_bw / machine_bw : 0.0;
    j["bandwidth_probe"] = "bench/membw method: " + isa + " loads, plain and with prefetcht1 " +
                           "4 KiB ahead (the faster), " + std::to_string(n_threads) +
                           " threads, " + std::to_string(bandwidth_mib) +
                           " MiB, median of 15 passes";
    j["machine_read_bandwidth_plain_gb_s"] = probe.plain_median_bytes_per_s / 1e9;
    j["machine_read_bandwidth_prefetch_gb_s"] = probe.prefetch_median_bytes_per_s / 1e9;
    if (first_rate > 0) {
      j["first_100_steps_per_s"] = first_rate;
      j["last_100_steps_per_s"] = last_rate;
    } else {
      j["first_100_steps_per_s"] = nullptr;
      j["last_100_steps_per_s"] = nullptr;
    }
    j["total_params"] = stats.total_params;
    j["checkpoint_bytes"] = stats.file_bytes;
    j["hidden_size"] = info.hidden_size;
    j["num_layers"] = info.num_layers;
    j["num_codebooks"] = info.num_codebooks;
    j["audio_channels"] = info.audio_channels;
    j["cpu"] = cpu_model();
    json per_run = json::array();
    for (const Run& r : runs)
      per_run.push_back({{"decoder_steps_per_s", r.steps / std::max(1e-12, r.decode_s)},
                         {"first_100_steps_per_s", r.first_100_steps_per_s},
                         {"last_100_steps_per_s", r.last_100_steps_per_s},
                         {"text_encode_s", r.text_encode_s},
                         {"decode_s", r.decode_s},
                         {"audio_decode_s", r.audio_decode_s},
                         {"generate_s", r.generate_s}});
    j["runs"] = per_run;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }

  const double real_time_steps = static_cast<double>(info.frame_rate);
  std::printf("\nmusicgen bench: %s\n", model_dir.c_str());
  std::printf("  %d layers, hidden %d, %d codebooks, %s; weights %s; %d threads; %s; kernels %s\n",
              info.num_layers, info.hidden_size, info.num_codebooks,
              info.audio_channels == 2 ? "stereo" : "mono", weights.c_str(), n_threads,
              cpu_model().c_str(), isa.c_str());
  std::printf("  %d steps (%.2f s of audio), batch %d, guidance %.1f, %s, median of %d; device %s\n\n",
              steps, audio_s, batch, guidance, greedy ? "greedy" : "top-k sampling", repeats,
              info.device.c_str());
  std::printf("  %-34s %12s\n", "metric", "value");
  std::printf("  %-34s %10.2f s\n", "model load", load_s);
  std::printf("  %-34s %10.3f s\n", "text encoding", text_s);
  std::printf("  %-34s %10.2f    (real time: %.0f)\n", "decoder steps/s", steps_per_s,
              real_time_steps);
  if (first_rate > 0) {
    std::printf("  %-34s %10.2f\n", "  first 100 steps, steps/s", first_rate);
    std::printf("  %-34s %10.2f\n", "  last 100 steps, steps/s", last_rate);
  }
  std::printf("  %-34s %10.2f s\n", "decoder time", decode_s);
  std::printf("  %-34s %10.3f s\n", "audio decoding (EnCodec)", audio_dec_s);
  std::printf("  %-34s %10.4f\n", "audio decoding RTF", audio_rtf);
  std::printf("  %-34s %10.3f\n", "end-to-end RTF (load excluded)", e2e_rtf);
  std::printf("  %-34s %10s\n", "peak RSS", human_bytes(static_cast<double>(rss)).c_str());
  std::printf("  %-34s %10s\n", "decoder weights read per step",
              human_bytes(weight_bytes_per_step).c_str());
  std::printf("  %-34s %10.1f GB/s\n", "achieved weight bandwidth", achieved_bw / 1e9);
  std::printf("  %-34s %10s\n", "KV cache read per step (mean)",
              human_bytes(kv_bytes_per_step).c_str());
  if (machine_bw > 0) {
    std::printf("  %-34s %10.1f GB/s (%.0f%% used by weights)\n", "machine read bandwidth",
                machine_bw / 1e9, 100.0 * achieved_bw / machine_bw);
    std::printf("  %-34s %10.0f%%   ((weights + KV) x steps/s / bandwidth)\n",
                "fraction of the memory floor", 100.0 * floor_bw / machine_bw);
  }
  std::printf("  %-34s %10s\n", "kernel instruction set", isa.c_str());
  std::printf("\n  RTF = %s.\n", kRtfDefinition);
  return 0;
}

}  // namespace musicgen::cli
