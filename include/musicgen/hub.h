// musicgen.cpp public API: model references, the Hugging Face Hub cache, downloads and checkpoint
// summaries.
//
// Usage:
//   std::string dir = musicgen::resolve_model("facebook/musicgen-small");  // or "small", or a dir
//   auto model = musicgen::Model::load(dir);
//
// A model reference is one of:
//   - a local checkpoint: any existing directory or file (a quantized checkpoint file), or a
//     path starting with / ./ ../ ~/ (an error if it does not exist);
//   - a hub repo id "org/name", optionally "org/name@revision" (branch, tag or commit hash);
//   - a short name for the official checkpoints: small, medium, large, melody, melody-large,
//     stereo-small, stereo-medium, stereo-large, stereo-melody, stereo-melody-large (also with a
//     "musicgen-" prefix), meaning facebook/musicgen-{name}.
//
// The cache is huggingface_hub's, shared with Python: $HF_HUB_CACHE, else $HF_HOME/hub, else
// ~/.cache/huggingface/hub, laid out as models--{org}--{name}/{blobs,snapshots,refs}. Only the
// files the engine needs are fetched: config.json, generation_config.json, spiece.model and
// the weights: model.safetensors (or model.safetensors.index.json and its shards), else
// pytorch_model.bin (or pytorch_model.bin.index.json and its shards); an index whose shards are
// not all in the repository is never followed.
//
// Environment: HF_HUB_CACHE, HF_HOME, HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (or
// the token file of `huggingface-cli login`), HF_HUB_OFFLINE=1 (never use the network).
//
// Thread safety: all functions may be called from any thread. Processes and threads that share a
// cache are serialised per repository by a lock file, so concurrent pulls do not corrupt it.
//
// Errors: musicgen::Error with a one-line message saying what is wrong and what to do (not
// cached while offline, 401/403 token, 404 name, checksum, unwritable or full disk).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "musicgen/error.h"

namespace musicgen {

// Where download progress goes.
enum class ProgressDisplay {
  kAuto,    // a progress bar on stderr when stderr is a terminal, else nothing
  kAlways,  // a progress bar on stderr even when it is not a terminal
  kNever,   // nothing on stderr at all (no bar, no retry or lock-wait notes)
};

struct DownloadProgress {
  std::string repo_id;       // "org/name"
  std::string file;          // path inside the repo, e.g. "model.safetensors"
  uint64_t bytes_done = 0;   // bytes of the file on disk so far, resumed bytes included
  uint64_t bytes_total = 0;  // size the hub announced; 0 if unknown
  double bytes_per_second = 0;
  bool finished = false;  // the file is verified and in the cache
};

struct ResolveOptions {
  // Cache folder. Empty: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
  std::string cache_dir;
  // Hub base URL. Empty: $HF_ENDPOINT, else https://huggingface.co.
  std::string endpoint;
  // Token for gated or private repos. Empty: $HF_TOKEN, else the file $HF_TOKEN_PATH, else
  // $HF_HOME/token (default ~/.cache/huggingface/token), as huggingface_hub reads it.
  std::string token;
  // true: never use the network. Unset: $HF_HUB_OFFLINE (1, true, yes or on).
  std::optional<bool> offline;
  // false (default): a complete cached snapshot of the revision is used without contacting the
  // hub. true: ask the hub for the revision's current commit and fetch what is missing
  // (`musicgen pull`).
  bool refresh = false;
  // Progress bar on stderr (default: only when stderr is a terminal).
  ProgressDisplay progress = ProgressDisplay::kAuto;
  // Called as bytes arrive (about 10 times a second per file) and when a file is done. Return
  // false to stop: resolve_model then throws Error(kCancelled); the partial file is kept for a
  // later resume.
  std::function<bool(const DownloadProgress&)> on_progress;
  // Retries of a request after a transient failure (5xx, 408, 429, connection reset, cut or
  // stalled transfer), waiting retry_delay_s, then twice as long each time (at most 30 s).
  // 4xx answers are never retried. A retried download resumes where it stopped.
  int max_retries = 5;
  double retry_delay_s = 1.0;
};

enum class ModelSource { kLocalDirectory, kHub };

struct ModelReference {
  ModelSource source = ModelSource::kLocalDirectory;
  std::string path;      // kLocalDirectory: the directory or file ("~/" expanded)
  std::string repo_id;   // kHub: "org/name"
  std::string revision;  // kHub: branch, tag or commit; "main" when not given
};

// Parses a reference. Touches neither the network nor the cache; only checks whether a
// directory or file of that name exists. Throws Error(kInvalidArgument) for a malformed reference
// and Error(kNotFound) for a path-like reference whose directory does not exist.
ModelReference parse_model_reference(const std::string& reference);

// "1.5 GB", "320 kB": a size in decimal units, as huggingface_hub and download tools print it.
std::string format_download_size(uint64_t bytes);

// The short names and the repos they stand for, in documentation order.
std::vector<std::pair<std::string, std::string>> model_short_names();

// The cache folder that options select (options.cache_dir, else the environment).
std::string hub_cache_dir(const ResolveOptions& options = {});

// Returns a local checkpoint directory for the reference, downloading into the cache if needed:
// a local directory (or file) is returned as it is; a hub reference gives its snapshot folder
// models--{org}--{name}/snapshots/{commit}. Throws Error.
std::string resolve_model(const std::string& reference, const ResolveOptions& options = {});

struct CachedRevision {
  std::string commit;
  std::vector<std::string> refs;     // branches or tags whose refs/ file names this commit
  std::string path;                  // the snapshot folder
  uint64_t size_bytes = 0;           // bytes of the files in the snapshot
  std::vector<std::string> missing;  // files the engine needs that are absent (empty: usable)
  std::string weights_format;        // "safetensors", "pytorch" (.bin) or "" (no weights yet)
};

struct CachedModel {
  std::string repo_id;      // "org/name"
  std::string path;         // the models--{org}--{name} folder
  uint64_t size_bytes = 0;  // all complete blobs (files shared by revisions counted once)
  std::string model_type;   // config.json's model_type in a snapshot ("" if none is readable)
  std::vector<CachedRevision> revisions;
};

// The models in the cache, sorted by repo id. Never uses the network. Unreadable entries are
// skipped; a missing cache folder gives an empty list.
std::vector<CachedModel> list_cached_models(const ResolveOptions& options = {});

// Parameters of one part of a checkpoint.
struct WeightGroup {
  std::string name;  // "text encoder (T5)", "decoder", ...
  uint64_t parameters = 0;
  std::map<std::string, uint64_t> dtype_params;  // stored dtype ("F32", "F16", "BF16") -> params
};

// Approximate weight memory of one storage type: parameters * bytes_per_parameter.
struct MemoryEstimate {
  std::string weight_type;  // "f32", "bf16", "q8", "q4"
  double bytes_per_parameter = 0;
  uint64_t bytes = 0;
};

struct CheckpointSummary {
  std::string directory;   // the local checkpoint directory (or quantized file) read
  // The hub repo id the checkpoint comes from: the reference's, or that of the cache snapshot
  // folder it lives in (for a quantized file: of the folder it was made from); "" if unknown.
  std::string repo_id;
  // Licence of the weights: a README.md model card's "license:" field, else config.json's
  // "license", else "CC-BY-NC 4.0" for the official facebook/musicgen-* checkpoints; "" when
  // unknown (see the checkpoint's model card).
  std::string license;
  // A `musicgen quantize` file: weights_format "musicgen-quantized" and the type of its matrices.
  std::string quantized_weights;
  std::string model_type;  // config.json model_type ("musicgen", "musicgen_melody", ...)
  // Architecture from config.json; 0 where the config does not say.
  int text_encoder_layers = 0, text_encoder_hidden = 0, text_encoder_heads = 0;
  int text_vocab_size = 0;
  int decoder_layers = 0, decoder_hidden = 0, decoder_heads = 0, decoder_ffn = 0;
  int num_codebooks = 0, codebook_size = 0, audio_channels = 0;
  int sample_rate = 0, frame_rate = 0;
  std::vector<WeightGroup> parts;  // text encoder, decoder (with the projection), codec, other
  uint64_t total_parameters = 0;
  std::string weights_format;  // "safetensors", "pytorch" (torch.save .bin) or "musicgen-quantized"
  std::vector<std::string> weight_files;  // file names, an index first if sharded
  uint64_t file_bytes = 0;             // bytes of the checkpoint's files
  std::vector<MemoryEstimate> memory;  // f32, bf16, q8, q4 for all parameters (estimates)
  // The matrices one decoder step reads (every layer's self-attention q/k/v/out, cross-attention
  // q/out, fc1, fc2, and the LM heads), and how many of them hold only values exactly
  // representable in IEEE half (stored F16, or F32 values that survive the round trip): an f32
  // load keeps those as f16 (LoadOptions::exact_f16), the same results for half the bytes.
  // 0 and 0 for a quantized file.
  int step_matrices = 0;
  int step_matrices_f16_exact = 0;
};

// Summarises a checkpoint from its config.json and the weight files' headers (safetensors
// headers, or the pickle of PyTorch .bin files), or a `musicgen quantize` file from its header.
// The only tensor data read is the decoder step matrices' values, for step_matrices_f16_exact
// (a scan at memory speed that stops at a matrix's first value not exact in half).
// The reference is resolved as resolve_model does, so a hub model not yet cached is downloaded.
CheckpointSummary inspect_model(const std::string& reference, const ResolveOptions& options = {});

}  // namespace musicgen
