// The server's one door to the engine: run(model, options) -> GenerationResult.
//
// Today a pool of musicgen::Session objects per model (`max_batch` of them, one request each at a
// time). The continuous-batching musicgen::Batcher (include/musicgen/batcher.h) replaces the pool
// here and nowhere else: the HTTP code only calls run() and stats().
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "musicgen/musicgen.h"

namespace musicgen::server {

struct BackendStats {
  int running = 0;             // requests decoding now (the batch size)
  uint64_t steps = 0;          // decoder steps run so far (summed over requests)
  double busy_s = 0;           // seconds with at least one request decoding
};

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
