// Settings of one hub operation: ResolveOptions completed from the environment
// (HF_HUB_CACHE / HF_HOME, HF_ENDPOINT, HF_TOKEN / token file, HF_HUB_OFFLINE).
#pragma once

#include <string>

#include "musicgen/hub.h"

namespace musicgen::hub {

struct HubConfig {
  std::string cache_dir;
  std::string endpoint;  // without a trailing '/'
  std::string token;     // "" if none
  bool offline = false;
};

HubConfig make_hub_config(const ResolveOptions& options);

}  // namespace musicgen::hub
