#include "queue/redis_queue.h"

#include <hiredis.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>

#include "core/error.h"

namespace musicgen::queue {
namespace {

constexpr const char* kGroup = "workers";

using Clock = std::chrono::steady_clock;

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

bool is_error(const redisReply* r) { return r && r->type == REDIS_REPLY_ERROR; }
std::string str(const redisReply* r) {
  if (!r) return {};
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
    return std::string(r->str, r->len);
  if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
  return {};
}

std::string now_string() {
  const double s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string new_id() {
  static thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }());
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(gen()),
                static_cast<unsigned long long>(gen()));
  return buf;
}

[[noreturn]] void bad_url(const std::string& url, const std::string& why) {
  fail(ErrorCode::kInvalidArgument, "--queue '" + url + "': " + why +
                                        "; expected redis://[user:password@]host[:port][/db]");
}

// Scripts run atomically inside Redis (EVAL), so the state changes below never interleave.
const char* kSubmitScript = R"(
if ARGV[6] == '1' then
  local prev = redis.call('GET', KEYS[1])
  if prev then return {prev, 1} end
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
end
redis.call('HSET', KEYS[2], 'status', 'queued', 'model', ARGV[2], 'request', ARGV[3],
           'progress', '0', 'eta_s', '-1', 'created', ARGV[4], 'updated', ARGV[4],
           'attempts', '0', 'cancel', '0', 'owner', '', 'error', '', 'content_type', '')
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
return {ARGV[1], 0}
)";

// KEYS: job, stream. ARGV: entry, consumer, now, ttl. Returns {attempts, model, request}, or nil
// when the job is final or gone (the entry is then acknowledged and deleted).
const char* kAdoptScript = R"(
local st = redis.call('HGET', KEYS[1], 'status')
if st and st ~= 'succeeded' and st ~= 'failed' and st ~= 'canceled' and
   redis.call('HGET', KEYS[1], 'cancel') == '1' then
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'updated', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  st = 'canceled'
end
if not st or st == 'succeeded' or st == 'failed' or st == 'canceled' then
  redis.call('XACK', KEYS[2], 'workers', ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
  return false
end
redis.call('HSET', KEYS[1], 'status', 'running', 'owner', ARGV[2], 'updated', ARGV[3],
           'progress', '0', 'eta_s', '-1')
local a = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {a, redis.call('HGET', KEYS[1], 'model'), redis.call('HGET', KEYS[1], 'request')}
)";

// KEYS: job, stream. ARGV: consumer, entry, progress, eta, now. 1: keep going; 0: stop.
const char* kHeartbeatScript = R"(
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then return 0 end
redis.call('XCLAIM', KEYS[2], 'workers', ARGV[1], 0, ARGV[2], 'JUSTID')
redis.call('HSET', KEYS[1], 'progress', ARGV[3], 'eta_s', ARGV[4], 'updated', ARGV[5])
return 1
)";

// KEYS: job, stream, audio. ARGV: status, body, content_type, error, ttl, entry, now, claim
// (consumer#attempt). 1: this claim made the job final (now, or in an earlier call whose reply
// was lost: the client retries a call whose connection broke, and Redis may have run it); 0:
// another claim, or a cancel, did.
const char* kFinishScript = R"(
redis.call('XACK', KEYS[2], 'workers', ARGV[6])
redis.call('XDEL', KEYS[2], ARGV[6])
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 0 end
if st == 'succeeded' or st == 'failed' or st == 'canceled' then
  if redis.call('HGET', KEYS[1], 'finished_by') == ARGV[8] then return 1 end
  return 0
end
local status = ARGV[1]
if status == 'failed' and redis.call('HGET', KEYS[1], 'cancel') == '1' then status = 'canceled' end
if status == 'succeeded' then
  redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[5])
  redis.call('HSET', KEYS[1], 'progress', '1', 'eta_s', '0')
end
redis.call('HSET', KEYS[1], 'status', status, 'updated', ARGV[7], 'error', ARGV[4],
           'content_type', ARGV[3], 'finished_by', ARGV[8])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
)";

// KEYS: job. ARGV: now, ttl. The status after the call, or nil for an unknown job.
const char* kCancelScript = R"(
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return false end
if st == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'cancel', '1', 'updated', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 'canceled'
end
if st == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1') end
return st
)";

}  // namespace

RedisUrl parse_redis_url(const std::string& url) {
  RedisUrl u;
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) bad_url(url, "it does not start with redis://");
  std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  std::string db;
  if (slash != std::string::npos) {
    db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  const size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    const std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = cred.find(':');
    if (colon == std::string::npos) {
      u.password = cred;
    } else {
      u.user = cred.substr(0, colon);
      u.password = cred.substr(colon + 1);
    }
  }
  std::string port;
  if (!rest.empty() && rest[0] == '[') {  // [IPv6]:port
    const size_t close = rest.find(']');
    if (close == std::string::npos) bad_url(url, "an IPv6 address is missing its ']'");
    u.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') bad_url(url, "unexpected text after the host");
      port = rest.substr(close + 2);
    }
  } else {
    const size_t colon = rest.rfind(':');
    u.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (u.host.empty()) bad_url(url, "the host is empty");
  auto to_int = [&](const std::string& s, int lo, int hi, const char* what) {
    if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), ::isdigit))
      bad_url(url, std::string("the ") + what + " '" + s + "' is not a number");
    const int v = std::stoi(s);
    if (v < lo || v > hi)
      bad_url(url, std::string("the ") + what + " must be between " + std::to_string(lo) +
                       " and " + std::to_string(hi));
    return v;
  };
  if (!port.empty() || (at == std::string::npos && rest.find(':') != std::string::npos))
    u.port = to_int(port, 1, 65535, "port");
  if (!db.empty()) u.db = to_int(db, 0, 1 << 20, "database number");
  return u;
}

// A connection with its own lock and reconnect backoff.
struct RedisQueue::Conn {
  std::mutex mutex;
  redisContext* ctx = nullptr;
  Clock::time_point next_attempt{};
  int backoff_ms = 0;
  ~Conn() { drop(); }
  void drop() {
    if (ctx) redisFree(ctx);
    ctx = nullptr;
  }
};

namespace {

std::string where(const RedisUrl& u) { return u.host + ":" + std::to_string(u.port); }

[[noreturn]] void lost(const RedisUrl& u, const std::string& why) {
  fail(ErrorCode::kIo, "Redis at " + where(u) + " is unavailable (" + why +
                           "); retrying - check that redis-server runs and --queue names it");
}

timeval to_tv(int ms) {
  timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

Reply raw_command(redisContext* ctx, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return Reply(static_cast<redisReply*>(
      redisCommandArgv(ctx, static_cast<int>(args.size()), argv.data(), lens.data())));
}

// Connects (within the backoff) when needed; throws Error(kIo) when Redis cannot be reached.
void connect(RedisQueue::Conn& c, const RedisUrl& u, int timeout_ms) {
  if (c.ctx) return;
  const auto now = Clock::now();
  if (now < c.next_attempt) lost(u, "reconnecting");
  auto failed = [&](const std::string& why) {
    c.drop();
    c.backoff_ms = c.backoff_ms == 0 ? 100 : std::min(5000, c.backoff_ms * 2);
    c.next_attempt = Clock::now() + std::chrono::milliseconds(c.backoff_ms);
    lost(u, why);
  };
  c.ctx = redisConnectWithTimeout(u.host.c_str(), u.port, to_tv(timeout_ms));
  if (!c.ctx) failed("out of memory");
  if (c.ctx->err) failed(c.ctx->errstr);
  redisSetTimeout(c.ctx, to_tv(5000));
  if (!u.password.empty()) {
    Reply r = u.user.empty() ? raw_command(c.ctx, {"AUTH", u.password})
                             : raw_command(c.ctx, {"AUTH", u.user, u.password});
    if (!r) failed(c.ctx->errstr);
    if (is_error(r.get())) {
      c.drop();
      fail(ErrorCode::kInvalidArgument, "Redis at " + where(u) + " refused the credentials in --queue: " + str(r.get()));
    }
  }
  if (u.db != 0) {
    Reply r = raw_command(c.ctx, {"SELECT", std::to_string(u.db)});
    if (!r) failed(c.ctx->errstr);
    if (is_error(r.get())) {
      c.drop();
      fail(ErrorCode::kInvalidArgument, "Redis at " + where(u) + " refused database " +
                                            std::to_string(u.db) + ": " + str(r.get()));
    }
  }
  c.backoff_ms = 0;
}

// Runs one command on a locked connection; a transport failure drops the connection and
// throws Error(kIo); a Redis error reply is returned for the caller to judge.
Reply command(RedisQueue::Conn& c, const RedisUrl& u, int timeout_ms,
              const std::vector<std::string>& args, int read_timeout_ms = 5000) {
  connect(c, u, timeout_ms);
  redisSetTimeout(c.ctx, to_tv(read_timeout_ms));
  Reply r = raw_command(c.ctx, args);
  if (!r) {
    const std::string why = c.ctx->errstr;
    c.drop();
    c.backoff_ms = 0;  // the first reconnect is immediate
    lost(u, why);
  }
  return r;
}

Reply checked(Reply r, const std::string& what) {
  if (is_error(r.get())) fail(ErrorCode::kIo, "Redis refused " + what + ": " + str(r.get()));
  return r;
}

}  // namespace

RedisQueue::RedisQueue(const RedisUrl& url, QueueOptions options)
    : url_(url), options_(std::move(options)), cmd_(std::make_unique<Conn>()),
      block_(std::make_unique<Conn>()) {
  if (options_.consumer.empty()) options_.consumer = "replica-" + new_id().substr(0, 12);
  if (options_.lease_ms < 100) fail(ErrorCode::kInvalidArgument, "the job lease must be at least 100 ms");
  if (options_.result_ttl_s < 1 || options_.idempotency_ttl_s < 1)
    fail(ErrorCode::kInvalidArgument, "result and idempotency TTLs must be at least 1 s");
}

RedisQueue::~RedisQueue() = default;

std::string RedisQueue::key_job(const std::string& id) const { return options_.prefix + ":job:" + id; }
std::string RedisQueue::key_stream(const std::string& model) const {
  return options_.prefix + ":stream:" + model;
}

bool RedisQueue::healthy() {
  std::lock_guard<std::mutex> lock(cmd_->mutex);
  try {
    Reply r = command(*cmd_, url_, options_.connect_timeout_ms, {"PING"});
    return str(r.get()) == "PONG";
  } catch (const Error&) {
    return false;
  }
}

void RedisQueue::ensure_group(Conn& c, const std::string& stream) {
  {
    std::lock_guard<std::mutex> lock(groups_mutex_);
    if (std::find(groups_.begin(), groups_.end(), stream) != groups_.end()) return;
  }
  Reply r = command(c, url_, options_.connect_timeout_ms,
                    {"XGROUP", "CREATE", stream, kGroup, "0", "MKSTREAM"});
  if (is_error(r.get()) && str(r.get()).rfind("BUSYGROUP", 0) != 0)
    fail(ErrorCode::kIo, "Redis refused to create the consumer group of " + stream + ": " + str(r.get()));
  std::lock_guard<std::mutex> lock(groups_mutex_);
  groups_.push_back(stream);
}

std::string RedisQueue::submit(const std::string& model, const std::string& request_json,
                               const std::string& idempotency_key, bool* existed) {
  std::lock_guard<std::mutex> lock(cmd_->mutex);
  const std::string stream = key_stream(model);
  ensure_group(*cmd_, stream);
  const std::string id = new_id();
  Reply r = checked(command(*cmd_, url_, options_.connect_timeout_ms,
                            {"EVAL", kSubmitScript, "3", options_.prefix + ":idem:" + idempotency_key,
                             key_job(id), stream, id, model, request_json, now_string(),
                             std::to_string(options_.idempotency_ttl_s),
                             idempotency_key.empty() ? "0" : "1"}),
                    "a job submission");
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
    fail(ErrorCode::kIo, "Redis answered a job submission with an unexpected reply");
  if (existed) *existed = r->element[1]->integer == 1;
  return str(r->element[0]);
}

std::optional<JobRecord> RedisQueue::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(cmd_->mutex);
  Reply r = checked(command(*cmd_, url_, options_.connect_timeout_ms, {"HGETALL", key_job(id)}),
                    "a job lookup");
  if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) return std::nullopt;
  JobRecord j;
  j.id = id;
  auto to_double = [](const std::string& s, double dflt) {
    try {
      return s.empty() ? dflt : std::stod(s);
    } catch (const std::exception&) {
      return dflt;
    }
  };
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const std::string k = str(r->element[i]), v = str(r->element[i + 1]);
    if (k == "status") j.status = v;
    else if (k == "model") j.model = v;
    else if (k == "request") j.request = v;
    else if (k == "error") j.error = v;
    else if (k == "owner") j.owner = v;
    else if (k == "content_type") j.content_type = v;
    else if (k == "progress") j.progress = to_double(v, 0);
    else if (k == "eta_s") j.eta_s = to_double(v, -1);
    else if (k == "created") j.created = to_double(v, 0);
    else if (k == "updated") j.updated = to_double(v, 0);
    else if (k == "attempts") j.attempts = static_cast<int>(to_double(v, 0));
    else if (k == "cancel") j.cancel_requested = v == "1";
  }
  return j;
}

std::optional<std::string> RedisQueue::result(const std::string& id) {
  std::lock_guard<std::mutex> lock(cmd_->mutex);
  Reply r = checked(command(*cmd_, url_, options_.connect_timeout_ms,
                            {"GET", options_.prefix + ":audio:" + id}),
                    "a result lookup");
  if (r->type != REDIS_REPLY_STRING) return std::nullopt;
  return str(r.get());
}

std::optional<std::string> RedisQueue::cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(cmd_->mutex);
  Reply r = checked(command(*cmd_, url_, options_.connect_timeout_ms,
                            {"EVAL", kCancelScript, "1", key_job(id), now_string(),
                             std::to_string(options_.result_ttl_s)}),
                    "a cancel");
  if (r->type == REDIS_REPLY_NIL) return std::nullopt;
  return str(r.get());
}

std::optional<ClaimedJob> RedisQueue::adopt(Conn& c, const std::string& stream,
                                            const std::string& entry, const std::string& id,
                                            bool reclaimed) {
  (void)reclaimed;
  Reply r = checked(command(c, url_, options_.connect_timeout_ms,
                            {"EVAL", kAdoptScript, "2", key_job(id), stream, entry,
                             options_.consumer, now_string(), std::to_string(options_.result_ttl_s)}),
                    "a job claim");
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) return std::nullopt;
  ClaimedJob j;
  j.id = id;
  j.attempts = static_cast<int>(r->element[0]->integer);
  j.model = str(r->element[1]);
  j.request = str(r->element[2]);
  j.stream = stream;
  j.entry = entry;
  return j;
}

namespace {
// The job id in a stream entry [entry-id, [field, value, ...]].
std::string entry_job_id(const redisReply* e) {
  if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2) return {};
  const redisReply* f = e->element[1];
  if (!f || f->type != REDIS_REPLY_ARRAY) return {};
  for (size_t i = 0; i + 1 < f->elements; i += 2)
    if (str(f->element[i]) == "id") return str(f->element[i + 1]);
  return {};
}
}  // namespace

std::optional<ClaimedJob> RedisQueue::claim(const std::vector<std::string>& models, int block_ms) {
  if (models.empty()) fail(ErrorCode::kInvalidArgument, "a worker must hold at least one model");
  std::lock_guard<std::mutex> lock(block_->mutex);
  std::vector<std::string> streams;
  for (const std::string& m : models) {
    streams.push_back(key_stream(m));
    ensure_group(*block_, streams.back());
  }
  // 1. A lost replica's job: an entry idle for longer than the lease.
  for (const std::string& s : streams) {
    std::string start = "0-0";
    for (int round = 0; round < 16; ++round) {
      Reply r = checked(command(*block_, url_, options_.connect_timeout_ms,
                                {"XAUTOCLAIM", s, kGroup, options_.consumer,
                                 std::to_string(options_.lease_ms), start, "COUNT", "1"}),
                        "XAUTOCLAIM");
      if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) break;
      const redisReply* entries = r->element[1];
      for (size_t i = 0; entries && entries->type == REDIS_REPLY_ARRAY && i < entries->elements; ++i) {
        const std::string entry = str(entries->element[i]->element[0]);
        const std::string id = entry_job_id(entries->element[i]);
        if (id.empty()) {  // a malformed entry: drop it
          command(*block_, url_, options_.connect_timeout_ms, {"XACK", s, kGroup, entry});
          continue;
        }
        if (auto j = adopt(*block_, s, entry, id, true)) return j;
      }
      start = str(r->element[0]);
      if (start == "0-0") break;
    }
  }
  // 2. A new entry, waiting up to block_ms.
  std::vector<std::string> args = {"XREADGROUP", "GROUP", kGroup, options_.consumer, "COUNT", "1",
                                   "BLOCK", std::to_string(std::max(1, block_ms)), "STREAMS"};
  for (const std::string& s : streams) args.push_back(s);
  for (size_t i = 0; i < streams.size(); ++i) args.push_back(">");
  Reply r = command(*block_, url_, options_.connect_timeout_ms, args, block_ms + 5000);
  if (is_error(r.get())) {
    if (str(r.get()).rfind("NOGROUP", 0) == 0) {  // Redis lost its data: create the groups again
      std::lock_guard<std::mutex> g(groups_mutex_);
      groups_.clear();
      return std::nullopt;
    }
    fail(ErrorCode::kIo, "Redis refused XREADGROUP: " + str(r.get()));
  }
  if (r->type != REDIS_REPLY_ARRAY) return std::nullopt;  // timed out
  for (size_t k = 0; k < r->elements; ++k) {
    const redisReply* sr = r->element[k];
    if (sr->type != REDIS_REPLY_ARRAY || sr->elements < 2) continue;
    const std::string s = str(sr->element[0]);
    const redisReply* entries = sr->element[1];
    for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; ++i) {
      const std::string entry = str(entries->element[i]->element[0]);
      const std::string id = entry_job_id(entries->element[i]);
      if (id.empty()) {
        command(*block_, url_, options_.connect_timeout_ms, {"XACK", s, kGroup, entry});
        continue;
      }
      if (auto j = adopt(*block_, s, entry, id, false)) return j;
    }
  }
  return std::nullopt;
}

bool RedisQueue::heartbeat(const ClaimedJob& job, double progress, double eta_s) {
  std::lock_guard<std::mutex> lock(cmd_->mutex);
  Reply r = checked(command(*cmd_, url_, options_.connect_timeout_ms,
                            {"EVAL", kHeartbeatScript, "2", key_job(job.id), job.stream,
                             options_.consumer, job.entry, number(progress), number(eta_s),
                             now_string()}),
                    "a heartbeat");
  return r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

bool RedisQueue::finish(const ClaimedJob& job, const std::string& status, const std::string& body,
                        const std::string& content_type, const std::string& error) {
  std::lock_guard<std::mutex> lock(cmd_->mutex);
  Reply r = checked(command(*cmd_, url_, options_.connect_timeout_ms,
                            {"EVAL", kFinishScript, "3", key_job(job.id), job.stream,
                             options_.prefix + ":audio:" + job.id, status, body, content_type,
                             error, std::to_string(options_.result_ttl_s), job.entry, now_string(),
                             options_.consumer + "#" + std::to_string(job.attempts)}),
                    "a job result");
  return r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

bool RedisQueue::complete(const ClaimedJob& job, const std::string& body,
                          const std::string& content_type) {
  return finish(job, "succeeded", body, content_type, "");
}
bool RedisQueue::fail_job(const ClaimedJob& job, const std::string& message) {
  return finish(job, "failed", "", "", message);
}
bool RedisQueue::finish_canceled(const ClaimedJob& job) {
  return finish(job, "canceled", "", "", "canceled");
}

}  // namespace musicgen::queue
