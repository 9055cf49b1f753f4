#include "gpu/vulkan_decoder.h"

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "core/error.h"
#include "kernels/quant.h"

namespace musicgen::gpu {

namespace {

// Push-constant blocks, member for member as the shaders declare them (gpu/shaders/README.md).
struct MatvecPush {
  uint32_t m, n, k, x_off, ldx, y_off, ldy, flags, kp, nbp;
};
constexpr uint32_t kBias = 1, kResidual = 2, kGelu = 4;
constexpr uint32_t kMatvecColumns = 4;  // output columns per workgroup
struct NormPush {
  uint32_t rows, n, x_off, ldx, y_off, ldy;
  float eps;
};
struct EmbedPush {
  uint32_t batch, codebooks, v1, hidden, prefix_len;
};
struct SplitPush {
  uint32_t hidden, head_dim, ldq, q_off, k_off, v_off, capacity, max_splits;
  float scale;
};
struct CombinePush {
  uint32_t head_dim, max_splits, out_off, ldo;
};
constexpr uint32_t kSplitKeys = 64;  // keys per workgroup of attn_split.comp
struct AttentionPush {
  uint32_t hidden, head_dim, q_off, ldq, kv_rowstride, kv_batchstride, causal, nkeys, has_bias;
  float scale;
  uint32_t out_off, ldo, scr_stride;
};
constexpr uint32_t kGroup = 256;
constexpr uint32_t kMaxFusedLnRows = 4;

uint32_t groups(int64_t n, int64_t per) { return static_cast<uint32_t>((n + per - 1) / per); }

}  // namespace

// A Linear layer on the device: its weight bytes in the stored type, scales, bias.
struct GpuLinear {
  std::string shader;
  uint32_t n = 0, k = 0, kp = 0, nbp = 0;
  bool has_bias = false;
  Buffer w, s, bias;
};

struct GpuNorm {
  Buffer gamma, beta;
};

struct GpuLayer {
  GpuNorm self_norm, cross_norm, ffn_norm;
  GpuLinear qkv, out, cross_q, cross_k, cross_v, cross_out, fc1, fc2;
  bool cross = false;
};

struct VulkanDecoder::Impl {
  Context* ctx = nullptr;
  int H = 0, heads = 0, D = 0, F = 0, V = 0, K = 0;
  float eps = 1e-5f, scale = 1.0f;
  bool kv_half = false;
  Buffer embed;  // [K][V+1][H]
  std::vector<GpuLayer> layers;
  GpuNorm final_norm;
  std::vector<GpuLinear> heads_;
  std::function<void(int, int, float*)> positions;
  Buffer dummy;  // bound where a shader's binding is unused

  // Concatenates the rows of several Linear layers of one storage type into one device matrix.
  GpuLinear upload_linear(const std::vector<const Linear*>& parts, size_t* bytes);
  GpuNorm upload_norm(const Norm& n);
  void destroy_linear(GpuLinear& l);
  ~Impl();
};

GpuLinear VulkanDecoder::Impl::upload_linear(const std::vector<const Linear*>& parts, size_t* bytes) {
  GpuLinear g;
  const Linear& first = *parts.front();
  g.k = static_cast<uint32_t>(first.in_features());
  std::vector<uint8_t> data, scales;
  std::vector<float> bias;
  // float32 storage kept as exact IEEE half (LinearLoadOptions::exact_f16) goes to the f16
  // shader when every fused part is half; a mix is uploaded as float32 (the halves widened,
  // exactly).
  bool all_half = first.storage == WeightStorage::kF32;
  for (const Linear* l : parts) all_half = all_half && l->weight_f16 != nullptr;
  for (const Linear* l : parts) {
    if (l->storage != first.storage || l->in_features() != first.in_features())
      fail(ErrorCode::kDevice, "internal: fused layers differ in type or width");
    const int64_t n = l->out_features(), k = l->in_features();
    g.n += static_cast<uint32_t>(n);
    if (l->storage == WeightStorage::kF32 && all_half) {
      const auto* p = reinterpret_cast<const uint8_t*>(l->weight_f16);
      data.insert(data.end(), p, p + n * k * 2);
    } else if (l->storage == WeightStorage::kF32 && l->weight_f16 != nullptr) {
      std::vector<float> wide(static_cast<size_t>(n * k));
      for (size_t i = 0; i < wide.size(); ++i) wide[i] = f16_to_f32(l->weight_f16[i]);
      const auto* p = reinterpret_cast<const uint8_t*>(wide.data());
      data.insert(data.end(), p, p + n * k * 4);
    } else if (l->storage == WeightStorage::kF32) {
      const auto* p = reinterpret_cast<const uint8_t*>(l->weight.data);
      data.insert(data.end(), p, p + n * k * 4);
    } else {
      const kernels::QMatrix& q = l->qweight;
      const size_t db = kernels::q_data_bytes(q.type, n, k), sb = kernels::q_scale_bytes(q.type, n, k);
      data.insert(data.end(), q.data, q.data + db);
      if (q.scales != nullptr) {
        const auto* sp = reinterpret_cast<const uint8_t*>(q.scales);
        scales.insert(scales.end(), sp, sp + sb);
      }
    }
    if (!l->bias.empty()) {
      g.has_bias = true;
      bias.insert(bias.end(), l->bias.data, l->bias.data + n);
    } else {
      bias.insert(bias.end(), n, 0.0f);
    }
  }
  switch (first.storage) {
    case WeightStorage::kF32: g.shader = all_half ? "matvec_f16" : "matvec_f32"; break;
    case WeightStorage::kBF16: g.shader = "matvec_bf16"; break;
    case WeightStorage::kQ8: g.shader = "matvec_q8"; break;
    case WeightStorage::kQ4: g.shader = "matvec_q4"; break;
    default: fail(ErrorCode::kUnsupported, "this weight type has no Vulkan kernel yet");
  }
  g.kp = static_cast<uint32_t>(kernels::q_padded_k(g.k));
  g.nbp = static_cast<uint32_t>(kernels::q_scale_stride(g.k));
  g.w = ctx->create_buffer(data.size(), false);
  ctx->upload(g.w, data.data(), data.size());
  if (!scales.empty()) {
    g.s = ctx->create_buffer(scales.size(), false);
    ctx->upload(g.s, scales.data(), scales.size());
  }
  if (g.has_bias) {
    g.bias = ctx->create_buffer(bias.size() * 4, false);
    ctx->upload(g.bias, bias.data(), bias.size() * 4);
  }
  *bytes += data.size() + scales.size() + (g.has_bias ? bias.size() * 4 : 0);
  return g;
}

GpuNorm VulkanDecoder::Impl::upload_norm(const Norm& n) {
  GpuNorm g;
  const size_t bytes = static_cast<size_t>(n.weight.numel()) * 4;
  g.gamma = ctx->create_buffer(bytes, false);
  ctx->upload(g.gamma, n.weight.data, bytes);
  g.beta = ctx->create_buffer(bytes, false);
  if (n.bias.empty()) {
    ctx->fill_zero(g.beta);
  } else {
    ctx->upload(g.beta, n.bias.data, bytes);
  }
  return g;
}

void VulkanDecoder::Impl::destroy_linear(GpuLinear& l) {
  ctx->destroy(l.w);
  ctx->destroy(l.s);
  ctx->destroy(l.bias);
}

VulkanDecoder::Impl::~Impl() {
  if (ctx == nullptr) return;
  ctx->destroy(embed);
  ctx->destroy(dummy);
  auto norm = [&](GpuNorm& n) {
    ctx->destroy(n.gamma);
    ctx->destroy(n.beta);
  };
  for (GpuLayer& l : layers) {
    norm(l.self_norm);
    norm(l.cross_norm);
    norm(l.ffn_norm);
    for (GpuLinear* g : {&l.qkv, &l.out, &l.cross_q, &l.cross_k, &l.cross_v, &l.cross_out, &l.fc1, &l.fc2})
      destroy_linear(*g);
  }
  norm(final_norm);
  for (GpuLinear& h : heads_) destroy_linear(h);
}

VulkanDecoder::VulkanDecoder(std::shared_ptr<Context> ctx, const DecoderSpec& spec)
    : ctx_(std::move(ctx)), impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.ctx = ctx_.get();
  m.H = spec.hidden;
  m.heads = spec.heads;
  m.D = spec.head_dim;
  m.F = spec.ffn;
  m.V = spec.vocab;
  m.K = spec.codebooks;
  m.eps = spec.norm_eps;
  m.scale = spec.attention_scale;
  m.kv_half = spec.kv_half;
  m.positions = spec.positions;
  if (m.D > 128 || m.D % 2 != 0)
    fail(ErrorCode::kUnsupported, "the Vulkan backend supports even head widths up to 128 (this "
                                  "model has " + std::to_string(m.D) + "); use --device cpu");
  m.dummy = ctx_->create_buffer(16, false);
  ctx_->fill_zero(m.dummy);
  const size_t table = static_cast<size_t>(m.V + 1) * m.H;
  m.embed = ctx_->create_buffer(table * m.K * 4, false);
  for (int k = 0; k < m.K; ++k)
    ctx_->upload(m.embed, spec.embed[k].data, table * 4, table * 4 * k);
  size_t bytes = table * m.K * 4;
  for (const DecoderLayerSpec& ls : spec.layers) {
    GpuLayer g;
    g.self_norm = m.upload_norm(*ls.self_norm);
    g.qkv = m.upload_linear({ls.q, ls.k, ls.v}, &bytes);
    g.out = m.upload_linear({ls.out}, &bytes);
    g.cross = ls.cross_q != nullptr;
    if (g.cross) {
      g.cross_norm = m.upload_norm(*ls.cross_norm);
      g.cross_q = m.upload_linear({ls.cross_q}, &bytes);
      g.cross_k = m.upload_linear({ls.cross_k}, &bytes);
      g.cross_v = m.upload_linear({ls.cross_v}, &bytes);
      g.cross_out = m.upload_linear({ls.cross_out}, &bytes);
    }
    g.ffn_norm = m.upload_norm(*ls.ffn_norm);
    g.fc1 = m.upload_linear({ls.fc1}, &bytes);
    g.fc2 = m.upload_linear({ls.fc2}, &bytes);
    m.layers.push_back(std::move(g));
  }
  m.final_norm = m.upload_norm(*spec.final_norm);
  for (const Linear* h : spec.lm_heads) m.heads_.push_back(m.upload_linear({h}, &bytes));
  weight_bytes_ = bytes;
}

VulkanDecoder::~VulkanDecoder() { impl_.reset(); }

namespace {

class VulkanRunner : public DecoderRunner {
 public:
  VulkanRunner(const VulkanDecoder::Impl& m, Context& ctx) : m_(m), ctx_(ctx) {
    const char* p = std::getenv("MUSICGEN_VK_PROFILE");
    profile_ = p != nullptr && *p != 0 && *p != '0' && ctx.adapter().timestamp_period_ns > 0;
  }
  ~VulkanRunner() override {
    print_profile();
    release();
  }

  void start(int batch, int capacity, const Tensor* text, const std::vector<int32_t>* mask) override;
  void step(const int32_t* tokens, int n, const float* prefix, int prefix_len,
            std::vector<float>* logits) override;

 private:
  void release();
  void record_step();
  void matvec(Recorder& r, const GpuLinear& l, const Buffer& x, uint32_t m, uint32_t x_off,
              uint32_t ldx, const Buffer& y, uint32_t y_off, uint32_t ldy, uint32_t flags);
  void print_profile() const;
  // layernorm(x) · Wᵀ into y: one fused dispatch for few rows, else a layernorm into a_ first
  // (fused_ln_ says which; the two give bitwise the same result).
  void norm_matvec(Recorder& r, const GpuNorm& n, const GpuLinear& l, const Buffer& y,
                   uint32_t y_off, uint32_t ldy, uint32_t flags, bool norm_done = false);
  void layernorm(Recorder& r, const GpuNorm& n, const Buffer& x, const Buffer& y, uint32_t rows);

  const VulkanDecoder::Impl& m_;
  Context& ctx_;
  int B_ = 0, cap_ = 0, S_ = 0, length_ = 0, prefix_len_ = 0;
  bool started_ = false;
  std::vector<Buffer*> owned_;
  Buffer x_, a_, qkv_, att_, cq_, ff_, logits_, logits_host_, params_, tokens_, pos_, prefix_,
      bias_, scratch_, parts_;
  uint32_t max_splits_ = 0;
  bool fused_ln_ = false;  // layernorms fused into the next product (few rows)
  std::vector<Buffer> kc_, vc_, ck_, cv_;
  std::unique_ptr<Recorder> rec_;
  VkCommandBuffer step_cb_ = VK_NULL_HANDLE;
  // MUSICGEN_VK_PROFILE=1: GPU time per kind of dispatch, and the host's time per step.
  bool profile_ = false;
  std::map<std::string, double> gpu_ns_;
  double host_step_s_ = 0, submit_s_ = 0;
  long steps_run_ = 0;
};

void VulkanRunner::print_profile() const {
  if (!profile_ || steps_run_ == 0) return;
  double gpu = 0;
  for (const auto& [k, v] : gpu_ns_) gpu += v;
  std::fprintf(stderr, "vulkan profile: %ld steps, batch rows %d; per step: host %.1f us (submit+wait %.1f us), GPU busy %.1f us\n",
               steps_run_, B_, 1e6 * host_step_s_ / steps_run_, 1e6 * submit_s_ / steps_run_,
               gpu / 1e3 / steps_run_);
  for (const auto& [k, v] : gpu_ns_)
    std::fprintf(stderr, "  %-22s %9.1f us/step  %5.1f%%\n", k.c_str(), v / 1e3 / steps_run_,
                 100.0 * v / std::max(1.0, gpu));
}

void VulkanRunner::release() {
  if (step_cb_ != VK_NULL_HANDLE) ctx_.free_commands(step_cb_);
  step_cb_ = VK_NULL_HANDLE;
  rec_.reset();
  for (Buffer* b : {&x_, &a_, &qkv_, &att_, &cq_, &ff_, &logits_, &logits_host_, &params_,
                    &tokens_, &pos_, &prefix_, &bias_, &scratch_, &parts_})
    ctx_.destroy(*b);
  for (auto* v : {&kc_, &vc_, &ck_, &cv_}) {
    for (Buffer& b : *v) ctx_.destroy(b);
    v->clear();
  }
  started_ = false;
}

void VulkanRunner::matvec(Recorder& r, const GpuLinear& l, const Buffer& x, uint32_t m,
                          uint32_t x_off, uint32_t ldx, const Buffer& y, uint32_t y_off,
                          uint32_t ldy, uint32_t flags) {
  if (l.has_bias) flags |= kBias;
  const MatvecPush p{m, l.n, l.k, x_off, ldx, y_off, ldy, flags, l.kp, l.nbp};
  const Buffer* s = l.s.buffer != VK_NULL_HANDLE ? &l.s : &m_.dummy;
  const Buffer* b = l.has_bias ? &l.bias : &m_.dummy;
  r.dispatch(l.shader, {&x, &l.w, s, b, &y}, &p, sizeof(p), groups(l.n, kMatvecColumns));
}

void VulkanRunner::norm_matvec(Recorder& r, const GpuNorm& n, const GpuLinear& l,
                               const Buffer& y, uint32_t y_off, uint32_t ldy, uint32_t flags,
                               bool norm_done) {
  const uint32_t H = static_cast<uint32_t>(m_.H), B = static_cast<uint32_t>(B_);
  if (!fused_ln_) {
    if (!norm_done) {
      const std::string label = r.label();
      r.set_label("layernorm");
      layernorm(r, n, x_, a_, B);
      r.barrier();
      r.set_label(label);
    }
    matvec(r, l, a_, B, 0, H, y, y_off, ldy, flags);
    return;
  }
  if (l.has_bias) flags |= kBias;
  struct {
    MatvecPush mv;
    float eps;
  } p{{B, l.n, l.k, 0, H, y_off, ldy, flags, l.kp, l.nbp}, m_.eps};
  const Buffer* s = l.s.buffer != VK_NULL_HANDLE ? &l.s : &m_.dummy;
  const Buffer* b = l.has_bias ? &l.bias : &m_.dummy;
  r.dispatch(l.shader + "_ln", {&x_, &l.w, s, b, &y, &n.gamma, &n.beta}, &p, sizeof(p),
             groups(l.n, kMatvecColumns));
}

void VulkanRunner::layernorm(Recorder& r, const GpuNorm& n, const Buffer& x, const Buffer& y,
                             uint32_t rows) {
  const uint32_t H = static_cast<uint32_t>(m_.H);
  const NormPush p{rows, H, 0, H, 0, H, m_.eps};
  r.dispatch("layernorm", {&x, &n.gamma, &n.beta, &y}, &p, sizeof(p), rows);
}

void VulkanRunner::start(int batch, int capacity, const Tensor* text,
                         const std::vector<int32_t>* mask) {
  release();
  B_ = batch;
  cap_ = capacity;
  length_ = 0;
  S_ = text != nullptr ? static_cast<int>(text->dim(1)) : 0;
  const size_t B = batch, H = m_.H, L = m_.layers.size();
  x_ = ctx_.create_buffer(B * H * 4, false);
  a_ = ctx_.create_buffer(B * H * 4, false);
  qkv_ = ctx_.create_buffer(B * 3 * H * 4, false);
  att_ = ctx_.create_buffer(B * H * 4, false);
  cq_ = ctx_.create_buffer(B * H * 4, false);
  ff_ = ctx_.create_buffer(B * m_.F * 4, false);
  const size_t logit_bytes = B * m_.K * m_.V * 4;
  logits_ = ctx_.create_buffer(logit_bytes, false);
  logits_host_ = ctx_.create_buffer(logit_bytes, true);
  params_ = ctx_.create_buffer(16, true);
  tokens_ = ctx_.create_buffer(B * m_.K * 4, true);
  std::memset(params_.mapped, 0, 16);
  std::memset(tokens_.mapped, 0, B * m_.K * 4);
  // Position rows, computed once by the model's own function (bitwise the CPU's values).
  std::vector<float> pos(static_cast<size_t>(capacity) * H);
  m_.positions(0, capacity, pos.data());
  pos_ = ctx_.create_buffer(pos.size() * 4, false);
  ctx_.upload(pos_, pos.data(), pos.size() * 4);
  prefix_ = ctx_.create_buffer(16, false);
  const size_t kv_elem = m_.kv_half ? 2 : 4;
  for (size_t l = 0; l < L; ++l) {
    kc_.push_back(ctx_.create_buffer(B * capacity * H * kv_elem, false));
    vc_.push_back(ctx_.create_buffer(B * capacity * H * kv_elem, false));
  }
  scratch_ = ctx_.create_buffer(B * m_.heads * std::max(1, S_) * 4, false);  // cross-attention
  max_splits_ = static_cast<uint32_t>((capacity + kSplitKeys - 1) / kSplitKeys);
  parts_ = ctx_.create_buffer(B * m_.heads * max_splits_ * (m_.D + 2) * 4, false);

  // Cross-attention K/V of the text, once: [B, S, H] per layer, and the mask as a bias.
  std::vector<float> bias(std::max<size_t>(1, B * S_), 0.0f);
  bias_ = ctx_.create_buffer(bias.size() * 4, false);
  if (S_ > 0 && m_.layers.front().cross) {
    for (size_t i = 0; i < B * S_; ++i) bias[i] = (*mask)[i] == 0 ? -FLT_MAX : 0.0f;
    ctx_.upload(bias_, bias.data(), bias.size() * 4);
    Buffer txt = ctx_.create_buffer(B * S_ * H * 4, false);
    ctx_.upload(txt, text->data.data(), B * S_ * H * 4);
    Recorder r(ctx_, static_cast<uint32_t>(2 * L));
    for (size_t l = 0; l < L; ++l) {
      ck_.push_back(ctx_.create_buffer(B * S_ * H * 4, false));
      cv_.push_back(ctx_.create_buffer(B * S_ * H * 4, false));
    }
    ctx_.run_once([&](VkCommandBuffer cb) {
      r.begin(cb);
      const uint32_t rows = static_cast<uint32_t>(B * S_), h = static_cast<uint32_t>(H);
      for (size_t l = 0; l < L; ++l) {
        matvec(r, m_.layers[l].cross_k, txt, rows, 0, h, ck_[l], 0, h, 0);
        matvec(r, m_.layers[l].cross_v, txt, rows, 0, h, cv_[l], 0, h, 0);
      }
    });
    ctx_.destroy(txt);
  }
  started_ = true;
  record_step();
}

void VulkanRunner::record_step() {
  const uint32_t B = B_, H = m_.H, D = m_.D, heads = m_.heads, K = m_.K, V = m_.V;
  rec_ = std::make_unique<Recorder>(ctx_, static_cast<uint32_t>(16 * m_.layers.size() + K + 8));
  Recorder& r = *rec_;
  if (profile_) r.enable_timestamps();
  // Each workgroup of a fused product recomputes its rows' statistics: worth it for few rows.
  const char* nofuse = std::getenv("MUSICGEN_VK_NO_FUSED_LN");
  fused_ln_ = B <= kMaxFusedLnRows && !(nofuse != nullptr && *nofuse != 0 && *nofuse != '0');
  step_cb_ = ctx_.allocate_commands();
  auto lock = ctx_.recording_lock();
  ctx_.begin(step_cb_);
  r.begin(step_cb_);
  r.set_label("embed");
  const EmbedPush ep{B, K, V + 1, H, static_cast<uint32_t>(prefix_len_)};
  r.dispatch("embed", {&tokens_, &m_.embed, &pos_, &params_, &x_, &prefix_}, &ep, sizeof(ep),
             groups(H, kGroup), B);
  r.barrier();
  const std::string split = m_.kv_half ? "attn_split_f16" : "attn_split";
  const uint32_t scr = static_cast<uint32_t>(std::max(1, S_));
  for (size_t l = 0; l < m_.layers.size(); ++l) {
    const GpuLayer& L = m_.layers[l];
    r.set_label("matvec q|k|v");
    norm_matvec(r, L.self_norm, L.qkv, qkv_, 0, 3 * H, 0);
    r.barrier();
    // Self-attention split over the keys (the new K/V written to the cache on the way), then
    // the splits merged.
    r.set_label("self-attention split");
    const SplitPush sp{H, D, 3 * H, 0, H, 2 * H, static_cast<uint32_t>(cap_), max_splits_, m_.scale};
    r.dispatch(split, {&qkv_, &kc_[l], &vc_[l], &parts_, &params_}, &sp, sizeof(sp), max_splits_,
               heads, B);
    r.barrier();
    r.set_label("self-attention merge");
    const CombinePush cp{D, max_splits_, 0, H};
    r.dispatch("attn_combine", {&parts_, &att_, &params_}, &cp, sizeof(cp), heads, B);
    r.barrier();
    r.set_label("matvec out");
    matvec(r, L.out, att_, B, 0, H, x_, 0, H, kResidual);
    r.barrier();
    if (L.cross && S_ > 0) {
      r.set_label("matvec cross q");
      norm_matvec(r, L.cross_norm, L.cross_q, cq_, 0, H, 0);
      r.barrier();
      r.set_label("cross-attention");
      const AttentionPush xp{H, D, 0, H, H, static_cast<uint32_t>(S_) * H, 0,
                             static_cast<uint32_t>(S_), 1, m_.scale, 0, H, scr};
      r.dispatch("attention", {&cq_, &ck_[l], &cv_[l], &bias_, &scratch_, &att_, &params_}, &xp,
                 sizeof(xp), heads, B);
      r.barrier();
      r.set_label("matvec cross out");
      matvec(r, L.cross_out, att_, B, 0, H, x_, 0, H, kResidual);
      r.barrier();
    }
    r.set_label("matvec fc1+gelu");
    norm_matvec(r, L.ffn_norm, L.fc1, ff_, 0, m_.F, kGelu);
    r.barrier();
    r.set_label("matvec fc2");
    matvec(r, L.fc2, ff_, B, 0, m_.F, x_, 0, H, kResidual);
    r.barrier();
  }
  r.set_label("matvec lm heads");
  for (uint32_t k = 0; k < K; ++k)
    norm_matvec(r, m_.final_norm, m_.heads_[k], logits_, k * V, K * V, 0, k > 0);
  r.copy_to_host(logits_, logits_host_, static_cast<size_t>(B) * K * V * 4);
  ctx_.end(step_cb_);
}

void VulkanRunner::step(const int32_t* tokens, int n_tokens, const float* prefix, int prefix_len,
                        std::vector<float>* logits) {
  if (!started_) fail(ErrorCode::kInvalidArgument, "internal: decoder step before start");
  const int n = prefix_len + n_tokens;
  if (length_ + n > cap_)
    fail(ErrorCode::kInvalidArgument, "decoder cache full: " + std::to_string(length_ + n) +
                                          " positions requested, capacity " + std::to_string(cap_));
  const int B = B_, K = m_.K, V = m_.V, H = m_.H;
  if (prefix_len > 0) {
    if (prefix_len != prefix_len_) {  // the embed dispatch reads prefix_len: re-record
      prefix_len_ = prefix_len;
      ctx_.destroy(prefix_);
      prefix_ = ctx_.create_buffer(static_cast<size_t>(B) * prefix_len * H * 4, false);
      ctx_.free_commands(step_cb_);
      step_cb_ = VK_NULL_HANDLE;
      record_step();
    }
    ctx_.upload(prefix_, prefix, static_cast<size_t>(B) * prefix_len * H * 4);
  }
  const auto step_start = std::chrono::steady_clock::now();
  auto* params = static_cast<uint32_t*>(params_.mapped);
  auto* tok = static_cast<int32_t*>(tokens_.mapped);
  // Positions one at a time through the recorded step: every row of a matrix product and every
  // query of an attention is computed by the same arithmetic whether it runs alone or in a batch,
  // so this equals running the n positions together.
  for (int s = 0; s < n; ++s) {
    params[0] = static_cast<uint32_t>(length_);
    params[1] = s < prefix_len ? 1u : 0u;
    params[2] = static_cast<uint32_t>(s < prefix_len ? s : 0);
    if (s >= prefix_len)
      for (int b = 0; b < B; ++b)
        for (int k = 0; k < K; ++k) {
          const int32_t id = tokens[(static_cast<int64_t>(b) * K + k) * n_tokens + (s - prefix_len)];
          if (id < 0 || id > V)
            fail(ErrorCode::kInvalidArgument, "decoder token " + std::to_string(id) + " out of range");
          tok[b * K + k] = id;
        }
    const auto t0 = std::chrono::steady_clock::now();
    ctx_.submit_wait(step_cb_);
    ++length_;
    if (profile_) {
      submit_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rec_->add_timings(&gpu_ns_);
      ++steps_run_;
    }
  }
  logits->resize(static_cast<size_t>(B) * K * V);
  std::memcpy(logits->data(), logits_host_.mapped, logits->size() * 4);
  if (profile_)
    host_step_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
}

}  // namespace

std::unique_ptr<DecoderRunner> VulkanDecoder::new_runner() const {
  return std::make_unique<VulkanRunner>(*impl_, *ctx_);
}

}  // namespace musicgen::gpu
