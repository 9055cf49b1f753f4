// Model references: a local directory, a hub repo id "org/name[@revision]", or a short name for
// the official facebook/musicgen-* checkpoints.
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "musicgen/hub.h"

namespace musicgen {

namespace fs = std::filesystem;

namespace {

const char* const kShortNames[] = {
    "small",        "medium",        "large",        "melody",        "melody-large",
    "stereo-small", "stereo-medium", "stereo-large", "stereo-melody", "stereo-melody-large"};

std::string short_name_list() {
  std::string s;
  for (const char* n : kShortNames) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

bool looks_like_path(const std::string& r) {
  return r == "." || r == ".." || r == "~" || r.rfind("/", 0) == 0 || r.rfind("./", 0) == 0 ||
         r.rfind("../", 0) == 0 || r.rfind("~/", 0) == 0;
}

std::string expand_user(const std::string& p) {
  const char* home = std::getenv("HOME");
  if (home == nullptr) return p;
  if (p == "~") return home;
  if (p.rfind("~/", 0) == 0) return std::string(home) + p.substr(1);
  return p;
}

// The hub's rule for one part of a repo id: [A-Za-z0-9._-], 1..96 characters, no "--" or "..",
// not starting or ending with '-' or '.'.
bool valid_repo_part(const std::string& s) {
  if (s.empty() || s.size() > 96) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  if (s.find("--") != std::string::npos || s.find("..") != std::string::npos) return false;
  return s.front() != '-' && s.front() != '.' && s.back() != '-' && s.back() != '.';
}

// A branch, tag or commit; it becomes the path refs/{revision}, so every '/'-separated part must
// be a plain name (not empty, ".", "..").
bool valid_revision(const std::string& r) {
  if (r.empty() || r.size() > 256 || r.find("..") != std::string::npos || r.front() == '/')
    return false;
  size_t start = 0;
  while (true) {
    const size_t slash = r.find('/', start);
    const std::string part =
        r.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == ".") return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  for (char c : r)
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c)) || c == '\\')
      return false;
  return true;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> model_short_names() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const char* n : kShortNames) out.emplace_back(n, std::string("facebook/musicgen-") + n);
  return out;
}

ModelReference parse_model_reference(const std::string& reference) {
  const std::string hint =
      "give a checkpoint directory, a hub repo id like "
      "facebook/musicgen-small[@revision], or a short name (" +
      short_name_list() + ")";
  if (reference.empty()) fail(ErrorCode::kInvalidArgument, "empty model reference; " + hint);
  ModelReference ref;
  std::error_code ec;
  // Existing paths are local: a checkpoint directory, or a file (a quantized checkpoint), which
  // Model::load judges.
  if (looks_like_path(reference)) {
    ref.path = expand_user(reference);
    if (fs::exists(ref.path, ec)) return ref;
    fail(ErrorCode::kNotFound, "model directory '" + reference + "' does not exist; " + hint);
  }
  if (fs::exists(reference, ec)) {
    ref.path = reference;
    return ref;
  }

  std::string name = reference;
  std::string revision = "main";
  if (const size_t at = reference.find('@'); at != std::string::npos) {
    name = reference.substr(0, at);
    revision = reference.substr(at + 1);
    if (!valid_revision(revision))
      fail(ErrorCode::kInvalidArgument, "'" + reference + "' has an invalid revision after '@'; " +
                                            "write org/name@revision with a branch, tag or commit");
  }
  ref.source = ModelSource::kHub;
  ref.revision = revision;
  std::string short_name = name;
  if (short_name.rfind("musicgen-", 0) == 0) short_name = short_name.substr(9);
  for (const char* n : kShortNames) {
    if (short_name == n) {
      ref.repo_id = std::string("facebook/musicgen-") + n;
      return ref;
    }
  }
  const size_t slash = name.find('/');
  if (slash != std::string::npos && name.find('/', slash + 1) == std::string::npos &&
      valid_repo_part(name.substr(0, slash)) && valid_repo_part(name.substr(slash + 1))) {
    ref.repo_id = name;
    return ref;
  }
  fail(ErrorCode::kInvalidArgument,
       "'" + reference + "' is not an existing directory, a hub repo id or a short name; " + hint);
}

}  // namespace musicgen
