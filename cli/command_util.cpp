#include "command_util.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace musicgen::cli {

void command_usage(const std::string& message) {
  throw CommandUsageError{message};
}

long long parse_int_option(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0)
    command_usage(flag + " expects an integer, got '" + v + "'");
  return i;
}

double parse_double_option(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno != 0 || !std::isfinite(d))
    command_usage(flag + " expects a number, got '" + v + "'");
  return d;
}

std::string ArgReader::value() {
  if (index_ + 1 >= args_.size()) command_usage(flag() + " needs a value");
  return args_[++index_];
}

long long ArgReader::integer() {
  const std::string& f = flag();
  return parse_int_option(f, value());
}

long long ArgReader::integer_in(long long lo, long long hi) {
  const std::string f = flag();
  const long long v = parse_int_option(f, value());
  if (v < lo || v > hi) {
    if (hi == std::numeric_limits<long long>::max() ||
        (v < lo && hi == std::numeric_limits<int>::max()))
      command_usage(f + " must be >= " + std::to_string(lo) + ", got " + std::to_string(v));
    if (v > hi && lo <= 1 && hi == std::numeric_limits<int>::max())
      command_usage(f + " must be at most " + std::to_string(hi) + ", got " + std::to_string(v));
    command_usage(f + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                  ", got " + std::to_string(v));
  }
  return v;
}

double ArgReader::number() {
  const std::string f = flag();
  return parse_double_option(f, value());
}

std::string ArgReader::weight_type() {
  const std::string f = flag();
  const std::string w = value();
  if (w != "f32" && w != "bf16" && w != "q8" && w != "q4")
    command_usage(f + " must be f32, bf16, q8 or q4, got '" + w + "'");
  return w;
}

void ArgReader::unknown() const { command_usage("unknown option '" + flag() + "'"); }

std::string human_bytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", bytes, kUnits[u]);
  return buf;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace musicgen::cli
