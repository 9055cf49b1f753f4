#include "models/musicgen_decoder.h"

#include <cfloat>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/fast_math.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/ops.h"
#include "kernels/prefetch.h"
#include "models/weight_policy.h"

namespace musicgen {

namespace {
std::string layer_prefix(int i) { return "decoder.model.decoder.layers." + std::to_string(i) + "."; }
constexpr float kLayerNormEps = 1e-5f;
// Work of the cross-attention region (its query projection plus the query-key products over
// the text) below which the pool is not worth waking (the tiny test models). Self-attention always
// runs on the pool.
constexpr int64_t kMinParallelAttention = 256 * 1024;

// Cache rows asked for before a (stream, head)'s attention starts: the first K rows of the next
// (stream, head) a thread will attend, so its stream does not start cold (16 rows = 2 KiB of a
// half cache, what the attention kernel's own prefetch keeps ahead once it runs).
constexpr int64_t kNextHeadRows = 16;

template <typename Fn>
void parallel_or_inline(ThreadPool* pool, bool parallel, int64_t n, Fn&& fn) {
  if (parallel && pool != nullptr)
    pool->parallel_for_stealing(n, fn);
  else
    fn(0, n);
}
}  // namespace

std::vector<TensorSpec> MusicgenDecoder::tensor_specs(const DecoderConfig& c, int text_hidden,
                                                      int num_chroma) {
  const bool cross = num_chroma == 0;
  const int64_t h = c.hidden_size, f = c.ffn_dim, v = c.vocab_size;
  std::vector<TensorSpec> s;
  for (int k = 0; k < c.num_codebooks; ++k)
    s.push_back({{"decoder.model.decoder.embed_tokens." + std::to_string(k) + ".weight"}, {v + 1, h}});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = layer_prefix(i);
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.out_proj"})
      s.push_back({{p + n + ".weight"}, {h, h}});
    if (cross)
      for (const char* n : {"encoder_attn.q_proj", "encoder_attn.k_proj", "encoder_attn.v_proj",
                            "encoder_attn.out_proj"})
        s.push_back({{p + n + ".weight"}, {h, h}});
    for (const char* n : {"self_attn_layer_norm", "encoder_attn_layer_norm", "final_layer_norm"}) {
      if (!cross && std::string(n) == "encoder_attn_layer_norm") continue;
      s.push_back({{p + n + ".weight"}, {h}});
      s.push_back({{p + n + ".bias"}, {h}});
    }
    s.push_back({{p + "fc1.weight"}, {f, h}});
    s.push_back({{p + "fc2.weight"}, {h, f}});
  }
  s.push_back({{"decoder.model.decoder.layer_norm.weight"}, {h}});
  s.push_back({{"decoder.model.decoder.layer_norm.bias"}, {h}});
  for (int k = 0; k < c.num_codebooks; ++k)
    s.push_back({{"decoder.lm_heads." + std::to_string(k) + ".weight"}, {v, h}});
  s.push_back({{"enc_to_dec_proj.weight"}, {h, text_hidden}});
  s.push_back({{"enc_to_dec_proj.bias"}, {h}});
  if (!cross) {
    s.push_back({{"audio_enc_to_dec_proj.weight"}, {h, num_chroma}});
    s.push_back({{"audio_enc_to_dec_proj.bias"}, {h}});
  }
  return s;
}

MusicgenDecoder::MusicgenDecoder(const DecoderConfig& cfg, int text_hidden, const TensorStore& store,
                                 int num_chroma, const DecoderLoadOptions& options)
    : cfg_(cfg), text_hidden_(text_hidden), num_chroma_(num_chroma), weights_(options.weights),
      kv_q8_(options.kv_q8) {
  const LinearLoadOptions lin{decoder_layer_storage(options.weights), options.pool,
                              options.exact_f16};
  const LinearLoadOptions head{lm_head_storage(options.weights), options.pool, options.exact_f16};
  validate_tensors(store, tensor_specs(cfg, text_hidden, num_chroma));
  const bool cross = num_chroma == 0;
  for (int k = 0; k < cfg.num_codebooks; ++k) {
    embed_.push_back(store.get_f32("decoder.model.decoder.embed_tokens." + std::to_string(k) + ".weight"));
    lm_heads_.push_back(Linear::load(store, "decoder.lm_heads." + std::to_string(k), false, head));
  }
  auto norm = [&](const std::string& name) {
    return Norm{store.get_f32(name + ".weight"), store.get_f32(name + ".bias")};
  };
  for (int i = 0; i < cfg.num_hidden_layers; ++i) {
    const std::string p = layer_prefix(i);
    Layer l;
    l.self_attn_norm = norm(p + "self_attn_layer_norm");
    l.q = Linear::load(store, p + "self_attn.q_proj", false, lin);
    l.k = Linear::load(store, p + "self_attn.k_proj", false, lin);
    l.v = Linear::load(store, p + "self_attn.v_proj", false, lin);
    l.out = Linear::load(store, p + "self_attn.out_proj", false, lin);
    if (cross) {
      l.cross_attn_norm = norm(p + "encoder_attn_layer_norm");
      l.cross_q = Linear::load(store, p + "encoder_attn.q_proj", false, lin);
      l.cross_k = Linear::load(store, p + "encoder_attn.k_proj", false, lin);
      l.cross_v = Linear::load(store, p + "encoder_attn.v_proj", false, lin);
      l.cross_out = Linear::load(store, p + "encoder_attn.out_proj", false, lin);
    }
    l.final_norm = norm(p + "final_layer_norm");
    l.fc1 = Linear::load(store, p + "fc1", false, lin);
    l.fc2 = Linear::load(store, p + "fc2", false, lin);
    layers_.push_back(std::move(l));
  }
  final_norm_ = norm("decoder.model.decoder.layer_norm");
  enc_to_dec_proj_ = Linear::load(store, "enc_to_dec_proj", true);
  if (!cross) audio_enc_to_dec_proj_ = Linear::load(store, "audio_enc_to_dec_proj", true);
  // HF MusicgenSinusoidalPositionalEmbedding, in float32: w_i = exp(i * -(ln 10000 / (half - 1))).
  const int half = cfg.hidden_size / 2;
  const float step = static_cast<float>(std::log(10000.0) / (half - 1));
  inv_freq_.resize(half);
  for (int i = 0; i < half; ++i) inv_freq_[i] = std::exp(static_cast<float>(i) * -step);
}

Tensor MusicgenDecoder::project_text(const Tensor& text, const std::vector<int32_t>& mask,
                                     ThreadPool* pool) const {
  const int64_t b = text.dim(0), s = text.dim(1), h = cfg_.hidden_size;
  if (text.dim(2) != text_hidden_)
    fail(ErrorCode::kInvalidArgument, "text states have width " + std::to_string(text.dim(2)) +
                                          ", the model expects " + std::to_string(text_hidden_));
  Tensor out({b, s, h});
  enc_to_dec_proj_.forward(text.ptr(), b * s, out.ptr(), pool);
  for (int64_t r = 0; r < b * s; ++r)
    if (mask[r] == 0) std::fill_n(out.ptr() + r * h, h, 0.0f);
    // else multiplied by 1: unchanged
  return out;
}

Tensor MusicgenDecoder::project_chroma(const Tensor& chroma, ThreadPool* pool) const {
  if (num_chroma_ == 0) fail(ErrorCode::kInvalidArgument, "this model takes no melody (chroma) input");
  if (chroma.dim(2) != num_chroma_)
    fail(ErrorCode::kInvalidArgument, "chroma has " + std::to_string(chroma.dim(2)) +
                                          " bins, the model expects " + std::to_string(num_chroma_));
  Tensor out({chroma.dim(0), chroma.dim(1), cfg_.hidden_size});
  audio_enc_to_dec_proj_.forward(chroma.ptr(), chroma.dim(0) * chroma.dim(1), out.ptr(), pool);
  return out;
}

DecoderState MusicgenDecoder::new_state(int batch, int capacity) const {
  DecoderState st;
  st.batch = batch;
  st.capacity = capacity;
  const size_t per_layer = static_cast<size_t>(batch) * capacity * cfg_.hidden_size;
  st.kv_q8 = kv_q8_;
  st.kv_f16 = !kv_q8_ && weights_ != WeightStorage::kF32;
  if (st.kv_q8) {
    const size_t rows = per_layer / static_cast<size_t>(cfg_.head_dim());
    st.self_k8.assign(cfg_.num_hidden_layers, std::vector<int8_t>(per_layer));
    st.self_v8.assign(cfg_.num_hidden_layers, std::vector<int8_t>(per_layer));
    st.self_ks.assign(cfg_.num_hidden_layers, std::vector<float>(rows));
    st.self_vs.assign(cfg_.num_hidden_layers, std::vector<float>(rows));
  } else if (st.kv_f16) {
    st.self_k16.assign(cfg_.num_hidden_layers, std::vector<uint16_t>(per_layer));
    st.self_v16.assign(cfg_.num_hidden_layers, std::vector<uint16_t>(per_layer));
  } else {
    st.self_k.assign(cfg_.num_hidden_layers, std::vector<float>(per_layer));
    st.self_v.assign(cfg_.num_hidden_layers, std::vector<float>(per_layer));
  }
  st.cross_active.assign(batch, 0);
  return st;
}

void MusicgenDecoder::set_text(DecoderState& st, const Tensor& projected,
                               const std::vector<int32_t>& mask, ThreadPool* pool) const {
  const int64_t b = projected.dim(0), s = projected.dim(1), h = cfg_.hidden_size;
  const int64_t nh = cfg_.num_attention_heads, hd = cfg_.head_dim();
  if (!has_cross_attention())
    fail(ErrorCode::kInvalidArgument, "melody models take text as a prefix, not cross-attention");
  if (b != st.batch) fail(ErrorCode::kInvalidArgument, "text batch differs from the decoder batch");
  st.text_length = static_cast<int>(s);
  st.cross_bias.assign(b * s, 0.0f);
  for (int64_t bi = 0; bi < b; ++bi) {
    bool any = false;
    for (int64_t j = 0; j < s; ++j) {
      if (mask[bi * s + j] == 0) st.cross_bias[bi * s + j] = -FLT_MAX;
      else any = true;
    }
    // All keys masked and K = V = 0 (no bias): HF's output is exactly zero, so skip the row.
    st.cross_active[bi] = any ? 1 : 0;
  }
  st.cross_k.assign(layers_.size(), {});
  st.cross_v.assign(layers_.size(), {});
  std::vector<float> tmp(b * s * h);
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (int pass = 0; pass < 2; ++pass) {
      const Linear& proj = pass == 0 ? layers_[l].cross_k : layers_[l].cross_v;
      proj.forward(projected.ptr(), b * s, tmp.data(), pool);
      // [B, S, heads, D] -> [B, heads, S, D]
      std::vector<float>& dst = pass == 0 ? st.cross_k[l] : st.cross_v[l];
      dst.resize(b * s * h);
      for (int64_t bi = 0; bi < b; ++bi)
        for (int64_t j = 0; j < s; ++j)
          for (int64_t hh = 0; hh < nh; ++hh)
            std::copy_n(tmp.data() + ((bi * s + j) * h + hh * hd), hd,
                        dst.data() + ((bi * nh + hh) * s + j) * hd);
    }
  }
}

void MusicgenDecoder::position_rows(int start, int count, float* out) const {
  std::fill_n(out, static_cast<int64_t>(count) * cfg_.hidden_size, 0.0f);
  for (int s = 0; s < count; ++s) add_positions(out + static_cast<int64_t>(s) * cfg_.hidden_size, 1, 1, start + s);
}

DecoderSpec MusicgenDecoder::spec() const {
  DecoderSpec sp;
  sp.hidden = cfg_.hidden_size;
  sp.heads = cfg_.num_attention_heads;
  sp.head_dim = static_cast<int>(cfg_.head_dim());
  sp.ffn = cfg_.ffn_dim;
  sp.vocab = cfg_.vocab_size;
  sp.codebooks = cfg_.num_codebooks;
  sp.norm_eps = kLayerNormEps;
  sp.attention_scale = 1.0f / std::sqrt(static_cast<float>(cfg_.head_dim()));
  sp.embed = embed_;
  const bool cross = has_cross_attention();
  for (const Layer& l : layers_) {
    DecoderLayerSpec ls;
    ls.self_norm = &l.self_attn_norm;
    ls.q = &l.q;
    ls.k = &l.k;
    ls.v = &l.v;
    ls.out = &l.out;
    if (cross) {
      ls.cross_norm = &l.cross_attn_norm;
      ls.cross_q = &l.cross_q;
      ls.cross_k = &l.cross_k;
      ls.cross_v = &l.cross_v;
      ls.cross_out = &l.cross_out;
    }
    ls.ffn_norm = &l.final_norm;
    ls.fc1 = &l.fc1;
    ls.fc2 = &l.fc2;
    sp.layers.push_back(ls);
  }
  sp.final_norm = &final_norm_;
  for (const Linear& h : lm_heads_) sp.lm_heads.push_back(&h);
  sp.positions = [this](int start, int count, float* out) { position_rows(start, count, out); };
  sp.kv_half = weights_ != WeightStorage::kF32;
  return sp;
}

void CpuDecoderRunner::start(int batch, int capacity, const Tensor* text,
                             const std::vector<int32_t>* mask) {
  state_ = decoder_.new_state(batch, capacity);
  if (text != nullptr) decoder_.set_text(state_, *text, *mask, pool_);
}

void CpuDecoderRunner::step(const int32_t* tokens, int n, const float* prefix, int prefix_len,
                            std::vector<float>* logits) {
  decoder_.forward(state_, tokens, n, false, logits, pool_, prefix, prefix_len);
}

void MusicgenDecoder::add_positions(float* x, int n, int batch, int start) const {
  const int half = cfg_.hidden_size / 2;
  for (int s = 0; s < n; ++s) {
    const float p = static_cast<float>(start + s);
    for (int i = 0; i < half; ++i) {
      const float a = p * inv_freq_[i];
      const float c = std::cos(a), sn = std::sin(a);
      for (int b = 0; b < batch; ++b) {
        float* row = x + (static_cast<int64_t>(b) * n + s) * cfg_.hidden_size;
        row[i] += c;
        row[half + i] += sn;
      }
    }
  }
}

void MusicgenDecoder::forward(DecoderState& st, const int32_t* tokens, int n_tokens,
                              bool all_positions, std::vector<float>* logits, ThreadPool* pool,
                              const float* prefix, int prefix_len) const {
  SeqStep one;
  one.state = &st;
  one.tokens = tokens;
  one.n = n_tokens;
  one.all_positions = all_positions;
  one.logits = logits;
  one.prefix = prefix;
  one.prefix_len = prefix_len;
  forward_multi({one}, pool);
}

void MusicgenDecoder::forward_multi(const std::vector<SeqStep>& seqs, ThreadPool* pool) const {
  const int K = cfg_.num_codebooks, V = cfg_.vocab_size;
  const int64_t H = cfg_.hidden_size, nh = cfg_.num_attention_heads, hd = cfg_.head_dim();
  const int count = static_cast<int>(seqs.size());
  if (count == 0) return;
  // Per sequence: positions already cached (P), positions added (n = prefix + tokens), first row
  // in the stacked activations (rows of sequence i: [B_i, n_i] from row0[i]).
  std::vector<int> P(count), N(count);
  std::vector<int64_t> row0(count + 1, 0);
  for (int i = 0; i < count; ++i) {
    const SeqStep& q = seqs[i];
    const DecoderState& st = *q.state;
    P[i] = st.length;
    N[i] = q.prefix_len + q.n;
    if (P[i] + N[i] > st.capacity)
      fail(ErrorCode::kInvalidArgument, "decoder cache full: " + std::to_string(P[i] + N[i]) +
                                            " positions requested, capacity " +
                                            std::to_string(st.capacity));
    row0[i + 1] = row0[i] + static_cast<int64_t>(st.batch) * N[i];
  }
  const int64_t rows = row0[count];  // all rows of all sequences

  // Prefix rows (melody conditioning), then token embeddings summed over codebooks, then
  // positions over the whole sequence.
  // Activations of the step, reused from the thread's previous step: no allocation, no page
  // faults and no zero fill per step (every buffer but x is written in full before it is read).
  thread_local Scratch scratch;
  std::vector<float>& x = scratch.x;
  x.assign(static_cast<size_t>(rows * H), 0.0f);  // per sequence [B, n, H]
  for (int i = 0; i < count; ++i) {
    const SeqStep& q = seqs[i];
    const int B = q.state->batch, n = N[i], n_tokens = q.n, prefix_len = q.prefix_len;
    float* xs = x.data() + row0[i] * H;
    for (int b = 0; b < B; ++b) {
      if (prefix_len > 0)
        std::copy_n(q.prefix + static_cast<int64_t>(b) * prefix_len * H, prefix_len * H,
                    xs + static_cast<int64_t>(b) * n * H);
      for (int k = 0; k < K; ++k)
        for (int s = 0; s < n_tokens; ++s) {
          const int32_t id = q.tokens[(static_cast<int64_t>(b) * K + k) * n_tokens + s];
          if (id < 0 || id > V)
            fail(ErrorCode::kInvalidArgument, "decoder token " + std::to_string(id) + " out of range");
          kernels::add(xs + (static_cast<int64_t>(b) * n + prefix_len + s) * H,
                       embed_[k].data + id * H, H);
        }
    }
    add_positions(xs, n, B, P[i]);
  }

  // Cross-attention work (query-key products over the text), to decide whether its region is
  // worth the pool.
  int64_t cross_work = 0;
  bool any_text = false;
  for (int i = 0; i < count; ++i) {
    const DecoderState& st = *seqs[i].state;
    cross_work += static_cast<int64_t>(st.batch) * nh * st.text_length * N[i] * hd;
    any_text = any_text || st.text_length > 0;
  }

  std::vector<float> &a = scratch.a, &q = scratch.q, &kk = scratch.k, &vv = scratch.v,
                     &att = scratch.att, &o = scratch.o, &ff = scratch.ff;
  for (std::vector<float>* v : {&a, &q, &kk, &vv, &att, &o}) v->resize(static_cast<size_t>(rows * H));
  ff.resize(static_cast<size_t>(rows * cfg_.ffn_dim));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  kernels::QActs acts;  // the quantized input of a fused region (q8/q4 weights)
  // Epilogues of the products, run by the thread that computed columns [c0, c1) of every row:
  // the residual adds (add_text: only the rows of sequences with text) and fc1's GELU.
  const std::function<void(int64_t, int64_t)> add_all = [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < rows; ++r)
      kernels::add(x.data() + r * H + c0, o.data() + r * H + c0, c1 - c0);
  };
  const std::function<void(int64_t, int64_t)> add_text = [&](int64_t c0, int64_t c1) {
    for (int i = 0; i < count; ++i)
      if (seqs[i].state->text_length > 0)
        for (int64_t r = row0[i]; r < row0[i + 1]; ++r)
          kernels::add(x.data() + r * H + c0, o.data() + r * H + c0, c1 - c0);
  };
  const int64_t F = cfg_.ffn_dim;
  const std::function<void(int64_t, int64_t)> gelu = [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < rows; ++r) kernels::gelu_erf(ff.data() + r * F + c0, c1 - c0);
  };
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    // Self-attention: the q, k, v projections and the attention in one parallel region over
    // heads. The thread that owns heads [h0, h1) computes those heads' q, k and v columns for
    // every row, writes them to the caches and attends them: no other thread's output is read,
    // so no barrier separates the products from the attention. Each (sequence, stream, head) is
    // computed by the same code whichever thread runs it, so results depend neither on the thread
    // count nor on the other sequences of the step.
    kernels::layer_norm(x.data(), L.self_attn_norm.weight.data, L.self_attn_norm.bias.data, a.data(),
                        rows, H, kLayerNormEps);
    const Linear* qkv[] = {&L.q, &L.k, &L.v};
    const Linear::Input self_in = Linear::prepare(a.data(), rows, qkv, 3, &acts);
    auto self_attention = [&](int64_t h0, int64_t h1) {
      thread_local std::vector<float> scores;
      // The cache rows this range writes below: untouched since the cache was allocated (or
      // evicted by a step's weights), each store would otherwise wait for its line from memory.
      // Asked for now, they arrive while the projections run.
      for (int i = 0; i < count; ++i) {
        const DecoderState& st = *seqs[i].state;
        for (int64_t b = 0; b < st.batch; ++b)
          for (int64_t hh = h0; hh < h1; ++hh)
            for (int s = 0; s < N[i]; ++s) {
              const int64_t dst = ((b * nh + hh) * st.capacity + P[i] + s) * hd;
              kernels::prefetch(st.kv_at(l, true, dst), hd * st.kv_bytes(), true);
              kernels::prefetch(st.kv_at(l, false, dst), hd * st.kv_bytes(), true);
            }
      }
      // The first K rows of (sequence i, stream b, head hh), asked for before the attention of
      // the (stream, head) before it in this range, and the first one's before the projections.
      auto prefetch_keys = [&](int i, int64_t b, int64_t hh) {
        const DecoderState& st = *seqs[i].state;
        const int64_t rows = std::min<int64_t>(kNextHeadRows, P[i] + N[i]);
        kernels::prefetch(st.kv_at(l, true, (b * nh + hh) * st.capacity * hd),
                          rows * hd * st.kv_bytes());
      };
      prefetch_keys(0, 0, h0);
      L.q.forward_cols(self_in, q.data(), h0 * hd, h1 * hd);
      L.k.forward_cols(self_in, kk.data(), h0 * hd, h1 * hd);
      L.v.forward_cols(self_in, vv.data(), h0 * hd, h1 * hd);
      for (int i = 0; i < count; ++i) {
        DecoderState& st = *seqs[i].state;
        const int n = N[i];
        scores.resize(static_cast<size_t>(P[i] + n));
        for (int64_t b = 0; b < st.batch; ++b)
          for (int64_t hh = h0; hh < h1; ++hh) {
            const int64_t bh = b * nh + hh;
            if (hh + 1 < h1) prefetch_keys(i, b, hh + 1);
            else if (b + 1 < st.batch) prefetch_keys(i, b + 1, h0);
            else if (i + 1 < count) prefetch_keys(i + 1, 0, h0);
            for (int s = 0; s < n; ++s) {
              const int64_t src = (row0[i] + b * n + s) * H + hh * hd;
              const int64_t dst = (bh * st.capacity + P[i] + s) * hd;
              if (st.kv_q8) {
                kernels::quantize_kv_row(kk.data() + src, hd, st.self_k8[l].data() + dst,
                                         st.self_ks[l].data() + dst / hd);
                kernels::quantize_kv_row(vv.data() + src, hd, st.self_v8[l].data() + dst,
                                         st.self_vs[l].data() + dst / hd);
              } else if (st.kv_f16) {
                kernels::convert_f32_to_f16(kk.data() + src, st.self_k16[l].data() + dst, hd);
                kernels::convert_f32_to_f16(vv.data() + src, st.self_v16[l].data() + dst, hd);
              } else {
                std::copy_n(kk.data() + src, hd, st.self_k[l].data() + dst);
                std::copy_n(vv.data() + src, hd, st.self_v[l].data() + dst);
              }
            }
            for (int s = 0; s < n; ++s) {
              const int64_t r = row0[i] + b * n + s;
              const float* qs = q.data() + r * H + hh * hd;
              const int keys = P[i] + s + 1;  // causal
              float* out = att.data() + r * H + hh * hd;
              if (st.kv_q8)
                kernels::attend_q8(qs, st.self_k8[l].data() + bh * st.capacity * hd,
                                   st.self_ks[l].data() + bh * st.capacity,
                                   st.self_v8[l].data() + bh * st.capacity * hd,
                                   st.self_vs[l].data() + bh * st.capacity, keys, hd, scale,
                                   nullptr, scores.data(), out);
              else if (st.kv_f16)
                kernels::attend_f16(qs, st.self_k16[l].data() + bh * st.capacity * hd,
                                    st.self_v16[l].data() + bh * st.capacity * hd, keys, hd,
                                    scale, nullptr, scores.data(), out);
              else
                kernels::attend(qs, st.self_k[l].data() + bh * st.capacity * hd,
                                st.self_v[l].data() + bh * st.capacity * hd, keys, hd, scale,
                                nullptr, scores.data(), out);
            }
          }
      }
    };
    parallel_or_inline(pool, pool != nullptr && pool->size() > 1, nh, self_attention);
    // The output projection with the residual added by the thread that computed the columns.
    {
      const Linear* out[] = {&L.out};
      float* ys[] = {o.data()};
      Linear::forward_many(out, 1, att.data(), rows, ys, pool, &add_all);
    }

    // Cross-attention to the text, for the sequences that have one (skipped for rows whose text
    // is fully masked: output 0): the query projection and the attention in one region over
    // heads, as above.
    if (any_text) {
      kernels::layer_norm(x.data(), L.cross_attn_norm.weight.data, L.cross_attn_norm.bias.data,
                          a.data(), rows, H, kLayerNormEps);
      const Linear* cq[] = {&L.cross_q};
      const Linear::Input cross_in = Linear::prepare(a.data(), rows, cq, 1, &acts);
      auto cross_attention = [&](int64_t h0, int64_t h1) {
        thread_local std::vector<float> scores;
        L.cross_q.forward_cols(cross_in, q.data(), h0 * hd, h1 * hd);
        for (int i = 0; i < count; ++i) {
          const DecoderState& st = *seqs[i].state;
          if (st.text_length == 0) continue;
          const int S = st.text_length, n = N[i];
          scores.resize(S);
          for (int64_t b = 0; b < st.batch; ++b)
            for (int64_t hh = h0; hh < h1; ++hh) {
              const int64_t bh = b * nh + hh;
              const float* kb = st.cross_k[l].data() + bh * S * hd;
              const float* vb = st.cross_v[l].data() + bh * S * hd;
              for (int s = 0; s < n; ++s) {
                const int64_t r = row0[i] + b * n + s;
                float* out = att.data() + r * H + hh * hd;
                if (!st.cross_active[b]) {
                  std::fill_n(out, hd, 0.0f);
                  continue;
                }
                kernels::attend(q.data() + r * H + hh * hd, kb, vb, S, hd, scale,
                                st.cross_bias.data() + b * S, scores.data(), out);
              }
            }
        }
      };
      parallel_or_inline(pool, pool != nullptr && pool->size() > 1 && cross_work + rows * H * H >=
                                                                        kMinParallelAttention,
                         nh, cross_attention);
      const Linear* out[] = {&L.cross_out};
      float* ys[] = {o.data()};
      Linear::forward_many(out, 1, att.data(), rows, ys, pool, &add_text);
    }

    // Feed-forward: GELU applied by the thread that computed the fc1 columns, the residual by
    // the thread that computed the fc2 columns.
    kernels::layer_norm(x.data(), L.final_norm.weight.data, L.final_norm.bias.data, a.data(), rows,
                        H, kLayerNormEps);
    {
      const Linear* fc1[] = {&L.fc1};
      float* ys[] = {ff.data()};
      Linear::forward_many(fc1, 1, a.data(), rows, ys, pool, &gelu);
    }
    {
      const Linear* fc2[] = {&L.fc2};
      float* ys[] = {o.data()};
      Linear::forward_many(fc2, 1, ff.data(), rows, ys, pool, &add_all);
    }
  }
  for (int i = 0; i < count; ++i) seqs[i].state->length = P[i] + N[i];

  // Final norm and heads, for every token position or only the last one (never the prefix).
  std::vector<int64_t> out0(count + 1, 0);  // first head row of each sequence
  for (int i = 0; i < count; ++i)
    out0[i + 1] = out0[i] + static_cast<int64_t>(seqs[i].state->batch) *
                                (seqs[i].all_positions ? seqs[i].n : 1);
  const int64_t out_rows = out0[count];
  std::vector<float>& hsel = scratch.hsel;
  hsel.resize(static_cast<size_t>(out_rows * H));
  for (int i = 0; i < count; ++i) {
    const SeqStep& sq = seqs[i];
    const int out_pos = sq.all_positions ? sq.n : 1, n = N[i];
    for (int b = 0; b < sq.state->batch; ++b)
      for (int s = 0; s < out_pos; ++s) {
        const int src_s = sq.all_positions ? sq.prefix_len + s : n - 1;
        kernels::layer_norm(x.data() + (row0[i] + static_cast<int64_t>(b) * n + src_s) * H,
                            final_norm_.weight.data, final_norm_.bias.data,
                            hsel.data() + (out0[i] + static_cast<int64_t>(b) * out_pos + s) * H, 1,
                            H, kLayerNormEps);
      }
  }
  // One read of each head for all rows: [out_rows, H] x [V, H]^T.
  // All K heads in one parallel region: tmp [K][out_rows, V].
  const int64_t head_out = out_rows * V;
  std::vector<float>& tmp = scratch.heads;
  tmp.resize(static_cast<size_t>(K * head_out));
  std::vector<const Linear*> heads;
  std::vector<float*> outs;
  for (int k = 0; k < K; ++k) {
    heads.push_back(&lm_heads_[k]);
    outs.push_back(tmp.data() + k * head_out);
  }
  Linear::forward_many(heads.data(), heads.size(), hsel.data(), out_rows, outs.data(), pool);
  for (int i = 0; i < count; ++i) {
    const SeqStep& sq = seqs[i];
    const int B = sq.state->batch, out_pos = sq.all_positions ? sq.n : 1;
    sq.logits->resize(static_cast<size_t>(B) * K * out_pos * V);  // every element copied below
    for (int k = 0; k < K; ++k)
      for (int b = 0; b < B; ++b)
        std::copy_n(tmp.data() + k * head_out + (out0[i] + static_cast<int64_t>(b) * out_pos) * V,
                    static_cast<int64_t>(out_pos) * V,
                    sq.logits->data() + (static_cast<int64_t>(b) * K + k) * out_pos * V);
  }
}

MusicgenDecoder::StepWeights MusicgenDecoder::step_weights() const {
  StepWeights w;
  auto add = [&](const Linear& l) {
    if (l.storage == WeightStorage::kF32 ? l.weight.shape.size() != 2 : l.qweight.n == 0)
      return;  // absent (a melody decoder has no cross-attention)
    ++w.matrices;
    w.exact_f16 += l.weight_f16 != nullptr;
    w.bytes += l.weight_bytes();
  };
  // cross_k and cross_v run once per generation (set_text), not per step.
  for (const Layer& L : layers_)
    for (const Linear* l : {&L.q, &L.k, &L.v, &L.out, &L.cross_q, &L.cross_out, &L.fc1, &L.fc2})
      add(*l);
  for (const Linear& l : lm_heads_) add(l);
  return w;
}

}  // namespace musicgen
