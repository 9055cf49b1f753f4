// The worker side of the Redis job queue: claims jobs for the models a replica holds, runs them,
// keeps their leases alive while they run, and stores their results (docs/DEPLOY.md).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "queue/redis_queue.h"

namespace musicgen::queue {

struct WorkResult {
  std::string body;          // the response body (an audio file, or JSON for a batch)
  std::string content_type;  // its media type
};

// Runs one job. report(progress 0..1, eta_s) records progress and returns false when the job
// must stop (canceled, or re-claimed by another replica after this one lost its lease): the
// function should then throw (any exception) or return; its result is discarded. Exceptions are
// the job's failure: their what() becomes the job's error.
using ReportFn = std::function<bool(double progress, double eta_s)>;
using RunFn = std::function<WorkResult(const ClaimedJob& job, const ReportFn& report)>;

struct WorkerStats {
  uint64_t claimed = 0, reclaimed = 0, succeeded = 0, failed = 0, canceled = 0, lost = 0;
};

class QueueWorker {
 public:
  // `concurrency` jobs at a time, each on its own thread.
  QueueWorker(const RedisUrl& url, QueueOptions options, std::vector<std::string> models,
              int concurrency, RunFn run);
  ~QueueWorker();  // stop(), without waiting for running jobs beyond their cancellation
  void start();
  // Stops claiming; running jobs finish (drain) and store their results, then the threads end.
  void stop();
  // Stops claiming without waiting (stop() then joins).
  void request_stop() { stopping_ = true; }
  WorkerStats stats() const;
  // Called after each job this worker ran, with its outcome: "succeeded" (this worker stored the
  // result), "failed", "canceled" or "lost" (taken over, or another replica stored it first).
  void on_finished(std::function<void(const ClaimedJob&, const std::string&)> f) {
    on_finished_ = std::move(f);
  }
  bool healthy() { return queue_.healthy(); }
  RedisQueue& queue() { return queue_; }

 private:
  void loop();
  void run_one(const ClaimedJob& job);

  RedisQueue queue_;
  std::vector<std::string> models_;
  int concurrency_;
  RunFn run_;
  std::function<void(const ClaimedJob&, const std::string&)> on_finished_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  WorkerStats stats_;
};

}  // namespace musicgen::queue
