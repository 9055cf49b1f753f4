#include "gpu/vulkan_codec.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace musicgen::gpu {

namespace {

// Push-constant blocks, member for member as the shaders declare them (gpu/shaders/README.md).
struct Conv1dPush {
  uint32_t cin, cout, kernel, stride, dilation, lin, pad_left, pad_right;
  uint32_t x_off, x_bstride, y_off, y_bstride, o0, nout, res_off, res_bstride, flags;
};
struct ConvTrPush {
  uint32_t cin, cout, kernel, stride, lin, pad_left, x_off, x_bstride, y_off, y_bstride, nout,
      flags;
};
struct EluPush {
  uint32_t n, x_off, y_off;
};
struct AddPush {
  uint32_t n;
};
struct RvqPush {
  uint32_t nq, t, d, v;
};
struct GatesPush {
  uint32_t h, t_total, t, slices, slice;
};
struct CellPush {
  uint32_t h, t_total, t, slices;
};
// Inputs per K-slice of the LSTM's recurrent products (codec_lstm_gates.comp).
constexpr int64_t kLstmSlice = 64;
constexpr uint32_t kBias = 1, kResidual = 2;
constexpr int64_t kMaxGroups = 65535;

// Workgroups of 256 for n elements; the shaders stride over the rest past the limit.
uint32_t groups(int64_t n) {
  return static_cast<uint32_t>(std::clamp<int64_t>((n + 255) / 256, 1, kMaxGroups));
}
// Invocations per output row of the conv shaders (4 channels each).
int64_t quads(int64_t channels) {
  return (channels + 3) / 4;
}
uint32_t u32(int64_t v) {
  if (v < 0 || v > 0xffffffffLL)
    fail(ErrorCode::kDevice, "Vulkan codec: an index exceeds 32 bits; decode a shorter batch");
  return static_cast<uint32_t>(v);
}

}  // namespace

// A convolution on the device: weight [kernel][cin][cout], bias [cout] (or none).
struct GpuConv {
  uint32_t cin = 0, cout = 0, kernel = 1, stride = 1, dilation = 1;
  bool has_bias = false;
  Buffer w, bias;
};

struct GpuResBlock {
  GpuConv conv1, conv2;
};

struct GpuStage {
  GpuConv up;  // transposed
  std::vector<GpuResBlock> res;
};

struct GpuLstmLayer {
  GpuConv input;        // kernel 1: x W_ih^T + b_ih for every step
  Buffer w_hh_t, b_hh;  // W_hh transposed [H][4H], b_hh [4H]
};

struct VulkanCodecDecoder::Impl {
  Context* ctx = nullptr;
  int hidden = 0, hop = 0, codebook_size = 0, num_quantizers = 0, channels = 0;
  int64_t chunk_frames = 256, halo_frames = 8;
  Buffer codebooks;  // [Q][V][D]
  GpuConv first, last;
  std::vector<GpuLstmLayer> lstm;
  std::vector<GpuStage> stages;
  Buffer dummy;  // bound where a shader's binding is unused
  size_t bytes = 0;

  Buffer upload_floats(const std::vector<float>& v) {
    Buffer b = ctx->create_buffer(std::max<size_t>(1, v.size()) * 4, false);
    if (!v.empty()) ctx->upload(b, v.data(), v.size() * 4);
    bytes += v.size() * 4;
    return b;
  }
  // w_kio: [kernel][cin][cout], stored with cout padded to a multiple of 4 (zeros): the shaders
  // compute 4 output channels per invocation.
  GpuConv make_conv(const std::vector<float>& w_kio, const std::vector<float>& bias, int cin,
                    int cout, int kernel, int stride, int dilation) {
    const int64_t coutp = (cout + 3) / 4 * 4;
    std::vector<float> padded(static_cast<size_t>(kernel) * cin * coutp, 0.0f);
    for (int64_t r = 0; r < static_cast<int64_t>(kernel) * cin; ++r)
      std::copy_n(w_kio.data() + r * cout, cout, padded.data() + r * coutp);
    GpuConv g;
    g.cin = u32(cin);
    g.cout = u32(cout);
    g.kernel = u32(kernel);
    g.stride = u32(stride);
    g.dilation = u32(dilation);
    g.w = upload_floats(padded);
    g.has_bias = !bias.empty();
    if (g.has_bias) g.bias = upload_floats(bias);
    return g;
  }
  GpuConv upload(const nn::Conv1d& c) {
    const int in = c.in_channels(), out = c.out_channels(), k = c.kernel_size();
    const std::vector<float> w = c.weight();  // [out, in, k]
    std::vector<float> t(w.size());
    for (int co = 0; co < out; ++co)
      for (int ci = 0; ci < in; ++ci)
        for (int j = 0; j < k; ++j)
          t[(static_cast<size_t>(j) * in + ci) * out + co] =
              w[(static_cast<size_t>(co) * in + ci) * k + j];
    return make_conv(t, c.bias(), in, out, k, c.stride(), c.dilation());
  }
  GpuConv upload(const nn::ConvTranspose1d& c) {
    const int in = c.in_channels(), out = c.out_channels(), k = c.kernel_size();
    const std::vector<float> w = c.weight();  // [in, out, k]
    std::vector<float> t(w.size());
    for (int ci = 0; ci < in; ++ci)
      for (int co = 0; co < out; ++co)
        for (int j = 0; j < k; ++j)
          t[(static_cast<size_t>(j) * in + ci) * out + co] =
              w[(static_cast<size_t>(ci) * out + co) * k + j];
    return make_conv(t, c.bias(), in, out, k, c.stride(), 1);
  }
  void destroy(GpuConv& c) {
    ctx->destroy(c.w);
    ctx->destroy(c.bias);
  }
  ~Impl() {
    if (ctx == nullptr) return;
    ctx->destroy(codebooks);
    ctx->destroy(dummy);
    destroy(first);
    destroy(last);
    for (GpuLstmLayer& l : lstm) {
      destroy(l.input);
      ctx->destroy(l.w_hh_t);
      ctx->destroy(l.b_hh);
    }
    for (GpuStage& s : stages) {
      destroy(s.up);
      for (GpuResBlock& r : s.res) {
        destroy(r.conv1);
        destroy(r.conv2);
      }
    }
  }

  void check_codes(const std::vector<int32_t>& codes, int batch, int n_q, int frames) const;

  // Recording helpers: each dispatch is followed by a barrier.
  // Output rows [o0, o0 + nout) of conv c over x (lin rows per item).
  void conv(Recorder& r, const GpuConv& c, int batch, const Buffer& x, int64_t x_off,
            int64_t x_bstride, int64_t lin, const Buffer& y, int64_t y_off, int64_t y_bstride,
            int64_t o0, int64_t nout, const Buffer* res = nullptr) const {
    const int64_t k_eff = static_cast<int64_t>(c.kernel - 1) * c.dilation + 1;
    const auto [pl, pr] =
        nn::conv1d_paddings(lin, static_cast<int>(k_eff), static_cast<int>(c.stride));
    Conv1dPush p{c.cin,
                 c.cout,
                 c.kernel,
                 c.stride,
                 c.dilation,
                 u32(lin),
                 u32(pl),
                 u32(pr),
                 u32(x_off),
                 u32(x_bstride),
                 u32(y_off),
                 u32(y_bstride),
                 u32(o0),
                 u32(nout),
                 0,
                 u32(y_bstride),
                 (c.has_bias ? kBias : 0u) | (res ? kResidual : 0u)};
    r.dispatch("codec_conv1d", {&x, &c.w, c.has_bias ? &c.bias : &dummy, &y, res ? res : &dummy},
               &p, sizeof(p), groups(nout * quads(c.cout)), u32(batch));
    r.barrier();
  }
  void conv_transpose(Recorder& r, const GpuConv& c, int batch, const Buffer& x, int64_t x_off,
                      int64_t x_bstride, int64_t lin, const Buffer& y) const {
    const int64_t total = c.kernel - c.stride, pad_left = total - total / 2;
    const int64_t nout = lin * c.stride;
    ConvTrPush p{c.cin,      c.cout,
                 c.kernel,   c.stride,
                 u32(lin),   u32(pad_left),
                 u32(x_off), u32(x_bstride),
                 0,          u32(nout * c.cout),
                 u32(nout),  c.has_bias ? kBias : 0u};
    r.dispatch("codec_conv_tr", {&x, &c.w, c.has_bias ? &c.bias : &dummy, &y}, &p, sizeof(p),
               groups(nout * quads(c.cout)), u32(batch));
    r.barrier();
  }
  void elu(Recorder& r, const Buffer& x, const Buffer& y, int64_t n) const {
    EluPush p{u32(n), 0, 0};
    r.dispatch("codec_elu", {&x, &y}, &p, sizeof(p), groups(n));
    r.barrier();
  }
};

VulkanCodecDecoder::VulkanCodecDecoder(std::shared_ptr<Context> ctx, const CodecDecoderSpec& spec)
    : ctx_(std::move(ctx)), impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.ctx = ctx_.get();
  if (spec.first == nullptr || spec.lstm == nullptr || spec.last == nullptr ||
      spec.codebooks.empty() || spec.stages.empty())
    fail(ErrorCode::kInvalidModel, "Vulkan codec: incomplete codec decoder description");
  m.hidden = spec.hidden;
  m.hop = spec.hop;
  m.codebook_size = spec.codebook_size;
  m.num_quantizers = static_cast<int>(spec.codebooks.size());
  m.channels = spec.first->out_channels();
  m.chunk_frames = spec.chunk_frames;
  m.halo_frames = spec.halo_frames;
  m.dummy = ctx_->create_buffer(16, false);
  ctx_->fill_zero(m.dummy);

  const size_t table = static_cast<size_t>(m.codebook_size) * m.hidden;
  m.codebooks = ctx_->create_buffer(table * m.num_quantizers * 4, false);
  for (int q = 0; q < m.num_quantizers; ++q) {
    if (spec.codebooks[q].numel() != static_cast<int64_t>(table))
      fail(ErrorCode::kInvalidModel,
           "Vulkan codec: codebook " + std::to_string(q) + " has the wrong size");
    ctx_->upload(m.codebooks, spec.codebooks[q].data, table * 4, table * 4 * q);
  }
  m.bytes += table * m.num_quantizers * 4;

  m.first = m.upload(*spec.first);
  const nn::Lstm& lstm = *spec.lstm;
  const int H = lstm.hidden_size();
  if (lstm.input_size() != m.channels || H != m.channels)
    fail(ErrorCode::kInvalidModel, "Vulkan codec: the LSTM width differs from the first conv's");
  for (int l = 0; l < lstm.num_layers(); ++l) {
    const nn::LstmLayerWeights w = lstm.layer_weights(l);
    const int in = l == 0 ? lstm.input_size() : H;
    std::vector<float> t(w.w_ih.size());  // [4H, in] → [1][in][4H]
    for (int g = 0; g < 4 * H; ++g)
      for (int i = 0; i < in; ++i)
        t[static_cast<size_t>(i) * 4 * H + g] = w.w_ih[static_cast<size_t>(g) * in + i];
    GpuLstmLayer gl;
    gl.input = m.make_conv(t, w.b_ih, in, 4 * H, 1, 1, 1);
    std::vector<float> wt(w.w_hh.size());  // [4H, H] → [H][4H]
    for (int g = 0; g < 4 * H; ++g)
      for (int i = 0; i < H; ++i)
        wt[static_cast<size_t>(i) * 4 * H + g] = w.w_hh[static_cast<size_t>(g) * H + i];
    gl.w_hh_t = m.upload_floats(wt);
    gl.b_hh = m.upload_floats(w.b_hh);
    m.lstm.push_back(std::move(gl));
  }
  for (const CodecUpStageSpec& st : spec.stages) {
    GpuStage g;
    g.up = m.upload(*st.up);
    for (const CodecResBlockSpec& r : st.res) {
      if (r.conv2->kernel_size() != 1)
        fail(ErrorCode::kInvalidModel, "Vulkan codec: a residual block's second conv is not 1x1");
      g.res.push_back({m.upload(*r.conv1), m.upload(*r.conv2)});
    }
    m.stages.push_back(std::move(g));
  }
  m.last = m.upload(*spec.last);
  if (m.last.cout != 1) fail(ErrorCode::kInvalidModel, "Vulkan codec: the last conv is not mono");
  int64_t hop = 1;
  for (const GpuStage& s : m.stages) hop *= s.up.stride;
  if (hop != m.hop) fail(ErrorCode::kInvalidModel, "Vulkan codec: the strides do not give the hop");
  weight_bytes_ = m.bytes;
}

VulkanCodecDecoder::~VulkanCodecDecoder() = default;

int VulkanCodecDecoder::hop_length() const {
  return impl_->hop;
}

void VulkanCodecDecoder::Impl::check_codes(const std::vector<int32_t>& codes, int batch, int n_q,
                                           int frames) const {
  // The messages of EncodecModel::check_codes.
  if (batch < 1 || frames < 1)
    fail(ErrorCode::kInvalidArgument, "EnCodec decode: batch and frames must be at least 1, got " +
                                          std::to_string(batch) + " and " + std::to_string(frames));
  if (n_q < 1 || n_q > num_quantizers)
    fail(ErrorCode::kInvalidArgument, "EnCodec decode: " + std::to_string(n_q) +
                                          " codebooks given, the codec has 1 to " +
                                          std::to_string(num_quantizers));
  const size_t expected = static_cast<size_t>(batch) * n_q * frames;
  if (codes.size() != expected)
    fail(ErrorCode::kInvalidArgument,
         "EnCodec decode: " + std::to_string(codes.size()) +
             " codes given, expected batch·n_q·frames = " + std::to_string(expected));
  for (size_t i = 0; i < codes.size(); ++i)
    if (codes[i] < 0 || codes[i] >= codebook_size)
      fail(ErrorCode::kInvalidArgument,
           "EnCodec decode: code " + std::to_string(codes[i]) + " at index " + std::to_string(i) +
               " is outside the codebook [0, " + std::to_string(codebook_size) +
               "); strip special tokens (e.g. the pad/BOS id) before decoding");
}

Tensor VulkanCodecDecoder::decode(const std::vector<int32_t>& codes, int batch, int n_q, int frames,
                                  int64_t chunk_frames) const {
  const Impl& m = *impl_;
  Context& ctx = *ctx_;
  m.check_codes(codes, batch, n_q, frames);
  const int64_t B = batch, T = frames, D = m.hidden, C = m.channels, hop = m.hop;
  const int64_t layers = static_cast<int64_t>(m.lstm.size());
  if (chunk_frames == 0) chunk_frames = m.chunk_frames;

  // The audio-rate chunks [a, b) with their context [a0, b0), as EncodecModel::decoder_forward.
  struct Chunk {
    int64_t a, b, a0, b0;
  };
  std::vector<Chunk> chunks;
  if (chunk_frames <= 0 || T <= chunk_frames + 2 * m.halo_frames) {
    chunks.push_back({0, T, 0, T});
  } else {
    for (int64_t a = 0; a < T; a += chunk_frames) {
      const int64_t b = std::min(T, a + chunk_frames);
      chunks.push_back(
          {a, b, std::max<int64_t>(0, a - m.halo_frames), std::min(T, b + m.halo_frames)});
    }
  }
  int64_t max_frames = 0;
  for (const Chunk& c : chunks) max_frames = std::max(max_frames, c.b0 - c.a0);
  // Chunk activations: X and S hold a stage's output rows·channels, Hd the res blocks' hidden.
  int64_t xs = 0, hd = 0, rate = 1;
  for (const GpuStage& s : m.stages) {
    rate *= s.up.stride;
    xs = std::max(xs, max_frames * rate * s.up.cout);
    for (const GpuResBlock& r : s.res) hd = std::max(hd, max_frames * rate * r.conv1.cout);
  }

  std::vector<Buffer> owned;
  auto buffer = [&](int64_t floats) {
    owned.push_back(
        ctx.create_buffer(static_cast<size_t>(std::max<int64_t>(floats, 1)) * 4, false));
    return owned.size() - 1;
  };
  struct Release {
    Context& ctx;
    std::vector<Buffer>& b;
    ~Release() {
      for (Buffer& x : b) ctx.destroy(x);
    }
  } release{ctx, owned};
  const size_t codes_i = buffer(static_cast<int64_t>(codes.size()));
  const size_t z_i = buffer(B * T * D), x0_i = buffer(B * T * C), xp_i = buffer(B * T * 4 * C);
  const size_t l_i[2] = {buffer(B * T * C), buffer(B * T * C)};
  const size_t cell_i = buffer(B * C);
  const int64_t slices = (C + kLstmSlice - 1) / kLstmSlice;
  const size_t part_i = buffer(B * slices * 4 * C);
  const size_t x_i = buffer(B * xs), s_i = buffer(B * xs), h_i = buffer(B * hd);
  const size_t audio_i = buffer(B * T * hop);
  ctx.upload(owned[codes_i], codes.data(), codes.size() * 4);

  // Dispatches: rvq, first, per layer (projection + 2 per step but the first), add, elu; per
  // chunk: per stage (ELU except the first's, up, 4 per res block), elu, last.
  int64_t per_chunk = 1;
  for (const GpuStage& s : m.stages) per_chunk += 2 + 4 * static_cast<int64_t>(s.res.size());
  const int64_t dispatches = 4 + layers * 2 * T + static_cast<int64_t>(chunks.size()) * per_chunk;
  Recorder r(ctx, u32(dispatches));
  VkCommandBuffer cb = ctx.allocate_commands();
  try {
    // The command pool is shared by every user of the context: recording holds its lock.
    auto lock = ctx.recording_lock();
    ctx.begin(cb);
    r.begin(cb);
    const Buffer &z = owned[z_i], &x0 = owned[x0_i], &xp = owned[xp_i], &cell = owned[cell_i],
                 &part = owned[part_i];
    {
      RvqPush p{u32(n_q), u32(T), u32(D), u32(m.codebook_size)};
      r.dispatch("codec_rvq", {&owned[codes_i], &m.codebooks, &z}, &p, sizeof(p), groups(T * D),
                 u32(B));
      r.barrier();
    }
    m.conv(r, m.first, batch, z, 0, T * D, T, x0, 0, T * C, 0, T);
    // LSTM: layer l reads x0 (l = 0) or the previous layer's output, writes l_i[l % 2].
    for (int64_t l = 0; l < layers; ++l) {
      const GpuLstmLayer& g = m.lstm[l];
      const Buffer& in = l == 0 ? x0 : owned[l_i[(l - 1) % 2]];
      const Buffer& out = owned[l_i[l % 2]];
      m.conv(r, g.input, batch, in, 0, T * C, T, xp, 0, T * 4 * C, 0, T);
      for (int64_t t = 0; t < T; ++t) {
        if (t > 0) {  // h_0 = 0: no recurrent product at the first step
          GatesPush p{u32(C), u32(T), u32(t), u32(slices), u32(kLstmSlice)};
          r.dispatch("codec_lstm_gates", {&g.w_hh_t, &out, &part}, &p, sizeof(p), groups(4 * C),
                     u32(slices), u32(B));
          r.barrier();
        }
        CellPush p{u32(C), u32(T), u32(t), u32(slices)};
        r.dispatch("codec_lstm_cell", {&part, &xp, &g.b_hh, &cell, &out}, &p, sizeof(p), groups(C),
                   u32(B));
        r.barrier();
      }
    }
    // f = LSTM(x0) + x0, then the first stage's ELU, once for the whole sequence.
    const Buffer& lstm_out = owned[l_i[(layers - 1) % 2]];
    const Buffer& f = owned[l_i[layers % 2]];
    {
      AddPush p{u32(B * T * C)};
      r.dispatch("codec_add", {&lstm_out, &x0, &f}, &p, sizeof(p), groups(B * T * C));
      r.barrier();
    }
    m.elu(r, f, f, B * T * C);

    const Buffer& audio = owned[audio_i];
    for (const Chunk& ch : chunks) {
      const int64_t n = ch.b0 - ch.a0;
      const Buffer* x = &owned[x_i];
      const Buffer* s = &owned[s_i];
      const Buffer& h = owned[h_i];
      int64_t rows = n, width = C;
      for (size_t si = 0; si < m.stages.size(); ++si) {
        const GpuStage& st = m.stages[si];
        if (si == 0) {
          m.conv_transpose(r, st.up, batch, f, ch.a0 * C, T * C, n, *x);
        } else {
          m.elu(r, *x, *x, B * rows * width);
          m.conv_transpose(r, st.up, batch, *x, 0, rows * width, rows, *s);
          std::swap(x, s);
        }
        rows *= st.up.stride;
        width = st.up.cout;
        for (const GpuResBlock& rb : st.res) {
          // s = x + conv2(ELU(conv1(ELU(x))))
          m.elu(r, *x, *s, B * rows * width);
          m.conv(r, rb.conv1, batch, *s, 0, rows * width, rows, h, 0, rows * rb.conv1.cout, 0,
                 rows);
          m.elu(r, h, h, B * rows * rb.conv1.cout);
          m.conv(r, rb.conv2, batch, h, 0, rows * rb.conv1.cout, rows, *s, 0, rows * width, 0, rows,
                 x);
          std::swap(x, s);
        }
      }
      m.elu(r, *x, *x, B * rows * width);
      // Only the chunk's own rows [a, b) of the audio, straight into place.
      m.conv(r, m.last, batch, *x, 0, rows * width, rows, audio, ch.a * hop, T * hop,
             (ch.a - ch.a0) * hop, (ch.b - ch.a) * hop);
    }
    ctx.end(cb);
    lock.unlock();
    ctx.submit_wait(cb);
  } catch (...) {
    ctx.free_commands(cb);
    throw;
  }
  ctx.free_commands(cb);
  Tensor out({B, 1, T * hop});
  ctx.download(owned[audio_i], out.ptr(), static_cast<size_t>(out.numel()) * 4);
  return out;
}

}  // namespace musicgen::gpu
