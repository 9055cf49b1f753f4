// `musicgen pull MODEL`, `musicgen list`, `musicgen info MODEL`: the model cache from the command
// line. Uses only the public API (include/musicgen/).
#include "hub_commands.h"

#include <cstdio>
#include <string>

#include "command_util.h"
#include "musicgen/hub.h"

namespace musicgen::cli {

namespace {

struct Usage {
  std::string message;
};

const char* kCacheHelp =
    "  --cache-dir DIR   cache folder (default: $HF_HUB_CACHE, else $HF_HOME/hub, else\n"
    "                    ~/.cache/huggingface/hub; shared with Python's huggingface_hub)\n";

std::string short_names() {
  std::string s;
  for (const auto& [name, repo] : musicgen::model_short_names())
    s += (s.empty() ? "" : ", ") + name;
  return s;
}

void print_pull_help() {
  std::printf(
      "Usage: musicgen pull MODEL [options]\n\n"
      "Downloads a MusicGen checkpoint from the Hugging Face Hub into the shared cache (only\n"
      "config.json, generation_config.json, spiece.model and the weights: safetensors, or PyTorch\n"
      ".bin files when the revision has no safetensors), checking\n"
      "each file's size and sha256. An interrupted pull resumes where it stopped. If the model is\n"
      "cached, pull asks the hub for the newest commit of the revision and fetches what changed.\n"
      "Prints the snapshot folder on stdout.\n\n"
      "MODEL: a hub repo id org/name[@revision] (e.g. facebook/musicgen-small@main) or a short\n"
      "name: %s. -m/--model MODEL works too.\n\n"
      "Options:\n"
      "%s"
      "  --progress        show the progress bar even when stderr is not a terminal\n"
      "  --quiet, -q       no progress output\n"
      "  --help, -h        show this help\n\n"
      "Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (gated or private\n"
      "repos), HF_HUB_OFFLINE=1 (never download), HF_HUB_CACHE / HF_HOME (the cache).\n",
      short_names().c_str(), kCacheHelp);
}

void print_list_help() {
  std::printf(
      "Usage: musicgen list [options]\n\n"
      "Lists the MusicGen models in the cache: repo id, revisions (branch and commit), size on\n"
      "disk, and whether each snapshot has every file the engine needs. Never uses the network.\n\n"
      "Options:\n"
      "%s"
      "  --all             also list cached models that are not MusicGen checkpoints\n"
      "  --help, -h        show this help\n",
      kCacheHelp);
}

void print_info_help() {
  std::printf(
      "Usage: musicgen info MODEL [options]\n\n"
      "Describes a checkpoint: architecture (from config.json), parameters per part and their\n"
      "dtypes and the weight format (from the safetensors headers or the PyTorch .bin pickles;\n"
      "no tensor data is read), and estimates of the memory the weights need as f32, bf16, q8\n"
      "and q4, and the licence of the weights. MODEL (or -m/--model MODEL) is a directory, a file\n"
      "written by 'musicgen quantize', a hub repo id org/name[@revision] or a short\n"
      "name (%s); a hub model that is not cached is downloaded first.\n\n"
      "Options:\n"
      "%s"
      "  --quiet, -q       no download progress output\n"
      "  --help, -h        show this help\n",
      short_names().c_str(), kCacheHelp);
}

// Parses the options shared by the hub commands (ArgReader's conventions: --opt=value, -m for
// --model); returns the positional arguments, --model's value among them.
std::vector<std::string> parse(const std::vector<std::string>& args, musicgen::ResolveOptions* opt,
                               bool* all, bool* help, bool takes_model = false) {
  std::vector<std::string> positional;
  try {
    for (ArgReader r(args); r.next();) {
      if (r.is("--help", "-h")) {
        *help = true;
      } else if (r.is("--cache-dir")) {
        opt->cache_dir = r.value();
      } else if (r.is("--quiet", "-q") || r.is("--no-progress")) {
        opt->progress = musicgen::ProgressDisplay::kNever;
      } else if (r.is("--progress")) {
        opt->progress = musicgen::ProgressDisplay::kAlways;
      } else if (r.is("--all") && all != nullptr) {
        *all = true;
      } else if (r.is("--model") && takes_model) {
        positional.push_back(r.value());
      } else if (r.positional()) {
        positional.push_back(r.flag());
      } else {
        r.unknown();
      }
    }
  } catch (const CommandUsageError& e) {
    throw Usage{e.message};
  }
  return positional;
}

int usage_error(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "musicgen: error: %s (see 'musicgen %s --help')\n", message.c_str(),
               command.c_str());
  return 2;
}

std::string format_params(uint64_t n) {
  char buf[32];
  if (n >= 1000000000ULL)
    std::snprintf(buf, sizeof(buf), "%.2f B", n / 1e9);
  else if (n >= 1000000ULL)
    std::snprintf(buf, sizeof(buf), "%.1f M", n / 1e6);
  else if (n >= 1000ULL)
    std::snprintf(buf, sizeof(buf), "%.1f k", n / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace

int cmd_pull(const std::vector<std::string>& args) {
  musicgen::ResolveOptions opt;
  bool help = false;
  std::vector<std::string> pos;
  try {
    pos = parse(args, &opt, nullptr, &help, true);
    if (help) {
      print_pull_help();
      return 0;
    }
    if (pos.size() != 1)
      throw Usage{"pull takes one MODEL, e.g. 'musicgen pull facebook/musicgen-small'"};
  } catch (const Usage& u) {
    return usage_error("pull", u.message);
  }
  const musicgen::ModelReference ref = musicgen::parse_model_reference(pos[0]);
  if (ref.source == musicgen::ModelSource::kLocalDirectory) {
    if (opt.progress != musicgen::ProgressDisplay::kNever)
      std::fprintf(stderr, "'%s' is a local directory; nothing to pull\n", pos[0].c_str());
    std::printf("%s\n", ref.path.c_str());
    return 0;
  }
  opt.refresh = true;
  const std::string dir = musicgen::resolve_model(pos[0], opt);
  if (opt.progress != musicgen::ProgressDisplay::kNever)
    std::fprintf(stderr, "%s is in the cache: %s\n",
                 (ref.revision == "main" ? ref.repo_id : ref.repo_id + "@" + ref.revision).c_str(),
                 dir.c_str());
  std::printf("%s\n", dir.c_str());
  return 0;
}

int cmd_list(const std::vector<std::string>& args) {
  musicgen::ResolveOptions opt;
  bool help = false, all = false;
  try {
    const auto pos = parse(args, &opt, &all, &help);
    if (help) {
      print_list_help();
      return 0;
    }
    if (!pos.empty()) throw Usage{"list takes no arguments, got '" + pos[0] + "'"};
  } catch (const Usage& u) {
    return usage_error("list", u.message);
  }
  const std::string cache = musicgen::hub_cache_dir(opt);
  std::vector<musicgen::CachedModel> models;
  for (auto& m : musicgen::list_cached_models(opt))
    if (all || m.model_type.rfind("musicgen", 0) == 0) models.push_back(std::move(m));
  std::printf("cache: %s\n", cache.c_str());
  if (models.empty()) {
    std::printf(
        "no %smodels in the cache; get one with 'musicgen pull small' (or "
        "facebook/musicgen-small)\n",
        all ? "" : "MusicGen ");
    return 0;
  }
  std::printf("%-36s %-24s %10s  %s\n", "MODEL", "REVISION", "SIZE", "STATUS");
  for (const auto& m : models) {
    bool first = true;
    if (m.revisions.empty())
      std::printf("%-36s %-24s %10s  %s\n", m.repo_id.c_str(), "-",
                  musicgen::format_download_size(m.size_bytes).c_str(), "no snapshot");
    for (const auto& r : m.revisions) {
      std::string refs;
      for (const auto& name : r.refs) refs += (refs.empty() ? "" : ",") + name;
      const std::string revision = (refs.empty() ? "" : refs + " ") + r.commit.substr(0, 8);
      std::string status = "ok";
      if (!r.weights_format.empty())
        status += r.weights_format == "pytorch" ? " (PyTorch .bin)" : " (safetensors)";
      if (!r.missing.empty()) {
        status = "incomplete, lacks";
        for (const auto& f : r.missing) status += " " + f;
      }
      if (!m.model_type.empty() && m.model_type.rfind("musicgen", 0) != 0 && r.missing.empty())
        status = "not MusicGen (" + m.model_type + ")";
      std::printf("%-36s %-24s %10s  %s\n", first ? m.repo_id.c_str() : "", revision.c_str(),
                  musicgen::format_download_size(r.size_bytes).c_str(), status.c_str());
      first = false;
    }
  }
  return 0;
}

int cmd_info(const std::vector<std::string>& args) {
  musicgen::ResolveOptions opt;
  bool help = false;
  std::vector<std::string> pos;
  try {
    pos = parse(args, &opt, nullptr, &help, true);
    if (help) {
      print_info_help();
      return 0;
    }
    if (pos.size() != 1) throw Usage{"info takes one MODEL, e.g. 'musicgen info small'"};
  } catch (const Usage& u) {
    return usage_error("info", u.message);
  }
  const musicgen::CheckpointSummary s = musicgen::inspect_model(pos[0], opt);
  std::printf("model:         %s%s\n", pos[0].c_str(),
              s.repo_id.empty() || s.repo_id == pos[0] ? "" : (" (" + s.repo_id + ")").c_str());
  std::printf("directory:     %s\n", s.directory.c_str());
  std::printf("type:          %s, %s, %d codebooks\n",
              s.model_type.empty() ? "?" : s.model_type.c_str(),
              s.audio_channels == 2 ? "stereo" : "mono", s.num_codebooks);
  std::printf("text encoder:  T5, %d layers, hidden %d, %d heads, vocabulary %d\n",
              s.text_encoder_layers, s.text_encoder_hidden, s.text_encoder_heads,
              s.text_vocab_size);
  std::printf("decoder:       %d layers, hidden %d, %d heads, ffn %d, %d codebooks of %d codes\n",
              s.decoder_layers, s.decoder_hidden, s.decoder_heads, s.decoder_ffn, s.num_codebooks,
              s.codebook_size);
  std::printf("audio codec:   EnCodec, %d Hz, %d frames/s, %d channel%s\n", s.sample_rate,
              s.frame_rate, s.audio_channels, s.audio_channels == 1 ? "" : "s");
  std::printf("parameters:\n");
  for (const auto& p : s.parts) {
    std::string dtypes;
    for (const auto& [dtype, n] : p.dtype_params) {
      if (!dtypes.empty()) dtypes.append(", ");
      dtypes.append(dtype);
      if (p.dtype_params.size() > 1) dtypes.append(" ").append(format_params(n));
    }
    std::printf("  %-32s %10s  %s\n", p.name.c_str(), format_params(p.parameters).c_str(),
                dtypes.c_str());
  }
  std::printf("  %-32s %10s\n", "total", format_params(s.total_parameters).c_str());
  std::string weight_files;
  for (const auto& f : s.weight_files) weight_files += (weight_files.empty() ? "" : ", ") + f;
  const std::string format = s.weights_format == "pytorch"       ? "PyTorch .bin"
                             : s.weights_format == "musicgen-quantized" ? "musicgen quantized file, " + s.quantized_weights + " matrices"
                                                                     : "safetensors";
  std::printf("weights:       %s (%s)\n", format.c_str(), weight_files.c_str());
  std::printf("files:         %s\n", musicgen::format_download_size(s.file_bytes).c_str());
  if (s.step_matrices > 0) {
    if (s.step_matrices_f16_exact > 0)
      std::printf("f16-exact:     %d of %d decoder step matrices hold only values exact in IEEE half; "
                  "an f32 load keeps them as f16 (same results, half the bytes per step; "
                  "--no-exact-f16 turns it off)\n",
                  s.step_matrices_f16_exact, s.step_matrices);
    else
      std::printf("f16-exact:     0 of %d decoder step matrices are exact in IEEE half (an f32 "
                  "load reads them as float32; q8 or q4 read fewer bytes)\n",
                  s.step_matrices);
  }
  std::printf(
      "weight memory by weight type (estimates: weights only, activations and caches extra):\n");
  for (const auto& m : s.memory)
    std::printf("  %-5s ~%.2f B/parameter  %10s\n", m.weight_type.c_str(), m.bytes_per_parameter,
                musicgen::format_download_size(m.bytes).c_str());
  if (!s.license.empty())
    std::printf("licence:       %s (weights; the musicgen.cpp code is MIT)\n", s.license.c_str());
  else
    std::printf("licence:       see the checkpoint's model card (weights; the musicgen.cpp code is MIT)\n");
  return 0;
}

}  // namespace musicgen::cli
