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
  shares_ = std::make_unique<Share[]>(static_cast<size_t>(n_threads_));
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

namespace {
constexpr uint64_t pack(uint64_t front, uint64_t back) { return front << 32 | back; }
}  // namespace

void ThreadPool::run_share(int index) {
  const std::function<void(int64_t, int64_t)>& job = *job_;
  if (!job_stealing_) {
    const int64_t begin = std::min<int64_t>(job_n_, index * job_chunk_);
    const int64_t end = std::min<int64_t>(job_n_, begin + job_chunk_);
    if (begin < end) job(begin, end);
    return;
  }
  const int64_t piece = job_piece_, n = job_n_;
  auto run = [&](uint64_t p0, uint64_t p1) {
    job(static_cast<int64_t>(p0) * piece, std::min<int64_t>(n, static_cast<int64_t>(p1) * piece));
  };
  // Own share, front to back: a quarter of what is left per call (at least one piece), so the
  // last calls are single pieces and a thief finds little left to take.
  std::atomic<uint64_t>& own = shares_[static_cast<size_t>(index)].range;
  uint64_t cur = own.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t front = cur >> 32, back = cur & 0xffffffffu;
    if (front >= back) break;
    const uint64_t take = std::max<uint64_t>(1, (back - front) / 4);
    if (own.compare_exchange_weak(cur, pack(front + take, back), std::memory_order_acq_rel,
                                  std::memory_order_acquire)) {
      run(front, front + take);
      cur = own.load(std::memory_order_acquire);
    }
  }
  // Then single pieces from the back of the others' shares.
  for (int d = 1; d < n_threads_; ++d) {
    std::atomic<uint64_t>& other = shares_[static_cast<size_t>((index + d) % n_threads_)].range;
    cur = other.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t front = cur >> 32, back = cur & 0xffffffffu;
      if (front >= back) break;
      if (other.compare_exchange_weak(cur, pack(front, back - 1), std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        run(back - 1, back);
        cur = other.load(std::memory_order_acquire);
      }
    }
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
  run_job(n, fn, (n + parts - 1) / parts, grain, false);
}

void ThreadPool::parallel_for_stealing(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                                       int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t pieces = (n + grain - 1) / grain;
  if (n_threads_ <= 1 || pieces < 2) {
    fn(0, n);
    return;
  }
  if (pieces > 0xffffffffLL) {  // the packed counters hold 32 bits: coarser pieces
    parallel_for_stealing(n, fn, (n + 0xfffffffeLL) / 0xffffffffLL);
    return;
  }
  run_job(n, fn, 0, grain, true);
}

void ThreadPool::run_job(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t chunk,
                         int64_t piece, bool stealing) {
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = chunk;
  job_piece_ = piece;
  job_stealing_ = stealing;
  if (stealing) {  // contiguous shares of the pieces, in thread order
    const uint64_t pieces = static_cast<uint64_t>((n + piece - 1) / piece);
    for (int i = 0; i < n_threads_; ++i)
      shares_[static_cast<size_t>(i)].range.store(
          pack(pieces * i / n_threads_, pieces * (i + 1) / n_threads_), std::memory_order_relaxed);
  }
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
