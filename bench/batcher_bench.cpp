// Continuous batching against one-at-a-time serving (include/musicgen/batcher.h): N concurrent
// requests through a Batcher, then the same N requests one after another through a Session, on
// the same model and threads. Prints JSON: aggregate decoder steps per second (the sum of the
// requests' decoder steps / wall time, text encoding and EnCodec included) for both, their ratio,
// the decoder-only figures, and whether every request gave the same codes both ways.
//
// Usage: batcher_bench --model DIR [--requests 8] [--steps 100] [--threads 2]
//                      [--mode sample|greedy] [--weights f32|bf16|q8|q4] [--max-batch N]
// A full-size random checkpoint: musicgen make-random-model --shape small --out DIR.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "musicgen/batcher.h"
#include "musicgen/musicgen.h"

using namespace musicgen;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr, "batcher_bench: %s\n"
               "usage: batcher_bench --model DIR [--requests 8] [--steps 100] [--threads 2]\n"
               "                     [--mode sample|greedy] [--weights f32|bf16|q8|q4] "
               "[--max-batch N]\n", msg.c_str());
  std::exit(2);
}

int to_int(const std::string& s, const char* name) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (end == s.c_str() || *end != '\0' || v < 1 || v > 100000)
    usage(std::string(name) + " needs a positive integer, got '" + s + "'");
  return static_cast<int>(v);
}

const char* kPrompts[] = {
    "lo-fi hip hop beat with mellow piano",     "80s pop track with bassy drums and synth",
    "epic orchestral soundtrack with choir",    "jazz trio, brushed drums and upright bass",
    "ambient drone with slow evolving pads",    "acoustic folk guitar and harmonica",
    "drum and bass with a heavy reese bassline", "salsa with brass section and congas",
};

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, mode = "sample", weights = "f32";
  int requests = 8, steps = 100, threads = 2, max_batch = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--model") model_dir = val();
    else if (a == "--requests") requests = to_int(val(), "--requests");
    else if (a == "--steps") steps = to_int(val(), "--steps");
    else if (a == "--threads") threads = to_int(val(), "--threads");
    else if (a == "--max-batch") max_batch = to_int(val(), "--max-batch");
    else if (a == "--mode") mode = val();
    else if (a == "--weights") weights = val();
    else usage("unknown option '" + a + "'");
  }
  if (model_dir.empty()) usage("--model is required");
  if (mode != "sample" && mode != "greedy") usage("--mode must be sample or greedy");
  LoadOptions lo;
  if (weights == "f32") lo.weights = WeightType::kF32;
  else if (weights == "bf16") lo.weights = WeightType::kBF16;
  else if (weights == "q8") lo.weights = WeightType::kQ8;
  else if (weights == "q4") lo.weights = WeightType::kQ4;
  else usage("--weights must be f32, bf16, q8 or q4");
  lo.threads = threads;
  try {
    auto model = Model::load(model_dir, lo);
    std::vector<GenerationOptions> opts(requests);
    for (int r = 0; r < requests; ++r) {
      opts[r].prompts = {kPrompts[r % 8]};
      opts[r].max_new_tokens = steps;
      opts[r].greedy = mode == "greedy";
      opts[r].seed = 1000 + r;
    }

    // Warm-up (page cache, first-touch): one short request.
    {
      GenerationOptions w = opts[0];
      w.max_new_tokens = std::min(steps, 8);
      Session(model, {.threads = threads}).generate(w);
    }

    // N concurrent requests through the Batcher.
    Batcher batcher(model, {.threads = threads, .max_batch = max_batch > 0 ? max_batch : requests});
    std::vector<GenerationResult> batched(requests);
    const double t0 = now();
    {
      std::vector<std::thread> ts;
      for (int r = 0; r < requests; ++r)
        ts.emplace_back([&, r] { batched[r] = batcher.generate(opts[r]); });
      for (auto& t : ts) t.join();
    }
    const double batched_wall = now() - t0;
    const Batcher::Stats st = batcher.stats();

    // The same requests one at a time through a Session.
    Session session(model, {.threads = threads});
    std::vector<GenerationResult> single(requests);
    double single_decode = 0;
    const double t1 = now();
    for (int r = 0; r < requests; ++r) {
      single[r] = session.generate(opts[r]);
      single_decode += single[r].timings.decode_s;
    }
    const double single_wall = now() - t1;

    uint64_t request_steps = 0;
    bool identical = true;
    for (int r = 0; r < requests; ++r) {
      request_steps += single[r].timings.decode_steps;
      identical = identical && batched[r].codes == single[r].codes && batched[r].audio == single[r].audio;
    }
    const double batched_rate = request_steps / batched_wall, single_rate = request_steps / single_wall;
    nlohmann::json out = {
        {"model", model_dir},
        {"weights", weights},
        {"requests", requests},
        {"steps_per_request", steps},
        {"mode", mode},
        {"threads", threads},
        {"max_batch", max_batch > 0 ? max_batch : requests},
        {"request_steps", request_steps},
        {"batched", {{"wall_s", batched_wall},
                     {"aggregate_steps_per_s", batched_rate},
                     {"decoder_busy_s", st.busy_s},
                     {"batched_steps", st.steps},
                     {"decoder_steps_per_s", st.busy_s > 0 ? st.request_steps / st.busy_s : 0.0}}},
        {"one_at_a_time", {{"wall_s", single_wall},
                           {"aggregate_steps_per_s", single_rate},
                           {"decoder_s", single_decode},
                           {"decoder_steps_per_s", single_decode > 0 ? request_steps / single_decode : 0.0}}},
        {"speedup", batched_rate / single_rate},
        {"identical_codes_and_audio", identical},
    };
    std::printf("%s\n", out.dump(2).c_str());
    return identical ? 0 : 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "batcher_bench: error: %s\n", e.what());
    return 1;
  }
}
