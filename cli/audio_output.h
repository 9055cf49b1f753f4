// `musicgen generate`'s audio output: the format (extension or --format), normalisation, the
// tags each file carries and the seed (docs/USAGE.md "Output files").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "musicgen/musicgen.h"

namespace musicgen::cli {

// The write options of --output FILE (or "-", standard output: WAV unless --format), --format,
// --normalize and --sample-format. Throws (a usage error or Error(kInvalidArgument)) before any
// work: an extension it cannot write, f32 samples for a compressed format.
AudioWriteOptions audio_write_options(const std::string& output, const std::string& format,
                                      const std::string& normalize, const std::string& sample_format);

// A random seed (std::random_device), 0 to 2^32 - 1.
uint64_t random_seed();

// What made a take, as every output file's tags and the --codes-out JSON carry it.
struct TakeInfo {
  std::string model;     // hub repo id, else the checkpoint's folder or file name
  std::string revision;  // hub snapshot commit ("" for a local checkpoint)
  std::string weights;   // "f32", "bf16", "q8", "q4"
  uint64_t seed = 0;
  std::string software;  // "musicgen.cpp 0.1.0"
};

// reference: what --model named; resolved: the directory or file loaded.
TakeInfo take_info(const std::string& reference, const std::string& resolved, WeightType requested,
                   uint64_t seed, const std::string& software);

// {"prompt", "seed", "model", "revision" (hub only), "weights", "duration_s", "software"}.
nlohmann::ordered_json take_metadata(const TakeInfo& take, const std::string& prompt, double duration_s);

// The tags of one file: title (the prompt), artist (the model), software, and the comment holding
// take_metadata as JSON (plus batch_index in a batch; ASCII-only for MP3, whose ID3 text is
// ISO-8859-1).
std::vector<std::pair<std::string, std::string>> take_tags(const TakeInfo& take, const std::string& prompt,
                                                           double duration_s, int index, int batch,
                                                           AudioFileFormat format);

}  // namespace musicgen::cli
