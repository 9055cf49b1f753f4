// A fixed pool of worker threads with a blocking parallel_for. Passed explicitly to whatever
// needs it (never a global). Work is split into contiguous ranges; kernels must compute every
// output element with the same arithmetic whatever the range, so results never depend on the
// thread count.
//
// A decoder step makes about 150 parallel_for calls of 50-500 us each, so waking the workers
// must cost far less than a futex round trip (tens of microseconds on a virtual machine): workers
// and the caller spin for a short while (kSpinMicros) on an atomic before they sleep on a
// condition variable. Between the calls of one step the workers never fall asleep; an idle pool
// sleeps and costs nothing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace musicgen {

class ThreadPool {
 public:
  // n_threads <= 0 means the number of hardware threads.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n), at most size() at a time, and
  // returns when all are done. Ranges are at least `grain` long (except the last). The split
  // depends only on n, grain and size(). Not reentrant: one caller at a time.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

  // As parallel_for, but balanced by stealing: [0, n) is cut into pieces of `grain` and each
  // thread owns a contiguous share of them, which it runs front to back (a few pieces per call,
  // fewer as its share runs out), so its reads stay one sequential stream. A thread whose share
  // is done takes single pieces from the back of another thread's share: a thread that ran slower
  // (a shared memory bus, a virtual CPU that lost its core for a while) is helped instead of
  // waited for, and no piece of a share that its owner keeps up with is taken from it. fn may be
  // called several times per thread; it must not depend on how [0, n) is cut.
  void parallel_for_stealing(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t grain = 1);

  // How long a waiting thread spins before it sleeps.
  static constexpr int kSpinMicros = 300;

  // Where the threads' time went in parallel_for calls that used more than one thread (summed
  // over all threads): running fn, waking (from the call until a worker starts its range), and
  // waiting at the end for the slowest thread of the call. busy / (busy + start + barrier) is how
  // well the split keeps the threads working; time outside calls (the caller's serial work) is
  // not counted.
  struct Stats {
    uint64_t calls = 0;
    double busy_s = 0, start_s = 0, barrier_s = 0;
  };
  Stats stats() const { return stats_; }  // read by the caller thread between calls
  void reset_stats() { stats_ = {}; }

 private:
  void worker(int index);
  // One thread's share of the current job: its static range, or (stealing) its own pieces, then
  // pieces taken from the others.
  void run_share(int index);
  void run_job(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t chunk,
               int64_t piece, bool stealing);

  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  // Written by parallel_for before generation_ is incremented (release), read by the workers
  // after they see the new generation (acquire).
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_chunk_ = 0;
  // parallel_for_stealing: pieces of job_piece_; per thread, the pieces [front, back) of its
  // share not yet taken, packed as front << 32 | back. The owner takes from the front, others take
  // from the back, each with a compare-and-swap. One cache line per thread.
  bool job_stealing_ = false;
  int64_t job_piece_ = 1;
  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};
  };
  std::unique_ptr<Share[]> shares_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  // Per worker index: when it started and finished its range in the current call (steady clock,
  // ns); written by the worker before it signals done, read by the caller after.
  struct Times {
    int64_t start = 0, end = 0;
  };
  std::vector<Times> times_;
  Stats stats_;
};

}  // namespace musicgen
