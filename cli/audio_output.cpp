#include "audio_output.h"

#include <cmath>
#include <filesystem>
#include <random>

#include "command_util.h"
#include "musicgen/hub.h"
#include "musicgen/quantize.h"
#include "musicgen/tools.h"

namespace musicgen::cli {

namespace fs = std::filesystem;

AudioWriteOptions audio_write_options(const std::string& output, const std::string& format,
                                      const std::string& normalize, const std::string& sample_format) {
  AudioWriteOptions o;
  if (!format.empty()) o.format = parse_audio_format(format);
  else if (output != "-") o.format = audio_format_for_path(output);  // "-": a WAV stream
  if (normalize != "peak" && normalize != "loudness" && normalize != "rms" && normalize != "clip" &&
      normalize != "none")
    command_usage("--normalize must be peak, loudness, rms, clip or none, got '" + normalize + "'");
  o.normalize = parse_normalization(normalize);
  if (sample_format != "pcm16" && sample_format != "f32")
    command_usage("--sample-format must be pcm16 or f32, got '" + sample_format + "'");
  o.sample_format = sample_format == "f32" ? SampleFormat::kFloat32 : SampleFormat::kPcm16;
  if (o.sample_format == SampleFormat::kFloat32 && o.format != AudioFileFormat::kWav)
    command_usage(std::string("--sample-format f32 applies to WAV output only, not ") +
                  audio_format_name(o.format));
  return o;
}

uint64_t random_seed() {
  std::random_device rd;
  return static_cast<uint64_t>(rd());
}

TakeInfo take_info(const std::string& reference, const std::string& resolved, WeightType requested,
                   uint64_t seed, const std::string& software) {
  TakeInfo t;
  t.seed = seed;
  t.software = software;
  // The model by the name the load line gives it (a hub snapshot folder is its repo id), and a
  // hub snapshot's commit as the revision.
  t.model = model_display_name(reference, resolved);
  const fs::path p = fs::path(resolved).lexically_normal();
  if (p.parent_path().filename() == "snapshots") t.revision = p.filename().string();
  // A quantized file loads with the type it stores; a directory with the one asked for.
  t.weights = fs::is_regular_file(resolved) ? checkpoint_stats(resolved, requested).weights
                                            : weight_type_name(requested);
  return t;
}

nlohmann::ordered_json take_metadata(const TakeInfo& take, const std::string& prompt, double duration_s) {
  nlohmann::ordered_json j;
  j["prompt"] = prompt;
  j["seed"] = take.seed;
  j["model"] = take.model;
  if (!take.revision.empty()) j["revision"] = take.revision;
  j["weights"] = take.weights;
  j["duration_s"] = std::round(duration_s * 1000.0) / 1000.0;
  j["software"] = take.software;
  return j;
}

std::vector<std::pair<std::string, std::string>> take_tags(const TakeInfo& take, const std::string& prompt,
                                                           double duration_s, int index, int batch,
                                                           AudioFileFormat format) {
  nlohmann::ordered_json meta = take_metadata(take, prompt, duration_s);
  if (batch > 1) meta["batch_index"] = index;
  const bool ascii = format == AudioFileFormat::kMp3;
  return {{"title", prompt.empty() ? "(unconditional)" : prompt},
          {"artist", take.model},
          {"software", take.software},
          {"comment", meta.dump(-1, ' ', ascii, nlohmann::ordered_json::error_handler_t::replace)}};
}

}  // namespace musicgen::cli
