// The server's one door to the engine: run(model, options) -> GenerationResult.
//
// With include/musicgen/batcher.h present (the continuous batcher), one musicgen::Batcher per
// model: every request joins the shared decoder batch at a step boundary. Without it, a pool of
// `max_batch` musicgen::Session objects, one request each at a time. The choice is made here and
// nowhere else (MUSICGEN_SERVER_HAVE_BATCHER): the HTTP code only calls run() and stats().
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "musicgen/musicgen.h"

#if __has_include("musicgen/batcher.h")
#include "musicgen/batcher.h"
#define MUSICGEN_SERVER_HAVE_BATCHER 1
#else
#define MUSICGEN_SERVER_HAVE_BATCHER 0
#endif

namespace musicgen::server {

struct BackendStats {
  int running = 0;             // requests decoding now (the batch size)
  uint64_t steps = 0;          // decoder steps run so far, summed over requests (a batched step
                               // of n requests counts n)
  double busy_s = 0;           // seconds with at least one request decoding
};

// --max-batch when not given: 8 requests share the batcher's decoder batch; the session pool runs
// one request at a time (parallel sessions only split the cores).
constexpr int kDefaultMaxBatch = MUSICGEN_SERVER_HAVE_BATCHER ? 8 : 1;

class Backend {
 public:
  // One backend per loaded model. threads: decoder threads of each worker (0: the cores divided
  // among the workers);
  // max_batch: requests decoded at the same time at most.
  Backend(std::shared_ptr<const Model> model, int threads, int max_batch);
  ~Backend();
  // Blocking and thread-safe; the contract of Session::generate (Error(kCancelled) when a
  // callback returns false). Waits for a free worker when max_batch requests run.
  GenerationResult run(const GenerationOptions& options);
  BackendStats stats() const;
  const std::shared_ptr<const Model>& model() const { return model_; }

 private:
  std::shared_ptr<const Model> model_;
#if MUSICGEN_SERVER_HAVE_BATCHER
  std::unique_ptr<Batcher> batcher_;
#endif
  // The session pool (without the batcher).
  mutable std::mutex mu_;
  std::condition_variable free_cv_;
  std::vector<std::unique_ptr<Session>> sessions_;
  std::vector<Session*> free_;
  int running_ = 0;
  uint64_t steps_ = 0;
  double busy_s_ = 0;
  double busy_since_ = 0;
};

}  // namespace musicgen::server
