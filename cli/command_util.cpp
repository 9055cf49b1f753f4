#include "command_util.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>

#include "kernels/cpu.h"
#include "musicgen/hub.h"

#ifndef MUSICGEN_VERSION
#define MUSICGEN_VERSION "unknown"
#endif
#ifndef MUSICGEN_GIT_COMMIT
#define MUSICGEN_GIT_COMMIT "unknown"
#endif

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

const char* long_flag_of(const std::string& f) {
  static const char* const kShort[][2] = {{"-m", "--model"},   {"-p", "--prompt"},
                                          {"-o", "--output"},  {"-d", "--duration"},
                                          {"-s", "--seed"},    {"-t", "--threads"},
                                          {"-w", "--weights"}};
  for (const auto& s : kShort)
    if (f == s[0]) return s[1];
  return "";
}

bool ArgReader::next() {
  if (has_inline_ && !inline_used_) command_usage(flag_ + " takes no value, got '" + flag_ + "=" +
                                                  inline_value_ + "'");
  if (++index_ >= args_.size()) return false;
  const std::string& a = args_[index_];
  has_inline_ = inline_used_ = false;
  inline_value_.clear();
  flag_ = a;
  if (a.rfind("--", 0) == 0) {
    if (const size_t eq = a.find('='); eq != std::string::npos && eq > 2) {
      flag_ = a.substr(0, eq);
      inline_value_ = a.substr(eq + 1);
      has_inline_ = true;
    }
  }
  long_ = long_flag_of(flag_);
  if (flag_ == "--version") throw VersionRequested{};
  return true;
}

std::string ArgReader::value() {
  if (has_inline_) {
    if (inline_used_) command_usage(flag() + " needs a value");
    inline_used_ = true;
    return inline_value_;
  }
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

musicgen::KvCache ArgReader::kv_cache() {
  const std::string f = flag();
  const std::string v = value();
  if (v == "auto") return musicgen::KvCache::kAuto;
  if (v == "q8") return musicgen::KvCache::kQ8;
  command_usage(f + " must be auto or q8, got '" + v + "'");
}

void ArgReader::unknown() const {
  if (positional()) command_usage("unexpected argument '" + flag() + "'");
  command_usage("unknown option '" + flag() + "'");
}

std::string cpu_isa() {
  // The level the kernels use (src/kernels/cpu.h: detected, capped by MUSICGEN_ISA).
  return musicgen::kernels::isa_name(musicgen::kernels::active_isa());
}

std::string version_text() {
#if defined(__clang__)
  const std::string compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  const std::string compiler = "gcc " __VERSION__;
#else
  const std::string compiler = "unknown compiler";
#endif
  return std::string("musicgen ") + MUSICGEN_VERSION + "\n" + "commit:   " + MUSICGEN_GIT_COMMIT +
         "\n" + "compiler: " + compiler + "\n" + "cpu isa:  " + cpu_isa() + "\n";
}

std::string model_display_name(const std::string& reference, const std::string& resolved) {
  try {
    const ModelReference ref = parse_model_reference(reference);
    if (ref.source == ModelSource::kHub)
      return ref.revision == "main" ? ref.repo_id : ref.repo_id + "@" + ref.revision;
  } catch (const Error&) {
  }
  // A folder of a hub cache: .../models--{org}--{name}/snapshots/{commit}
  const std::filesystem::path p = std::filesystem::path(resolved).lexically_normal();
  const std::filesystem::path parent = p.parent_path();
  if (parent.filename() == "snapshots") {
    const std::string folder = parent.parent_path().filename().string();
    if (folder.rfind("models--", 0) == 0) {
      std::string id = folder.substr(8);
      if (const size_t sep = id.find("--"); sep != std::string::npos)
        return id.substr(0, sep) + "/" + id.substr(sep + 2);
      return id;
    }
  }
  std::string name = p.filename().string();
  if (name.empty() || name == ".") name = std::filesystem::absolute(p).lexically_normal().filename().string();
  return name.empty() ? resolved : name;
}

std::string resolve_model_argument(const std::string& reference, bool quiet) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(reference, ec)) return reference;  // a quantized file
  ResolveOptions options;
  if (quiet) options.progress = ProgressDisplay::kNever;
  return resolve_model(reference, options);
}

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
