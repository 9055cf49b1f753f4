#include "hub/cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/mapped_file.h"

namespace musicgen::hub {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

std::string home_dir() {
  const std::string home = env("HOME");
  return home.empty() ? std::string("/") : home;
}

std::string expand_user(const std::string& p) {
  if (p == "~") return home_dir();
  if (p.rfind("~/", 0) == 0) return home_dir() + p.substr(1);
  return p;
}

// A name for temporary files that is unique across processes and threads.
std::string temp_suffix() {
  static std::atomic<unsigned> counter{0};
  return ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

std::string default_cache_dir() {
  if (const std::string v = env("HF_HUB_CACHE"); !v.empty()) return expand_user(v);
  if (const std::string v = env("HUGGINGFACE_HUB_CACHE"); !v.empty()) return expand_user(v);
  if (const std::string v = env("HF_HOME"); !v.empty()) return expand_user(v) + "/hub";
  if (const std::string v = env("XDG_CACHE_HOME"); !v.empty())
    return expand_user(v) + "/huggingface/hub";
  return home_dir() + "/.cache/huggingface/hub";
}

std::string repo_folder_name(const std::string& repo_id) {
  std::string out = "models";
  size_t start = 0;
  while (true) {
    const size_t slash = repo_id.find('/', start);
    out += "--" +
           repo_id.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

std::string repo_id_from_folder(const std::string& folder) {
  const std::string prefix = "models--";
  if (folder.rfind(prefix, 0) != 0) return "";
  std::string rest = folder.substr(prefix.size());
  const size_t sep = rest.find("--");
  if (sep == std::string::npos) return rest;
  return rest.substr(0, sep) + "/" + rest.substr(sep + 2);
}

bool is_hex_digest(const std::string& s, size_t length) {
  if (s.size() != length) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool is_safe_relative_path(const std::string& name) {
  if (name.empty() || name.size() > 1024 || name.front() == '/') return false;
  for (char c : name)
    if (c == '\\' || std::iscntrl(static_cast<unsigned char>(c))) return false;
  size_t start = 0;
  while (true) {
    const size_t slash = name.find('/', start);
    const std::string part =
        name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

bool is_safe_file_name(const std::string& name) {
  return name.find('/') == std::string::npos && is_safe_relative_path(name);
}

bool is_commit_hash(const std::string& s) {
  return is_hex_digest(s, 40);
}

std::vector<std::string> missing_checkpoint_files(const std::string& dir) {
  std::vector<std::string> missing;
  const fs::path d(dir);
  std::error_code ec;
  for (const char* name : {"config.json", "spiece.model"})
    if (!fs::is_regular_file(d / name, ec)) missing.push_back(name);
  // Complete if one weight layout is: model.safetensors, pytorch_model.bin, or an index with
  // every shard it names (each name confined to the folder). Otherwise report what the first
  // index present lacks.
  for (const char* single : {"model.safetensors", "pytorch_model.bin"})
    if (fs::is_regular_file(d / single, ec)) return missing;
  std::vector<std::string> lacks;
  bool any_index = false;
  for (const char* name : {"model.safetensors.index.json", "pytorch_model.bin.index.json"}) {
    const fs::path index = d / name;
    if (!fs::is_regular_file(index, ec)) continue;
    std::vector<std::string> absent;
    try {
      const nlohmann::json j =
          nlohmann::json::parse(read_regular_file(index.string(), kMaxJsonFileBytes));
      std::vector<std::string> shards;
      for (const auto& [tensor, shard] : j.at("weight_map").items())
        if (std::find(shards.begin(), shards.end(), shard.get<std::string>()) == shards.end())
          shards.push_back(shard.get<std::string>());
      for (const auto& s : shards) {
        if (!is_safe_relative_path(s)) {
          absent.push_back(std::string(name) + " (names a shard outside the folder)");
          break;
        }
        if (!fs::is_regular_file(d / s, ec)) absent.push_back(s);
      }
    } catch (const std::exception&) {
      absent.push_back(std::string(name) + " (unreadable)");
    }
    if (absent.empty()) return missing;
    if (!any_index) lacks = absent;
    any_index = true;
  }
  if (!any_index) lacks.push_back("model.safetensors");
  missing.insert(missing.end(), lacks.begin(), lacks.end());
  return missing;
}

std::optional<std::string> read_ref(const std::string& repo_dir, const std::string& revision) {
  std::ifstream in(fs::path(repo_dir) / "refs" / revision);
  if (!in) return std::nullopt;
  std::string commit;
  std::getline(in, commit);
  while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back())))
    commit.pop_back();
  if (commit.empty()) return std::nullopt;
  return commit;
}

std::optional<std::string> find_snapshot(const std::string& repo_dir, const std::string& revision) {
  std::error_code ec;
  std::string commit = revision;
  if (!is_commit_hash(revision) ||
      !fs::is_directory(fs::path(repo_dir) / "snapshots" / revision, ec)) {
    auto ref = read_ref(repo_dir, revision);
    if (!ref) return std::nullopt;
    commit = *ref;
  }
  const fs::path snap = fs::path(repo_dir) / "snapshots" / commit;
  if (!fs::is_directory(snap, ec)) return std::nullopt;
  return snap.string();
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path))
    fail(ErrorCode::kIo, "cannot create the cache folder '" + path + "' (" +
                             (ec ? ec.message() : std::string("not a directory")) +
                             "); make it writable or set HF_HUB_CACHE to a writable folder");
  if (::access(path.c_str(), W_OK) != 0)
    fail(ErrorCode::kIo, "the cache folder '" + path +
                             "' is not writable; fix its permissions or set HF_HUB_CACHE to a "
                             "writable folder");
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + temp_suffix();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      fail(ErrorCode::kIo, "cannot write '" + path +
                               "' (disk full or not writable?); free space "
                               "or set HF_HUB_CACHE to a writable folder");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail(ErrorCode::kIo, "cannot move a file into '" + path + "' (" + std::strerror(err) + ")");
  }
}

void symlink_atomic(const std::string& target, const std::string& link) {
  const std::string tmp = link + temp_suffix();
  if (::symlink(target.c_str(), tmp.c_str()) != 0)
    fail(ErrorCode::kIo, "cannot create the link '" + link + "' (" + std::strerror(errno) +
                             "); the cache folder must be on a filesystem with symlinks");
  if (std::rename(tmp.c_str(), link.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(ErrorCode::kIo, "cannot place the link '" + link + "' (" + std::strerror(err) + ")");
  }
}

std::optional<uint64_t> free_disk_bytes(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) return std::nullopt;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000.0 && u < 4) {
    v /= 1000.0;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof(buf),
                  v < 10    ? "%.2f %s"
                  : v < 100 ? "%.1f %s"
                            : "%.0f %s",
                  v, units[u]);
  return buf;
}

FileLock::FileLock(const std::string& path, const std::function<void()>& on_wait) {
  make_dirs(fs::path(path).parent_path().string());
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd_ < 0)
    fail(ErrorCode::kIo, "cannot open the lock file '" + path + "' (" + std::strerror(errno) +
                             "); make the cache writable or set HF_HUB_CACHE to a writable folder");
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  if (on_wait) on_wait();
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    fail(ErrorCode::kIo, "cannot lock '" + path + "' (" + std::strerror(err) + ")");
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace musicgen::hub
