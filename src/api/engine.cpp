// Implements the public API: loading (validate everything, then build the stage models), option
// validation, and the generation pipeline tokenize -> T5 -> projection -> decoder loop -> EnCodec.
#include <cmath>
#include <filesystem>

#include "audio/audio_reader.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "api/model_impl.h"
#include "api/weight_types.h"
#include "format/hf_config.h"
#include "format/quantized_file.h"
#include "format/safetensors.h"
#include "generation/delay_pattern.h"
#include "generation/generator.h"
#include "models/chroma.h"
#include "models/encodec.h"
#include "models/encodec_stream.h"
#include "models/musicgen_decoder.h"
#include "models/t5_encoder.h"
#include "models/weight_policy.h"
#include "musicgen/hub.h"
#include "musicgen/musicgen.h"
#include "tokenizer/t5_tokenizer.h"
#ifdef MUSICGEN_HAVE_VULKAN
#include "gpu/context.h"
#include "gpu/vulkan_codec.h"
#include "gpu/vulkan_decoder.h"
#endif

namespace musicgen {

namespace fs = std::filesystem;

std::vector<DeviceInfo> list_devices() {
#ifdef MUSICGEN_HAVE_VULKAN
  std::vector<DeviceInfo> out;
  for (const gpu::AdapterInfo& a : gpu::list_adapters())
    out.push_back(DeviceInfo{"vulkan:" + std::to_string(a.index), a.name, a.type,
                             a.device_local_bytes, a.driver_version, a.api_version});
  return out;
#else
  fail(ErrorCode::kDevice, "this build has no Vulkan backend (built without libvulkan-dev and "
                           "glslc); rebuild with them installed, or use --device cpu");
#endif
}

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
const ModelInfo& Model::info() const { return impl_->info; }
uint64_t Model::device_memory_peak() const {
#ifdef MUSICGEN_HAVE_VULKAN
  if (impl_->gpu_decoder) return impl_->gpu_decoder->context().peak_allocated_bytes();
#endif
  return 0;
}

namespace {

// A model reference as every command takes it (musicgen/hub.h): an existing folder or file as it
// is; a repo id or short name through the hub cache, never downloading here.
std::string resolve_for_load(const std::string& reference) {
  std::error_code ec;
  if (fs::exists(reference, ec)) return reference;
  const ModelReference ref = parse_model_reference(reference);  // kNotFound for missing paths
  if (ref.source == ModelSource::kLocalDirectory) return ref.path;
  ResolveOptions ro;
  ro.offline = true;
  ro.progress = ProgressDisplay::kNever;
  try {
    return resolve_model(reference, ro);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kInvalidArgument) throw;
    std::string name = ref.revision == "main" ? ref.repo_id : ref.repo_id + "@" + ref.revision;
    for (const auto& [short_name, repo] : model_short_names())
      if (repo == ref.repo_id && ref.revision == "main") name = short_name;
    fail(ErrorCode::kNotFound,
         "model '" + reference + "' (" + ref.repo_id + ") is not in the model cache '" +
             hub_cache_dir(ro) + "'; Model::load never downloads: run 'musicgen pull " + name +
             "' or call musicgen::resolve_model first");
  }
}

}  // namespace

std::shared_ptr<const Model> Model::load(const std::string& reference, const LoadOptions& options) {
  const std::string dir = resolve_for_load(reference);
  std::shared_ptr<Model> model(new Model());
  Impl& m = *model->impl_;
  if (options.threads < 0)
    fail(ErrorCode::kInvalidArgument, "load threads must be >= 0 (0 = all cores)");
  ThreadPool load_pool(options.threads);  // converts weights to their storage type
  WeightStorage weights = to_storage(options.weights);
  if (is_quantized_file(dir)) {  // `musicgen quantize` output: one mapped, validated file
    QuantizedFile f = read_quantized_file(dir);
    weights = quantized_file_storage(f.info.weights, options.weights, dir);
    m.config = parse_musicgen_config(f.info.config_json, f.info.generation_config_json, dir);
    m.tokenizer = std::make_unique<T5Tokenizer>(T5Tokenizer::Serialized{f.info.tokenizer, dir});
    m.store = std::move(f.store);
  } else {
    if (fs::is_regular_file(dir))
      fail(ErrorCode::kInvalidModel, "'" + dir + "' is a file but not a musicgen quantized file (no " +
                                         "MGQUANT magic); give a checkpoint directory or a file " +
                                         "written by musicgen quantize");
    m.config = load_musicgen_config(dir);
    m.tokenizer = std::make_unique<T5Tokenizer>((fs::path(dir) / "spiece.model").string());
    m.store = TensorStore::open_checkpoint(dir);
  }
  // Every count in config.json sizes a list of tensor specs; each unit it counts needs at least one
  // tensor, so a count above the checkpoint's tensor count (num_hidden_layers: 2000000000) is
  // refused here, before anything is sized by it.
  {
    const size_t tensors = m.store.names().size();
    const MusicgenConfig& c = m.config;
    const std::pair<const char*, int64_t> counts[] = {
        {"text_encoder.num_layers", c.text_encoder.num_layers},
        {"decoder.num_hidden_layers", c.decoder.num_hidden_layers},
        {"decoder.num_codebooks", c.decoder.num_codebooks},
        {"audio_encoder.num_residual_layers", c.audio_encoder.num_residual_layers},
        {"audio_encoder.num_lstm_layers", c.audio_encoder.num_lstm_layers},
        {"audio_encoder quantizers (target_bandwidths)", c.audio_encoder.num_quantizers},
        {"audio_encoder.upsampling_ratios",
         static_cast<int64_t>(c.audio_encoder.upsampling_ratios.size())}};
    for (const auto& [name, count] : counts)
      if (count > static_cast<int64_t>(tensors))
        fail(ErrorCode::kInvalidModel,
             dir + ": config.json gives " + name + " = " + std::to_string(count) +
                 ", more than the checkpoint's " + std::to_string(tensors) +
                 " tensors; the config does not belong to these weights, fix or re-download it");
  }
  // One error naming every missing or misshapen tensor of every part.
  std::vector<TensorSpec> specs = T5Encoder::tensor_specs(m.config.text_encoder);
  const int num_chroma = m.config.melody ? m.config.num_chroma : 0;
  for (auto& s : MusicgenDecoder::tensor_specs(m.config.decoder, m.config.text_encoder.d_model, num_chroma))
    specs.push_back(std::move(s));
  for (auto& s : EncodecModel::tensor_specs(m.config.audio_encoder, "audio_encoder."))
    specs.push_back(std::move(s));
  validate_tensors(m.store, specs);
  m.t5 = std::make_unique<T5Encoder>(m.config.text_encoder, m.store, "text_encoder.",
                                     LinearLoadOptions{t5_storage(weights), &load_pool,
                                                       options.exact_f16});
  m.decoder = std::make_unique<MusicgenDecoder>(m.config.decoder, m.config.text_encoder.d_model,
                                                m.store, num_chroma,
                                                DecoderLoadOptions{weights, &load_pool,
                                                                   options.exact_f16,
                                                                   options.kv_cache ==
                                                                       KvCache::kQ8});
  m.codec = std::make_unique<EncodecModel>(m.config.audio_encoder, m.store, "audio_encoder.");
  {
#ifdef MUSICGEN_HAVE_VULKAN
    const gpu::DeviceChoice choice = gpu::resolve_device(options.device);
    if (choice.vulkan) {
      if (options.kv_cache == KvCache::kQ8)
        fail(ErrorCode::kInvalidArgument,
             "the q8 KV cache runs on the CPU only; drop --kv-cache q8 or use --device cpu");
      auto ctx = gpu::Context::open(choice.index);
      m.gpu_decoder = std::make_unique<gpu::VulkanDecoder>(ctx, m.decoder->spec());
      m.info.device = "vulkan:" + std::to_string(ctx->adapter().index) + " " + ctx->adapter().name;
      m.info.device_weight_bytes = m.gpu_decoder->weight_bytes();
      m.gpu_codec = std::make_unique<gpu::VulkanCodecDecoder>(ctx, m.codec->decoder_spec());
      m.info.device_weight_bytes += m.gpu_codec->weight_bytes();
    }
#else
    if (options.device != "cpu" && options.device != "auto")
      fail(ErrorCode::kDevice, "this build has no Vulkan backend (built without libvulkan-dev and "
                               "glslc), so device '" + options.device + "' is unavailable; rebuild "
                               "with them installed, or use --device cpu");
#endif
  }
  if (m.config.melody) m.chroma = std::make_unique<ChromaExtractor>();

  ModelInfo& i = m.info;
  const MusicgenConfig& c = m.config;
  i.model_type = c.model_type;
  i.melody = c.melody;
  i.num_codebooks = c.decoder.num_codebooks;
  i.audio_channels = c.decoder.audio_channels;
  i.sample_rate = c.audio_encoder.sampling_rate;
  i.frame_rate = c.audio_encoder.frame_rate();
  i.hidden_size = c.decoder.hidden_size;
  i.num_heads = c.decoder.num_attention_heads;
  i.num_layers = c.decoder.num_hidden_layers;
  i.vocab_size = c.decoder.vocab_size;
  const MusicgenDecoder::StepWeights sw = m.decoder->step_weights();
  i.decoder_matrices = sw.matrices;
  i.decoder_exact_f16 = sw.exact_f16;
  i.decoder_step_bytes = sw.bytes;
  i.kv_cache = m.decoder->kv_cache_type();
#ifdef MUSICGEN_HAVE_VULKAN
  if (m.gpu_decoder) i.kv_cache = "";
#endif
  i.weights = weight_storage_name(weights);
  i.default_do_sample = c.generation.do_sample;
  i.default_guidance_scale = c.generation.guidance_scale;
  i.default_top_k = c.generation.top_k;
  i.default_top_p = c.generation.top_p;
  i.default_temperature = c.generation.temperature;
  i.default_max_length = c.generation.max_length;
  return model;
}

struct Session::Impl {
  std::shared_ptr<const Model> model;
  ThreadPool pool;
  Impl(std::shared_ptr<const Model> m, int threads) : model(std::move(m)), pool(threads) {}
};

Session::Session(std::shared_ptr<const Model> model, SessionOptions options) {
  if (!model) fail(ErrorCode::kInvalidArgument, "Session needs a loaded model");
  if (options.threads < 0)
    fail(ErrorCode::kInvalidArgument, "threads must be >= 0 (0 = all cores)");
  impl_ = std::make_unique<Impl>(std::move(model), options.threads);
}
Session::~Session() = default;

namespace {

[[noreturn]] void bad_option(const std::string& msg) { fail(ErrorCode::kInvalidArgument, msg); }

constexpr double kWindowSeconds = 30.0;  // audiocraft max_duration: one decoder window
constexpr double kMaxDurationS = 3600.0;

AudioBuffer to_buffer(const AudioData& a) {
  AudioBuffer b;
  b.sample_rate = a.sample_rate;
  b.channels = a.channels;
  b.frames = a.frames;
  b.samples = a.samples;
  if (a.channels <= 0 || a.frames <= 0 || a.sample_rate <= 0 ||
      a.samples.size() != static_cast<size_t>(a.channels) * a.frames)
    bad_option("audio input is empty or its size does not match its channels and frames");
  return b;
}

AudioData from_buffer(AudioBuffer b) {
  AudioData a;
  a.sample_rate = b.sample_rate;
  a.channels = b.channels;
  a.frames = b.frames;
  a.samples = std::move(b.samples);
  return a;
}

// Picks item b of a list that is empty, shared (one entry) or per item.
template <typename T>
const T* item(const std::vector<T>& v, int b) {
  if (v.empty()) return nullptr;
  return v.size() == 1 ? &v[0] : &v[b];
}

}  // namespace

AudioData load_audio_file(const std::string& path) { return from_buffer(load_audio(path)); }

AudioData load_audio_file(const std::string& path, double start_s,
                          std::optional<double> duration_s) {
  return from_buffer(load_audio(path, start_s, duration_s));
}

AudioData slice_audio(const AudioData& audio, double start_s, std::optional<double> duration_s) {
  return from_buffer(slice_seconds(to_buffer(audio), start_s, duration_s));
}

namespace {
GenerationResult decode_codes_with(const Model::Impl& m, const std::vector<int32_t>& codes,
                                   int batch, int frames, ThreadPool* pool);
}  // namespace

GenerationResult Session::decode_codes(const std::vector<int32_t>& codes, int batch, int frames) {
  return decode_codes_with(impl_->model->impl(), codes, batch, frames, &impl_->pool);
}

namespace {

// Session::decode_codes on a given pool.
GenerationResult decode_codes_with(const Model::Impl& m, const std::vector<int32_t>& codes,
                                   int batch, int frames, ThreadPool* pool) {
  const int K = m.config.decoder.num_codebooks, C = m.config.decoder.audio_channels;
  const int kc = K / C;
  if (batch <= 0 || frames <= 0 || codes.size() != static_cast<size_t>(batch) * K * frames)
    bad_option("codes must have shape [batch, " + std::to_string(K) + ", frames]");
  GenerationResult r;
  r.batch = batch;
  r.channels = C;
  r.frames = frames;
  r.sample_rate = m.config.audio_encoder.sampling_rate;
  r.samples = static_cast<int64_t>(frames) * m.config.audio_encoder.hop_length();
  r.num_codebooks = K;
  r.codes = codes;
  r.leading_padding.assign(batch, 0);
  r.audio.assign(static_cast<size_t>(batch) * C * r.samples, 0.0f);
  Stopwatch sw;
  for (int ch = 0; ch < C; ++ch) {
    // Stereo interleaves codebooks [L0, R0, L1, R1, ...]: channel ch takes k = q * C + ch.
    std::vector<int32_t> sub(static_cast<size_t>(batch) * kc * frames);
    for (int b = 0; b < batch; ++b)
      for (int q = 0; q < kc; ++q)
        std::copy_n(codes.data() + (static_cast<size_t>(b) * K + q * C + ch) * frames, frames,
                    sub.data() + (static_cast<size_t>(b) * kc + q) * frames);
    const Tensor audio = m.decode_audio(sub, batch, kc, frames, pool);  // [B, 1, samples]
    for (int b = 0; b < batch; ++b)
      std::copy_n(audio.ptr() + static_cast<size_t>(b) * r.samples, r.samples,
                  r.audio.data() + (static_cast<size_t>(b) * C + ch) * r.samples);
  }
  r.timings.audio_decode_s = sw.seconds();
  return r;
}

// Audio prompts -> codes [B, K, Tp] (HF: processor left-pads to the longest item, the codec
// encodes each channel, stereo codebooks are interleaved [L0, R0, L1, R1, ...]).
std::vector<int32_t> encode_prompts(const Model::Impl& m, const std::vector<AudioData>& prompts,
                                    int batch, ThreadPool* pool, int* frames,
                                    std::vector<int64_t>* padding) {
  const int C = m.config.decoder.audio_channels, K = m.config.decoder.num_codebooks, kc = K / C;
  const int rate = m.config.audio_encoder.sampling_rate;
  std::vector<AudioBuffer> items;
  int64_t longest = 0;
  for (int b = 0; b < batch; ++b) {
    items.push_back(resample(to_channels(to_buffer(*item(prompts, b)), C), rate));
    longest = std::max(longest, items.back().frames);
  }
  padding->assign(batch, 0);
  std::vector<int32_t> codes;
  for (int ch = 0; ch < C; ++ch) {
    std::vector<float> audio(static_cast<size_t>(batch) * longest, 0.0f);  // [B, L], left padded
    for (int b = 0; b < batch; ++b) {
      const int64_t pad = longest - items[b].frames;
      (*padding)[b] = pad;
      std::copy_n(items[b].channel(ch), items[b].frames, audio.data() + b * longest + pad);
    }
    int t = 0;
    const std::vector<int32_t> c = m.codec->encode(audio.data(), batch, longest, pool, &t);
    if (codes.empty()) {
      *frames = t;
      codes.assign(static_cast<size_t>(batch) * K * t, 0);
    }
    for (int b = 0; b < batch; ++b)
      for (int q = 0; q < kc; ++q)
        std::copy_n(c.data() + (static_cast<size_t>(b) * m.codec->num_quantizers() + q) * t, t,
                    codes.data() + (static_cast<size_t>(b) * K + q * C + ch) * t);
  }
  return codes;
}

// Melody prefix for one stream: [chroma (chroma_length rows), text rows] per item.
Tensor melody_prefix(const Model::Impl& m, const std::vector<Tensor>& chroma_onehot,
                     const Tensor& text, ThreadPool* pool) {
  const int B = static_cast<int>(chroma_onehot.size());
  const int64_t H = m.config.decoder.hidden_size, P = m.config.chroma_length, L = text.dim(1);
  Tensor prefix({B, P + L, H});
  for (int b = 0; b < B; ++b) {
    // HF: project, then tile ceil(P / T) times and keep the first P rows.
    const Tensor proj = m.decoder->project_chroma(chroma_onehot[b], pool);  // [1, T, H]
    const int64_t T = proj.dim(1);
    float* dst = prefix.ptr() + b * (P + L) * H;
    for (int64_t r = 0; r < P; ++r) std::copy_n(proj.ptr() + (r % T) * H, H, dst + r * H);
    std::copy_n(text.ptr() + b * L * H, L * H, dst + P * H);
  }
  return prefix;
}

Tensor null_chroma(int num_chroma) {
  Tensor t({1, 1, num_chroma});
  t.data[0] = 1.0f;  // one-hot at bin 0 (C): the reference's "no melody" condition
  return t;
}

}  // namespace

GenerationResult Session::generate(const GenerationOptions& opt) {
  return generate_with(impl_->model->impl(), opt, &impl_->pool, nullptr);
}

bool batchable(const Model::Impl& m, const GenerationOptions& opt) {
  const MusicgenConfig& cfg = m.config;
  if (!m.cpu_decoder() || cfg.melody || !opt.audio_prompts.empty() || !opt.melodies.empty())
    return false;
  const int window_frames =
      static_cast<int>(std::floor(kWindowSeconds * cfg.audio_encoder.frame_rate() + 1e-9));
  // Session::generate's long-form rule: a duration of more than one window.
  return !(opt.duration_s && std::isfinite(*opt.duration_s) &&
           std::floor(*opt.duration_s * cfg.audio_encoder.frame_rate() + 1e-9) > window_frames);
}

GenerationResult generate_with(const Model::Impl& m, const GenerationOptions& opt,
                               ThreadPool* pool, const CodeGenHook* hook) {
  const MusicgenConfig& cfg = m.config;
  const int K = cfg.decoder.num_codebooks, C = cfg.decoder.audio_channels, kc = K / C;
  const int frame_rate = cfg.audio_encoder.frame_rate();
  const int window_frames = static_cast<int>(std::floor(kWindowSeconds * frame_rate + 1e-9));

  // Validate every option before any work.
  if (opt.duration_s && opt.max_new_tokens)
    bad_option("give either a duration or max_new_tokens, not both");
  SamplingParams sp;
  sp.do_sample = opt.greedy ? !*opt.greedy : cfg.generation.do_sample;
  sp.guidance_scale = opt.guidance_scale.value_or(cfg.generation.guidance_scale);
  sp.temperature = opt.temperature.value_or(cfg.generation.temperature);
  sp.top_k = opt.top_k.value_or(cfg.generation.top_k);
  sp.top_p = opt.top_p.value_or(cfg.generation.top_p);
  if (!std::isfinite(sp.guidance_scale) || sp.guidance_scale < 1.0f)
    bad_option("guidance scale must be >= 1 (1 disables guidance), got " + std::to_string(sp.guidance_scale));
  if (!std::isfinite(sp.temperature) || sp.temperature <= 0.0f)
    bad_option("temperature must be > 0, got " + std::to_string(sp.temperature));
  if (sp.top_k < 1) bad_option("top-k must be >= 1, got " + std::to_string(sp.top_k));
  if (!(sp.top_p > 0.0f && sp.top_p <= 1.0f))
    bad_option("top-p must be in (0, 1], got " + std::to_string(sp.top_p));
  if (!std::isfinite(opt.extend_stride_s) || opt.extend_stride_s <= 0 ||
      opt.extend_stride_s >= kWindowSeconds)
    bad_option("extend stride must be between 0 and 30 s (exclusive), got " +
               std::to_string(opt.extend_stride_s));
  const bool conditional = !opt.prompts.empty();
  int batch = conditional ? static_cast<int>(opt.prompts.size()) : opt.unconditional_samples;
  if (!conditional && opt.audio_prompts.size() > 1) batch = static_cast<int>(opt.audio_prompts.size());
  if (batch < 1 || batch > 64) bad_option("batch size must be between 1 and 64, got " + std::to_string(batch));
  if (opt.audio_prompts.size() > 1 && static_cast<int>(opt.audio_prompts.size()) != batch)
    bad_option("give one audio prompt per text prompt, or a single one for all (" +
               std::to_string(opt.audio_prompts.size()) + " audio prompts for " +
               std::to_string(batch) + " text prompts)");
  if (!opt.melodies.empty() && !cfg.melody)
    bad_option("this checkpoint takes no melody (model_type '" + cfg.model_type +
               "'); use a musicgen-melody checkpoint or drop the melody");
  if (opt.melodies.size() > 1 && static_cast<int>(opt.melodies.size()) != batch)
    bad_option("give one melody per prompt, or a single one for all");

  GenerationResult result;
  Timings t;
  Rng rng(opt.seed);
  CodeGenRequest req;
  req.batch = batch;
  req.sampling = sp;
  req.rng = &rng;
  req.on_step = opt.progress;

  // Audio prompt.
  std::vector<int32_t> prompt_codes;
  std::vector<int64_t> padding(batch, 0);
  int prompt_frames = 0;
  if (!opt.audio_prompts.empty()) {
    if (kc != m.codec->num_quantizers())
      bad_option("this checkpoint generates " + std::to_string(kc) + " codebooks per channel but "
                 "its codec encodes " + std::to_string(m.codec->num_quantizers()) +
                 ", so an audio prompt cannot be continued (transformers fails here too); "
                 "generate from text or unconditionally");
    Stopwatch sw;
    prompt_codes = encode_prompts(m, opt.audio_prompts, batch, pool, &prompt_frames, &padding);
    req.prompt_codes = &prompt_codes;
    req.prompt_frames = prompt_frames;
    t.text_encode_s += sw.seconds();
  }

  // Length.
  int total_frames = 0;
  bool long_form = false;
  if (opt.duration_s) {
    const double d = *opt.duration_s;
    if (!std::isfinite(d) || d <= 0)
      bad_option("duration must be a positive number of seconds, got " + std::to_string(d));
    if (d > kMaxDurationS) bad_option("duration is limited to one hour");
    total_frames = static_cast<int>(std::floor(d * frame_rate + 1e-9));
    long_form = total_frames > window_frames;
  } else {
    int max_length = cfg.generation.max_length;
    if (opt.max_new_tokens) {
      const int n = *opt.max_new_tokens;
      const int min_steps = DelayPattern::min_max_length(K, C) - 1;
      if (n < min_steps)
        bad_option("max_new_tokens must be at least " + std::to_string(min_steps) + ", got " + std::to_string(n));
      if (static_cast<int64_t>(prompt_frames) + n > cfg.decoder.max_position_embeddings)
        bad_option("max_new_tokens " + std::to_string(n) + " exceeds the model's " +
                   std::to_string(cfg.decoder.max_position_embeddings) +
                   " positions; use --duration for long-form generation");
      max_length = prompt_frames + 1 + n;
    }
    total_frames = max_length - kc;
  }
  if (total_frames < DelayPattern::min_max_length(K, C) - kc)
    bad_option("the requested length is too short: ask for at least " +
               std::to_string(DelayPattern::min_max_length(K, C) - kc) + " frames");
  if (prompt_frames >= total_frames)
    bad_option("the audio prompt (" + std::to_string(prompt_frames) + " frames) is as long as or "
               "longer than the requested output (" + std::to_string(total_frames) +
               " frames); ask for a longer --duration or a shorter prompt");

  // Text conditioning.
  Tensor projected, text_raw;
  std::vector<int32_t> mask;
  Stopwatch sw_text;
  if (conditional) {
    const TokenBatch tokens = m.tokenizer->encode_batch(opt.prompts);
    text_raw = m.t5->forward(tokens.ids, tokens.mask, tokens.batch, tokens.length, pool);
    m.t5->release_resident();  // read again (from the page cache) by the next request only
    mask = tokens.mask;
    projected = m.decoder->project_text(text_raw, tokens.mask, pool);
    if (!cfg.melody) {
      req.text = &projected;
      req.text_mask = &mask;
    }
  }

  // Melody conditioning: prefix [chroma, text] for the conditional and the null stream.
  Tensor prefix_cond, prefix_uncond;
  std::vector<AudioBuffer> melody_audio;  // mono, model rate, per item
  auto set_melody_prefix = [&](int64_t start_sample, bool wrap) {
    std::vector<Tensor> chroma;
    for (int b = 0; b < batch; ++b) {
      if (melody_audio.empty()) {
        chroma.push_back(null_chroma(cfg.num_chroma));
        continue;
      }
      const AudioBuffer& a = melody_audio[b];
      std::vector<float> wav;
      if (wrap) {  // audiocraft long-form: 30 s from start_sample, wrapping periodically
        const int64_t n = static_cast<int64_t>(kWindowSeconds * a.sample_rate);
        wav.resize(n);
        for (int64_t i = 0; i < n; ++i) wav[i] = a.samples[(start_sample + i) % a.frames];
      } else {
        wav = a.samples;
      }
      const int64_t frames = ChromaExtractor::num_frames(static_cast<int64_t>(wav.size()));
      Tensor onehot({1, frames, cfg.num_chroma});
      onehot.data = m.chroma->extract(wav.data(), static_cast<int64_t>(wav.size()));
      chroma.push_back(std::move(onehot));
    }
    // Text rows: the projected text times its mask; a melody without text gets one zero row.
    Tensor text_rows = conditional ? projected : Tensor({batch, 1, cfg.decoder.hidden_size});
    prefix_cond = melody_prefix(m, chroma, text_rows, pool);
    std::vector<Tensor> nulls(batch, null_chroma(cfg.num_chroma));
    prefix_uncond = melody_prefix(m, nulls, Tensor(text_rows.shape), pool);
    req.prefix_cond = &prefix_cond;
    req.prefix_uncond = &prefix_uncond;
  };
  if (cfg.melody && (conditional || !opt.melodies.empty())) {
    for (int b = 0; b < static_cast<int>(opt.melodies.size() == 1 ? batch : opt.melodies.size()); ++b)
      melody_audio.push_back(resample(to_channels(to_buffer(*item(opt.melodies, b)), 1),
                                      cfg.audio_encoder.sampling_rate));
    set_melody_prefix(0, false);
  }
  t.text_encode_s += sw_text.seconds();

  // Streaming (opt.on_audio): one EnCodec stream per audio channel, fed as frames become final;
  // always the CPU codec (bitwise EncodecModel::decode; a GPU codec is within ~1e-6 only).
  const int64_t hop = cfg.audio_encoder.hop_length();
  const int64_t total_samples = static_cast<int64_t>(total_frames) * hop;
  std::vector<std::unique_ptr<EncodecStreamDecoder>> streams;
  std::vector<float> streamed;  // [B, C, total_samples], filled piece by piece
  int64_t streamed_samples = 0;
  double stream_decode_s = 0;
  // Per channel audio [B, n] -> one planar piece [B, C, n] for on_audio.
  auto deliver = [&](const std::vector<Tensor>& parts) {
    const int64_t n = parts[0].dim(1);
    if (n == 0) return;
    if (streamed_samples + n > total_samples)
      fail(ErrorCode::kInvalidArgument, "internal: the audio stream overran the output");
    std::vector<float> piece(static_cast<size_t>(batch) * C * n);
    for (int b = 0; b < batch; ++b)
      for (int ch = 0; ch < C; ++ch) {
        const float* src = parts[ch].ptr() + b * n;
        std::copy_n(src, n, piece.data() + (static_cast<size_t>(b) * C + ch) * n);
        std::copy_n(src, n, streamed.data() + (static_cast<size_t>(b) * C + ch) * total_samples +
                                streamed_samples);
      }
    const int64_t start = streamed_samples;
    streamed_samples += n;
    if (!opt.on_audio(piece.data(), batch, C, start, n))
      fail(ErrorCode::kCancelled, "generation cancelled by the audio callback");
  };
  if (opt.on_audio) {
    for (int ch = 0; ch < C; ++ch)
      streams.push_back(std::make_unique<EncodecStreamDecoder>(*m.codec, batch, kc, pool));
    streamed.assign(static_cast<size_t>(batch) * C * total_samples, 0.0f);
    req.on_frames = [&](int, int count, const std::vector<int32_t>& fc) {
      Stopwatch sw_stream;
      std::vector<Tensor> parts;
      for (int ch = 0; ch < C; ++ch) {
        // Stereo interleaves codebooks [L0, R0, L1, R1, ...]: channel ch takes k = q * C + ch.
        std::vector<int32_t> sub(static_cast<size_t>(batch) * kc * count);
        for (int b = 0; b < batch; ++b)
          for (int q = 0; q < kc; ++q)
            std::copy_n(fc.data() + (static_cast<size_t>(b) * K + q * C + ch) * count, count,
                        sub.data() + (static_cast<size_t>(b) * kc + q) * count);
        parts.push_back(streams[ch]->push(sub, count));
      }
      stream_decode_s += sw_stream.seconds();
      deliver(parts);
      return true;  // deliver throws on cancellation
    };
  }

  Stopwatch sw;
  const ThreadPool::Stats pool_before = pool->stats();
  CodeGenResult codes;
  if (!long_form) {
    req.max_length = total_frames + kc;
    if (hook != nullptr && batchable(m, opt)) {
      codes = (*hook)(req);  // the Batcher's shared decoder batch
    } else {
      auto runner = m.new_runner(pool);
      codes = generate_codes(*runner, m.config.decoder, req);
    }
    t.decode_steps = codegen_steps(req);
  } else {
    LongFormRequest lr;
    lr.base = req;
    lr.total_frames = total_frames;
    lr.window_frames = window_frames;
    lr.stride_frames = static_cast<int>(std::floor(opt.extend_stride_s * frame_rate + 1e-9));
    if (!melody_audio.empty())
      lr.before_window = [&](const Window& w, CodeGenRequest* r) {
        if (w.offset > 0) {
          set_melody_prefix(static_cast<int64_t>(w.offset) * cfg.audio_encoder.hop_length(), true);
          r->prefix_cond = &prefix_cond;
          r->prefix_uncond = &prefix_uncond;
        }
      };
    lr.after_window = [&](const Window&, const CodeGenRequest& r, const CodeGenResult&) {
      t.decode_steps += codegen_steps(r);
    };
    auto runner = m.new_runner(pool);
    codes = generate_long(*runner, m.config.decoder, lr);
  }
  t.decode_s = sw.seconds() - stream_decode_s;
  {
    const ThreadPool::Stats after = pool->stats();
    t.decode_pool_calls = after.calls - pool_before.calls;
    t.decode_pool_busy_s = after.busy_s - pool_before.busy_s;
    t.decode_pool_start_s = after.start_s - pool_before.start_s;
    t.decode_pool_barrier_s = after.barrier_s - pool_before.barrier_s;
  }
  if (opt.on_audio) {
    Stopwatch sw_stream;
    std::vector<Tensor> parts;
    for (auto& stream : streams) parts.push_back(stream->finish());
    stream_decode_s += sw_stream.seconds();
    deliver(parts);
    if (streamed_samples != total_samples || codes.frames != total_frames)
      fail(ErrorCode::kInvalidArgument, "internal: the audio stream ended early");
    result.batch = batch;
    result.channels = C;
    result.frames = codes.frames;
    result.sample_rate = cfg.audio_encoder.sampling_rate;
    result.samples = total_samples;
    result.num_codebooks = K;
    result.codes = std::move(codes.codes);
    result.audio = std::move(streamed);
    result.timings.audio_decode_s = stream_decode_s;
  } else {
    result = decode_codes_with(m, codes.codes, batch, codes.frames, pool);
  }
  result.leading_padding = padding;
  t.audio_decode_s = result.timings.audio_decode_s;
  result.timings = t;
  return result;
}

// write_audio_file, encode_audio: src/api/audio_output.cpp.

}  // namespace musicgen
