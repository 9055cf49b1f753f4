// resolve_model: a cache lookup, then (when needed and allowed) a download of the files the engine
// needs from the hub into the shared cache, verified and placed atomically.
//
// Protocol (as huggingface_hub speaks it):
//   GET  {endpoint}/api/models/{repo}/revision/{revision}   -> {"sha": commit, "siblings": [...]}
//   HEAD {endpoint}/{repo}/resolve/{commit}/{file}          -> X-Repo-Commit, ETag, and for LFS
//        files X-Linked-Etag (the sha256), X-Linked-Size and a 302 to a CDN (not followed)
//   GET  {endpoint}/{repo}/resolve/{commit}/{file}          -> the body, following redirects, with
//        "Range: bytes=N-" to resume blobs/{etag}.incomplete
// Every blob is checked (size, and sha256 for LFS files or the git blob sha1 for small ones)
// before it is renamed into blobs/; snapshot links and refs/ are written only once every blob of
// the revision is in place, so a snapshot never shows a partial or corrupt file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/mapped_file.h"
#include "hub/cache.h"
#include "hub/hash.h"
#include "hub/http.h"
#include "hub/hub_config.h"
#include "hub/progress.h"
#include "musicgen/hub.h"

namespace musicgen {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace hub {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

bool env_true(const char* name) {
  std::string v = env(name);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

// HF_TOKEN, else the token file huggingface_hub's login writes.
std::string find_token() {
  if (std::string t = trim(env("HF_TOKEN")); !t.empty()) return t;
  if (std::string t = trim(env("HUGGING_FACE_HUB_TOKEN")); !t.empty()) return t;
  std::string path = env("HF_TOKEN_PATH");
  if (path.empty()) {
    std::string home = env("HF_HOME");
    if (home.empty()) {
      const std::string xdg = env("XDG_CACHE_HOME");
      home = (xdg.empty() ? env("HOME") + "/.cache" : xdg) + "/huggingface";
    }
    path = home + "/token";
  }
  std::ifstream in(path);
  if (!in) return "";
  std::string token;
  std::getline(in, token);
  return trim(token);
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// "W/\"abc\"" -> "abc".
std::string normalize_etag(std::string e) {
  e = trim(e);
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

// scheme://host[:port] of a URL.
std::string url_origin(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t slash = url.find('/', scheme + 3);
  return slash == std::string::npos ? url : url.substr(0, slash);
}

struct FileMeta {
  std::string file;   // path in the repo
  std::string etag;   // blob name: sha256 (LFS) or git blob sha1
  uint64_t size = 0;  // 0 if the hub did not say
  bool size_known = false;
  bool lfs = false;
};

struct RepoInfo {
  std::string commit;
  std::set<std::string> files;
};

class RepoDownloader {
 public:
  RepoDownloader(const HubConfig& config, const ResolveOptions& options, std::string repo_id,
                 std::string revision)
      : config_(config),
        options_(options),
        repo_id_(std::move(repo_id)),
        revision_(std::move(revision)),
        repo_dir_((fs::path(config.cache_dir) / repo_folder_name(repo_id_)).string()),
        locks_dir_((fs::path(config.cache_dir) / ".locks" / repo_folder_name(repo_id_)).string()),
        progress_(options, repo_id_) {}

  std::string resolve();

 private:
  std::string display_ref() const {
    return revision_ == "main" ? repo_id_ : repo_id_ + "@" + revision_;
  }
  std::vector<std::string> headers() const;
  HttpResponse perform(HttpRequest request, const std::string& what, BodySink* sink = nullptr);
  [[noreturn]] void fail_http(const HttpResponse& r, const std::string& file);
  [[noreturn]] void fail_not_cached(const std::string& reason);
  std::string local_hint() const;
  RepoInfo fetch_info();
  FileMeta fetch_meta(const std::string& commit, const std::string& file);
  std::string resolve_url(const std::string& commit, const std::string& file) const;
  void ensure_blob(const std::string& commit, const FileMeta& meta);
  void download_blob(const std::string& commit, const FileMeta& meta, const std::string& blob);
  void check_free_space(const std::vector<FileMeta>& metas);
  std::string download_snapshot();
  void backoff(int attempt, const std::string& what, const std::string& reason);

  const HubConfig& config_;
  const ResolveOptions& options_;
  std::string repo_id_, revision_, repo_dir_, locks_dir_;
  Progress progress_;
  std::vector<std::string> missing_;  // what the cache lacks, for messages
};

std::vector<std::string> RepoDownloader::headers() const {
  std::vector<std::string> h = {"Accept-Encoding: identity"};
  if (!config_.token.empty()) h.push_back("Authorization: Bearer " + config_.token);
  return h;
}

void RepoDownloader::backoff(int attempt, const std::string& what, const std::string& reason) {
  const double delay = std::min(30.0, options_.retry_delay_s * std::pow(2.0, attempt));
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", delay);
  progress_.note(what + ": " + reason + "; retrying in " + buf + " s (attempt " +
                 std::to_string(attempt + 2) + " of " + std::to_string(options_.max_retries + 1) +
                 ")");
  std::this_thread::sleep_for(std::chrono::duration<double>(delay));
}

HttpResponse RepoDownloader::perform(HttpRequest request, const std::string& what, BodySink* sink) {
  request.headers = headers();
  for (int attempt = 0;; ++attempt) {
    HttpResponse r = http_perform(request, sink);
    if (!r.transient() || attempt >= options_.max_retries) return r;
    backoff(attempt, what, r.describe());
  }
}

void RepoDownloader::fail_not_cached(const std::string& reason) {
  const std::string folder = repo_folder_name(repo_id_);
  fail(ErrorCode::kNotFound,
       display_ref() + " is not in the model cache '" + config_.cache_dir + "' and " + reason +
           "; missing: " + join(missing_, ", ") + ". Run `musicgen pull " + display_ref() +
           "` on a connected machine and copy its cache folder " + folder +
           " into this cache (or copy the snapshot folder anywhere and pass it as --model DIR)" +
           local_hint());
}

std::string RepoDownloader::local_hint() const {
  // "models/musicgen-small" may have been meant as a relative directory.
  std::error_code ec;
  const std::string first = repo_id_.substr(0, repo_id_.find('/'));
  if (!fs::is_directory(first, ec)) return "";
  return "; note: there is no directory './" + repo_id_ + "' either";
}

[[noreturn]] void RepoDownloader::fail_http(const HttpResponse& r, const std::string& file) {
  const std::string what = file.empty() ? repo_id_ : "'" + file + "' of " + repo_id_;
  if (r.curl_code != 0) {
    if (!missing_.empty() && !r.connected)
      fail_not_cached(config_.endpoint + " cannot be reached (" + r.curl_error +
                      "); connect to the network or set HF_ENDPOINT to a reachable mirror");
    fail(ErrorCode::kIo, "downloading " + what + " from " + config_.endpoint + " failed (" +
                             r.curl_error + (r.transient() ? ", after retries" : "") +
                             "); check the network or HF_ENDPOINT and run the command again (it "
                             "resumes)" +
                             (missing_.empty() ? "; the cached copy is complete and "
                                                 "still works offline"
                                               : ""));
  }
  auto header = [&](const char* name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string() : it->second;
  };
  const std::string code = header("x-error-code");
  std::string server_says = header("x-error-message");
  if (server_says.empty() && !r.body.empty() && r.body.size() < 300 &&
      r.body.find('<') == std::string::npos)
    server_says = trim(r.body);
  const std::string detail = server_says.empty() ? "" : " (the hub says: " + server_says + ")";
  const std::string status = "HTTP " + std::to_string(r.status);
  if (r.status == 401)
    fail(ErrorCode::kNotFound,
         config_.endpoint + " refused " + what + " (" + status +
             "): the repository does not exist, or it is "
             "private or gated and needs a token; check the name, or set HF_TOKEN to an access "
             "token of an account that may read it" +
             (config_.token.empty() ? "" : " (the token given was not accepted)") + local_hint() +
             detail);
  if (r.status == 403)
    fail(ErrorCode::kNotFound,
         config_.endpoint + " refused " + what + " (" + status +
             "): the repository is gated or "
             "private; accept its terms on its hub page and set HF_TOKEN to a token of that "
             "account" +
             detail);
  if (r.status == 404) {
    if (!file.empty() && code != "RepoNotFound" && code != "RevisionNotFound")
      fail(ErrorCode::kNotFound, "file '" + file + "' not found in " + repo_id_ + " at revision '" +
                                     revision_ + "' on " + config_.endpoint + " (" + status + ")" +
                                     detail);
    if (code == "RevisionNotFound")
      fail(ErrorCode::kNotFound, "revision '" + revision_ + "' not found in " + repo_id_ + " on " +
                                     config_.endpoint + " (" + status +
                                     "); check the branch, tag or "
                                     "commit after '@'" +
                                     detail);
    fail(ErrorCode::kNotFound,
         "repository " + repo_id_ + " not found on " + config_.endpoint + " (" + status +
             "); check the name (for example facebook/musicgen-small, or a short name like "
             "small)" +
             local_hint() + detail);
  }
  if (r.status == 416)
    fail(ErrorCode::kIo,
         "the hub rejected a resume of " + what + " (" + status + "); run the command again");
  fail(ErrorCode::kIo,
       config_.endpoint + " answered " + status + " for " + what +
           (r.status >= 500 ? " (after retries); the hub may be down, try again later"
                            : "; check the name and HF_ENDPOINT") +
           detail);
}

RepoInfo RepoDownloader::fetch_info() {
  HttpRequest req;
  req.url =
      config_.endpoint + "/api/models/" + repo_id_ + "/revision/" + url_escape(revision_, false);
  HttpResponse r = perform(req, repo_id_);
  if (r.curl_code != 0 || r.status != 200) fail_http(r, "");
  RepoInfo info;
  try {
    const json j = json::parse(r.body);
    info.commit = j.at("sha").get<std::string>();
    for (const auto& s : j.at("siblings")) info.files.insert(s.at("rfilename").get<std::string>());
  } catch (const std::exception& e) {
    fail(ErrorCode::kIo, config_.endpoint + " sent an unreadable description of " + repo_id_ +
                             " (" + e.what() + "); check HF_ENDPOINT points at a Hugging Face hub");
  }
  if (!is_safe_file_name(info.commit))
    fail(ErrorCode::kIo,
         config_.endpoint + " sent no usable commit for " + repo_id_ + "; check HF_ENDPOINT");
  return info;
}

std::string RepoDownloader::resolve_url(const std::string& commit, const std::string& file) const {
  return config_.endpoint + "/" + repo_id_ + "/resolve/" + url_escape(commit, false) + "/" +
         url_escape(file, true);
}

FileMeta RepoDownloader::fetch_meta(const std::string& commit, const std::string& file) {
  HttpRequest req;
  req.method = "HEAD";
  req.follow_redirects = false;  // the 302 to the CDN carries the LFS headers
  req.url = resolve_url(commit, file);
  HttpResponse r;
  for (int hop = 0;; ++hop) {
    r = perform(req, file);
    if (r.curl_code != 0) fail_http(r, file);
    const auto loc = r.headers.find("location");
    // Relative redirects stay on the hub (a renamed repo); absolute ones go to the CDN.
    if (r.status >= 300 && r.status < 400 && loc != r.headers.end() &&
        loc->second.rfind("/", 0) == 0 && hop < 5) {
      req.url = url_origin(config_.endpoint) + loc->second;
      continue;
    }
    break;
  }
  if (r.status >= 400) fail_http(r, file);
  FileMeta m;
  m.file = file;
  auto get = [&](const char* name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string() : it->second;
  };
  m.lfs = !get("x-linked-etag").empty();
  m.etag = normalize_etag(m.lfs ? get("x-linked-etag") : get("etag"));
  const std::string size = m.lfs ? get("x-linked-size") : get("content-length");
  if (!size.empty()) {
    char* end = nullptr;
    m.size = std::strtoull(size.c_str(), &end, 10);
    m.size_known = end != nullptr && *end == '\0';
  }
  if (!is_safe_file_name(m.etag) || m.etag.size() > 128)
    fail(ErrorCode::kIo, config_.endpoint + " sent no usable ETag for '" + file + "' of " +
                             repo_id_ + "; check that HF_ENDPOINT points at a Hugging Face hub");
  return m;
}

void RepoDownloader::check_free_space(const std::vector<FileMeta>& metas) {
  uint64_t needed = 0;
  std::error_code ec;
  for (const auto& m : metas) {
    const fs::path blob = fs::path(repo_dir_) / "blobs" / m.etag;
    if (fs::exists(blob, ec)) continue;
    const fs::path part = blob.string() + ".incomplete";
    const uint64_t have = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
    if (m.size > have) needed += m.size - have;
  }
  const auto free = free_disk_bytes(fs::path(repo_dir_) / "blobs");
  if (free && needed > *free)
    fail(ErrorCode::kIo,
         "not enough disk space for " + repo_id_ + " in '" + repo_dir_ +
             "': " + format_bytes(needed) + " needed, " + format_bytes(*free) +
             " free; free some space or set HF_HUB_CACHE to a folder on a larger disk");
}

void RepoDownloader::ensure_blob(const std::string& commit, const FileMeta& meta) {
  const std::string blob = (fs::path(repo_dir_) / "blobs" / meta.etag).string();
  std::error_code ec;
  if (fs::exists(blob, ec)) return;
  // huggingface_hub's own per-blob lock, so a Python download of the same blob waits for us.
  FileLock lock((fs::path(locks_dir_) / (meta.etag + ".lock")).string(), nullptr);
  if (fs::exists(blob, ec)) return;
  download_blob(commit, meta, blob);
}

void RepoDownloader::download_blob(const std::string& commit, const FileMeta& meta,
                                   const std::string& blob) {
  const std::string part = blob + ".incomplete";
  const bool check_sha256 = meta.lfs && is_hex_digest(meta.etag, 64);
  const bool check_git_sha1 = !meta.lfs && meta.size_known && is_hex_digest(meta.etag, 40);
  Hasher hasher(check_sha256 ? HashAlgorithm::kSha256 : HashAlgorithm::kSha1);
  const std::string git_prefix = "blob " + std::to_string(meta.size) + std::string(1, '\0');

  const int fd = ::open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0)
    fail(ErrorCode::kIo, "cannot write '" + part + "' (" + std::strerror(errno) +
                             "); make the cache writable or set HF_HUB_CACHE to a writable folder");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  uint64_t offset = 0;  // bytes of the file on disk and in the hasher
  auto start_hash = [&] {
    hasher.reset();
    if (check_git_sha1) hasher.update(git_prefix.data(), git_prefix.size());
  };
  auto restart = [&] {
    if (::ftruncate(fd, 0) != 0)
      fail(ErrorCode::kIo, "cannot truncate '" + part + "' (" + std::strerror(errno) + ")");
    start_hash();
    offset = 0;
  };
  // Resume: the bytes already on disk go through the hasher first.
  start_hash();
  {
    struct stat st;
    const uint64_t have = ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    if (meta.size_known && have > meta.size) {
      restart();
    } else {
      std::vector<char> buf(1 << 20);
      while (offset < have) {
        const ssize_t n =
            ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), have - offset), offset);
        if (n <= 0) break;
        hasher.update(buf.data(), static_cast<size_t>(n));
        offset += static_cast<uint64_t>(n);
      }
      if (offset != have && ::ftruncate(fd, static_cast<off_t>(offset)) != 0) restart();
    }
  }

  progress_.begin(meta.file, offset, meta.size);
  int write_errno = 0;
  bool cancelled = false;
  for (int attempt = 0;; ++attempt) {
    if (meta.size_known && offset == meta.size) break;  // everything is already on disk
    HttpRequest req;
    req.url = resolve_url(commit, meta.file);
    req.range_start = offset;
    bool range_mismatch = false;
    BodySink sink;
    sink.on_headers = [&](long status, const HttpHeaders& h) {
      if (status == 206) {
        auto it = h.find("content-range");
        const std::string expect = "bytes " + std::to_string(offset) + "-";
        if (it == h.end() || it->second.rfind(expect, 0) != 0) {
          range_mismatch = true;
          return false;
        }
        return true;
      }
      if (status == 200) {
        if (offset > 0) restart();  // the server ignored the Range: start over
        return true;
      }
      return false;
    };
    sink.on_data = [&](const char* data, size_t n) {
      size_t done = 0;
      while (done < n) {
        const ssize_t w = ::pwrite(fd, data + done, n - done, static_cast<off_t>(offset + done));
        if (w < 0) {
          if (errno == EINTR) continue;
          write_errno = errno;
          return false;
        }
        done += static_cast<size_t>(w);
      }
      hasher.update(data, n);
      offset += n;
      if (!progress_.update(offset)) {
        cancelled = true;
        return false;
      }
      return true;
    };
    req.headers = headers();
    HttpResponse r = http_perform(req, &sink);
    if (cancelled)
      fail(ErrorCode::kCancelled, "download of '" + meta.file + "' of " + repo_id_ +
                                      " cancelled; run the command again to resume it");
    if (write_errno != 0)
      fail(ErrorCode::kIo,
           (write_errno == ENOSPC ? "disk full while writing '" : "cannot write '") + part + "' (" +
               std::strerror(write_errno) +
               "); free some space or set "
               "HF_HUB_CACHE to another folder (the download resumes where it stopped)");
    if (range_mismatch) {
      restart();
      if (attempt < options_.max_retries) continue;
    }
    const bool got_body = r.curl_code == 0 && (r.status == 200 || r.status == 206);
    if (got_body && (!meta.size_known || offset >= meta.size)) break;
    if (r.curl_code == 0 && r.status == 416) restart();  // our partial file is not a prefix
    const bool transient = r.transient() || got_body /* closed early without an error */ ||
                           (r.curl_code == 0 && r.status == 416);
    if (!transient || attempt >= options_.max_retries) {
      if (got_body || (r.curl_code == 0 && r.status == 416))
        fail(ErrorCode::kIo, "downloading '" + meta.file + "' of " + repo_id_ + " stopped at " +
                                 std::to_string(offset) + " of " + std::to_string(meta.size) +
                                 " bytes; run the command again (it resumes)");
      fail_http(r, meta.file);
    }
    backoff(attempt, meta.file, r.curl_code != 0 ? r.curl_error : "transfer ended early");
  }

  // Verify before the blob becomes visible.
  auto reject = [&](const std::string& what) {
    ::unlink(part.c_str());
    fail(ErrorCode::kIo,
         "the download of '" + meta.file + "' of " + repo_id_ + " is corrupt (" + what +
             "); it was deleted, run the command again (if this persists, a proxy or "
             "mirror is altering the file)");
  };
  if (meta.size_known && offset != meta.size)
    reject("size " + std::to_string(offset) + " bytes, the hub announced " +
           std::to_string(meta.size));
  if (check_sha256 || check_git_sha1) {
    const std::string got = hasher.hex_digest();
    if (got != meta.etag)
      reject(std::string("checksum mismatch: expected ") +
             (check_sha256 ? "sha256 " : "git sha1 ") + meta.etag + ", got " + got);
  }
  if (::fsync(fd) != 0)
    fail(ErrorCode::kIo, "cannot write '" + part + "' (" + std::strerror(errno) +
                             "); free some space "
                             "or set HF_HUB_CACHE to another folder");
  if (std::rename(part.c_str(), blob.c_str()) != 0)
    fail(ErrorCode::kIo,
         "cannot move '" + part + "' to '" + blob + "' (" + std::strerror(errno) + ")");
  progress_.finish();
}

std::string RepoDownloader::download_snapshot() {
  const RepoInfo info = fetch_info();
  const std::string& commit = info.commit;
  auto has = [&](const std::string& f) { return info.files.count(f) != 0; };
  const std::string listed =
      " (it has: " + join(std::vector<std::string>(info.files.begin(), info.files.end()), ", ") +
      ")";
  if (!has("config.json"))
    fail(ErrorCode::kInvalidModel, repo_id_ +
                                       " has no config.json; it is not a Hugging Face "
                                       "MusicGen checkpoint" +
                                       listed);
  if (!has("spiece.model"))
    fail(ErrorCode::kInvalidModel,
         repo_id_ +
             " has no spiece.model (the T5 tokenizer); copy t5-base's "
             "spiece.model next to a downloaded copy and pass it as --model DIR" +
             listed);
  // The weights, in order of preference: safetensors (one file, or an index and its shards),
  // then PyTorch .bin (the same). An index is followed only if the repository holds every shard
  // it names (facebook/musicgen-stereo-medium ships dangling *.index.json files).
  struct Layout {
    const char* single;
    const char* index;
  };
  const Layout layouts[] = {{"model.safetensors", "model.safetensors.index.json"},
                            {"pytorch_model.bin", "pytorch_model.bin.index.json"}};
  bool any_layout = false;
  for (const Layout& l : layouts) any_layout = any_layout || has(l.single) || has(l.index);
  if (!any_layout)
    fail(ErrorCode::kInvalidModel, repo_id_ +
                                       " has no model.safetensors, pytorch_model.bin or sharded "
                                       "index of either; it is not a Hugging Face checkpoint" +
                                       listed);

  std::vector<std::string> wanted = {"config.json"};
  if (has("generation_config.json")) wanted.push_back("generation_config.json");
  wanted.push_back("spiece.model");
  std::vector<FileMeta> metas;
  for (const auto& f : wanted) metas.push_back(fetch_meta(commit, f));
  make_dirs((fs::path(repo_dir_) / "blobs").string());
  std::vector<std::string> dangling;
  bool chosen = false;
  for (const Layout& l : layouts) {
    if (has(l.single)) {
      metas.push_back(fetch_meta(commit, l.single));
      chosen = true;
      break;
    }
    if (!has(l.index)) continue;
    const FileMeta index = fetch_meta(commit, l.index);
    ensure_blob(commit, index);
    std::vector<std::string> shards;
    try {
      const json j = json::parse(read_regular_file(
          (fs::path(repo_dir_) / "blobs" / index.etag).string(), kMaxJsonFileBytes));
      for (const auto& [tensor, shard] : j.at("weight_map").items())
        if (std::find(shards.begin(), shards.end(), shard.get<std::string>()) == shards.end())
          shards.push_back(shard.get<std::string>());
    } catch (const std::exception& e) {
      fail(ErrorCode::kInvalidModel,
           std::string(l.index) + " of " + repo_id_ + " is unreadable (" + e.what() + ")");
    }
    std::string absent;
    size_t n_absent = 0;
    for (const auto& sh : shards) {
      if (!is_safe_relative_path(sh))
        fail(ErrorCode::kInvalidModel, std::string(l.index) + " of " + repo_id_ + " names shard '" +
                                           sh.substr(0, 100) +
                                           "', a path outside the snapshot folder; the "
                                           "repository or mirror is corrupt or hostile");
      if (!has(sh) && ++n_absent <= 3) absent += (absent.empty() ? "" : ", ") + sh.substr(0, 100);
    }
    if (n_absent > 3) absent += " and " + std::to_string(n_absent - 3) + " more";
    if (shards.empty()) absent = "(no shards)";
    if (!absent.empty()) {
      dangling.push_back(std::string(l.index) + " names " + absent +
                         ", which the repository does not have");
      progress_.note("ignoring " + dangling.back());
      continue;
    }
    metas.push_back(index);
    for (const auto& sh : shards) metas.push_back(fetch_meta(commit, sh));
    chosen = true;
    break;
  }
  if (!chosen)
    fail(ErrorCode::kInvalidModel, "no usable weights in " + repo_id_ + ": " + join(dangling, "; ") +
                                       listed);
  check_free_space(metas);
  for (const auto& m : metas) ensure_blob(commit, m);

  // Every blob is verified and in place: now the snapshot links, then the ref.
  const fs::path snapshot = fs::path(repo_dir_) / "snapshots" / commit;
  for (const auto& m : metas) {
    const fs::path link = snapshot / m.file;
    make_dirs(link.parent_path().string());
    const size_t depth = static_cast<size_t>(std::count(m.file.begin(), m.file.end(), '/'));
    std::string target;
    for (size_t i = 0; i < depth + 2; ++i) target += "../";
    symlink_atomic(target + "blobs/" + m.etag, link.string());
  }
  if (revision_ != commit) {
    const fs::path ref = fs::path(repo_dir_) / "refs" / revision_;
    make_dirs(ref.parent_path().string());
    write_file_atomic(ref.string(), commit);
  }
  const auto missing = missing_checkpoint_files(snapshot.string());
  if (!missing.empty())
    fail(ErrorCode::kInvalidModel, "the snapshot of " + display_ref() + " in '" +
                                       snapshot.string() + "' still lacks " + join(missing, ", ") +
                                       "; report this as a bug");
  return snapshot.string();
}

std::string RepoDownloader::resolve() {
  const auto cached = find_snapshot(repo_dir_, revision_);
  missing_ =
      cached ? missing_checkpoint_files(*cached) : missing_checkpoint_files(repo_dir_ + "/-");
  if (!options_.refresh || config_.offline) {
    if (cached && missing_.empty()) return *cached;
    if (config_.offline) fail_not_cached("HF_HUB_OFFLINE=1 forbids downloading");
  }
  FileLock lock((fs::path(locks_dir_) / "musicgen.lock").string(), [&] {
    progress_.note("waiting for another download of " + repo_id_ + " into this cache to finish");
  });
  if (!options_.refresh) {  // another process may have completed it while we waited
    if (auto again = find_snapshot(repo_dir_, revision_);
        again && missing_checkpoint_files(*again).empty())
      return *again;
  }
  return download_snapshot();
}

}  // namespace

HubConfig make_hub_config(const ResolveOptions& options) {
  HubConfig c;
  c.cache_dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  c.endpoint = options.endpoint.empty() ? env("HF_ENDPOINT") : options.endpoint;
  if (c.endpoint.empty()) c.endpoint = "https://huggingface.co";
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  c.token = options.token.empty() ? find_token() : options.token;
  c.offline = options.offline.has_value() ? *options.offline : env_true("HF_HUB_OFFLINE");
  return c;
}

}  // namespace hub

std::string hub_cache_dir(const ResolveOptions& options) {
  return hub::make_hub_config(options).cache_dir;
}

std::string resolve_model(const std::string& reference, const ResolveOptions& options) {
  const ModelReference ref = parse_model_reference(reference);
  if (ref.source == ModelSource::kLocalDirectory) return ref.path;
  const hub::HubConfig config = hub::make_hub_config(options);
  hub::RepoDownloader downloader(config, options, ref.repo_id, ref.revision);
  return downloader.resolve();
}

}  // namespace musicgen
