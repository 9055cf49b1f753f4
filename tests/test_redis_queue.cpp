// The Redis job queue (src/queue) against a real redis-server started on a free loopback port:
// submission, claims, leases and re-claims after a lost worker, exactly-once results,
// idempotency, cancels, routing by model, and a Redis restart that loses no job.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "musicgen/error.h"
#include "queue/redis_queue.h"

namespace fs = std::filesystem;
using namespace musicgen;
using namespace musicgen::queue;
using namespace std::chrono_literals;

namespace {

int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  close(s);
  return port;
}

const char* redis_binary() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"})
    if (access(p, X_OK) == 0) return p;
  return nullptr;
}

// A redis-server child process with append-only persistence in a private folder.
class RedisProcess {
 public:
  RedisProcess() {
    dir_ = fs::temp_directory_path() / ("musicgen-redis-test-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    port_ = free_port();
  }
  ~RedisProcess() {
    stop(SIGKILL);
    fs::remove_all(dir_);
  }
  bool start() {
    // Everything the child needs is made before fork(): between fork and exec it only calls
    // async-signal-safe functions (no allocation that could meet a lock another thread held).
    const std::string port = std::to_string(port_), dir = dir_.string();
    pid_ = fork();
    if (pid_ == 0) {
      // Dies with the test process, and never holds the test's output (ctest waits for it).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int null_fd = open("/dev/null", O_RDWR);
      if (null_fd >= 0) {
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(null_fd, 2);
      }
      execl(redis_binary(), "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
            "--dir", dir.c_str(), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--daemonize", "no", "--loglevel", "warning", static_cast<char*>(nullptr));
      _exit(127);
    }
    // Wait until it answers.
    RedisQueue probe(url(), {});
    for (int i = 0; i < 100; ++i) {
      if (probe.healthy()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  void stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  RedisUrl url() const {
    RedisUrl u;
    u.port = port_;
    return u;
  }

 private:
  fs::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

class RedisQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!redis_binary()) {
      if (const char* req = std::getenv("MUSICGEN_REQUIRE_REDIS"); req && std::string(req) == "1")
        FAIL() << "redis-server is required (MUSICGEN_REQUIRE_REDIS=1) but not installed";
      GTEST_SKIP() << "SKIPPED: redis-server not installed (apt install redis-server)";
    }
    redis_ = std::make_unique<RedisProcess>();
    ASSERT_TRUE(redis_->start()) << "redis-server did not start";
  }
  QueueOptions opts(const std::string& consumer, int lease_ms = 30000) {
    QueueOptions o;
    o.prefix = "test";
    o.consumer = consumer;
    o.lease_ms = lease_ms;
    return o;
  }
  std::unique_ptr<RedisProcess> redis_;
};

}  // namespace

TEST(RedisUrl, Parses) {
  RedisUrl u = parse_redis_url("redis://127.0.0.1:6380/2");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 2);
  u = parse_redis_url("redis://alice:s3cr:et@redis.local");
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "s3cr:et");
  EXPECT_EQ(u.host, "redis.local");
  EXPECT_EQ(u.port, 6379);
  u = parse_redis_url("redis://pw@[::1]:7000");
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 7000);
  for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h:abc",
                          "redis://h/x", "redis://[::1", "redis://h:6379/-1"}) {
    try {
      parse_redis_url(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
}

TEST(RedisQueueUnavailable, OneLineErrorAndUnhealthy) {
  RedisUrl u;
  u.port = free_port();  // nothing listens there
  RedisQueue q(u, {});
  EXPECT_FALSE(q.healthy());
  try {
    q.submit("m", "{}");
    FAIL() << "submit without Redis succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("unavailable"), std::string::npos) << e.what();
  }
}

TEST_F(RedisQueueTest, SubmitClaimProgressComplete) {
  RedisQueue client(redis_->url(), opts("client"));
  RedisQueue worker(redis_->url(), opts("w1"));
  const std::string id = client.submit("small", R"({"prompt":"x"})");
  EXPECT_EQ(id.size(), 32u);
  auto rec = client.get(id);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->status, "queued");
  EXPECT_EQ(rec->model, "small");
  EXPECT_FALSE(client.result(id));

  auto job = worker.claim({"small"}, 1000);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->id, id);
  EXPECT_EQ(job->request, R"({"prompt":"x"})");
  EXPECT_EQ(job->attempts, 1);
  EXPECT_EQ(client.get(id)->status, "running");
  EXPECT_EQ(client.get(id)->owner, "w1");

  EXPECT_TRUE(worker.heartbeat(*job, 0.5, 2.0));
  rec = client.get(id);
  EXPECT_DOUBLE_EQ(rec->progress, 0.5);
  EXPECT_DOUBLE_EQ(rec->eta_s, 2.0);

  static constexpr char kBinary[] = "RIFF\0\x01\x02 binary";  // NUL and control bytes inside
  const std::string body(kBinary, sizeof(kBinary) - 1);
  EXPECT_TRUE(worker.complete(*job, body, "audio/wav"));
  rec = client.get(id);
  EXPECT_EQ(rec->status, "succeeded");
  EXPECT_EQ(rec->content_type, "audio/wav");
  EXPECT_DOUBLE_EQ(rec->progress, 1.0);
  ASSERT_TRUE(client.result(id));
  EXPECT_EQ(*client.result(id), body);  // binary-safe
  // The same claim again (a retry whose first reply was lost): its own result, kept as it was.
  EXPECT_TRUE(worker.complete(*job, "second", "audio/wav"));
  EXPECT_EQ(*client.result(id), body);
  // Any other claim of the job finds it final and stores nothing.
  ClaimedJob other = *job;
  ++other.attempts;
  EXPECT_FALSE(worker.complete(other, "third", "audio/wav"));
  RedisQueue w2(redis_->url(), opts("w2"));
  EXPECT_FALSE(w2.complete(*job, "fourth", "audio/wav"));
  EXPECT_FALSE(w2.fail_job(*job, "late failure"));
  EXPECT_EQ(*client.result(id), body);
  EXPECT_EQ(client.get(id)->status, "succeeded");
  EXPECT_FALSE(worker.heartbeat(*job, 0.9, 1));  // final: stop
  EXPECT_FALSE(worker.claim({"small"}, 100));    // nothing left
  EXPECT_FALSE(client.get("0123456789abcdef0123456789abcdef"));
}

TEST_F(RedisQueueTest, IdempotencyKeyRunsOnce) {
  RedisQueue client(redis_->url(), opts("client"));
  RedisQueue worker(redis_->url(), opts("w1"));
  bool existed = true;
  const std::string a = client.submit("small", "{}", "key-1", &existed);
  EXPECT_FALSE(existed);
  const std::string b = client.submit("small", "{}", "key-1", &existed);
  EXPECT_TRUE(existed);
  EXPECT_EQ(a, b);
  const std::string c = client.submit("small", "{}", "key-2", &existed);
  EXPECT_FALSE(existed);
  EXPECT_NE(a, c);
  std::vector<std::string> claimed;
  while (auto j = worker.claim({"small"}, 100)) {
    claimed.push_back(j->id);
    worker.complete(*j, "x", "audio/wav");
  }
  EXPECT_EQ(claimed.size(), 2u);
}

TEST_F(RedisQueueTest, RoutesByModel) {
  RedisQueue client(redis_->url(), opts("client"));
  RedisQueue worker_y(redis_->url(), opts("wy"));
  RedisQueue worker_xy(redis_->url(), opts("wxy"));
  const std::string id = client.submit("x", "{}");
  EXPECT_FALSE(worker_y.claim({"y"}, 100));
  auto j = worker_xy.claim({"y", "x"}, 1000);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->id, id);
  EXPECT_EQ(j->model, "x");
}

TEST_F(RedisQueueTest, CancelQueuedAndRunning) {
  RedisQueue client(redis_->url(), opts("client"));
  RedisQueue worker(redis_->url(), opts("w1"));
  const std::string queued = client.submit("small", "{}");
  EXPECT_EQ(client.cancel(queued), std::optional<std::string>("canceled"));
  EXPECT_EQ(client.get(queued)->status, "canceled");
  EXPECT_FALSE(worker.claim({"small"}, 100));  // skipped, never run

  const std::string running = client.submit("small", "{}");
  auto j = worker.claim({"small"}, 1000);
  ASSERT_TRUE(j);
  EXPECT_EQ(client.cancel(running), std::optional<std::string>("running"));
  EXPECT_FALSE(worker.heartbeat(*j, 0.3, 1));  // the owner learns at its next heartbeat
  EXPECT_TRUE(worker.fail_job(*j, "cancelled by request"));
  EXPECT_EQ(client.get(running)->status, "canceled");
  EXPECT_FALSE(client.cancel("ffffffffffffffffffffffffffffffff"));
}

TEST_F(RedisQueueTest, LostWorkerJobIsReclaimedAfterLeaseAndStoredOnce) {
  RedisQueue client(redis_->url(), opts("client"));
  RedisQueue dead(redis_->url(), opts("dead", 300));
  RedisQueue alive(redis_->url(), opts("alive", 300));
  const std::string id = client.submit("small", "{}");
  auto j1 = dead.claim({"small"}, 1000);
  ASSERT_TRUE(j1);
  // While the lease is fresh nobody else gets it.
  EXPECT_FALSE(alive.claim({"small"}, 50));
  // A heartbeat keeps it alive past the lease.
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(dead.heartbeat(*j1, 0.1, 1));
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(alive.claim({"small"}, 50));
  // Then its owner stops renewing (killed).
  std::this_thread::sleep_for(400ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto j2 = alive.claim({"small"}, 1000);
  ASSERT_TRUE(j2);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  EXPECT_EQ(j2->id, id);
  EXPECT_EQ(j2->attempts, 2);
  EXPECT_EQ(client.get(id)->owner, "alive");
  EXPECT_FALSE(dead.heartbeat(*j1, 0.2, 1));  // not ours any more
  EXPECT_TRUE(alive.complete(*j2, "from-alive", "audio/wav"));
  EXPECT_FALSE(dead.complete(*j1, "from-dead", "audio/wav"));
  EXPECT_EQ(*client.result(id), "from-alive");
  EXPECT_FALSE(alive.claim({"small"}, 50));
}

TEST_F(RedisQueueTest, ManyWorkersEveryJobExactlyOnce) {
  RedisQueue client(redis_->url(), opts("client"));
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(client.submit("small", "{\"n\":" + std::to_string(i) + "}"));
  std::mutex mu;
  std::map<std::string, int> runs;
  std::vector<std::thread> threads;
  for (int w = 0; w < 3; ++w)
    threads.emplace_back([&, w] {
      RedisQueue q(redis_->url(), opts("w" + std::to_string(w)));
      while (auto j = q.claim({"small"}, 200)) {
        {
          std::lock_guard<std::mutex> lock(mu);
          ++runs[j->id];
        }
        q.heartbeat(*j, 0.5, 0.1);
        q.complete(*j, j->request, "application/json");
      }
    });
  for (auto& t : threads) t.join();
  ASSERT_EQ(runs.size(), 30u);
  for (const std::string& id : ids) {
    EXPECT_EQ(runs[id], 1) << id;
    EXPECT_EQ(client.get(id)->status, "succeeded");
  }
  EXPECT_EQ(*client.result(ids[7]), "{\"n\":7}");
}

TEST_F(RedisQueueTest, RedisRestartLosesNoJob) {
  RedisQueue client(redis_->url(), opts("client"));
  RedisQueue worker(redis_->url(), opts("w1", 300));
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(client.submit("small", "{}"));
  auto running = worker.claim({"small"}, 1000);  // one is mid-run when Redis goes away
  ASSERT_TRUE(running);
  redis_->stop(SIGTERM);
  EXPECT_FALSE(client.healthy());
  EXPECT_THROW(client.get(ids[0]), Error);
  EXPECT_THROW(worker.heartbeat(*running, 0.5, 1), Error);
  ASSERT_TRUE(redis_->start());
  // Reconnects (backoff at most 5 s).
  bool ok = false;
  for (int i = 0; i < 120 && !ok; ++i) {
    ok = client.healthy();
    if (!ok) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(ok);
  for (const std::string& id : ids) ASSERT_TRUE(client.get(id)) << id;
  // The running job's owner carries on; the others are still queued and get claimed.
  bool renewed = false;
  for (int i = 0; i < 120 && !renewed; ++i) {
    try {
      renewed = worker.heartbeat(*running, 0.6, 1);
      break;
    } catch (const Error&) {
      std::this_thread::sleep_for(50ms);
    }
  }
  EXPECT_TRUE(renewed);
  EXPECT_TRUE(worker.complete(*running, "a", "audio/wav"));
  int done = 1;
  for (;;) {
    std::optional<ClaimedJob> j;
    try {
      j = worker.claim({"small"}, 200);
    } catch (const Error&) {
      std::this_thread::sleep_for(50ms);
      continue;
    }
    if (!j) break;
    EXPECT_TRUE(worker.complete(*j, "b", "audio/wav"));
    ++done;
  }
  EXPECT_EQ(done, 3);
  for (const std::string& id : ids) EXPECT_EQ(client.get(id)->status, "succeeded") << id;
}

// --- QueueWorker ---------------------------------------------------------------------------

#include <poll.h>

#include "queue/queue_worker.h"

namespace {
bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}
}  // namespace

TEST_F(RedisQueueTest, WorkerRunsReportsFailsAndCancels) {
  RedisQueue client(redis_->url(), opts("client"));
  QueueWorker worker(redis_->url(), opts("w", 300), {"small"}, 2,
                     [](const ClaimedJob& j, const ReportFn& report) -> WorkResult {
                       if (j.request == "fail") throw Error(ErrorCode::kInvalidArgument, "bad prompt");
                       if (j.request == "slow") {
                         for (int i = 0; i < 500; ++i) {  // until canceled (10 s at most)
                           if (!report(i / 500.0, 1.0)) throw Error(ErrorCode::kCancelled, "stopped");
                           std::this_thread::sleep_for(20ms);
                         }
                       }
                       report(1.0, 0);
                       return {"ok:" + j.request, "text/plain"};
                     });
  worker.start();
  const std::string ok = client.submit("small", "a");
  const std::string bad = client.submit("small", "fail");
  const std::string slow = client.submit("small", "slow");
  ASSERT_TRUE(wait_for([&] { return client.get(slow)->status == "running"; }, 5s));
  EXPECT_TRUE(wait_for([&] { return client.get(slow)->progress > 0; }, 5s));
  client.cancel(slow);
  ASSERT_TRUE(wait_for([&] { return client.get(slow)->status == "canceled"; }, 5s));
  ASSERT_TRUE(wait_for([&] { return client.get(ok)->status == "succeeded"; }, 5s));
  ASSERT_TRUE(wait_for([&] { return client.get(bad)->status == "failed"; }, 5s));
  EXPECT_EQ(*client.result(ok), "ok:a");
  EXPECT_EQ(client.get(bad)->error, "bad prompt");
  EXPECT_FALSE(client.result(slow));
  worker.stop();
  const WorkerStats s = worker.stats();
  EXPECT_EQ(s.succeeded, 1u);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_EQ(s.canceled, 1u);
}

// A worker process killed with SIGKILL in the middle of a job: after the lease another worker
// re-claims the job and runs it from the start; every job ends succeeded exactly once.
TEST_F(RedisQueueTest, KilledWorkerProcessLosesNoJob) {
  RedisQueue client(redis_->url(), opts("client"));
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(client.submit("small", "job" + std::to_string(i)));
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(fds[0]);
    QueueWorker doomed(redis_->url(), opts("doomed", 400), {"small"}, 1,
                       [&](const ClaimedJob& j, const ReportFn&) -> WorkResult {
                         const std::string line = j.id + "\n";
                         (void)!write(fds[1], line.data(), line.size());
                         std::this_thread::sleep_for(60s);  // killed before this ends
                         return {"never", "text/plain"};
                       });
    doomed.start();
    std::this_thread::sleep_for(60s);
    _exit(0);
  }
  close(fds[1]);
  pollfd p{fds[0], POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10000), 1) << "the doomed worker claimed nothing";
  char buf[64] = {};
  ASSERT_GE(read(fds[0], buf, 33), 33);
  const std::string victim(buf, 32);
  close(fds[0]);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  const auto killed_at = std::chrono::steady_clock::now();

  std::mutex mu;
  std::map<std::string, int> runs;
  std::chrono::steady_clock::time_point victim_rerun{};
  QueueWorker survivor(redis_->url(), opts("survivor", 400), {"small"}, 1,
                       [&](const ClaimedJob& j, const ReportFn& report) -> WorkResult {
                         {
                           std::lock_guard<std::mutex> lock(mu);
                           ++runs[j.id];
                           if (j.id == victim) victim_rerun = std::chrono::steady_clock::now();
                         }
                         report(0.5, 0.1);
                         return {"done:" + j.request, "text/plain"};
                       });
  survivor.start();
  ASSERT_TRUE(wait_for([&] {
    for (const std::string& id : ids)
      if (client.get(id)->status != "succeeded") return false;
    return true;
  }, 15s));
  survivor.stop();
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(runs[ids[i]], 1) << ids[i];
    EXPECT_EQ(*client.result(ids[i]), "done:job" + std::to_string(i));
  }
  EXPECT_EQ(client.get(victim)->attempts, 2);
  const WorkerStats s = survivor.stats();
  EXPECT_EQ(s.succeeded, 6u);
  EXPECT_EQ(s.reclaimed, 1u);
  const double reclaim_s = std::chrono::duration<double>(victim_rerun - killed_at).count();
  EXPECT_LT(reclaim_s, 2.0);
  std::printf("re-claimed the killed worker's job %.2f s after SIGKILL (lease 0.4 s)\n", reclaim_s);
}
