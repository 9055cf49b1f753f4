#include "models/t5_encoder.h"

#include <cfloat>
#include <cmath>

#include "core/error.h"
#include "kernels/ops.h"

namespace musicgen {

namespace {
std::string block_prefix(const std::string& prefix, int i) {
  return prefix + "encoder.block." + std::to_string(i) + ".";
}
std::vector<std::string> embed_names(const std::string& prefix) {
  // The tied embedding may be stored under either name.
  return {prefix + "shared.weight", prefix + "encoder.embed_tokens.weight"};
}
}  // namespace

std::vector<TensorSpec> T5Encoder::tensor_specs(const T5Config& c, const std::string& prefix) {
  const int64_t d = c.d_model, inner = static_cast<int64_t>(c.num_heads) * c.d_kv;
  std::vector<TensorSpec> specs;
  specs.push_back({embed_names(prefix), {c.vocab_size, d}});
  if (c.num_layers > 0)  // HF T5 with no blocks (num_layers 0) has no position bias either
    specs.push_back({{prefix + "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"},
                     {c.relative_attention_num_buckets, c.num_heads}});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = block_prefix(prefix, i);
    specs.push_back({{p + "layer.0.layer_norm.weight"}, {d}});
    specs.push_back({{p + "layer.0.SelfAttention.q.weight"}, {inner, d}});
    specs.push_back({{p + "layer.0.SelfAttention.k.weight"}, {inner, d}});
    specs.push_back({{p + "layer.0.SelfAttention.v.weight"}, {inner, d}});
    specs.push_back({{p + "layer.0.SelfAttention.o.weight"}, {d, inner}});
    specs.push_back({{p + "layer.1.layer_norm.weight"}, {d}});
    specs.push_back({{p + "layer.1.DenseReluDense.wi.weight"}, {c.d_ff, d}});
    specs.push_back({{p + "layer.1.DenseReluDense.wo.weight"}, {d, c.d_ff}});
  }
  specs.push_back({{prefix + "encoder.final_layer_norm.weight"}, {d}});
  return specs;
}

T5Encoder::T5Encoder(const T5Config& cfg, const TensorStore& store, const std::string& prefix,
                     const LinearLoadOptions& linear)
    : cfg_(cfg) {
  validate_tensors(store, tensor_specs(cfg, prefix));
  embed_ = TensorStore::to_f32(*store.find_any(embed_names(prefix)));
  if (cfg.num_layers > 0)
    relative_bias_ =
        store.get_f32(prefix + "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  for (int i = 0; i < cfg.num_layers; ++i) {
    const std::string p = block_prefix(prefix, i);
    Block b;
    b.attn_norm.weight = store.get_f32(p + "layer.0.layer_norm.weight");
    b.q = Linear::load(store, p + "layer.0.SelfAttention.q", false, linear);
    b.k = Linear::load(store, p + "layer.0.SelfAttention.k", false, linear);
    b.v = Linear::load(store, p + "layer.0.SelfAttention.v", false, linear);
    b.o = Linear::load(store, p + "layer.0.SelfAttention.o", false, linear);
    b.ff_norm.weight = store.get_f32(p + "layer.1.layer_norm.weight");
    b.wi = Linear::load(store, p + "layer.1.DenseReluDense.wi", false, linear);
    b.wo = Linear::load(store, p + "layer.1.DenseReluDense.wo", false, linear);
    blocks_.push_back(std::move(b));
  }
  final_norm_.weight = store.get_f32(prefix + "encoder.final_layer_norm.weight");
}

int T5Encoder::relative_bucket(int relative_position) const {
  // Float32 arithmetic as in PyTorch: log(n / max_exact) / log(max_distance / max_exact).
  int num_buckets = cfg_.relative_attention_num_buckets / 2;
  int bucket = relative_position > 0 ? num_buckets : 0;
  const int n = std::abs(relative_position);
  const int max_exact = num_buckets / 2;
  if (n < max_exact) return bucket + n;
  const float ratio = std::log(static_cast<float>(n) / static_cast<float>(max_exact)) /
                      static_cast<float>(std::log(static_cast<double>(cfg_.relative_attention_max_distance) /
                                                  max_exact));
  int large = max_exact + static_cast<int>(ratio * static_cast<float>(num_buckets - max_exact));
  if (large > num_buckets - 1) large = num_buckets - 1;
  return bucket + large;
}

Tensor T5Encoder::forward(const std::vector<int32_t>& ids, const std::vector<int32_t>& mask,
                          int batch, int length, ThreadPool* pool) const {
  const int64_t d = cfg_.d_model, nh = cfg_.num_heads, dk = cfg_.d_kv, inner = nh * dk;
  const int64_t rows = static_cast<int64_t>(batch) * length;
  Tensor x({batch, length, d});  // [B, S, d_model]
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t id = ids[r];
    if (id < 0 || id >= cfg_.vocab_size)
      fail(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) + " is outside the T5 vocabulary");
    std::copy_n(embed_.data + id * d, d, x.ptr() + r * d);
  }
  // Position bias [H, S, S] shared by all blocks, plus the key-padding mask per batch item.
  std::vector<float> pos_bias(blocks_.empty() ? 0 : nh * length * length);
  for (int i = 0; i < length && !blocks_.empty(); ++i)
    for (int j = 0; j < length; ++j) {
      const int bucket = relative_bucket(j - i);
      for (int h = 0; h < nh; ++h)
        pos_bias[(h * length + i) * length + j] = relative_bias_.data[bucket * nh + h];
    }

  std::vector<float> normed(rows * d), q(rows * inner), k(rows * inner), v(rows * inner),
      attn(rows * inner), proj(rows * d), hidden(rows * cfg_.d_ff);
  for (const Block& b : blocks_) {
    kernels::rms_norm(x.ptr(), b.attn_norm.weight.data, normed.data(), rows, d, cfg_.layer_norm_epsilon);
    b.q.forward(normed.data(), rows, q.data(), pool);
    b.k.forward(normed.data(), rows, k.data(), pool);
    b.v.forward(normed.data(), rows, v.data(), pool);
    pool->parallel_for(static_cast<int64_t>(batch) * nh, [&](int64_t begin, int64_t end) {
      std::vector<float> scores(length);
      for (int64_t bh = begin; bh < end; ++bh) {
        const int64_t bi = bh / nh, h = bh % nh;
        for (int i = 0; i < length; ++i) {
          const float* qi = q.data() + (bi * length + i) * inner + h * dk;
          for (int j = 0; j < length; ++j) {
            const float* kj = k.data() + (bi * length + j) * inner + h * dk;
            float s = 0.0f;
            for (int64_t t = 0; t < dk; ++t) s += qi[t] * kj[t];  // no 1/sqrt(d) in T5
            s += pos_bias[(h * length + i) * length + j];
            if (mask[bi * length + j] == 0) s += -FLT_MAX;
            scores[j] = s;
          }
          kernels::softmax(scores.data(), length);
          float* out = attn.data() + (bi * length + i) * inner + h * dk;
          std::fill_n(out, dk, 0.0f);
          for (int j = 0; j < length; ++j) {
            const float* vj = v.data() + (bi * length + j) * inner + h * dk;
            for (int64_t t = 0; t < dk; ++t) out[t] += scores[j] * vj[t];
          }
        }
      }
    });
    b.o.forward(attn.data(), rows, proj.data(), pool);
    kernels::add(x.ptr(), proj.data(), rows * d);
    kernels::rms_norm(x.ptr(), b.ff_norm.weight.data, normed.data(), rows, d, cfg_.layer_norm_epsilon);
    b.wi.forward(normed.data(), rows, hidden.data(), pool);
    kernels::relu(hidden.data(), rows * cfg_.d_ff);
    b.wo.forward(hidden.data(), rows, proj.data(), pool);
    kernels::add(x.ptr(), proj.data(), rows * d);
  }
  Tensor out({batch, length, d});
  kernels::rms_norm(x.ptr(), final_norm_.weight.data, out.ptr(), rows, d, cfg_.layer_norm_epsilon);
  return out;
}

void T5Encoder::release_resident() const {
  for (const Block& b : blocks_)
    for (const Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.wi, &b.wo}) l->release_resident();
}

}  // namespace musicgen
