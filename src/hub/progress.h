// Download progress: a one-line bar per file on stderr (bytes, rate, ETA), redrawn at most ten
// times a second, plus the caller's callback. Also the hub's notes (retries, lock waits).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "musicgen/hub.h"

namespace musicgen::hub {

class Progress {
 public:
  Progress(const ResolveOptions& options, std::string repo_id);
  // Ends an unfinished bar's line, so that an error message starts on a line of its own.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // A line on stderr (below an unfinished bar), unless progress is kNever.
  void note(const std::string& message);
  // A file starts (or resumes at bytes_done).
  void begin(const std::string& file, uint64_t bytes_done, uint64_t bytes_total);
  // Bytes on disk now; false: the callback asked to stop.
  bool update(uint64_t bytes_done);
  // The file is verified and in the cache.
  void finish();

 private:
  void draw(bool final_line);
  double elapsed() const;

  const ResolveOptions& options_;
  std::string repo_id_;
  bool bar_ = false;
  bool line_open_ = false;  // a bar is drawn without its newline yet
  DownloadProgress state_;
  uint64_t start_bytes_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_, last_callback_;
};

}  // namespace musicgen::hub
