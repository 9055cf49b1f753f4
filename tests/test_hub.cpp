// The hub layer against a fake Hugging Face Hub: an in-process cpp-httplib server on 127.0.0.1
// (random free port, stopped by each test, and by a watchdog after two minutes at the latest)
// that serves tests/fixtures/tiny-a in the hub's URL layout with the hub's headers: the API's
// commit and file list, X-Repo-Commit, ETag (git blob sha1) for small files, X-Linked-Etag
// (sha256) + X-Linked-Size + a 302 to a "CDN" route for LFS files, Range requests. Faults on
// demand: a transfer cut halfway, a corrupt body, a token-protected repo, slow transfers.
#include <httplib.h>
#include <openssl/evp.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "hub/cache.h"
#include "core/mapped_file.h"
#include "musicgen/hub.h"
#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kRepo = "test-org/tiny-musicgen";
constexpr const char* kShardedRepo = "test-org/tiny-sharded";
constexpr const char* kPrivateRepo = "test-org/private-musicgen";
constexpr const char* kCommit = "8c2e4a1f0b9d7e6c5a4b3c2d1e0f9a8b7c6d5e4f";
constexpr const char* kShardedCommit = "1111111111222222222233333333334444444444";
constexpr const char* kToken = "hf_test_secret";
// PyTorch layouts as the hub publishes them: facebook/musicgen-medium (only pytorch_model.bin),
// facebook/musicgen-large (pytorch_model-0000X-of-0000N.bin + index), and a revision whose
// safetensors index is dangling (names shards the repo does not have) beside a .bin.
constexpr const char* kMediumRepo = "test-org/medium-layout";
constexpr const char* kLargeRepo = "test-org/large-layout";
constexpr const char* kDanglingRepo = "test-org/dangling-index";
constexpr const char* kStereoMediumRepo = "test-org/stereo-medium-layout";
constexpr const char* kFullSizeRepo = "test-org/full-size";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string hex_digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  std::string hex;
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", out[i]);
    hex += buf;
  }
  return hex;
}

std::string sha256(std::string_view data) {
  return hex_digest(EVP_sha256(), data);
}
// git's blob id: sha1("blob <size>\0" + content), which the hub sends as the ETag of small files.
std::string git_blob_sha1(const std::string& data) {
  return hex_digest(EVP_sha1(),
                    "blob " + std::to_string(data.size()) + std::string(1, '\0') + data);
}

struct RepoFile {
  std::string content;
  std::shared_ptr<const MappedFile> mapped;  // instead of content (full-size weights)
  std::string_view bytes() const {
    return mapped ? std::string_view(reinterpret_cast<const char*>(mapped->data()), mapped->size())
                  : std::string_view(content);
  }
  bool lfs = false;
  std::string etag;  // sha256 for LFS, git sha1 otherwise
};

struct FakeRepo {
  std::string commit;
  std::map<std::string, RepoFile> files;    // served files
  std::vector<std::string> extra_siblings;  // listed but never served (must not be fetched)
  bool needs_token = false;
};

// One logged request.
struct Hit {
  std::string method, path, range, auth;
};

class FakeHub {
 public:
  explicit FakeHub(int watchdog_s = 120) : watchdog_s_(watchdog_s) {
    const std::string dir = testing::fixture_dir("tiny-a");
    FakeRepo repo;
    repo.commit = kCommit;
    for (const char* f :
         {"config.json", "generation_config.json", "model.safetensors", "spiece.model"}) {
      RepoFile rf;
      rf.content = read_file(fs::path(dir) / f);
      rf.lfs = std::string(f) == "model.safetensors" || std::string(f) == "spiece.model";
      rf.etag = rf.lfs ? sha256(rf.content) : git_blob_sha1(rf.content);
      repo.files[f] = rf;
    }
    repo.extra_siblings = {"README.md", "pytorch_model.bin", ".gitattributes"};
    repos_[kRepo] = repo;

    FakeRepo priv = repo;
    priv.needs_token = true;
    repos_[kPrivateRepo] = priv;

    // The same weights as a one-shard checkpoint with an index.
    FakeRepo sharded = repo;
    sharded.commit = kShardedCommit;
    RepoFile shard = sharded.files.at("model.safetensors");
    sharded.files.erase("model.safetensors");
    const std::string& st = shard.content;
    uint64_t n = 0;
    std::memcpy(&n, st.data(), 8);
    json index = {{"metadata", {{"total_size", st.size()}}}, {"weight_map", json::object()}};
    const json header = json::parse(st.substr(8, n));
    for (const auto& [name, v] : header.items())
      if (name != "__metadata__") index["weight_map"][name] = "model-00001-of-00001.safetensors";
    RepoFile idx;
    idx.content = index.dump(2);
    idx.etag = git_blob_sha1(idx.content);
    sharded.files["model.safetensors.index.json"] = idx;
    sharded.files["model-00001-of-00001.safetensors"] = shard;
    repos_[kShardedRepo] = sharded;

    // PyTorch layouts from the transformers-saved fixtures.
    auto file_of = [](const fs::path& path, bool lfs) {
      RepoFile rf;
      rf.content = read_file(path);
      rf.lfs = lfs;
      rf.etag = lfs ? sha256(rf.content) : git_blob_sha1(rf.content);
      return rf;
    };
    auto base_repo = [&](const std::string& commit, const std::string& fixture) {
      FakeRepo r;
      r.commit = commit;
      const fs::path d = testing::fixture_dir(fixture);
      r.files["config.json"] = file_of(d / "config.json", false);
      r.files["generation_config.json"] = file_of(d / "generation_config.json", false);
      r.files["spiece.model"] = file_of(d / "spiece.model", true);
      r.extra_siblings = {"README.md", ".gitattributes"};
      return r;
    };
    FakeRepo medium = base_repo("2222222222333333333344444444445555555555", "tiny-a-bin");
    medium.files["pytorch_model.bin"] =
        file_of(fs::path(testing::fixture_dir("tiny-a-bin")) / "pytorch_model.bin", true);
    repos_[kMediumRepo] = medium;
    FakeRepo large = base_repo("3333333333444444444455555555556666666666", "tiny-a-bin-sharded");
    for (const auto& e : fs::directory_iterator(testing::fixture_dir("tiny-a-bin-sharded"))) {
      const std::string name = e.path().filename().string();
      if (name.rfind("pytorch_model", 0) == 0)
        large.files[name] = file_of(e.path(), name.find(".index.json") == std::string::npos);
    }
    repos_[kLargeRepo] = large;
    FakeRepo dangling = medium;
    dangling.commit = "4444444444555555555566666666667777777777";
    RepoFile dangling_index;
    dangling_index.content =
        R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})";
    dangling_index.etag = git_blob_sha1(dangling_index.content);
    dangling.files["model.safetensors.index.json"] = dangling_index;
    repos_[kDanglingRepo] = dangling;
    // facebook/musicgen-stereo-medium: model.safetensors beside dangling *.index.json files.
    FakeRepo stereo_medium = repo;
    stereo_medium.commit = "5555555555666666666677777777778888888888";
    stereo_medium.files["model.safetensors.index.json"] = dangling_index;
    stereo_medium.files["pytorch_model.bin.index.json"] = dangling_index;
    stereo_medium.extra_siblings.clear();
    repos_[kStereoMediumRepo] = stereo_medium;

    setup_routes();
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("cannot bind a port on 127.0.0.1");
    server_.set_keep_alive_max_count(20);
    server_.set_read_timeout(5, 0);
    server_.set_write_timeout(5, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    watchdog_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(watchdog_mutex_);
      watchdog_cv_.wait_for(lock, std::chrono::seconds(watchdog_s_), [this] { return stopping_; });
      server_.stop();  // never outlives a stuck test
    });
    // bind_to_any_port already listens; wait for the accept loop so that stop() cannot miss it.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  ~FakeHub() { stop(); }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(watchdog_mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    watchdog_cv_.notify_all();
    server_.stop();
    if (thread_.joinable()) thread_.join();
    if (watchdog_.joinable()) watchdog_.join();
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // A repository added by a test before its first request (a hostile hub or mirror).
  void add_repo(const std::string& id, FakeRepo repo) { repos_[id] = std::move(repo); }

  // A repo serving a checkpoint folder as it is; weight files are mapped, not read (call before
  // the first request to it).
  void add_repo_from_dir(const std::string& id, const std::string& commit, const fs::path& dir) {
    FakeRepo r;
    r.commit = commit;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      RepoFile f;
      const bool weights = name.size() > 4 && (name.ends_with(".bin") || name.ends_with(".safetensors"));
      f.lfs = weights || name == "spiece.model";
      if (weights)
        f.mapped = MappedFile::open(e.path().string());
      else
        f.content = read_file(e.path());
      f.etag = f.lfs ? sha256(std::string_view(f.bytes())) : git_blob_sha1(f.content);
      r.files[name] = std::move(f);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    repos_[id] = std::move(r);
  }
  const FakeRepo& repo(const std::string& id) const { return repos_.at(id); }

  std::vector<Hit> hits() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return hits_;
  }
  size_t count(const std::string& method, const std::string& path_part) const {
    size_t n = 0;
    for (const auto& h : hits())
      if ((method.empty() || h.method == method) && h.path.find(path_part) != std::string::npos)
        ++n;
    return n;
  }

  // Faults for the next CDN transfers of model.safetensors (the other files stay intact).
  std::atomic<int> cut_transfers{0};        // this many transfers stop after half the file
  std::atomic<bool> corrupt_bodies{false};  // bodies have flipped bytes
  std::atomic<int> slow_chunk_ms{0};        // a pause per 64 KiB chunk (all files)

 private:
  void log(const httplib::Request& req) {
    std::lock_guard<std::mutex> lock(mutex_);
    hits_.push_back({req.method, req.path, req.get_header_value("Range"),
                     req.get_header_value("Authorization")});
  }

  // Auth and existence as the hub checks them; false: res holds the error answer.
  bool check_repo(const httplib::Request& req, httplib::Response& res, const std::string& id) {
    auto it = repos_.find(id);
    if (it == repos_.end()) {
      res.status = 404;
      res.set_header("X-Error-Code", "RepoNotFound");
      res.set_header("X-Error-Message", "Repository not found");
      return false;
    }
    if (it->second.needs_token &&
        req.get_header_value("Authorization") != std::string("Bearer ") + kToken) {
      res.status = 401;
      res.set_header("X-Error-Code", "RepoNotFound");
      res.set_header("X-Error-Message", "Invalid username or password.");
      return false;
    }
    return true;
  }

  bool check_revision(httplib::Response& res, const FakeRepo& repo, const std::string& rev) {
    if (rev == "main" || rev == repo.commit) return true;
    res.status = 404;
    res.set_header("X-Error-Code", "RevisionNotFound");
    res.set_header("X-Error-Message", "Invalid rev id: " + rev);
    return false;
  }

  void setup_routes() {
    server_.Get(R"(/api/models/([^/]+)/([^/]+)/revision/([^/]+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  log(req);
                  const std::string id = req.matches[1].str() + "/" + req.matches[2].str();
                  if (!check_repo(req, res, id)) return;
                  const FakeRepo& repo = repos_.at(id);
                  if (!check_revision(res, repo, req.matches[3].str())) return;
                  json j = {{"id", id}, {"sha", repo.commit}, {"siblings", json::array()}};
                  for (const auto& [name, f] : repo.files)
                    j["siblings"].push_back({{"rfilename", name}});
                  for (const auto& name : repo.extra_siblings)
                    j["siblings"].push_back({{"rfilename", name}});
                  res.set_content(j.dump(), "application/json");
                });
    // HEAD is routed here too (httplib drops the body).
    server_.Get(R"(/([^/]+)/([^/]+)/resolve/([^/]+)/(.+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  log(req);
                  const std::string id = req.matches[1].str() + "/" + req.matches[2].str();
                  if (!check_repo(req, res, id)) return;
                  const FakeRepo& repo = repos_.at(id);
                  if (!check_revision(res, repo, req.matches[3].str())) return;
                  auto it = repo.files.find(req.matches[4].str());
                  if (it == repo.files.end()) {
                    res.status = 404;
                    res.set_header("X-Error-Code", "EntryNotFound");
                    return;
                  }
                  const RepoFile& f = it->second;
                  res.set_header("X-Repo-Commit", repo.commit);
                  if (f.lfs) {
                    res.status = 302;
                    res.set_header("X-Linked-Etag", "\"" + f.etag + "\"");
                    res.set_header("X-Linked-Size", std::to_string(f.bytes().size()));
                    res.set_header("ETag", "\"" + git_blob_sha1("pointer " + f.etag) + "\"");
                    res.set_header("Location", endpoint() + "/cdn/" + f.etag + "?expires=1");
                    return;
                  }
                  res.set_header("ETag", "\"" + f.etag + "\"");
                  res.set_content(f.content, "application/octet-stream");
                });
    server_.Get(R"(/cdn/([0-9a-f]{64}))", [this](const httplib::Request& req,
                                                 httplib::Response& res) {
      log(req);
      const std::string etag = req.matches[1].str();
      std::string_view body;  // into repos_, which outlives every request
      bool found = false;
      for (const auto& [id, repo] : repos_)
        for (const auto& [name, f] : repo.files)
          if (f.etag == etag) {
            body = f.bytes();
            found = true;
          }
      if (!found) {
        res.status = 404;
        return;
      }
      const bool faulty = etag == repos_.at(kRepo).files.at("model.safetensors").etag ||
                          etag == repos_.at(kMediumRepo).files.at("pytorch_model.bin").etag;
      const bool cut = faulty && cut_transfers.fetch_sub(1) > 0;
      const bool corrupt = faulty && corrupt_bodies.load();
      auto sent = std::make_shared<size_t>(0);
      res.set_content_provider(
          body.size(), "application/octet-stream",
          [this, body, cut, corrupt, sent](size_t offset, size_t length, httplib::DataSink& sink) {
            if (cut && *sent >= body.size() / 2) return false;  // close the connection midway
            if (slow_chunk_ms > 0)
              std::this_thread::sleep_for(std::chrono::milliseconds(slow_chunk_ms));
            std::string chunk(body.substr(offset, std::min<size_t>(length, 1 << 20)));
            if (corrupt) chunk[chunk.size() / 2] ^= 0x5a;
            *sent += chunk.size();
            return sink.write(chunk.data(), chunk.size());
          });
    });
  }

  int watchdog_s_ = 120;
  std::map<std::string, FakeRepo> repos_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_, watchdog_;
  std::mutex watchdog_mutex_;
  std::condition_variable watchdog_cv_;
  bool stopping_ = false;
  mutable std::mutex mutex_;
  std::vector<Hit> hits_;
};

void set_env(const char* name, const std::string& value) {
  ::setenv(name, value.c_str(), 1);
}

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hub_ = std::make_unique<FakeHub>();
    cache_ = testing::make_temp_dir("hub-cache");
    for (const char* v : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HOME",
                          "HF_TOKEN_PATH", "HUGGINGFACE_HUB_CACHE"})
      ::unsetenv(v);
    set_env("HF_TOKEN_PATH", cache_ + "/no-token-file");
    set_env("HF_ENDPOINT", hub_->endpoint());
    set_env("HF_HUB_CACHE", cache_);
    options_.progress = ProgressDisplay::kNever;
    options_.retry_delay_s = 0.01;
  }
  void TearDown() override {
    hub_->stop();
    std::error_code ec;
    fs::remove_all(cache_, ec);
  }

  fs::path repo_dir(const std::string& id = kRepo) const {
    std::string folder = "models--" + id;
    folder.replace(folder.find('/'), 1, "--");
    return fs::path(cache_) / folder;
  }

  // The message of the Error that fn throws ("" and a failure if it throws none).
  template <typename Fn>
  std::string error_of(Fn fn, ErrorCode* code = nullptr) {
    try {
      fn();
    } catch (const Error& e) {
      if (code) *code = e.code();
      return e.what();
    }
    ADD_FAILURE() << "expected a musicgen::Error";
    return "";
  }

  std::unique_ptr<FakeHub> hub_;
  std::string cache_;
  ResolveOptions options_;
};

TEST_F(HubTest, FreshDownloadThenGenerate) {
  const std::string dir = resolve_model(kRepo, options_);
  EXPECT_EQ(dir, (repo_dir() / "snapshots" / kCommit).string());
  // Only the files the engine needs: never README.md or pytorch_model.bin.
  EXPECT_EQ(hub_->count("", "README.md"), 0u);
  EXPECT_EQ(hub_->count("", "pytorch_model.bin"), 0u);
  // The LFS file came through the 302 to the CDN route.
  EXPECT_EQ(hub_->count("GET", "/cdn/" + hub_->repo(kRepo).files.at("model.safetensors").etag), 1u);

  auto model = Model::load(dir);
  Session session(model, {.threads = 1});
  GenerationOptions opt;
  opt.prompts = {"lo-fi beat"};
  opt.max_new_tokens = 8;
  opt.seed = 1;
  const GenerationResult r = session.generate(opt);
  EXPECT_EQ(r.batch, 1);
  EXPECT_EQ(r.frames, 5);
  EXPECT_GT(r.samples, 0);
  EXPECT_EQ(r.audio.size(), static_cast<size_t>(r.channels * r.samples));
}

TEST_F(HubTest, SecondResolveIsACacheHitWithoutNetwork) {
  const std::string first = resolve_model(kRepo, options_);
  const size_t requests = hub_->hits().size();
  EXPECT_EQ(resolve_model(kRepo, options_), first);
  EXPECT_EQ(hub_->hits().size(), requests)
      << "a complete cached snapshot must not touch the network";
  hub_->stop();  // now any request would fail with "connection refused"
  ASSERT_EQ(std::getenv("HF_HUB_OFFLINE"), nullptr);
  EXPECT_EQ(resolve_model(kRepo, options_), first);
  EXPECT_EQ(resolve_model(std::string(kRepo) + "@" + kCommit, options_), first);
}

TEST_F(HubTest, CacheLayoutIsHuggingfaceHubs) {
  resolve_model(kRepo, options_);
  const fs::path root = repo_dir();
  const FakeRepo& repo = hub_->repo(kRepo);
  // refs/main holds the commit, no newline.
  EXPECT_EQ(read_file(root / "refs" / "main"), kCommit);
  // blobs/: exactly one blob per file, named by sha256 (LFS) or git blob sha1, with its content.
  std::set<std::string> blobs;
  for (const auto& e : fs::directory_iterator(root / "blobs"))
    blobs.insert(e.path().filename().string());
  std::set<std::string> expected_blobs;
  for (const auto& [name, f] : repo.files) expected_blobs.insert(f.etag);
  EXPECT_EQ(blobs, expected_blobs);
  EXPECT_EQ(repo.files.at("model.safetensors").etag.size(), 64u);
  EXPECT_EQ(repo.files.at("config.json").etag.size(), 40u);
  // snapshots/{commit}/{file}: relative symlinks ../../blobs/{etag}, and nothing else.
  const fs::path snap = root / "snapshots" / kCommit;
  std::set<std::string> entries;
  for (const auto& e : fs::directory_iterator(snap)) entries.insert(e.path().filename().string());
  EXPECT_EQ(entries, (std::set<std::string>{"config.json", "generation_config.json",
                                            "model.safetensors", "spiece.model"}));
  for (const auto& [name, f] : repo.files) {
    const fs::path link = snap / name;
    ASSERT_TRUE(fs::is_symlink(fs::symlink_status(link))) << name;
    EXPECT_EQ(fs::read_symlink(link).string(), "../../blobs/" + f.etag) << name;
    EXPECT_EQ(read_file(link), f.content) << name;
    EXPECT_EQ(sha256(read_file(root / "blobs" / f.etag)), sha256(f.content)) << name;
  }
  // Exactly one snapshot, and huggingface_hub's lock folder beside the repos.
  EXPECT_EQ(std::distance(fs::directory_iterator(root / "snapshots"), fs::directory_iterator()), 1);
  EXPECT_TRUE(fs::is_directory(fs::path(cache_) / ".locks" / root.filename()));
}

TEST_F(HubTest, ReadsACacheWrittenByHuggingfaceHub) {
  // Lay a cache out by hand the way huggingface_hub writes it; resolve must use it offline.
  const fs::path root = repo_dir();
  const FakeRepo& repo = hub_->repo(kRepo);
  fs::create_directories(root / "blobs");
  fs::create_directories(root / "refs");
  fs::create_directories(root / "snapshots" / kCommit);
  for (const auto& [name, f] : repo.files) {
    std::ofstream(root / "blobs" / f.etag, std::ios::binary) << f.content;
    fs::create_symlink("../../blobs/" + f.etag, root / "snapshots" / kCommit / name);
  }
  std::ofstream(root / "refs" / "main") << kCommit;
  hub_->stop();
  EXPECT_EQ(resolve_model(kRepo, options_), (root / "snapshots" / kCommit).string());
  EXPECT_EQ(hub_->hits().size(), 0u);
}

TEST_F(HubTest, ResumesACutTransferWithARangeRequestOnTheNextRun) {
  const RepoFile& weights = hub_->repo(kRepo).files.at("model.safetensors");
  hub_->cut_transfers = 1;
  options_.max_retries = 0;  // the first run fails; the second resumes
  const std::string message = error_of([&] { resolve_model(kRepo, options_); });
  EXPECT_NE(message.find("model.safetensors"), std::string::npos) << message;
  const fs::path part = repo_dir() / "blobs" / (weights.etag + ".incomplete");
  ASSERT_TRUE(fs::exists(part));
  const uint64_t partial = fs::file_size(part);
  EXPECT_GE(partial, weights.content.size() / 2);
  EXPECT_LT(partial, weights.content.size());
  EXPECT_FALSE(fs::exists(repo_dir() / "snapshots" / kCommit / "model.safetensors"));

  const std::string dir = resolve_model(kRepo, options_);
  bool resumed = false;
  for (const auto& h : hub_->hits())
    if (h.path.find("/cdn/" + weights.etag) != std::string::npos &&
        h.range == "bytes=" + std::to_string(partial) + "-")
      resumed = true;
  EXPECT_TRUE(resumed) << "the second run must ask for bytes=" << partial << "-";
  EXPECT_EQ(sha256(read_file(repo_dir() / "blobs" / weights.etag)), weights.etag);
  EXPECT_FALSE(fs::exists(part));
  EXPECT_EQ(read_file(fs::path(dir) / "model.safetensors"), weights.content);
}

TEST_F(HubTest, RetriesACutTransferWithinOneRun) {
  const RepoFile& weights = hub_->repo(kRepo).files.at("model.safetensors");
  hub_->cut_transfers = 2;  // two cuts, then a whole transfer: needs 2 retries
  const std::string dir = resolve_model(kRepo, options_);
  size_t ranged = 0;
  for (const auto& h : hub_->hits())
    if (h.path.find("/cdn/" + weights.etag) != std::string::npos && !h.range.empty()) ++ranged;
  EXPECT_GE(ranged, 1u);
  EXPECT_EQ(sha256(read_file(fs::path(dir) / "model.safetensors")), weights.etag);
}

TEST_F(HubTest, CorruptBodyIsRejectedAndNothingEntersTheSnapshot) {
  const RepoFile& weights = hub_->repo(kRepo).files.at("model.safetensors");
  hub_->corrupt_bodies = true;
  const std::string message = error_of([&] { resolve_model(kRepo, options_); });
  EXPECT_NE(message.find("checksum mismatch"), std::string::npos) << message;
  EXPECT_NE(message.find("sha256 " + weights.etag), std::string::npos) << message;
  size_t snapshot_entries = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(repo_dir() / "snapshots", ec), end; !ec && it != end;
       it.increment(ec))
    ++snapshot_entries;
  EXPECT_EQ(snapshot_entries, 0u) << "no file of a failed pull may appear in snapshots/";
  EXPECT_FALSE(fs::exists(repo_dir() / "blobs" / weights.etag));
  EXPECT_FALSE(fs::exists(repo_dir() / "blobs" / (weights.etag + ".incomplete")));
  EXPECT_FALSE(fs::exists(repo_dir() / "refs" / "main"));

  hub_->corrupt_bodies = false;  // the next run recovers
  const std::string dir = resolve_model(kRepo, options_);
  EXPECT_EQ(sha256(read_file(fs::path(dir) / "model.safetensors")), weights.etag);
}

TEST_F(HubTest, NotFoundNamesTheRepoAndTheRevision) {
  ErrorCode code{};
  std::string message = error_of([&] { resolve_model("test-org/no-such-model", options_); }, &code);
  EXPECT_EQ(code, ErrorCode::kNotFound);
  EXPECT_NE(message.find("repository test-org/no-such-model not found"), std::string::npos)
      << message;
  EXPECT_NE(message.find("HTTP 404"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line";

  message = error_of([&] { resolve_model(std::string(kRepo) + "@v9", options_); });
  EXPECT_NE(message.find("revision 'v9' not found in test-org/tiny-musicgen"), std::string::npos)
      << message;
  EXPECT_EQ(hub_->count("", "/cdn/"), 0u);
}

TEST_F(HubTest, UnauthorizedMentionsHfToken) {
  ErrorCode code{};
  const std::string message = error_of([&] { resolve_model(kPrivateRepo, options_); }, &code);
  EXPECT_NE(message.find("HF_TOKEN"), std::string::npos) << message;
  EXPECT_NE(message.find("HTTP 401"), std::string::npos) << message;
  EXPECT_NE(message.find(kPrivateRepo), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(repo_dir(kPrivateRepo) / "snapshots"));

  set_env("HF_TOKEN", kToken);
  const std::string dir = resolve_model(kPrivateRepo, options_);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "model.safetensors"));
  bool sent = false;
  for (const auto& h : hub_->hits())
    if (h.path.find("/api/models/test-org/private-musicgen") == 0)
      sent = h.auth == std::string("Bearer ") + kToken;
  EXPECT_TRUE(sent);
}

TEST_F(HubTest, TokenFileIsReadLikeHuggingfaceHub) {
  std::ofstream(cache_ + "/token") << kToken << "\n";
  set_env("HF_TOKEN_PATH", cache_ + "/token");
  EXPECT_NO_THROW(resolve_model(kPrivateRepo, options_));
}

TEST_F(HubTest, ConcurrentPullsOfTheSameModelBothSucceed) {
  hub_->slow_chunk_ms = 20;  // keep the first transfer going while the second pull starts
  const RepoFile& weights = hub_->repo(kRepo).files.at("model.safetensors");
  std::string dirs[2], errors[2];
  std::thread threads[2];
  for (int i = 0; i < 2; ++i)
    threads[i] = std::thread([&, i] {
      try {
        ResolveOptions o = options_;
        o.refresh = true;  // like `musicgen pull`
        dirs[i] = resolve_model(kRepo, o);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  EXPECT_EQ(dirs[0], dirs[1]);
  EXPECT_EQ(sha256(read_file(repo_dir() / "blobs" / weights.etag)), weights.etag);
  EXPECT_EQ(hub_->count("GET", "/cdn/" + weights.etag), 1u)
      << "the lock lets one pull download, the other reuse";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(repo_dir() / "blobs", ec))
    EXPECT_EQ(e.path().extension(), "") << e.path();
}

// Two `musicgen pull` processes at once. They are started with posix_spawn, not fork(): a child
// forked while the fake hub's server thread runs can inherit a lock that thread holds (the
// sanitizers' allocator among them) and hang; one that execs a fresh program cannot.
TEST_F(HubTest, ConcurrentPullsFromTwoProcesses) {
  hub_->slow_chunk_ms = 10;
  const RepoFile& weights = hub_->repo(kRepo).files.at("model.safetensors");
  const std::string logs = testing::make_temp_dir("hub-two-processes");
  const std::string cli = MUSICGEN_CLI;
  pid_t pids[2] = {-1, -1};
  for (int i = 0; i < 2; ++i) {
    const std::string err = logs + "/err" + std::to_string(i);
    posix_spawn_file_actions_t actions;
    ASSERT_EQ(posix_spawn_file_actions_init(&actions), 0);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> args = {cli, "pull", kRepo};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pids[i], cli.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(rc, 0) << std::strerror(rc);
  }
  // Wait with a deadline: a hung pull fails this test instead of ctest's 600 s timeout.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (int i = 0; i < 2; ++i) {
    int status = 0;
    pid_t done = 0;
    while ((done = ::waitpid(pids[i], &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (done == 0) {
      ::kill(pids[i], SIGKILL);
      ::waitpid(pids[i], &status, 0);
      ADD_FAILURE() << "pull " << i << " did not finish within 120 s";
      continue;
    }
    ASSERT_EQ(done, pids[i]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "pull " << i << ": " << read_file(logs + "/err" + std::to_string(i));
  }
  fs::remove_all(logs);
  EXPECT_EQ(sha256(read_file(repo_dir() / "snapshots" / kCommit / "model.safetensors")),
            weights.etag);
  EXPECT_EQ(hub_->count("GET", "/cdn/" + weights.etag), 1u)
      << "the lock lets one pull download, the other reuse";
}

TEST_F(HubTest, OfflineAndNotCachedGivesTheHelpfulError) {
  set_env("HF_HUB_OFFLINE", "1");
  ErrorCode code{};
  const std::string message = error_of([&] { resolve_model(kRepo, options_); }, &code);
  EXPECT_EQ(code, ErrorCode::kNotFound);
  for (const char* part : {"test-org/tiny-musicgen is not in the model cache", "HF_HUB_OFFLINE=1",
                           "missing: config.json, spiece.model, model.safetensors",
                           "musicgen pull test-org/tiny-musicgen",
                           "models--test-org--tiny-musicgen", "snapshot folder"})
    EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_EQ(hub_->hits().size(), 0u);
}

TEST_F(HubTest, OfflineUsesTheCacheAndReportsAnIncompleteSnapshot) {
  const std::string dir = resolve_model(kRepo, options_);
  set_env("HF_HUB_OFFLINE", "true");
  const size_t requests = hub_->hits().size();
  EXPECT_EQ(resolve_model("test-org/tiny-musicgen@main", options_), dir);
  fs::remove(fs::path(dir) / "spiece.model");
  const std::string message = error_of([&] { resolve_model(kRepo, options_); });
  EXPECT_NE(message.find("missing: spiece.model"), std::string::npos) << message;
  EXPECT_EQ(hub_->hits().size(), requests);
}

TEST_F(HubTest, UnreachableHubAndNotCachedSaysSo) {
  set_env("HF_ENDPOINT", "http://127.0.0.1:1");  // nothing listens on port 1
  const std::string message = error_of([&] { resolve_model(kRepo, options_); });
  EXPECT_NE(message.find("http://127.0.0.1:1 cannot be reached"), std::string::npos) << message;
  EXPECT_NE(message.find("missing: config.json"), std::string::npos) << message;
  EXPECT_NE(message.find("musicgen pull"), std::string::npos) << message;
}

TEST_F(HubTest, UnwritableCacheNamesThePath) {
  const std::string blocker = cache_ + "/a-file";
  std::ofstream(blocker) << "x";
  set_env("HF_HUB_CACHE", blocker + "/hub");
  ErrorCode code{};
  const std::string message = error_of([&] { resolve_model(kRepo, options_); }, &code);
  EXPECT_EQ(code, ErrorCode::kIo);
  EXPECT_NE(message.find(blocker + "/hub"), std::string::npos) << message;
  EXPECT_NE(message.find("HF_HUB_CACHE"), std::string::npos) << message;
}

TEST_F(HubTest, ShardedCheckpointDownloadsIndexAndShards) {
  const std::string dir = resolve_model(kShardedRepo, options_);
  EXPECT_TRUE(fs::is_symlink(fs::path(dir) / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::is_symlink(fs::path(dir) / "model-00001-of-00001.safetensors"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "model.safetensors"));
  auto model = Model::load(dir);
  EXPECT_GT(model->info().num_layers, 0);
}

TEST_F(HubTest, MediumLayoutPullsTheSingleBinAndLoads) {
  hub_->cut_transfers = 1;  // the .bin follows the same resume and checksum rules
  const std::string dir = resolve_model(kMediumRepo, options_);
  EXPECT_TRUE(fs::is_symlink(fs::path(dir) / "pytorch_model.bin"));
  const RepoFile& bin = hub_->repo(kMediumRepo).files.at("pytorch_model.bin");
  EXPECT_EQ(sha256(read_file(fs::path(dir) / "pytorch_model.bin")), bin.etag);
  size_t ranged = 0;
  for (const auto& h : hub_->hits())
    if (h.path.find("/cdn/" + bin.etag) != std::string::npos && !h.range.empty()) ++ranged;
  EXPECT_GE(ranged, 1u) << "the cut transfer resumes with a range request";
  EXPECT_EQ(hub_->count("", "README.md"), 0u);
  auto model = Model::load(dir);
  EXPECT_EQ(model->info().num_codebooks, 4);
  const CheckpointSummary s = inspect_model(kMediumRepo, options_);
  EXPECT_EQ(s.weights_format, "pytorch");
  EXPECT_EQ(s.weight_files, std::vector<std::string>{"pytorch_model.bin"});
  for (const auto& p : s.parts) EXPECT_EQ(p.dtype_params.begin()->first, "F32") << p.name;
  const auto models = list_cached_models(options_);
  ASSERT_EQ(models.size(), 1u);
  ASSERT_EQ(models[0].revisions.size(), 1u);
  EXPECT_TRUE(models[0].revisions[0].missing.empty());
  EXPECT_EQ(models[0].revisions[0].weights_format, "pytorch");
}

TEST_F(HubTest, CorruptBinIsRejected) {
  hub_->corrupt_bodies = true;
  const std::string message = error_of([&] { resolve_model(kMediumRepo, options_); });
  EXPECT_NE(message.find("checksum mismatch"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(repo_dir(kMediumRepo) / "refs" / "main"));
}

TEST_F(HubTest, LargeLayoutPullsTheIndexAndEveryBinShard) {
  const std::string dir = resolve_model(kLargeRepo, options_);
  size_t shards = 0;
  for (const auto& [name, f] : hub_->repo(kLargeRepo).files)
    if (name.rfind("pytorch_model-", 0) == 0) {
      ++shards;
      EXPECT_TRUE(fs::is_symlink(fs::path(dir) / name)) << name;
    }
  EXPECT_GE(shards, 2u);
  EXPECT_TRUE(fs::is_symlink(fs::path(dir) / "pytorch_model.bin.index.json"));
  auto model = Model::load(dir);
  EXPECT_GT(model->info().num_layers, 0);
  const CheckpointSummary s = inspect_model(kLargeRepo, options_);
  EXPECT_EQ(s.weights_format, "pytorch");
  EXPECT_EQ(s.weight_files.front(), "pytorch_model.bin.index.json");
  EXPECT_EQ(s.weight_files.size(), shards + 1);
  EXPECT_TRUE(s.parts[0].dtype_params.count("F16")) << "the sharded fixture is stored in F16";
}

TEST_F(HubTest, DanglingIndexIsNeverFollowed) {
  // A safetensors index whose shards are absent: the .bin is used instead.
  const std::string dir = resolve_model(kDanglingRepo, options_);
  EXPECT_TRUE(fs::is_symlink(fs::path(dir) / "pytorch_model.bin"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
  EXPECT_EQ(hub_->count("", "model-00001-of-00002.safetensors"), 0u);
  Model::load(dir);
  // musicgen-stereo-medium: model.safetensors wins; the dangling indexes are not even fetched.
  const std::string dir2 = resolve_model(kStereoMediumRepo, options_);
  EXPECT_TRUE(fs::is_symlink(fs::path(dir2) / "model.safetensors"));
  size_t index_hits = 0;
  for (const auto& h : hub_->hits())
    if (h.path.find(kStereoMediumRepo) != std::string::npos &&
        h.path.find("index.json") != std::string::npos)
      ++index_hits;
  EXPECT_EQ(index_hits, 0u);
}

// Full size, opt-in: MUSICGEN_FULL_SIZE_DIR=<a checkpoint folder>, e.g. written by
// `musicgen make-random-model --shape medium --format bin` (facebook/musicgen-medium's layout) or
// `--shape large --format bin --shards 2` (large's). Pulls it from the fake hub, loads it and
// generates a few steps.
TEST_F(HubTest, FullSizeCheckpointPullsLoadsAndGenerates) {
  const char* dir = std::getenv("MUSICGEN_FULL_SIZE_DIR");
  if (dir == nullptr) GTEST_SKIP() << "set MUSICGEN_FULL_SIZE_DIR to a full-size checkpoint folder";
  hub_->stop();
  hub_ = std::make_unique<FakeHub>(3600);
  set_env("HF_ENDPOINT", hub_->endpoint());
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  hub_->add_repo_from_dir(kFullSizeRepo, "6666666666777777777788888888889999999999", dir);
  auto secs = [](clock::time_point a) {
    return std::chrono::duration<double>(clock::now() - a).count();
  };
  std::fprintf(stderr, "fake hub ready (sha256 of every file) in %.1f s\n", secs(t0));
  t0 = clock::now();
  const std::string snap = resolve_model(kFullSizeRepo, options_);
  std::fprintf(stderr, "pulled in %.1f s: %s\n", secs(t0), snap.c_str());
  for (const auto& [name, f] : hub_->repo(kFullSizeRepo).files)
    EXPECT_TRUE(fs::is_symlink(fs::path(snap) / name)) << name;
  const CheckpointSummary s = inspect_model(kFullSizeRepo, options_);
  std::fprintf(stderr, "info: %s, %llu parameters\n", s.weights_format.c_str(),
               static_cast<unsigned long long>(s.total_parameters));
  t0 = clock::now();
  auto model = Model::load(snap);
  std::fprintf(stderr, "loaded in %.1f s\n", secs(t0));
  Session session(model, {.threads = 0});
  GenerationOptions opt;
  opt.prompts = {"full size"};
  opt.max_new_tokens = 8;
  opt.greedy = true;
  t0 = clock::now();
  const GenerationResult r = session.generate(opt);
  std::fprintf(stderr, "generated %d frames in %.1f s\n", r.frames, secs(t0));
  EXPECT_GT(r.frames, 0);
  for (float x : r.audio) ASSERT_TRUE(std::isfinite(x));
}

TEST_F(HubTest, ProgressCallbackSeesEveryFileAndCanCancel) {
  std::set<std::string> finished;
  options_.on_progress = [&](const DownloadProgress& p) {
    EXPECT_EQ(p.repo_id, kRepo);
    EXPECT_LE(p.bytes_done, p.bytes_total);
    if (p.finished) finished.insert(p.file);
    return true;
  };
  resolve_model(kRepo, options_);
  EXPECT_EQ(finished, (std::set<std::string>{"config.json", "generation_config.json",
                                             "model.safetensors", "spiece.model"}));

  fs::remove_all(repo_dir());
  hub_->slow_chunk_ms = 150;  // slow enough for a callback between chunks
  options_.on_progress = [](const DownloadProgress& p) { return p.file != "model.safetensors"; };
  ErrorCode code{};
  error_of([&] { resolve_model(kRepo, options_); }, &code);
  EXPECT_EQ(code, ErrorCode::kCancelled);
}

TEST_F(HubTest, ParsesModelReferences) {
  ModelReference r = parse_model_reference("small");
  EXPECT_EQ(r.source, ModelSource::kHub);
  EXPECT_EQ(r.repo_id, "facebook/musicgen-small");
  EXPECT_EQ(r.revision, "main");
  EXPECT_EQ(parse_model_reference("stereo-melody-large").repo_id,
            "facebook/musicgen-stereo-melody-large");
  EXPECT_EQ(parse_model_reference("musicgen-melody").repo_id, "facebook/musicgen-melody");
  r = parse_model_reference("user/my-finetune.v2@refs-pr-1");
  EXPECT_EQ(r.repo_id, "user/my-finetune.v2");
  EXPECT_EQ(r.revision, "refs-pr-1");
  EXPECT_EQ(parse_model_reference("medium@abc123").revision, "abc123");
  EXPECT_EQ(model_short_names().size(), 10u);

  const std::string fixture = testing::fixture_dir("tiny-a");
  r = parse_model_reference(fixture);
  EXPECT_EQ(r.source, ModelSource::kLocalDirectory);
  EXPECT_EQ(r.path, fixture);
  EXPECT_EQ(resolve_model(fixture, options_), fixture);
  // An existing file is local too (a quantized checkpoint file is loaded as it is).
  const std::string weights = fixture + "/model.safetensors";
  EXPECT_EQ(parse_model_reference(weights).source, ModelSource::kLocalDirectory);
  EXPECT_EQ(resolve_model(weights, options_), weights);
  EXPECT_EQ(hub_->hits().size(), 0u);

  ErrorCode code{};
  for (const char* bad : {"", "tiny", "a/b/c", "org/-bad", "org/na--me"}) {
    const std::string message = error_of([&] { parse_model_reference(bad); }, &code);
    EXPECT_EQ(code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(message.find("short name"), std::string::npos) << bad << ": " << message;
  }
  for (const char* bad : {"org/name@", "org/name@a b", "org/name@../x"}) {
    const std::string message = error_of([&] { parse_model_reference(bad); }, &code);
    EXPECT_EQ(code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(message.find("invalid revision"), std::string::npos) << bad << ": " << message;
  }
  error_of([&] { parse_model_reference("./no/such/dir"); }, &code);
  EXPECT_EQ(code, ErrorCode::kNotFound);
}

TEST_F(HubTest, ListsAndInspectsCachedModels) {
  EXPECT_TRUE(list_cached_models(options_).empty());
  resolve_model(kRepo, options_);
  const auto models = list_cached_models(options_);
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].repo_id, kRepo);
  EXPECT_EQ(models[0].model_type, "musicgen");
  uint64_t total = 0;
  for (const auto& [name, f] : hub_->repo(kRepo).files) total += f.content.size();
  EXPECT_EQ(models[0].size_bytes, total);
  ASSERT_EQ(models[0].revisions.size(), 1u);
  EXPECT_EQ(models[0].revisions[0].commit, kCommit);
  EXPECT_EQ(models[0].revisions[0].refs, std::vector<std::string>{"main"});
  EXPECT_EQ(models[0].revisions[0].size_bytes, total);
  EXPECT_TRUE(models[0].revisions[0].missing.empty());

  const CheckpointSummary s = inspect_model(kRepo, options_);
  EXPECT_EQ(s.model_type, "musicgen");
  EXPECT_GT(s.decoder_layers, 0);
  EXPECT_GT(s.num_codebooks, 0);
  EXPECT_GT(s.total_parameters, 0u);
  uint64_t sum = 0;
  for (const auto& p : s.parts) sum += p.parameters;
  EXPECT_EQ(sum, s.total_parameters);
  ASSERT_GE(s.parts.size(), 3u);
  EXPECT_EQ(s.parts[0].name, "text encoder (T5)");
  ASSERT_EQ(s.memory.size(), 4u);
  EXPECT_EQ(s.memory[0].weight_type, "f32");
  EXPECT_EQ(s.memory[0].bytes, 4 * s.total_parameters);
  EXPECT_EQ(s.memory[1].bytes, 2 * s.total_parameters);
  EXPECT_LT(s.memory[3].bytes, s.memory[2].bytes);
  EXPECT_EQ(s.file_bytes, total);
}

// Issue 10: names from the network or an index never leave their folder.
TEST_F(HubTest, HostileIndexWithAnAbsoluteShardNameTouchesNothingOutsideTheCache) {
  const std::string outside = testing::make_temp_dir("victim");
  const std::string victim = outside + "/victim.txt";
  std::ofstream(victim) << "precious";
  FakeRepo repo = hub_->repo(kShardedRepo);
  RepoFile index = repo.files.at("model.safetensors.index.json");
  json j = json::parse(index.content);
  for (auto& [name, shard] : j["weight_map"].items()) shard = victim;
  index.content = j.dump();
  index.etag = git_blob_sha1(index.content);
  repo.files["model.safetensors.index.json"] = index;
  repo.files[victim] = repo.files.at("model-00001-of-00001.safetensors");
  repo.commit = "2222222222333333333344444444445555555555";
  hub_->add_repo("evil/absolute", repo);
  for (const std::string& shard : {victim, std::string("sub/../../x"), std::string("./x"),
                                   std::string(""), std::string("a//b")}) {
    j = json::parse(index.content);
    for (auto& [name, s] : j["weight_map"].items()) s = shard;
    repo.files["model.safetensors.index.json"].content = j.dump();
    repo.files["model.safetensors.index.json"].etag = git_blob_sha1(j.dump());
    repo.files[shard] = repo.files.at("model-00001-of-00001.safetensors");
    hub_->add_repo("evil/absolute", repo);
    ErrorCode code{};
    const std::string message = error_of([&] { resolve_model("evil/absolute", options_); }, &code);
    EXPECT_EQ(code, ErrorCode::kInvalidModel) << shard;
    EXPECT_NE(message.find("outside the snapshot folder"), std::string::npos) << message;
    EXPECT_EQ(read_file(victim), "precious");
    EXPECT_FALSE(fs::is_symlink(victim));
  }
  fs::remove_all(outside);
}

TEST_F(HubTest, RevisionAndEtagDotAreRefused) {
  ErrorCode code{};
  for (const char* bad : {"org/name@.", "org/name@a/./b", "org/name@a//b", "org/name@a/", "org/name@./a"}) {
    const std::string message = error_of([&] { parse_model_reference(bad); }, &code);
    EXPECT_EQ(code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(message.find("invalid revision"), std::string::npos) << bad << ": " << message;
  }
  EXPECT_EQ(parse_model_reference("org/name@refs/pr/1").revision, "refs/pr/1");
  for (const char* etag : {".", ".."}) {
    FakeRepo repo = hub_->repo(kRepo);
    repo.files.at("config.json").etag = etag;
    hub_->add_repo("evil/etag", repo);
    const std::string message = error_of([&] { resolve_model("evil/etag", options_); }, &code);
    EXPECT_EQ(code, ErrorCode::kIo) << etag;
    EXPECT_NE(message.find("no usable ETag"), std::string::npos) << message;
  }
  FakeRepo repo = hub_->repo(kRepo);
  repo.commit = ".";
  hub_->add_repo("evil/commit", repo);
  const std::string message = error_of([&] { resolve_model("evil/commit", options_); }, &code);
  EXPECT_NE(message.find("no usable commit"), std::string::npos) << message;
}

TEST_F(HubTest, InfoReadsNoShardOutsideTheCheckpointAndEchoesNoBytes) {
  const std::string dir = testing::make_temp_dir("info-evil");
  const std::string src = testing::fixture_dir("tiny-a");
  fs::copy(fs::path(src) / "config.json", fs::path(dir) / "config.json");
  const std::string secret = dir + "-secret.txt";
  std::ofstream(secret) << "root:x:0:0:root:/root:/bin/bash\n";
  for (const std::string& shard : {secret, std::string("../") + fs::path(secret).filename().string()}) {
    json index = {{"weight_map", {{"decoder.x", shard}}}};
    std::ofstream(fs::path(dir) / "model.safetensors.index.json") << index.dump();
    ErrorCode code{};
    const std::string message = error_of([&] { inspect_model(dir, options_); }, &code);
    EXPECT_EQ(code, ErrorCode::kInvalidModel) << message;
    EXPECT_NE(message.find("outside the checkpoint folder"), std::string::npos) << message;
    // and the cache scan reports it instead of probing the path
    EXPECT_FALSE(hub::is_safe_relative_path(shard));
  }
  // Config values out of int range are shown as unknown (0), not converted with undefined
  // behaviour (UBSan in the sanitizer build).
  json cfg = json::parse(read_file(fs::path(dir) / "config.json"));
  cfg["decoder"]["num_hidden_layers"] = 1e20;
  cfg["decoder"]["hidden_size"] = 1.5;
  cfg["audio_encoder"]["upsampling_ratios"] = {1 << 30, 1 << 30, 1 << 30};
  std::ofstream(fs::path(dir) / "config.json") << cfg.dump();
  fs::remove(fs::path(dir) / "model.safetensors.index.json");
  fs::copy(fs::path(src) / "model.safetensors", fs::path(dir) / "model.safetensors");
  const CheckpointSummary s = inspect_model(dir, options_);
  EXPECT_EQ(s.decoder_layers, 0);
  EXPECT_EQ(s.decoder_hidden, 0);
  EXPECT_GE(s.frame_rate, 0);
  fs::remove(fs::path(dir) / "model.safetensors");
  // A file in the folder that is not safetensors: its first bytes are not echoed as a length.
  std::ofstream(fs::path(dir) / "model.safetensors") << "root:x:0:0:root:/root:/bin/bash\n";
  const std::string message = error_of([&] { inspect_model(dir, options_); });
  EXPECT_EQ(message.find("3475222254926655346"), std::string::npos) << message;
  fs::remove_all(dir);
  fs::remove(secret);
}

// The command line against the same fake hub.
struct Cli {
  int exit_code = -1;
  std::string out, err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Cli run_cli(const std::vector<std::string>& args, const std::string& env = "") {
  const std::string dir = testing::make_temp_dir("hub-cli");
  std::string cmd = env;
  cmd.append(" ").append(quote(MUSICGEN_CLI));
  for (const auto& a : args) cmd.append(" ").append(quote(a));
  cmd.append(" > ").append(dir).append("/out 2> ").append(dir).append("/err < /dev/null");
  const int status = std::system(cmd.c_str());
  Cli r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(dir + "/out");
  r.err = read_file(dir + "/err");
  fs::remove_all(dir);
  return r;
}

TEST_F(HubTest, CommandLinePullListInfoGenerate) {
  Cli r = run_cli({"pull", kRepo});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, (repo_dir() / "snapshots" / kCommit).string() + "\n");
  EXPECT_EQ(r.err.find("model.safetensors"), std::string::npos)
      << "no bar when stderr is not a terminal";

  r = run_cli({"pull", "--progress", kShardedRepo});  // asked for: a bar per file
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* part :
       {"model-00001-of-00001.safetensors", "model.safetensors.index.json", "100%", "2.43 MB"})
    EXPECT_NE(r.err.find(part), std::string::npos) << part << " not in:\n" << r.err;
  if (std::getenv("MUSICGEN_TEST_VERBOSE")) std::fprintf(stderr, "%s", r.err.c_str());

  r = run_cli({"list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(kRepo), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::string("main ") + std::string(kCommit).substr(0, 8)), std::string::npos)
      << r.out;

  r = run_cli({"info", kRepo});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* part :
       {"text encoder (T5)", "decoder", "audio codec (EnCodec)", "total", "q8", "q4", "estimates"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part << " not in:\n" << r.out;

  const std::string wav = cache_ + "/out.wav";
  r = run_cli({"generate", "--model", kRepo, "--prompt", "x", "--max-new-tokens", "8", "--output",
               wav, "--codes-out", cache_ + "/out.json", "--quiet"},
              "HF_HUB_OFFLINE=1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(wav));
  {  // the take names the repo and the snapshot's commit (as the audio's tags do)
    std::ifstream in(cache_ + "/out.json");
    const nlohmann::json take = nlohmann::json::parse(in);
    EXPECT_EQ(take.at("model"), kRepo);
    EXPECT_EQ(take.at("revision"), kCommit);
  }

  // Offline and not cached: exit 1 with one helpful line, no crash.
  r = run_cli({"generate", "--model", "test-org/other-model", "--prompt", "x", "--output", wav},
              "HF_HUB_OFFLINE=1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("musicgen: error: test-org/other-model is not in the model cache", 0), 0u)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  // facebook/musicgen-medium's layout: pull, info (format and dtype), list, generate.
  r = run_cli({"pull", kMediumRepo});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"info", kMediumRepo});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* part : {"weights:       PyTorch .bin (pytorch_model.bin)", "F32"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part << " not in:\n" << r.out;
  r = run_cli({"list"});
  EXPECT_NE(r.out.find("ok (PyTorch .bin)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ok (safetensors)"), std::string::npos) << r.out;
  r = run_cli({"generate", "--model", kMediumRepo, "--prompt", "x", "--max-new-tokens", "8",
               "--output", wav, "--quiet"},
              "HF_HUB_OFFLINE=1");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = run_cli({"pull"});
  EXPECT_EQ(r.exit_code, 2);
  r = run_cli({"pull", "test-org/no-such-model"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace musicgen
