// Developer harness for the decoder step (the official numbers come from `musicgen bench`):
// loads only the decoder of a checkpoint directory or musicgen quantized file in a weight type,
// sets a random text of S tokens for a guided batch (2 rows per item), and times decoder steps.
// With --make-random SHAPE it first writes a random checkpoint of that shape into --model DIR.
//
// Usage: decoder_bench --model DIR [--weights f32|bf16|q8|q4] [--steps 500] [--threads 2]
//                      [--batch 1] [--reps 3] [--text 12] [--make-random small] [--heavy-tails]
//                      [--pin]
// --pin binds the process's threads to CPUs 0, 1, ... in creation order: on a machine shared with
// other jobs the scheduler otherwise tends to wake the pool's worker on the caller's CPU, and the
// two threads take turns instead of running together.
#include <dirent.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "format/random_checkpoint.h"
#include "format/safetensors.h"
#include "models/musicgen_decoder.h"

using namespace musicgen;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

WeightStorage parse_weights(const std::string& s) {
  if (s == "f32") return WeightStorage::kF32;
  if (s == "bf16") return WeightStorage::kBF16;
  if (s == "q8") return WeightStorage::kQ8;
  if (s == "q4") return WeightStorage::kQ4;
  std::fprintf(stderr, "--weights must be f32, bf16, q8 or q4\n");
  std::exit(2);
}

void pin_threads() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return;
  std::vector<int> tids;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') tids.push_back(std::atoi(e->d_name));
  closedir(d);
  std::sort(tids.begin(), tids.end());
  const int cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  for (size_t i = 0; i < tids.size(); ++i) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<int>(i) % cpus, &set);
    sched_setaffinity(tids[i], sizeof(set), &set);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, weights = "f32", make_random;
  int steps = 500, threads = 2, batch = 1, reps = 3, text = 12;
  bool heavy = false, pin = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") model = val();
    else if (a == "--weights") weights = val();
    else if (a == "--steps") steps = std::atoi(val().c_str());
    else if (a == "--threads") threads = std::atoi(val().c_str());
    else if (a == "--batch") batch = std::atoi(val().c_str());
    else if (a == "--reps") reps = std::atoi(val().c_str());
    else if (a == "--text") text = std::atoi(val().c_str());
    else if (a == "--make-random") make_random = val();
    else if (a == "--heavy-tails") heavy = true;
    else if (a == "--pin") pin = true;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  try {
    if (!make_random.empty() && !std::filesystem::exists(model)) {
      RandomCheckpointOptions o;
      o.shape = make_random;
      o.out_dir = model;
      o.heavy_tails = heavy;
      o.threads = threads;
      write_random_checkpoint(o);
    }
    ThreadPool pool(threads);
    if (pin) pin_threads();
    const double t0 = now();
    const MusicgenConfig cfg = load_musicgen_config(model);
    const TensorStore store = TensorStore::open_checkpoint(model);
    DecoderLoadOptions lo;
    lo.weights = parse_weights(weights);
    lo.pool = &pool;
    const MusicgenDecoder dec(cfg.decoder, cfg.text_encoder.d_model, store, 0, lo);
    const double load_s = now() - t0;
    const int H = cfg.decoder.hidden_size, K = cfg.decoder.num_codebooks, V = cfg.decoder.vocab_size;
    const int rows = 2 * batch;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    Tensor projected({rows, text, H});
    for (auto& v : projected.data) v = nd(rng);
    std::vector<int32_t> mask(static_cast<size_t>(rows) * text, 0);
    std::fill(mask.begin(), mask.begin() + static_cast<int64_t>(batch) * text, 1);
    std::vector<double> rates;
    std::vector<float> logits;
    std::vector<int32_t> tokens(static_cast<size_t>(rows) * K);
    for (int r = 0; r < reps; ++r) {
      DecoderState st = dec.new_state(rows, steps + 1);
      dec.set_text(st, projected, mask, &pool);
      const double s0 = now();
      for (int s = 0; s < steps; ++s) {
        for (auto& t : tokens) t = s == 0 ? V : static_cast<int32_t>(rng() % V);
        dec.forward(st, tokens.data(), 1, false, &logits, &pool);
      }
      rates.push_back(steps / (now() - s0));
    }
    std::sort(rates.begin(), rates.end());
    std::printf("%s weights=%s threads=%d rows=%d steps=%d: load %.2f s, decoder %.2f steps/s "
                "(median of %d; min %.2f max %.2f)\n",
                model.c_str(), weights.c_str(), threads, rows, steps, load_s,
                rates[rates.size() / 2], reps, rates.front(), rates.back());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decoder_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
