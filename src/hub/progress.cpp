#include "hub/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "hub/cache.h"

namespace musicgen::hub {

namespace {

std::string format_duration(double s) {
  if (!(s >= 0) || s > 359999) return "--:--";
  const long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof(buf), "%ld:%02ld", t / 60, t % 60);
  return buf;
}

}  // namespace

Progress::Progress(const ResolveOptions& options, std::string repo_id)
    : options_(options), repo_id_(std::move(repo_id)) {
  bar_ = options.progress == ProgressDisplay::kAlways ||
         (options.progress == ProgressDisplay::kAuto && ::isatty(STDERR_FILENO) == 1);
  state_.repo_id = repo_id_;
}

Progress::~Progress() {
  if (line_open_) std::fprintf(stderr, "\n");
}

void Progress::note(const std::string& message) {
  if (options_.progress == ProgressDisplay::kNever) return;
  std::fprintf(stderr, "%s%s\n", line_open_ ? "\n" : "", message.c_str());
  line_open_ = false;
}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::begin(const std::string& file, uint64_t bytes_done, uint64_t bytes_total) {
  state_.file = file;
  state_.bytes_done = bytes_done;
  state_.bytes_total = bytes_total;
  state_.bytes_per_second = 0;
  state_.finished = false;
  start_bytes_ = bytes_done;
  start_ = last_draw_ = last_callback_ = std::chrono::steady_clock::now();
  if (bar_) draw(false);
}

bool Progress::update(uint64_t bytes_done) {
  state_.bytes_done = bytes_done;
  const auto now = std::chrono::steady_clock::now();
  const double t = elapsed();
  if (t > 0 && bytes_done >= start_bytes_)
    state_.bytes_per_second = (bytes_done - start_bytes_) / t;
  if (bar_ && now - last_draw_ >= std::chrono::milliseconds(100)) {
    last_draw_ = now;
    draw(false);
  }
  if (options_.on_progress && now - last_callback_ >= std::chrono::milliseconds(100)) {
    last_callback_ = now;
    return options_.on_progress(state_);
  }
  return true;
}

void Progress::finish() {
  state_.finished = true;
  if (state_.bytes_total == 0) state_.bytes_total = state_.bytes_done;
  if (bar_) draw(true);
  if (options_.on_progress) options_.on_progress(state_);
}

void Progress::draw(bool final_line) {
  const uint64_t done = state_.bytes_done, total = state_.bytes_total;
  std::string line = state_.file;
  if (line.size() > 32) {
    line.erase(0, line.size() - 29);
    line.insert(0, "...");
  }
  line.resize(32, ' ');
  constexpr int kWidth = 20;
  if (total > 0) {
    const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
    const int filled = static_cast<int>(frac * kWidth);
    char pct[8];
    std::snprintf(pct, sizeof(pct), "%3d%%", static_cast<int>(frac * 100));
    line.append(" [").append(filled, '#').append(kWidth - filled, '.').append("] ").append(pct);
    line.append(" ").append(format_bytes(done)).append("/").append(format_bytes(total));
  } else {
    line.append(" ").append(format_bytes(done));
  }
  if (final_line) {
    line.append("  in ").append(format_duration(elapsed()));
  } else {
    const double rate = state_.bytes_per_second;
    line.append("  ").append(format_bytes(static_cast<uint64_t>(rate))).append("/s");
    if (total > 0)
      line.append("  ETA ").append(
          format_duration(rate > 0 ? (total - std::min(total, done)) / rate : -1));
  }
  // \r and clear-to-end-of-line redraw in place on a terminal.
  std::fprintf(stderr, "\r%s\033[K%s", line.c_str(), final_line ? "\n" : "");
  line_open_ = !final_line;
  std::fflush(stderr);
}

}  // namespace musicgen::hub
