// A shared job queue and result store for `musicgen serve` replicas, on Redis (issue 14).
//
// Layout (every key starts with QueueOptions::prefix, "musicgen" by default):
//   {p}:stream:{model}   a Redis Stream per model; each entry names one job ("id" field). Replicas
//                        that hold the model read it through the consumer group "workers"
//                        (XREADGROUP), so each entry is delivered to one replica.
//   {p}:job:{id}         a hash: status (queued|running|succeeded|failed|canceled), model,
//                        request (the JSON body), progress, eta_s, error, owner, attempts,
//                        created, updated, cancel, content_type.
//   {p}:audio:{id}       the finished job's response body (binary), with the result TTL.
//   {p}:idem:{key}       idempotency key -> job id (SET NX with a TTL): a resubmission of the
//                        same key returns the first job instead of running it again.
//
// Leases: a delivered entry stays in the group's pending list until the job is final. The owner
// renews it with heartbeat() (XCLAIM ... JUSTID resets its idle time) while it runs; when a
// replica dies its entries go idle, and after lease_ms another replica takes them over with
// XAUTOCLAIM and runs the job from the start. Completion is a server-side script that stores the
// result only when the job is not final yet, so a job's result is stored exactly once even when
// a stalled replica and its successor both finish it.
//
// Connections: one for short commands and one for blocking reads, each behind its own mutex; a
// lost connection is re-established on the next call, with exponential backoff (100 ms .. 5 s);
// meanwhile calls throw Error(kIo) and healthy() is false.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct redisContext;

namespace musicgen::queue {

// redis://[user:password@]host[:port][/db]; throws Error(kInvalidArgument) naming what is wrong.
struct RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user, password;
  int db = 0;
};
RedisUrl parse_redis_url(const std::string& url);

struct QueueOptions {
  std::string prefix = "musicgen";
  std::string consumer;           // this replica's name in the consumer group (unique per replica)
  int lease_ms = 30000;           // a running job whose owner has not renewed it for this long is re-claimed
  int result_ttl_s = 3600;        // how long finished jobs and their audio stay
  int idempotency_ttl_s = 86400;  // how long an idempotency key maps to its job
  int connect_timeout_ms = 2000;
};

struct JobRecord {
  std::string id, model, status, request, error, owner, content_type;
  double progress = 0, eta_s = -1, created = 0, updated = 0;
  int attempts = 0;
  bool cancel_requested = false;
};

struct ClaimedJob {
  std::string id, model, request;
  std::string stream, entry;  // where its stream entry lives (for renewal and acknowledgement)
  int attempts = 0;           // 1 the first time; more when re-claimed after a lost replica
};

class RedisQueue {
 public:
  RedisQueue(const RedisUrl& url, QueueOptions options);
  ~RedisQueue();
  RedisQueue(const RedisQueue&) = delete;
  RedisQueue& operator=(const RedisQueue&) = delete;

  // Whether Redis answers PING now (reconnecting if needed, within the backoff).
  bool healthy();

  // --- Clients (any replica) ---
  // Enqueues a job for `model`; returns its id. With a non-empty idempotency key that was used
  // before (within its TTL) nothing is enqueued and the first job's id is returned; *existed
  // (optional) says which.
  std::string submit(const std::string& model, const std::string& request_json,
                     const std::string& idempotency_key = "", bool* existed = nullptr);
  std::optional<JobRecord> get(const std::string& id);
  // The finished job's response body; nothing when it is unknown, not finished or expired.
  std::optional<std::string> result(const std::string& id);
  // Cancels: a queued job becomes canceled at once; a running one is flagged and its owner stops
  // at its next heartbeat. Returns the status after the call; nothing for an unknown id.
  std::optional<std::string> cancel(const std::string& id);

  // --- Workers ---
  // The next job for one of `models`: first an entry whose lease has expired (a lost replica's
  // job), else a new entry, waiting up to block_ms. Jobs already final (canceled while queued)
  // are acknowledged and skipped.
  std::optional<ClaimedJob> claim(const std::vector<std::string>& models, int block_ms);
  // Renews the lease and records progress. false: stop working on it (canceled, or no longer
  // ours because another replica re-claimed it after our lease expired).
  bool heartbeat(const ClaimedJob& job, double progress, double eta_s);
  // Stores the result and marks the job succeeded, unless it is already final: true when this
  // claim stored it. Idempotent for one claim: a retry after a lost reply (Redis ran the call,
  // the connection broke before the answer) finds its own result and returns true again, so a
  // replica never calls its own success "stored by another". The entry is acknowledged either
  // way.
  bool complete(const ClaimedJob& job, const std::string& body, const std::string& content_type);
  // Marks the job failed (or canceled, when it was asked to stop), unless already final.
  bool fail_job(const ClaimedJob& job, const std::string& message);
  bool finish_canceled(const ClaimedJob& job);

  const QueueOptions& options() const { return options_; }

  struct Conn;  // a connection with its lock (redis_queue.cpp)

 private:
  std::string key_job(const std::string& id) const;
  std::string key_stream(const std::string& model) const;
  void ensure_group(Conn& c, const std::string& stream);
  std::optional<ClaimedJob> adopt(Conn& c, const std::string& stream, const std::string& entry,
                                  const std::string& id, bool reclaimed);
  bool finish(const ClaimedJob& job, const std::string& status, const std::string& body,
              const std::string& content_type, const std::string& error);

  RedisUrl url_;
  QueueOptions options_;
  std::unique_ptr<Conn> cmd_, block_;
  std::mutex groups_mutex_;
  std::vector<std::string> groups_;  // streams whose group this process has created
};

}  // namespace musicgen::queue
