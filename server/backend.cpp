#include "backend.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace musicgen::server {
namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

#if MUSICGEN_SERVER_HAVE_BATCHER

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
  b.running = s.running;
  b.steps = s.request_steps;
  b.busy_s = s.busy_s;
  return b;
}

#else

// A pool of sessions: up to max_batch requests generate in parallel, each on its own Session.
Backend::Backend(std::shared_ptr<const Model> model, int threads, int max_batch)
    : model_(std::move(model)) {
  // 0: the cores shared among the workers (results do not depend on the thread count).
  if (threads <= 0)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, max_batch));
  for (int i = 0; i < std::max(1, max_batch); ++i) {
    sessions_.push_back(std::make_unique<Session>(model_, SessionOptions{.threads = threads}));
    free_.push_back(sessions_.back().get());
  }
}

Backend::~Backend() = default;

GenerationResult Backend::run(const GenerationOptions& options) {
  Session* session = nullptr;
  {
    std::unique_lock<std::mutex> lock(mu_);
    free_cv_.wait(lock, [&] { return !free_.empty(); });
    session = free_.back();
    free_.pop_back();
    if (running_++ == 0) busy_since_ = now_s();
  }
  GenerationOptions opt = options;
  int last_step = 0;
  opt.progress = [&](int step, int total) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      steps_ += static_cast<uint64_t>(std::max(0, step - last_step));
    }
    last_step = step;
    return options.progress ? options.progress(step, total) : true;
  };
  auto release = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(session);
    if (--running_ == 0) busy_s_ += now_s() - busy_since_;
    free_cv_.notify_one();
  };
  try {
    GenerationResult r = session->generate(opt);
    release();
    return r;
  } catch (...) {
    release();
    throw;
  }
}

BackendStats Backend::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  BackendStats s;
  s.running = running_;
  s.steps = steps_;
  s.busy_s = busy_s_ + (running_ > 0 ? now_s() - busy_since_ : 0.0);
  return s;
}

#endif

}  // namespace musicgen::server
