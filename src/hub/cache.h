// The huggingface_hub cache layout on disk:
//   {cache}/models--{org}--{name}/blobs/{etag}            file contents, named by sha256 (LFS) or
//                                                         git blob sha1 (small files)
//   {cache}/models--{org}--{name}/blobs/{etag}.incomplete a download in progress (resumable)
//   {cache}/models--{org}--{name}/snapshots/{commit}/{file} relative symlink ../../blobs/{etag}
//   {cache}/models--{org}--{name}/refs/{revision}         the commit hash, no newline
//   {cache}/.locks/models--{org}--{name}/{etag}.lock      huggingface_hub's per-blob lock
// plus our per-repo lock .locks/models--{org}--{name}/musicgen.lock. Also filesystem helpers:
// atomic writes and symlinks, flock locks, free space.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace musicgen::hub {

// $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub ($XDG_CACHE_HOME honoured as
// huggingface_hub does: $XDG_CACHE_HOME/huggingface/hub).
std::string default_cache_dir();
// "org/name" -> "models--org--name".
std::string repo_folder_name(const std::string& repo_id);
// "models--org--name" -> "org/name"; "" for other names.
std::string repo_id_from_folder(const std::string& folder);
// 40 lower-case hex digits.
bool is_commit_hash(const std::string& s);
// 40 or 64 hex digits (an etag huggingface_hub would use as a blob name).
bool is_hex_digest(const std::string& s, size_t length);

// A file name received from an index or the network, to be used as a path relative to a folder:
// non-empty, not absolute, every '/'-separated component non-empty and neither "." nor "..", no
// backslash or control character, at most 1024 bytes. Such a name stays inside its folder (when
// the folder holds no symlinks pointing out of it).
bool is_safe_relative_path(const std::string& name);
// The same for one path component (no '/' at all): an ETag used as a blob name, a commit.
bool is_safe_file_name(const std::string& name);

// The files the engine needs that `dir` lacks (empty: complete): config.json, spiece.model and
// model.safetensors or pytorch_model.bin, or model.safetensors.index.json or
// pytorch_model.bin.index.json and every shard its weight_map names (any one complete layout).
std::vector<std::string> missing_checkpoint_files(const std::string& dir);

// The commit refs/{revision} names, if that file exists.
std::optional<std::string> read_ref(const std::string& repo_dir, const std::string& revision);
// snapshots/{commit} for a commit hash, or through refs/{revision}; nullopt if absent.
std::optional<std::string> find_snapshot(const std::string& repo_dir, const std::string& revision);

// Creates a directory and its parents; throws Error(kIo) naming the path and what to do.
void make_dirs(const std::string& path);
// Writes content to a temporary file beside `path`, then renames it over `path`.
void write_file_atomic(const std::string& path, const std::string& content);
// Points `link` at `target` (a relative path), replacing any existing entry atomically.
void symlink_atomic(const std::string& target, const std::string& link);
// Bytes available to unprivileged users on the filesystem holding `path`; nullopt if unknown.
std::optional<uint64_t> free_disk_bytes(const std::string& path);
// "1.5 GB", "320 kB": decimal units as huggingface_hub and most download tools print them.
std::string format_bytes(uint64_t bytes);

// An exclusive flock on a lock file, held for the object's lifetime. Works between processes and
// between threads (each lock opens its own file description). When the lock is busy, on_wait is
// called once before blocking.
class FileLock {
 public:
  FileLock(const std::string& path, const std::function<void()>& on_wait);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace musicgen::hub
