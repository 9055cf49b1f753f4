#include "core/log.h"

#include <atomic>
#include <cstdio>

namespace musicgen {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
}

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_info(const std::string& message) {
  if (g_level >= static_cast<int>(LogLevel::kInfo)) std::fprintf(stderr, "%s\n", message.c_str());
}

void log_debug(const std::string& message) {
  if (g_level >= static_cast<int>(LogLevel::kDebug)) std::fprintf(stderr, "%s\n", message.c_str());
}

}  // namespace musicgen
