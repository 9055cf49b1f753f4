// Continuous batching: many threads call Batcher::generate on one model at once, and the decoder
// steps of their requests run as one shared batch, so the requests share each read of the
// weights (the decoder step is bound by memory bandwidth: one request's step reads them all).
//
//   auto model = musicgen::Model::load("musicgen-small");
//   musicgen::Batcher batcher(model, {.threads = 4, .max_batch = 8});
//   // on any number of threads:
//   musicgen::GenerationResult r = batcher.generate(options);
//
// A request joins the running batch at the next step boundary (after its text is encoded on the
// calling thread) and leaves it when its last step is done; its audio is then decoded (EnCodec) on
// the calling thread, so the decoder loop never waits for it. A request's codes and audio do not
// depend on what else is in the batch: they equal Session::generate's bit for bit (greedy and
// seeded sampling alike; docs/ARCHITECTURE.md, "Continuous batching").
//
// Which requests share the batch: a CPU decoder, text-conditioned or unconditional, no audio
// prompt, no melody, at most one 30 s window. Others (audio prompts, melody checkpoints, long
// form, a Vulkan decoder) run as an ordinary Session on the calling thread and share no steps.
#pragma once

#include <cstdint>
#include <memory>

#include "musicgen/musicgen.h"

namespace musicgen {

struct BatcherOptions {
  int threads = 0;    // decoder threads (0: all hardware threads)
  int max_batch = 8;  // requests decoded together at most (each is 2 rows with guidance)
};

// Runs many concurrent generate() calls on one model, decoding every eligible request in one
// shared batch: a request joins at the next step boundary and leaves when done, so requests
// share each read of the weights. A request's result does not depend on what else runs.
class Batcher {
 public:
  explicit Batcher(std::shared_ptr<const Model> model, BatcherOptions options = {});
  // Call only when no generate() is in flight.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Thread-safe and blocking; the same contract as Session::generate (validation, defaults,
  // result, progress callback, cancellation -> Error(kCancelled)). For a batched request the
  // progress callback runs on the Batcher's decoder thread after each of its steps: keep it
  // short (it holds up the whole batch); returning false cancels this request only.
  GenerationResult generate(const GenerationOptions& options);

  struct Stats {
    int running = 0;             // requests in the decoder batch now
    int waiting = 0;             // requests waiting to join
    int solo = 0;                // requests that cannot share steps, running on their own now
    uint64_t steps = 0;          // batched decoder steps run so far
    uint64_t request_steps = 0;  // sum over steps of the requests in each step, plus the steps
                                 // of the requests run on their own
    double busy_s = 0;           // seconds spent in decoder steps
  };
  Stats stats() const;
  const std::shared_ptr<const Model>& model() const;

 private:
  friend struct BatcherTestAccess;  // src/api/batcher_test_access.h (tests only)
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace musicgen
