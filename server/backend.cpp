#include "backend.h"

#include <algorithm>

namespace musicgen::server {

// Continuous batching: every request joins the one shared decoder batch of this model.
Backend::Backend(std::shared_ptr<const Model> model, int threads, int max_batch)
    : model_(std::move(model)),
      batcher_(std::make_unique<Batcher>(model_, BatcherOptions{.threads = threads,
                                                                .max_batch = std::max(1, max_batch)})) {}

Backend::~Backend() = default;

GenerationResult Backend::run(const GenerationOptions& options) {
  return batcher_->generate(options);
}

BackendStats Backend::stats() const {
  const Batcher::Stats s = batcher_->stats();
  BackendStats b;
  b.running = s.running + s.solo;
  b.steps = s.request_steps;
  b.busy_s = s.busy_s;
  return b;
}

}  // namespace musicgen::server
