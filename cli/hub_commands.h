// The `musicgen pull`, `musicgen list` and `musicgen info` commands (public API only).
#pragma once

#include <string>
#include <vector>

namespace musicgen::cli {

// Each returns the exit code: 0 done, 2 bad usage (message printed); musicgen::Error propagates
// to main's handler (exit 1).
int cmd_pull(const std::vector<std::string>& args);
int cmd_list(const std::vector<std::string>& args);
int cmd_info(const std::vector<std::string>& args);

}  // namespace musicgen::cli
