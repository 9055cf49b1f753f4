// `musicgen serve`: the HTTP server (server/, docs/SERVER.md).
#pragma once

#include <string>
#include <vector>

namespace musicgen::cli {
int run_serve(const std::vector<std::string>& args);
}  // namespace musicgen::cli
