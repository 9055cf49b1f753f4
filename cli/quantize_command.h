// `musicgen quantize`: a checkpoint directory -> one musicgen quantized file.
#pragma once

#include <string>
#include <vector>

namespace musicgen::cli {

// args: the options after the command name. Returns the exit code; usage errors print one line
// and return 2; musicgen::Error propagates to main().
int run_quantize(const std::vector<std::string>& args);

}  // namespace musicgen::cli
