#include "queue/queue_worker.h"

#include <chrono>

#include "core/error.h"
#include "core/log.h"

namespace musicgen::queue {

QueueWorker::QueueWorker(const RedisUrl& url, QueueOptions options, std::vector<std::string> models,
                         int concurrency, RunFn run)
    : queue_(url, std::move(options)), models_(std::move(models)),
      concurrency_(concurrency), run_(std::move(run)) {
  if (models_.empty()) fail(ErrorCode::kInvalidArgument, "a queue worker needs at least one model");
  if (concurrency_ < 1) fail(ErrorCode::kInvalidArgument, "queue worker concurrency must be at least 1");
}

QueueWorker::~QueueWorker() { stop(); }

void QueueWorker::start() {
  stopping_ = false;
  for (int i = 0; i < concurrency_; ++i) threads_.emplace_back([this] { loop(); });
}

void QueueWorker::stop() {
  stopping_ = true;
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

WorkerStats QueueWorker::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void QueueWorker::loop() {
  while (!stopping_) {
    std::optional<ClaimedJob> job;
    try {
      job = queue_.claim(models_, 250);
    } catch (const Error&) {
      // Redis is away: claim() reconnects with backoff on the next call.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (!job) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.claimed;
      if (job->attempts > 1) ++stats_.reclaimed;
    }
    run_one(*job);
  }
}

namespace {
// Retries a Redis call until it succeeds or `give_up` says stop (Redis restarting).
template <typename F>
auto with_retry(F f, const std::atomic<bool>& give_up, int max_ms = 60000) -> decltype(f()) {
  int waited = 0, backoff = 50;
  for (;;) {
    try {
      return f();
    } catch (const Error&) {
      if (waited >= max_ms || (give_up && waited >= 5000)) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
      waited += backoff;
      backoff = std::min(1000, backoff * 2);
    }
  }
}
}  // namespace

void QueueWorker::run_one(const ClaimedJob& job) {
  // A keeper renews the lease every third of it, with the last reported progress, so a job
  // whose steps are slow (text encoding, a long first window) never looks lost.
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::atomic<bool> keep_going{true};
  double progress = 0, eta = -1;
  const auto period = std::chrono::milliseconds(std::max(30, queue_.options().lease_ms / 3));
  std::thread keeper([&] {
    std::unique_lock<std::mutex> lock(m);
    while (!done) {
      cv.wait_for(lock, period, [&] { return done; });
      if (done) break;
      const double p = progress, e = eta;
      lock.unlock();
      try {
        if (!queue_.heartbeat(job, p, e)) keep_going = false;
      } catch (const Error&) {
        // Redis away for a moment: the lease outlives a short outage; try again next period.
      }
      lock.lock();
    }
  });
  const ReportFn report = [&](double p, double e) {
    {
      std::lock_guard<std::mutex> lock(m);
      progress = p;
      eta = e;
    }
    return keep_going.load();
  };
  std::string outcome;
  WorkResult result;
  std::string error;
  try {
    result = run_(job, report);
    outcome = keep_going ? "succeeded" : "lost";
  } catch (const std::exception& e) {
    outcome = keep_going ? "failed" : "lost";
    error = e.what();
  }
  {
    std::lock_guard<std::mutex> lock(m);
    done = true;
  }
  cv.notify_all();
  keeper.join();
  try {
    if (outcome == "succeeded") {
      if (!with_retry([&] { return queue_.complete(job, result.body, result.content_type); }, stopping_))
        outcome = "lost";  // another replica stored it first
    } else if (outcome == "failed") {
      with_retry([&] { return queue_.fail_job(job, error); }, stopping_);
    } else {
      // Canceled, or taken over: the current owner (or the cancel) decides the final state;
      // a cancel that nobody else will finish is made final here.
      const auto rec = with_retry([&] { return queue_.get(job.id); }, stopping_);
      if (rec && rec->cancel_requested && rec->owner == queue_.options().consumer) {
        with_retry([&] { return queue_.finish_canceled(job); }, stopping_);
        outcome = "canceled";
      }
    }
  } catch (const Error& e) {
    log_info("queue: could not record job " + job.id + " (" + e.what() + ")");
    outcome = "lost";
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (outcome == "succeeded") ++stats_.succeeded;
    else if (outcome == "failed") ++stats_.failed;
    else if (outcome == "canceled") ++stats_.canceled;
    else ++stats_.lost;
  }
  if (on_finished_) on_finished_(job, outcome);
}

}  // namespace musicgen::queue
