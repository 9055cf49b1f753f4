// Continuous batching (include/musicgen/batcher.h): one decoder thread runs the steps of every
// running request as one MusicgenDecoder::forward_multi call; each request keeps its own
// CodeStepper (delay pattern, guidance, logits processing, its own Rng) and DecoderState (KV cache,
// cross-attention text). Callers encode their text, wait for their codes, and decode their audio
// on their own threads (generate_with, the pipeline Session::generate runs).
#include "musicgen/batcher.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "api/batcher_test_access.h"
#include "api/model_impl.h"
#include "core/error.h"
#include "core/timer.h"

namespace musicgen {

namespace {

// One batched request, owned by its caller's stack frame while it waits.
struct Request {
  CodeGenRequest req;  // the caller's, without on_frames (called on the caller's thread)
  bool streaming = false;
  std::unique_ptr<CodeStepper> stepper;
  DecoderState state;
  std::vector<int32_t> tokens;  // the next step's inputs
  std::vector<float> logits;    // its logits
  std::exception_ptr error;
  // Under the batcher's mutex:
  bool finished = false;  // the decoder thread is done with it: the caller may return
  int final_frames = 0;   // stepper->final_frames() after the last step (streaming)
  bool cancel = false;    // the caller's on_frames asked to stop: leave at the next boundary
};

}  // namespace

struct Batcher::Impl {
  std::shared_ptr<const Model> model;
  BatcherOptions options;
  ThreadPool pool;  // the decoder thread's
  mutable std::mutex mu;
  std::condition_variable work_cv;  // the decoder thread waits for requests
  std::condition_variable done_cv;  // callers wait for their request to finish
  std::deque<Request*> waiting;     // under mu
  std::vector<Request*> running;    // the decoder thread's; its size mirrored in stats
  Stats stats;                      // under mu
  bool stop = false;                // under mu
  std::thread worker;

  Impl(std::shared_ptr<const Model> m, const BatcherOptions& o)
      : model(std::move(m)), options(o), pool(o.threads) {
    worker = std::thread([this] { loop(); });
  }
  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    work_cv.notify_all();
    worker.join();
  }

  // The hook generate_with calls for a batchable request: prepares its state on the calling
  // thread (side: that thread's pool), queues it and waits for its codes. Streaming
  // (req.on_frames) is served here, on the calling thread, as frames become final: the decoder
  // thread never waits for a caller's audio decoding.
  CodeGenResult decode(const CodeGenRequest& req, ThreadPool* side) {
    const MusicgenDecoder& decoder = *model->impl().decoder;
    Request r;
    r.req = req;
    r.req.on_frames = nullptr;
    r.streaming = static_cast<bool>(req.on_frames);
    r.stepper = std::make_unique<CodeStepper>(decoder.config(), r.req);
    r.state = decoder.new_state(r.stepper->rows(), r.stepper->capacity());
    if (r.stepper->text() != nullptr)
      decoder.set_text(r.state, *r.stepper->text(), *r.stepper->text_mask(), side);
    int reported = r.stepper->final_frames();  // the prompt's (none: batched requests have none)
    std::vector<int32_t> fresh;
    std::exception_ptr caller_error;
    std::unique_lock<std::mutex> lock(mu);
    waiting.push_back(&r);
    stats.waiting = static_cast<int>(waiting.size());
    work_cv.notify_one();
    for (;;) {
      done_cv.wait(lock, [&] {
        return r.finished || (r.streaming && !caller_error && r.final_frames > reported);
      });
      if (r.streaming && !caller_error && !r.error && r.final_frames > reported) {
        // Final cells are never written again: copy them, then call back without the lock.
        const int first = reported, n = r.final_frames - reported;
        r.stepper->copy_frames(first, n, &fresh);
        reported += n;
        lock.unlock();
        try {
          if (!req.on_frames(first, n, fresh))
            fail(ErrorCode::kCancelled, "generation cancelled");
        } catch (...) {
          caller_error = std::current_exception();
        }
        lock.lock();
        if (caller_error) r.cancel = true;  // leaves at the next step boundary
        continue;
      }
      if (r.finished) break;
    }
    lock.unlock();
    if (caller_error) std::rethrow_exception(caller_error);
    if (r.error) std::rethrow_exception(r.error);
    return r.stepper->result();
  }

  void loop() {
    const MusicgenDecoder& decoder = *model->impl().decoder;
    std::vector<MusicgenDecoder::SeqStep> seqs;
    std::vector<Request*> stepped, leaving;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu);
        work_cv.wait(lock, [&] { return stop || !waiting.empty() || !running.empty(); });
        if (waiting.empty() && running.empty()) return;  // stop, and nothing in flight
        // Requests their callers cancelled (streaming) leave, waiting ones too.
        for (auto it = waiting.begin(); it != waiting.end();)
          if ((*it)->cancel) {
            (*it)->error = std::make_exception_ptr(Error(ErrorCode::kCancelled, "generation cancelled"));
            (*it)->finished = true;
            it = waiting.erase(it);
            done_cv.notify_all();
          } else {
            ++it;
          }
        for (auto it = running.begin(); it != running.end();)
          if ((*it)->cancel) {
            (*it)->error = std::make_exception_ptr(Error(ErrorCode::kCancelled, "generation cancelled"));
            (*it)->state = DecoderState{};
            (*it)->finished = true;
            it = running.erase(it);
            done_cv.notify_all();
          } else {
            ++it;
          }
        if (waiting.empty() && running.empty()) {
          stats.running = 0;
          stats.waiting = 0;
          if (stop) return;
          continue;
        }
        // Join at this step boundary, first come first served.
        while (!waiting.empty() && static_cast<int>(running.size()) < options.max_batch) {
          running.push_back(waiting.front());
          waiting.pop_front();
        }
        stats.running = static_cast<int>(running.size());
        stats.waiting = static_cast<int>(waiting.size());
      }
      Stopwatch sw;
      seqs.clear();
      stepped.clear();
      leaving.clear();
      for (Request* r : running) {
        try {
          MusicgenDecoder::SeqStep q;
          q.state = &r->state;
          q.n = r->stepper->next_input(&r->tokens, &q.prefix, &q.prefix_len);
          q.tokens = r->tokens.data();
          q.logits = &r->logits;
          seqs.push_back(q);
          stepped.push_back(r);
        } catch (...) {
          r->error = std::current_exception();
          leaving.push_back(r);
        }
      }
      try {
        decoder.forward_multi(seqs, &pool);
        for (Request* r : stepped) {
          try {
            r->stepper->consume(r->logits.data());  // its own guidance, sampling, progress
            if (r->stepper->done()) leaving.push_back(r);
          } catch (...) {
            r->error = std::current_exception();  // Error(kCancelled) from its progress callback
            leaving.push_back(r);
          }
        }
      } catch (...) {
        for (Request* r : stepped) {
          r->error = std::current_exception();
          leaving.push_back(r);
        }
      }
      const double busy = sw.seconds();
      bool streamed = false;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!stepped.empty()) {
          ++stats.steps;
          stats.request_steps += stepped.size();
          stats.busy_s += busy;
        }
        for (Request* r : stepped) {
          r->final_frames = r->stepper->final_frames();
          streamed = streamed || r->streaming;
        }
        for (Request* r : leaving) {
          r->state = DecoderState{};  // its caches go now, not when the caller wakes
          r->finished = true;
          running.erase(std::find(running.begin(), running.end(), r));
        }
        stats.running = static_cast<int>(running.size());
      }
      if (!leaving.empty() || streamed) done_cv.notify_all();
    }
  }
};

Batcher::Batcher(std::shared_ptr<const Model> model, BatcherOptions options) {
  if (!model) fail(ErrorCode::kInvalidArgument, "Batcher needs a loaded model");
  if (options.threads < 0)
    fail(ErrorCode::kInvalidArgument, "threads must be >= 0 (0 = all cores)");
  if (options.max_batch < 1)
    fail(ErrorCode::kInvalidArgument,
         "max_batch must be at least 1, got " + std::to_string(options.max_batch));
  impl_ = std::make_unique<Impl>(std::move(model), options);
}

Batcher::~Batcher() = default;

GenerationResult Batcher::generate(const GenerationOptions& options) {
  const Model::Impl& m = impl_->model->impl();
  if (!batchable(m, options)) {
    // Audio prompt, melody, long form, GPU decoder: an ordinary Session on this thread, counted
    // in stats (solo, request_steps).
    Impl* im = impl_.get();
    struct Solo {
      Impl* im;
      explicit Solo(Impl* i) : im(i) {
        std::lock_guard<std::mutex> lock(im->mu);
        ++im->stats.solo;
      }
      ~Solo() {
        std::lock_guard<std::mutex> lock(im->mu);
        --im->stats.solo;
      }
    } solo(im);
    GenerationOptions opt = options;
    int last = 0;
    opt.progress = [&](int step, int total) {
      {
        std::lock_guard<std::mutex> lock(im->mu);
        im->stats.request_steps += static_cast<uint64_t>(std::max(0, step - last));
      }
      last = step;
      return options.progress ? options.progress(step, total) : true;
    };
    Session session(impl_->model, {impl_->options.threads});
    return session.generate(opt);
  }
  // Text encoding and EnCodec decoding on this thread alone: the decoder thread owns the pool.
  ThreadPool side(1);
  const CodeGenHook hook = [&](const CodeGenRequest& req) { return impl_->decode(req, &side); };
  return generate_with(m, options, &side, &hook);
}

Batcher::Stats Batcher::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

const std::shared_ptr<const Model>& Batcher::model() const { return impl_->model; }

CodeGenResult BatcherTestAccess::decode(Batcher& batcher, const CodeGenRequest& request) {
  ThreadPool side(1);
  return batcher.impl_->decode(request, &side);
}

}  // namespace musicgen
