// `musicgen bench`: load, text encoding, decoder steps/s, audio decoding, real-time factors, peak
// RSS and memory bandwidth for one checkpoint, as a table or one JSON object.
#pragma once

#include <string>
#include <vector>

namespace musicgen::cli {

// args: the options after the command name. Returns the exit code; usage errors print one line
// and return 2; musicgen::Error propagates to main().
int run_bench(const std::vector<std::string>& args);

}  // namespace musicgen::cli
