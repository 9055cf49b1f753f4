// Helpers shared by the `musicgen` subcommands that live in their own files: option parsing with
// one-line usage errors, and byte formatting.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "musicgen/musicgen.h"

namespace musicgen::cli {

// A bad command line. run_command() prints it as one line and returns exit code 2.
struct CommandUsageError {
  std::string message;
};

[[noreturn]] void command_usage(const std::string& message);
long long parse_int_option(const std::string& flag, const std::string& value);
double parse_double_option(const std::string& flag, const std::string& value);
// `--version` anywhere among a command's options: main() prints version_text() and exits 0.
struct VersionRequested {};

// Walks a subcommand's arguments; every problem is a CommandUsageError naming the flag:
//   for (ArgReader r(args); r.next();)
//     if (r.is("--model")) model = r.value();
//     else if (r.is("--threads")) threads = r.threads();
//     else r.unknown();
// Conventions every command gets from here: `--opt=value` equals `--opt value`; the short flags
// -m -p -o -d -s -t -w stand for --model --prompt --output --duration --seed --threads --weights
// wherever the command has that long option (elsewhere they are unknown); `--version` throws
// VersionRequested; a flag without a value given `=value` is an error.
class ArgReader {
 public:
  explicit ArgReader(const std::vector<std::string>& args) : args_(args) {}
  bool next();
  // The flag as written (without "=value"), e.g. "-m" or "--model".
  const std::string& flag() const { return flag_; }
  bool is(const char* name) const { return flag_ == name || long_ == name; }
  bool is(const char* name, const char* alias) const { return is(name) || is(alias); }
  // A positional argument (not starting with '-', or "-" alone).
  bool positional() const { return flag_.size() < 2 || flag_[0] != '-'; }
  // The flag's value ("--flag=value", or the next argument).
  std::string value();
  long long integer();
  // An integer in [lo, hi].
  long long integer_in(long long lo, long long hi);
  double number();
  // --weights: f32, bf16, q8 or q4.
  std::string weight_type();
  // --kv-cache auto|q8 (LoadOptions::kv_cache).
  musicgen::KvCache kv_cache();
  // --threads: 1 to 256.
  int threads() { return static_cast<int>(integer_in(1, 256)); }
  [[noreturn]] void unknown() const;

 private:
  const std::vector<std::string>& args_;
  size_t index_ = static_cast<size_t>(-1);
  std::string flag_, long_;          // as written; the long form of a short flag
  std::string inline_value_;         // after '=' in --flag=value
  bool has_inline_ = false, inline_used_ = false;
};

// The long option a short flag stands for ("-m" -> "--model"), or "" if none.
const char* long_flag_of(const std::string& short_flag);

// `musicgen --version` text: version, git commit (configure time), compiler, and the instruction
// set the CPU kernels use on this machine.
std::string version_text();
// "avx512", "avx2" or "scalar": the best instruction set of this CPU the kernels use
// (MUSICGEN_ISA=scalar forces scalar, as in the kernels).
std::string cpu_isa();

// The name a user knows a model by, for messages: the hub repo id (with @revision unless main)
// for hub references and for folders inside a hub cache snapshot, else the folder or file name.
std::string model_display_name(const std::string& reference, const std::string& resolved);

// Resolves a --model reference exactly as `generate` does (musicgen/hub.h): an existing file (a
// `musicgen quantize` output) or folder as it is, a repo id or short name through the hub cache,
// downloading when absent. quiet: no download progress.
std::string resolve_model_argument(const std::string& reference, bool quiet);

// "1.35 GiB", "512 MiB", "4.0 KiB".
std::string human_bytes(double bytes);
// Seconds since an arbitrary point (steady clock).
double now_seconds();

}  // namespace musicgen::cli
