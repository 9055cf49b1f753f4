// The server's one door to the engine: run(model, options) -> GenerationResult.
//
// One musicgen::Batcher per model (continuous batching): every request joins the shared decoder
// batch at a step boundary and leaves it when done; requests the batcher cannot share steps for
// (audio prompt, melody, long form, a GPU model) run on their own. The HTTP code only calls run()
// and stats().
#pragma once

#include <cstdint>
#include <memory>

#include "musicgen/batcher.h"
#include "musicgen/musicgen.h"

namespace musicgen::server {

struct BackendStats {
  int running = 0;             // requests decoding now (the batch size)
  uint64_t steps = 0;          // decoder steps run so far, summed over requests (a batched step
                               // of n requests counts n)
  double busy_s = 0;           // seconds with at least one request decoding
};

// --max-batch when not given: 8 requests share the batcher's decoder batch.
constexpr int kDefaultMaxBatch = 8;

class Backend {
 public:
  // One backend per loaded model. threads: the batcher's decoder threads (0: all cores);
  // max_batch: requests decoded at the same time at most.
  Backend(std::shared_ptr<const Model> model, int threads, int max_batch);
  ~Backend();
  // Blocking and thread-safe; the contract of Session::generate (Error(kCancelled) when a
  // callback returns false). Waits to join the batch when max_batch requests run.
  GenerationResult run(const GenerationOptions& options);
  BackendStats stats() const;
  const std::shared_ptr<const Model>& model() const { return model_; }

 private:
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Batcher> batcher_;
};

}  // namespace musicgen::server
