#include "models/encodec.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "kernels/ops.h"

namespace musicgen {
namespace {

// Where a layer's tensors live and its hyper-parameters, derived from the config exactly as HF
// EncodecEncoder / EncodecDecoder build their ModuleLists (ELUs take indices without weights).
struct ConvSite {
  std::string path;  // e.g. "audio_encoder.decoder.layers.3"
  int in = 0, out = 0, kernel = 1, stride = 1, dilation = 1;
  bool transpose = false;
};
struct ResSite {
  ConvSite conv1, conv2;
};
struct LstmSite {
  std::string path;
  int dim = 0, layers = 0;
};
struct EncoderStageSite {
  std::vector<ResSite> res;
  ConvSite down;
};
struct DecoderStageSite {
  ConvSite up;
  std::vector<ResSite> res;
};
struct CodecLayout {
  ConvSite enc_first;
  std::vector<EncoderStageSite> enc_stages;
  LstmSite enc_lstm;
  ConvSite enc_last;
  ConvSite dec_first;
  LstmSite dec_lstm;
  std::vector<DecoderStageSite> dec_stages;
  ConvSite dec_last;
};

void check_config(const EncodecConfig& c) {
  auto bad = [](const std::string& what) {
    fail(ErrorCode::kInvalidModel, "audio_encoder config: " + what + "; fix config.json");
  };
  if (c.audio_channels != 1) bad("audio_channels must be 1");
  if (c.upsampling_ratios.empty()) bad("upsampling_ratios is empty");
  for (int r : c.upsampling_ratios)
    if (r <= 0) bad("upsampling_ratios has a non-positive ratio");
  if (c.num_filters <= 0 || c.hidden_size <= 0 || c.kernel_size <= 0 || c.last_kernel_size <= 0 ||
      c.residual_kernel_size <= 0 || c.dilation_growth_rate <= 0 || c.compress <= 0 ||
      c.num_lstm_layers <= 0 || c.num_residual_layers < 0 || c.codebook_size <= 0 ||
      c.num_quantizers <= 0)
    bad("sizes must be positive");
  if (c.codebook_dim != c.hidden_size) bad("codebook_dim differs from hidden_size");
  // HF EncodecResnetBlock: hidden = dim // compress (any compress; 0 channels cannot be computed).
  if (c.num_filters / c.compress < 1) bad("compress exceeds num_filters (residual width 0)");
  if (c.use_causal_conv || c.normalize || c.use_conv_shortcut || c.pad_mode != "reflect")
    bad("only the non-causal, reflect-padded codec without normalisation is supported");
}

CodecLayout make_layout(const EncodecConfig& c, const std::string& prefix) {
  check_config(c);
  CodecLayout lay;
  auto res_site = [&](const std::string& path, int dim, int dilation) {
    ResSite r;
    r.conv1 = {path + ".block.1", dim,  dim / c.compress, c.residual_kernel_size, 1,
               dilation,          false};
    r.conv2 = {path + ".block.3", dim / c.compress, dim, 1, 1, 1, false};
    return r;
  };
  auto pow_int = [](int base, int e) {
    int v = 1;
    for (int i = 0; i < e; ++i) v *= base;
    return v;
  };

  // Encoder: Conv → per ratio (reversed): res blocks, ELU, strided Conv → LSTM, ELU, Conv.
  {
    const std::string p = prefix + "encoder.layers.";
    int n = 0;
    lay.enc_first = {
        p + std::to_string(n++), c.audio_channels, c.num_filters, c.kernel_size, 1, 1, false};
    int scaling = 1;
    for (auto it = c.upsampling_ratios.rbegin(); it != c.upsampling_ratios.rend(); ++it) {
      const int ratio = *it, dim = scaling * c.num_filters;
      EncoderStageSite stage;
      for (int j = 0; j < c.num_residual_layers; ++j)
        stage.res.push_back(
            res_site(p + std::to_string(n++), dim, pow_int(c.dilation_growth_rate, j)));
      ++n;  // ELU
      stage.down = {p + std::to_string(n++), dim, 2 * dim, 2 * ratio, ratio, 1, false};
      lay.enc_stages.push_back(std::move(stage));
      scaling *= 2;
    }
    lay.enc_lstm = {p + std::to_string(n++) + ".lstm", scaling * c.num_filters, c.num_lstm_layers};
    ++n;  // ELU
    lay.enc_last = {p + std::to_string(n++),
                    scaling * c.num_filters,
                    c.hidden_size,
                    c.last_kernel_size,
                    1,
                    1,
                    false};
  }
  // Decoder: Conv → LSTM → per ratio: ELU, ConvTranspose, res blocks → ELU, Conv.
  {
    const std::string p = prefix + "decoder.layers.";
    int n = 0;
    int scaling = pow_int(2, static_cast<int>(c.upsampling_ratios.size()));
    lay.dec_first = {p + std::to_string(n++),
                     c.hidden_size,
                     scaling * c.num_filters,
                     c.kernel_size,
                     1,
                     1,
                     false};
    lay.dec_lstm = {p + std::to_string(n++) + ".lstm", scaling * c.num_filters, c.num_lstm_layers};
    for (int ratio : c.upsampling_ratios) {
      const int dim = scaling * c.num_filters;
      DecoderStageSite stage;
      ++n;  // ELU
      stage.up = {p + std::to_string(n++), dim, dim / 2, 2 * ratio, ratio, 1, true};
      for (int j = 0; j < c.num_residual_layers; ++j)
        stage.res.push_back(
            res_site(p + std::to_string(n++), dim / 2, pow_int(c.dilation_growth_rate, j)));
      lay.dec_stages.push_back(std::move(stage));
      scaling /= 2;
    }
    ++n;  // ELU
    lay.dec_last = {
        p + std::to_string(n++), c.num_filters, c.audio_channels, c.last_kernel_size, 1, 1, false};
  }
  return lay;
}

std::vector<std::string> g_names(const ConvSite& s) {
  return {s.path + ".conv.weight_g", s.path + ".conv.parametrizations.weight.original0"};
}
std::vector<std::string> v_names(const ConvSite& s) {
  return {s.path + ".conv.weight_v", s.path + ".conv.parametrizations.weight.original1"};
}
// g is [dim0, 1, 1] and v [dim0, ·, k] with dim0 = out for Conv1d, in for ConvTranspose1d.
Shape v_shape(const ConvSite& s) {
  return s.transpose ? Shape{s.in, s.out, s.kernel} : Shape{s.out, s.in, s.kernel};
}

void add_conv_specs(const ConvSite& s, std::vector<TensorSpec>* specs) {
  const Shape v = v_shape(s);
  specs->push_back({g_names(s), {v[0], 1, 1}});
  specs->push_back({v_names(s), v});
  specs->push_back({{s.path + ".conv.bias"}, {s.out}});
}
void add_lstm_specs(const LstmSite& s, std::vector<TensorSpec>* specs) {
  for (int l = 0; l < s.layers; ++l) {
    const std::string sfx = "_l" + std::to_string(l);
    specs->push_back({{s.path + ".weight_ih" + sfx}, {4 * s.dim, s.dim}});
    specs->push_back({{s.path + ".weight_hh" + sfx}, {4 * s.dim, s.dim}});
    specs->push_back({{s.path + ".bias_ih" + sfx}, {4 * s.dim}});
    specs->push_back({{s.path + ".bias_hh" + sfx}, {4 * s.dim}});
  }
}

ConstTensor load(const TensorStore& store, const std::vector<std::string>& names) {
  const TensorInfo* info = store.find_any(names);
  if (info == nullptr)
    fail(ErrorCode::kInvalidModel, "checkpoint " + store.source() + " lacks " + names.front() +
                                       "; re-download the checkpoint");
  return TensorStore::to_f32(*info);
}

std::vector<float> copy_of(const ConstTensor& t) {
  return std::vector<float>(t.data, t.data + t.numel());
}

// Weight norm, folded: W = v · (g / ‖v‖) with one norm per index of dim 0 (PyTorch's
// _weight_norm with dim = 0).
std::vector<float> fold_weight_norm(const ConstTensor& g, const ConstTensor& v) {
  const int64_t rows = v.dim(0), per_row = v.numel() / rows;
  std::vector<float> w(static_cast<size_t>(v.numel()));
  for (int64_t r = 0; r < rows; ++r) {
    const float* vr = v.data + r * per_row;
    double sq = 0.0;
    for (int64_t i = 0; i < per_row; ++i) sq += static_cast<double>(vr[i]) * vr[i];
    const float scale = g.data[r] / static_cast<float>(std::sqrt(sq));
    for (int64_t i = 0; i < per_row; ++i) w[r * per_row + i] = vr[i] * scale;
  }
  return w;
}

nn::Conv1d load_conv(const TensorStore& store, const ConvSite& s) {
  std::vector<float> w = fold_weight_norm(load(store, g_names(s)), load(store, v_names(s)));
  return nn::Conv1d(w, copy_of(load(store, {s.path + ".conv.bias"})), s.in, s.out, s.kernel,
                    s.stride, s.dilation);
}
nn::ConvTranspose1d load_conv_transpose(const TensorStore& store, const ConvSite& s) {
  std::vector<float> w = fold_weight_norm(load(store, g_names(s)), load(store, v_names(s)));
  return nn::ConvTranspose1d(w, copy_of(load(store, {s.path + ".conv.bias"})), s.in, s.out,
                             s.kernel, s.stride);
}
nn::Lstm load_lstm(const TensorStore& store, const LstmSite& s) {
  std::vector<nn::LstmLayerWeights> layers;
  for (int l = 0; l < s.layers; ++l) {
    const std::string sfx = "_l" + std::to_string(l);
    nn::LstmLayerWeights w;
    w.w_ih = copy_of(load(store, {s.path + ".weight_ih" + sfx}));
    w.w_hh = copy_of(load(store, {s.path + ".weight_hh" + sfx}));
    w.b_ih = copy_of(load(store, {s.path + ".bias_ih" + sfx}));
    w.b_hh = copy_of(load(store, {s.path + ".bias_hh" + sfx}));
    layers.push_back(std::move(w));
  }
  return nn::Lstm(s.dim, s.dim, std::move(layers));
}

// [B, R, Cc] ↔ [B, Cc, R] (PyTorch channel-major ↔ time-major).
Tensor transpose_last2(const float* x, int64_t batch, int64_t rows, int64_t cols) {
  Tensor y({batch, cols, rows});
  for (int64_t b = 0; b < batch; ++b) {
    const float* xb = x + b * rows * cols;
    float* yb = y.ptr() + b * rows * cols;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) yb[c * rows + r] = xb[r * cols + c];
  }
  return y;
}

}  // namespace

std::vector<TensorSpec> EncodecModel::tensor_specs(const EncodecConfig& cfg,
                                                   const std::string& prefix) {
  const CodecLayout lay = make_layout(cfg, prefix);
  std::vector<TensorSpec> specs;
  add_conv_specs(lay.enc_first, &specs);
  for (const EncoderStageSite& st : lay.enc_stages) {
    for (const ResSite& r : st.res) {
      add_conv_specs(r.conv1, &specs);
      add_conv_specs(r.conv2, &specs);
    }
    add_conv_specs(st.down, &specs);
  }
  add_lstm_specs(lay.enc_lstm, &specs);
  add_conv_specs(lay.enc_last, &specs);
  add_conv_specs(lay.dec_first, &specs);
  add_lstm_specs(lay.dec_lstm, &specs);
  for (const DecoderStageSite& st : lay.dec_stages) {
    add_conv_specs(st.up, &specs);
    for (const ResSite& r : st.res) {
      add_conv_specs(r.conv1, &specs);
      add_conv_specs(r.conv2, &specs);
    }
  }
  add_conv_specs(lay.dec_last, &specs);
  for (int q = 0; q < cfg.num_quantizers; ++q)
    specs.push_back({{prefix + "quantizer.layers." + std::to_string(q) + ".codebook.embed"},
                     {cfg.codebook_size, cfg.codebook_dim}});
  return specs;
}

EncodecModel::EncodecModel(const EncodecConfig& cfg, const TensorStore& store,
                           const std::string& prefix)
    : cfg_(cfg), hop_(cfg.hop_length()) {
  validate_tensors(store, tensor_specs(cfg, prefix));
  const CodecLayout lay = make_layout(cfg, prefix);
  auto load_res = [&](const ResSite& r) {
    return ResBlock{load_conv(store, r.conv1), load_conv(store, r.conv2)};
  };

  enc_first_ = load_conv(store, lay.enc_first);
  for (const EncoderStageSite& st : lay.enc_stages) {
    EncoderStage stage;
    for (const ResSite& r : st.res) stage.res.push_back(load_res(r));
    stage.down = load_conv(store, st.down);
    enc_stages_.push_back(std::move(stage));
  }
  enc_lstm_ = load_lstm(store, lay.enc_lstm);
  enc_last_ = load_conv(store, lay.enc_last);

  dec_first_ = load_conv(store, lay.dec_first);
  dec_lstm_ = load_lstm(store, lay.dec_lstm);
  for (const DecoderStageSite& st : lay.dec_stages) {
    DecoderStage stage;
    stage.up = load_conv_transpose(store, st.up);
    for (const ResSite& r : st.res) stage.res.push_back(load_res(r));
    dec_stages_.push_back(std::move(stage));
  }
  dec_last_ = load_conv(store, lay.dec_last);

  const int64_t dim = cfg_.codebook_dim;
  for (int q = 0; q < cfg_.num_quantizers; ++q) {
    std::vector<float> embed = copy_of(
        load(store, {prefix + "quantizer.layers." + std::to_string(q) + ".codebook.embed"}));
    // ‖e_j‖², as the reference's embed.pow(2).sum(0), in float.
    std::vector<float> sq(cfg_.codebook_size);
    for (int j = 0; j < cfg_.codebook_size; ++j) {
      float s = 0.0f;
      for (int64_t d = 0; d < dim; ++d) s += embed[j * dim + d] * embed[j * dim + d];
      sq[j] = s;
    }
    codebooks_.push_back(std::move(embed));
    codebook_sqnorm_.push_back(std::move(sq));
  }
  // Every tensor above was copied (weight norm folded, weights packed): the checkpoint's pages
  // are not read again, so they leave this process's resident set (57 MB for musicgen's codec).
  for (const std::string& name : store.names()) {
    const TensorInfo* info = store.find(name);
    if (name.rfind(prefix, 0) == 0 && info->file) MappedFile::release(info->data, info->nbytes);
  }
}

// ---------------------------------------------------------------------------------------------
// Building blocks

Tensor EncodecModel::res_block(const ResBlock& block, const Tensor& x, ThreadPool* pool) {
  const int64_t batch = x.shape[0], steps = x.shape[1], dim = x.shape[2];
  const int64_t hidden = block.conv1.out_channels();
  Tensor y({batch, steps, dim});  // [B, T, dim]
  for (int64_t b = 0; b < batch; ++b) {
    const float* xb = x.ptr() + b * steps * dim;
    float* yb = y.ptr() + b * steps * dim;
    nn::parallel_chunks(
        pool, steps, block.conv1.chunk_rows(),
        [&](int64_t t0, int64_t t1, std::vector<float>* scratch) {
          const int64_t rows = t1 - t0;
          std::vector<float> h(static_cast<size_t>(rows * hidden));  // [rows, dim/c]
          std::vector<float> r(static_cast<size_t>(rows * dim));     // [rows, dim]
          block.conv1.forward_rows(xb, steps, t0, t1, h.data(), nn::PreActivation::kElu, scratch);
          nn::elu(h.data(), h.data(), rows * hidden);
          // conv2 has kernel 1 (no padding): the chunk alone is exact.
          block.conv2.forward_rows(h.data(), rows, 0, rows, r.data(), nn::PreActivation::kNone,
                                   scratch);
          // x + block(x), the reference's addition order.
          const float* xr = xb + t0 * dim;
          float* yr = yb + t0 * dim;
          for (int64_t i = 0; i < rows * dim; ++i) yr[i] = xr[i] + r[i];
        });
  }
  return y;
}

void EncodecModel::lstm_skip(const nn::Lstm& lstm, Tensor& x, ThreadPool* pool) {
  Tensor y = lstm.forward(x, pool);  // [B, T, C]
  kernels::add(y.ptr(), x.ptr(), y.numel());
  x = std::move(y);
}

Tensor EncodecModel::decoder_forward(Tensor z, ThreadPool* pool, int64_t chunk_frames) const {
  Tensor x = dec_first_.forward(z, pool);  // [B, T, 2^n·F]
  lstm_skip(dec_lstm_, x, pool);
  const int64_t batch = x.shape[0], frames = x.shape[1], ch = x.shape[2];
  if (chunk_frames <= 0 || frames <= chunk_frames + 2 * kDecodeHaloFrames)
    return decoder_convs(std::move(x), pool);
  const int64_t hop = hop_;
  Tensor audio({batch, frames * hop, 1});
  for (int64_t a = 0; a < frames; a += chunk_frames) {
    const int64_t b = std::min(frames, a + chunk_frames);
    const int64_t a0 = std::max<int64_t>(0, a - kDecodeHaloFrames);
    const int64_t b0 = std::min(frames, b + kDecodeHaloFrames);
    Tensor part({batch, b0 - a0, ch});
    for (int64_t i = 0; i < batch; ++i)
      std::copy_n(x.ptr() + (i * frames + a0) * ch, (b0 - a0) * ch, part.ptr() + i * (b0 - a0) * ch);
    const Tensor y = decoder_convs(std::move(part), pool);  // [B, (b0 − a0)·hop, 1]
    for (int64_t i = 0; i < batch; ++i)
      std::copy_n(y.ptr() + i * (b0 - a0) * hop + (a - a0) * hop, (b - a) * hop,
                  audio.ptr() + i * frames * hop + a * hop);
  }
  return audio;
}

Tensor EncodecModel::decoder_convs(Tensor x, ThreadPool* pool) const {
  for (const DecoderStage& stage : dec_stages_) {
    x = stage.up.forward(x, pool, nn::PreActivation::kElu);  // [B, T·r, C/2]
    for (const ResBlock& r : stage.res) x = res_block(r, x, pool);
  }
  return dec_last_.forward(x, pool, nn::PreActivation::kElu);  // [B, T·hop, 1]
}

Tensor EncodecModel::encoder_forward(Tensor audio, ThreadPool* pool) const {
  Tensor x = enc_first_.forward(audio, pool);  // [B, L, F]
  for (const EncoderStage& stage : enc_stages_) {
    for (const ResBlock& r : stage.res) x = res_block(r, x, pool);
    x = stage.down.forward(x, pool, nn::PreActivation::kElu);  // [B, ceil(L/r), 2C]
  }
  lstm_skip(enc_lstm_, x, pool);
  return enc_last_.forward(x, pool, nn::PreActivation::kElu);  // [B, T, hidden]
}

// ---------------------------------------------------------------------------------------------
// Decode

void EncodecModel::check_codes(const std::vector<int32_t>& codes, int batch, int n_q,
                               int frames) const {
  if (batch < 1 || frames < 1)
    fail(ErrorCode::kInvalidArgument, "EnCodec decode: batch and frames must be at least 1, got " +
                                          std::to_string(batch) + " and " + std::to_string(frames));
  if (n_q < 1 || n_q > cfg_.num_quantizers)
    fail(ErrorCode::kInvalidArgument, "EnCodec decode: " + std::to_string(n_q) +
                                          " codebooks given, the codec has 1 to " +
                                          std::to_string(cfg_.num_quantizers));
  const size_t expected = static_cast<size_t>(batch) * n_q * frames;
  if (codes.size() != expected)
    fail(ErrorCode::kInvalidArgument,
         "EnCodec decode: " + std::to_string(codes.size()) +
             " codes given, expected batch·n_q·frames = " + std::to_string(expected));
  for (size_t i = 0; i < codes.size(); ++i)
    if (codes[i] < 0 || codes[i] >= cfg_.codebook_size)
      fail(ErrorCode::kInvalidArgument,
           "EnCodec decode: code " + std::to_string(codes[i]) + " at index " + std::to_string(i) +
               " is outside the codebook [0, " + std::to_string(cfg_.codebook_size) +
               "); strip special tokens (e.g. the pad/BOS id) before decoding");
}

Tensor EncodecModel::quantizer_decode(const std::vector<int32_t>& codes, int batch, int n_q,
                                      int frames) const {
  check_codes(codes, batch, n_q, frames);
  const int64_t dim = cfg_.codebook_dim;
  Tensor z({batch, frames, dim});  // [B, T, D], time-major
  for (int b = 0; b < batch; ++b)
    for (int q = 0; q < n_q; ++q)
      for (int t = 0; t < frames; ++t) {
        const int32_t code = codes[(static_cast<size_t>(b) * n_q + q) * frames + t];
        kernels::add(z.ptr() + (static_cast<int64_t>(b) * frames + t) * dim,
                     codebooks_[q].data() + code * dim, dim);
      }
  return transpose_last2(z.ptr(), batch, frames, dim);  // [B, D, T]
}

Tensor EncodecModel::decode(const std::vector<int32_t>& codes, int batch, int n_q, int frames,
                            ThreadPool* pool) const {
  Tensor latent = quantizer_decode(codes, batch, n_q, frames);  // [B, D, T]
  return decode_latent(latent, pool);
}

Tensor EncodecModel::decode_latent(const Tensor& latent, ThreadPool* pool,
                                  int64_t chunk_frames) const {
  if (latent.shape.size() != 3 || latent.shape[1] != cfg_.hidden_size || latent.shape[0] < 1 ||
      latent.shape[2] < 1)
    fail(ErrorCode::kInvalidArgument, "EnCodec decode: expected a latent [B, " +
                                          std::to_string(cfg_.hidden_size) + ", T], got " +
                                          shape_str(latent.shape));
  const int64_t batch = latent.shape[0], frames = latent.shape[2];
  Tensor z = transpose_last2(latent.ptr(), batch, cfg_.hidden_size, frames);  // [B, T, D]
  Tensor audio = decoder_forward(std::move(z), pool, chunk_frames);           // [B, T·hop, 1]
  audio.reshape({batch, 1, audio.shape[1]});  // one channel: same memory
  return audio;
}

CodecDecoderSpec EncodecModel::decoder_spec() const {
  CodecDecoderSpec s;
  s.hidden = cfg_.hidden_size;
  s.hop = hop_;
  s.codebook_size = cfg_.codebook_size;
  for (const std::vector<float>& cb : codebooks_)
    s.codebooks.push_back(ConstTensor{{cfg_.codebook_size, cfg_.codebook_dim}, cb.data(), {}});
  s.first = &dec_first_;
  s.lstm = &dec_lstm_;
  for (const DecoderStage& stage : dec_stages_) {
    CodecUpStageSpec st;
    st.up = &stage.up;
    for (const ResBlock& r : stage.res) st.res.push_back({&r.conv1, &r.conv2});
    s.stages.push_back(std::move(st));
  }
  s.last = &dec_last_;
  s.chunk_frames = kDecodeChunkFrames;
  s.halo_frames = kDecodeHaloFrames;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Encode

Tensor EncodecModel::encode_latent(const float* audio, int batch, int64_t samples,
                                   ThreadPool* pool) const {
  if (batch < 1 || samples < 1)
    fail(ErrorCode::kInvalidArgument, "EnCodec encode: the audio is empty (batch " +
                                          std::to_string(batch) + ", samples " +
                                          std::to_string(samples) + "); pass at least one sample");
  Tensor x({batch, samples, 1});  // [B, L, 1], time-major mono
  std::copy(audio, audio + batch * samples, x.ptr());
  Tensor z = encoder_forward(std::move(x), pool);                  // [B, T, D]
  return transpose_last2(z.ptr(), batch, z.shape[1], z.shape[2]);  // [B, D, T]
}

std::vector<int32_t> EncodecModel::quantizer_encode(const Tensor& latent, ThreadPool* pool) const {
  if (latent.shape.size() != 3 || latent.shape[1] != cfg_.codebook_dim)
    fail(ErrorCode::kInvalidArgument, "EnCodec encode: expected a latent [B, " +
                                          std::to_string(cfg_.codebook_dim) + ", T], got " +
                                          shape_str(latent.shape));
  const int64_t batch = latent.shape[0], frames = latent.shape[2], dim = cfg_.codebook_dim;
  const int64_t rows = batch * frames, vocab = cfg_.codebook_size;
  const int n_q = cfg_.num_quantizers;
  Tensor residual = transpose_last2(latent.ptr(), batch, dim, frames);  // [B, T, D]
  std::vector<float> dots(static_cast<size_t>(rows * vocab));           // [B·T, V]
  std::vector<int32_t> codes(static_cast<size_t>(batch * n_q * frames));
  for (int q = 0; q < n_q; ++q) {
    const float* embed = codebooks_[q].data();
    const float* esq = codebook_sqnorm_[q].data();
    nn::gemm_nt(residual.ptr(), dim, embed, nullptr, dots.data(), vocab, rows, vocab, dim, pool);
    for (int64_t r = 0; r < rows; ++r) {
      float* x = residual.ptr() + r * dim;
      float xsq = 0.0f;
      for (int64_t d = 0; d < dim; ++d) xsq += x[d] * x[d];
      // dist_j = ‖x‖² − 2·x·e_j + ‖e_j‖² (the reference maximises its negation): first minimum.
      const float* dr = dots.data() + r * vocab;
      int64_t best = 0;
      float best_dist = std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < vocab; ++j) {
        const float dist = (xsq - 2.0f * dr[j]) + esq[j];
        if (dist < best_dist) {
          best_dist = dist;
          best = j;
        }
      }
      const int64_t b = r / frames, t = r % frames;
      codes[(b * n_q + q) * frames + t] = static_cast<int32_t>(best);
      const float* e = embed + best * dim;
      for (int64_t d = 0; d < dim; ++d) x[d] -= e[d];
    }
  }
  return codes;
}

std::vector<int32_t> EncodecModel::encode(const float* audio, int batch, int64_t samples,
                                          ThreadPool* pool, int* frames_out) const {
  Tensor latent = encode_latent(audio, batch, samples, pool);  // [B, D, T]
  if (frames_out != nullptr) *frames_out = static_cast<int>(latent.shape[2]);
  return quantizer_encode(latent, pool);
}

}  // namespace musicgen
