// Implements the public API: loading (validate everything, then build the stage models), option
// validation, and the generation pipeline tokenize -> T5 -> projection -> decoder loop -> EnCodec.
#include <cmath>
#include <filesystem>

#include "audio/wav_writer.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "format/hf_config.h"
#include "format/safetensors.h"
#include "generation/delay_pattern.h"
#include "generation/generator.h"
#include "models/encodec.h"
#include "models/musicgen_decoder.h"
#include "models/t5_encoder.h"
#include "musicgen/musicgen.h"
#include "tokenizer/t5_tokenizer.h"

namespace musicgen {

namespace fs = std::filesystem;

struct Model::Impl {
  MusicgenConfig config;
  ModelInfo info;
  TensorStore store;
  std::unique_ptr<T5Tokenizer> tokenizer;
  std::unique_ptr<T5Encoder> t5;
  std::unique_ptr<MusicgenDecoder> decoder;
  std::unique_ptr<EncodecModel> codec;
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
const ModelInfo& Model::info() const { return impl_->info; }

std::shared_ptr<const Model> Model::load(const std::string& dir) {
  std::shared_ptr<Model> model(new Model());
  Impl& m = *model->impl_;
  m.config = load_musicgen_config(dir);
  m.tokenizer = std::make_unique<T5Tokenizer>((fs::path(dir) / "spiece.model").string());
  m.store = TensorStore::open_checkpoint(dir);
  // One error naming every missing or misshapen tensor of every part.
  std::vector<TensorSpec> specs = T5Encoder::tensor_specs(m.config.text_encoder);
  for (auto& s : MusicgenDecoder::tensor_specs(m.config.decoder, m.config.text_encoder.d_model))
    specs.push_back(std::move(s));
  for (auto& s : EncodecModel::tensor_specs(m.config.audio_encoder, "audio_encoder."))
    specs.push_back(std::move(s));
  validate_tensors(m.store, specs);
  m.t5 = std::make_unique<T5Encoder>(m.config.text_encoder, m.store);
  m.decoder = std::make_unique<MusicgenDecoder>(m.config.decoder, m.config.text_encoder.d_model, m.store);
  m.codec = std::make_unique<EncodecModel>(m.config.audio_encoder, m.store, "audio_encoder.");

  ModelInfo& i = m.info;
  const MusicgenConfig& c = m.config;
  i.model_type = c.model_type;
  i.num_codebooks = c.decoder.num_codebooks;
  i.audio_channels = c.decoder.audio_channels;
  i.sample_rate = c.audio_encoder.sampling_rate;
  i.frame_rate = c.audio_encoder.frame_rate();
  i.hidden_size = c.decoder.hidden_size;
  i.num_layers = c.decoder.num_hidden_layers;
  i.vocab_size = c.decoder.vocab_size;
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

constexpr double kMaxDurationS = 30.0;

}  // namespace

GenerationResult Session::decode_codes(const std::vector<int32_t>& codes, int batch, int frames) {
  const Model::Impl& m = impl_->model->impl();
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
  r.audio.assign(static_cast<size_t>(batch) * C * r.samples, 0.0f);
  Stopwatch sw;
  for (int ch = 0; ch < C; ++ch) {
    // Stereo interleaves codebooks [L0, R0, L1, R1, ...]: channel ch takes k = q * C + ch.
    std::vector<int32_t> sub(static_cast<size_t>(batch) * kc * frames);
    for (int b = 0; b < batch; ++b)
      for (int q = 0; q < kc; ++q)
        std::copy_n(codes.data() + (static_cast<size_t>(b) * K + q * C + ch) * frames, frames,
                    sub.data() + (static_cast<size_t>(b) * kc + q) * frames);
    const Tensor audio = m.codec->decode(sub, batch, kc, frames, &impl_->pool);  // [B, 1, samples]
    for (int b = 0; b < batch; ++b)
      std::copy_n(audio.ptr() + static_cast<size_t>(b) * r.samples, r.samples,
                  r.audio.data() + (static_cast<size_t>(b) * C + ch) * r.samples);
  }
  r.timings.audio_decode_s = sw.seconds();
  return r;
}

GenerationResult Session::generate(const GenerationOptions& opt) {
  const Model::Impl& m = impl_->model->impl();
  const MusicgenConfig& cfg = m.config;
  const int K = cfg.decoder.num_codebooks, C = cfg.decoder.audio_channels, kc = K / C;
  const int frame_rate = cfg.audio_encoder.frame_rate();

  // Validate every option before any work.
  if (opt.duration_s && opt.max_new_tokens)
    bad_option("give either a duration or max_new_tokens, not both");
  const int min_steps = DelayPattern::min_max_length(K, C) - 1;
  int max_length = cfg.generation.max_length;
  if (opt.duration_s) {
    const double d = *opt.duration_s;
    if (!std::isfinite(d) || d <= 0)
      bad_option("duration must be a positive number of seconds, got " + std::to_string(d));
    if (d > kMaxDurationS)
      bad_option("duration " + std::to_string(d) + " s exceeds the 30 s a single window holds; "
                 "ask for 30 s or less");
    const int frames = static_cast<int>(std::floor(d * frame_rate + 1e-9));
    max_length = frames + kc;
    if (max_length - 1 < min_steps)
      bad_option("duration " + std::to_string(d) + " s is too short: ask for at least " +
                 std::to_string(static_cast<double>(min_steps + 1 - kc) / frame_rate) + " s");
  } else if (opt.max_new_tokens) {
    const int n = *opt.max_new_tokens;
    if (n < min_steps)
      bad_option("max_new_tokens must be at least " + std::to_string(min_steps) + ", got " +
                 std::to_string(n));
    if (n > cfg.decoder.max_position_embeddings)
      bad_option("max_new_tokens " + std::to_string(n) + " exceeds the model's " +
                 std::to_string(cfg.decoder.max_position_embeddings) + " positions");
    max_length = n + 1;
  }
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
  const bool conditional = !opt.prompts.empty();
  const int batch = conditional ? static_cast<int>(opt.prompts.size()) : opt.unconditional_samples;
  if (batch < 1 || batch > 64) bad_option("batch size must be between 1 and 64, got " + std::to_string(batch));

  GenerationResult result;
  Timings t;
  CodeGenRequest req;
  req.batch = batch;
  req.max_length = max_length;
  req.sampling = sp;
  req.seed = opt.seed;
  req.on_step = opt.progress;
  Tensor projected;
  std::vector<int32_t> mask;
  if (conditional) {
    Stopwatch sw;
    const TokenBatch tokens = m.tokenizer->encode_batch(opt.prompts);
    const Tensor text = m.t5->forward(tokens.ids, tokens.mask, tokens.batch, tokens.length, &impl_->pool);
    projected = m.decoder->project_text(text, tokens.mask, &impl_->pool);
    mask = tokens.mask;
    req.text = &projected;
    req.text_mask = &mask;
    t.text_encode_s = sw.seconds();
  }
  Stopwatch sw;
  const CodeGenResult codes = generate_codes(*m.decoder, req, &impl_->pool);
  t.decode_s = sw.seconds();
  t.decode_steps = max_length - 1;
  result = decode_codes(codes.codes, batch, codes.frames);
  t.audio_decode_s = result.timings.audio_decode_s;
  result.timings = t;
  return result;
}

void write_audio_file(const std::string& path, const GenerationResult& r, int index, SampleFormat format) {
  if (index < 0 || index >= r.batch) fail(ErrorCode::kInvalidArgument, "batch index out of range");
  write_wav(path, r.audio.data() + static_cast<size_t>(index) * r.channels * r.samples, r.channels,
            r.samples, r.sample_rate,
            format == SampleFormat::kPcm16 ? WavFormat::kPcm16 : WavFormat::kFloat32);
}

}  // namespace musicgen
