#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MUSICGEN_CPU_RELAX() _mm_pause()
#else
#define MUSICGEN_CPU_RELAX() std::this_thread::yield()
#endif

namespace musicgen {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Spins until done() or kSpinMicros have passed; returns done().
template <typename Done>
bool spin_until(Done done) {
  if (done()) return true;
  const auto limit = std::chrono::steady_clock::now() + std::chrono::microseconds(ThreadPool::kSpinMicros);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      MUSICGEN_CPU_RELAX();
      if (done()) return true;
    }
    if (std::chrono::steady_clock::now() > limit) return done();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  times_.resize(static_cast<size_t>(n_threads_));
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  start_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] {
      return stop_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen;
    };
    if (!spin_until(ready)) {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, ready);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    Times& t = times_[static_cast<size_t>(index)];
    t.start = now_ns();
    run_share(index);
    t.end = now_ns();
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // The caller may be asleep: take the lock so the notification cannot slip between its
      // check of pending_ and its wait.
      std::lock_guard<std::mutex> lock(mutex_);
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::run_share(int index) {
  const std::function<void(int64_t, int64_t)>& job = *job_;
  const int64_t begin = std::min<int64_t>(job_static_, index * job_chunk_);
  const int64_t end = std::min<int64_t>(job_static_, begin + job_chunk_);
  if (begin < end) job(begin, end);
  if (job_static_ >= job_n_) return;
  for (;;) {
    const int64_t b = tail_next_.fetch_add(job_piece_, std::memory_order_relaxed);
    if (b >= job_n_) return;
    job(b, std::min(job_n_, b + job_piece_));
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                              int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t max_parts = std::max<int64_t>(1, n / grain);
  const int parts = static_cast<int>(std::min<int64_t>(n_threads_, max_parts));
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  run_job(n, fn, (n + parts - 1) / parts, n, grain);
}

void ThreadPool::parallel_for_shared_tail(int64_t n,
                                          const std::function<void(int64_t, int64_t)>& fn,
                                          int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t pieces = n / grain;
  if (n_threads_ <= 1 || pieces < 2) {
    fn(0, n);
    return;
  }
  // Whole pieces: 7/8 of them static, one range per thread; the rest shared.
  const int64_t static_pieces = pieces * 7 / 8 / n_threads_ * n_threads_;
  const int64_t chunk = static_pieces / n_threads_ * grain;
  run_job(n, fn, chunk, chunk * n_threads_, grain);
}

void ThreadPool::run_job(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t chunk,
                         int64_t static_n, int64_t piece) {
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = chunk;
  job_static_ = static_n;
  job_piece_ = piece;
  tail_next_.store(static_n, std::memory_order_relaxed);
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  const int64_t call_start = now_ns();
  {
    // Under the lock, so a worker checking the predicate before sleeping cannot miss it.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_cv_.notify_all();
  const int64_t caller_start = now_ns();
  run_share(0);
  const int64_t caller_end = now_ns();
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(done)) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, done);
  }
  // Every worker wrote its times before its pending_ decrement (acquire above).
  times_[0] = {caller_start, caller_end};
  int64_t last = 0;
  for (const Times& t : times_) last = std::max(last, t.end);
  ++stats_.calls;
  for (size_t i = 0; i < times_.size(); ++i) {
    const Times& t = times_[i];
    stats_.busy_s += 1e-9 * static_cast<double>(t.end - t.start);
    stats_.barrier_s += 1e-9 * static_cast<double>(last - t.end);
    if (i > 0) stats_.start_s += 1e-9 * static_cast<double>(std::max<int64_t>(0, t.start - call_start));
  }
}

}  // namespace musicgen
