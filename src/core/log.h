// Minimal leveled logging to stderr. The level is process-wide and set once by the program.
#pragma once

#include <string>

namespace musicgen {

enum class LogLevel { kQuiet = 0, kInfo = 1, kDebug = 2 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_info(const std::string& message);
void log_debug(const std::string& message);

}  // namespace musicgen
