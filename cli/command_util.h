// Helpers shared by the `musicgen` subcommands that live in their own files: option parsing with
// one-line usage errors, and byte formatting.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace musicgen::cli {

// A bad command line. run_command() prints it as one line and returns exit code 2.
struct CommandUsageError {
  std::string message;
};

[[noreturn]] void command_usage(const std::string& message);
long long parse_int_option(const std::string& flag, const std::string& value);
double parse_double_option(const std::string& flag, const std::string& value);
// Walks a subcommand's arguments; every problem is a CommandUsageError naming the flag:
//   for (ArgReader r(args); r.next();)
//     if (r.is("--model")) model = r.value();
//     else if (r.is("--threads")) threads = r.threads();
//     else r.unknown();
class ArgReader {
 public:
  explicit ArgReader(const std::vector<std::string>& args) : args_(args) {}
  bool next() { return ++index_ < args_.size(); }
  const std::string& flag() const { return args_[index_]; }
  bool is(const char* name) const { return flag() == name; }
  bool is(const char* name, const char* alias) const { return is(name) || is(alias); }
  // The flag's value (the next argument).
  std::string value();
  long long integer();
  // An integer in [lo, hi].
  long long integer_in(long long lo, long long hi);
  double number();
  // --weights: f32, bf16, q8 or q4.
  std::string weight_type();
  // --threads: 1 to 256.
  int threads() { return static_cast<int>(integer_in(1, 256)); }
  [[noreturn]] void unknown() const;

 private:
  const std::vector<std::string>& args_;
  size_t index_ = static_cast<size_t>(-1);
};

// "1.35 GiB", "512 MiB", "4.0 KiB".
std::string human_bytes(double bytes);
// Seconds since an arbitrary point (steady clock).
double now_seconds();

}  // namespace musicgen::cli
