// Public: typed errors for everything a user can get wrong. Messages are one line: what is wrong, and
// what to do. The CLI and any server catch musicgen::Error at the boundary.
#pragma once

#include <stdexcept>
#include <string>

namespace musicgen {

enum class ErrorCode {
  kInvalidArgument,  // a bad option or request value
  kNotFound,         // a missing file or directory
  kInvalidModel,     // a checkpoint that is corrupt, misshapen or unsupported
  kIo,               // reading or writing failed
  kUnsupported,      // a valid request this build cannot serve yet
  kCancelled,        // a progress callback asked to stop
  kDevice,           // the requested compute device is absent, too small or failed
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) {
  throw Error(code, message);
}

}  // namespace musicgen
