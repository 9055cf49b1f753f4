// Model references and every name the hub layer takes from a user or the network: the reference
// parser (parse_model_reference), the path-confinement checks used for shard names, ETags and
// commits (is_safe_relative_path / is_safe_file_name), and the cache folder mapping. Invariant: a
// name accepted as safe stays inside its folder after normalisation.
#include <filesystem>
#include <string>

#include "hub/cache.h"
#include "musicgen/error.h"
#include "musicgen/hub.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  if (s.find('\0') != std::string::npos) return 0;  // not expressible on a command line
  try {
    const musicgen::ModelReference r = musicgen::parse_model_reference(s);
    if (r.source == musicgen::ModelSource::kHub) {
      const std::string folder = musicgen::hub::repo_folder_name(r.repo_id);
      if (folder.find('/') != std::string::npos || folder == "." || folder == "..")
        __builtin_trap();
      // The revision becomes refs/{revision}: it must stay inside refs/.
      const std::filesystem::path ref =
          (std::filesystem::path("/cache/refs") / r.revision).lexically_normal();
      if (ref.string().rfind("/cache/refs/", 0) != 0) __builtin_trap();
    }
  } catch (const musicgen::Error&) {
  }
  if (musicgen::hub::is_safe_relative_path(s)) {
    const std::filesystem::path p = (std::filesystem::path("/folder") / s).lexically_normal();
    if (p.string().rfind("/folder/", 0) != 0) __builtin_trap();
  }
  if (musicgen::hub::is_safe_file_name(s) && s.find('/') != std::string::npos) __builtin_trap();
  return 0;
}
