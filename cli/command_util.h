// Helpers shared by the `musicgen` subcommands that live in their own files: option parsing with
// one-line usage errors, and byte formatting.
#pragma once

#include <cstdint>
#include <string>

namespace musicgen::cli {

// A bad command line. run_command() prints it as one line and returns exit code 2.
struct CommandUsageError {
  std::string message;
};

[[noreturn]] void command_usage(const std::string& message);
long long parse_int_option(const std::string& flag, const std::string& value);
double parse_double_option(const std::string& flag, const std::string& value);
// "1.35 GiB", "512 MiB", "4.0 KiB".
std::string human_bytes(double bytes);
// Seconds since an arbitrary point (steady clock).
double now_seconds();

}  // namespace musicgen::cli
