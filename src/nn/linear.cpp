#include "nn/linear.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"

namespace musicgen {

const char* weight_storage_name(WeightStorage s) {
  switch (s) {
    case WeightStorage::kF32: return "f32";
    case WeightStorage::kBF16: return "bf16";
    case WeightStorage::kQ8: return "q8";
    case WeightStorage::kQ4: return "q4";
  }
  return "?";
}

DType weight_storage_dtype(WeightStorage s) {
  switch (s) {
    case WeightStorage::kF32: return DType::kF32;
    case WeightStorage::kBF16: return DType::kBF16;
    case WeightStorage::kQ8: return DType::kQ8;
    case WeightStorage::kQ4: return DType::kQ4;
  }
  return DType::kF32;
}

namespace {

kernels::QType qtype(WeightStorage s) {
  switch (s) {
    case WeightStorage::kBF16: return kernels::QType::kBF16;
    case WeightStorage::kQ4: return kernels::QType::kQ4;
    default: return kernels::QType::kQ8;
  }
}

// 64-byte aligned owned bytes.
std::shared_ptr<uint8_t> aligned_bytes(size_t n) {
  void* p = ::operator new(n > 0 ? n : 1, std::align_val_t{64});
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p),
                                  [](uint8_t* q) { ::operator delete(q, std::align_val_t{64}); });
}

}  // namespace

size_t Linear::weight_bytes() const {
  if (storage == WeightStorage::kF32)
    return static_cast<size_t>(weight.numel()) * (weight_f16 != nullptr ? 2 : 4);
  return kernels::q_data_bytes(qweight.type, qweight.n, qweight.k) +
         kernels::q_scale_bytes(qweight.type, qweight.n, qweight.k);
}

void Linear::release_resident() const {
  if (!mapped) return;
  if (weight_f16 != nullptr)
    MappedFile::release(reinterpret_cast<const uint8_t*>(weight_f16), weight_bytes());
  else if (storage == WeightStorage::kF32)
    MappedFile::release(reinterpret_cast<const uint8_t*>(weight.data), weight_bytes());
  else
    MappedFile::release(qweight.data, weight_bytes());
}

void Linear::forward(const float* x, int64_t rows, float* y, ThreadPool* pool) const {
  const float* b = bias.empty() ? nullptr : bias.data;
  if (weight_f16 != nullptr)
    kernels::matmul_nt_f16(x, in_features(), weight_f16, b, y, out_features(), rows,
                           out_features(), in_features(), pool);
  else if (storage == WeightStorage::kF32)
    kernels::matmul_nt(x, in_features(), weight.data, b, y, out_features(), rows, out_features(),
                       in_features(), pool);
  else
    kernels::qmatmul(x, in_features(), rows, qweight, b, y, out_features(), pool);
}

Linear::Input Linear::prepare(const float* x, int64_t rows, const Linear* const* layers,
                              size_t count, kernels::QActs* acts) {
  const int64_t k = layers[0]->in_features();
  bool needs_acts = false;
  for (size_t i = 0; i < count; ++i) {
    if (layers[i]->in_features() != k)
      fail(ErrorCode::kInvalidArgument, "Linear: layers applied together differ in input width");
    needs_acts = needs_acts || layers[i]->storage == WeightStorage::kQ8 ||
                 layers[i]->storage == WeightStorage::kQ4;
  }
  // The input quantized once per block format (every q8/q4 layer shares it).
  if (needs_acts) kernels::quantize_acts(x, k, rows, k, acts);
  return Input{x, rows, k, acts};
}

void Linear::forward_cols(const Input& in, float* y, int64_t n0, int64_t n1) const {
  if (n0 >= n1) return;
  const int64_t n = out_features(), k = in.k;
  const float* b = bias.empty() ? nullptr : bias.data;
  if (weight_f16 != nullptr)
    kernels::matmul_nt_f16_cols(in.x, k, weight_f16, b, y, n, in.rows, n, k, n0, n1);
  else if (storage == WeightStorage::kF32)
    kernels::matmul_nt_cols(in.x, k, weight.data, b, y, n, in.rows, n, k, n0, n1);
  else
    kernels::qmatmul_cols(in.x, k, in.rows, *in.acts, qweight, b, y, n, n0, n1);
}

void Linear::forward_many(const Linear* const* layers, size_t count, const float* x, int64_t rows,
                          float* const* ys, ThreadPool* pool,
                          const std::function<void(int64_t, int64_t)>* after) {
  if (count == 0 || rows <= 0) return;
  thread_local kernels::QActs scratch;  // the calling thread's; the workers read it through `in`
  const Input in = prepare(x, rows, layers, count, &scratch);
  int64_t total = 0;
  for (size_t i = 0; i < count; ++i) total += layers[i]->out_features();
  // Columns of the concatenated outputs [0, total): each range maps to pieces of the layers.
  auto run = [&](int64_t c0, int64_t c1) {
    int64_t base = 0;
    for (size_t i = 0; i < count && base < c1; ++i) {
      const int64_t n = layers[i]->out_features();
      layers[i]->forward_cols(in, ys[i], std::max<int64_t>(c0 - base, 0),
                              std::min<int64_t>(c1 - base, n));
      base += n;
    }
    if (after != nullptr) (*after)(c0, c1);
  };
  if (pool == nullptr || pool->size() == 1 || rows * total * in.k < (1 << 15)) {
    run(0, total);
    return;
  }
  constexpr int64_t kCols = 16;  // whole tiles of every kernel
  const int64_t blocks = (total + kCols - 1) / kCols;
  pool->parallel_for_stealing(blocks, [&](int64_t b0, int64_t b1) {
    run(b0 * kCols, std::min(total, b1 * kCols));
  });
}

Linear Linear::from_f32(const ConstTensor& w, const ConstTensor& b, WeightStorage storage,
                        ThreadPool* pool) {
  Linear l;
  l.bias = b;
  l.storage = storage;
  if (storage == WeightStorage::kF32) {
    l.weight = w;
    return l;
  }
  const int64_t n = w.dim(0), k = w.dim(1);
  const kernels::QType t = qtype(storage);
  const size_t data = kernels::q_data_bytes(t, n, k), scales = kernels::q_scale_bytes(t, n, k);
  auto buf = aligned_bytes(data + scales);
  uint16_t* sp = scales > 0 ? reinterpret_cast<uint16_t*>(buf.get() + data) : nullptr;
  kernels::quantize_matrix(t, w.data, n, k, buf.get(), sp, pool);
  l.qweight = kernels::QMatrix{t, n, k, buf.get(), sp};
  l.qowner = buf;
  return l;
}

Linear Linear::load(const TensorStore& store, const std::string& name, bool has_bias,
                    const LinearLoadOptions& options) {
  const std::string wname = name + ".weight";
  const TensorInfo* info = store.find(wname);
  if (info == nullptr)
    fail(ErrorCode::kInvalidModel, "tensor '" + wname + "' is missing from " + store.source());
  const ConstTensor bias = has_bias ? store.get_f32(name + ".bias") : ConstTensor{};
  const bool stored_quantized = info->dtype == DType::kQ8 || info->dtype == DType::kQ4;
  const WeightStorage wanted = options.storage;
  if (info->dtype == weight_storage_dtype(wanted) && wanted != WeightStorage::kF32 &&
      info->shape.size() == 2) {
    // Already in the requested type: use the mapped bytes in place (scales follow the data).
    Linear l;
    l.bias = bias;
    l.storage = wanted;
    const kernels::QType t = qtype(wanted);
    const int64_t n = info->shape[0], k = info->shape[1];
    const size_t data = kernels::q_data_bytes(t, n, k), scales = kernels::q_scale_bytes(t, n, k);
    if (info->nbytes != data + scales)
      fail(ErrorCode::kInvalidModel, "tensor '" + wname + "' holds " +
                                         std::to_string(info->nbytes) + " bytes, a " +
                                         weight_storage_name(wanted) + " " + shape_str(info->shape) +
                                         " matrix needs " + std::to_string(data + scales) +
                                         "; the file is corrupt, quantize the model again");
    if (reinterpret_cast<uintptr_t>(info->data) % 2 != 0) {  // unaligned bf16: copy
      auto buf = aligned_bytes(info->nbytes);
      std::copy_n(info->data, info->nbytes, buf.get());
      l.qweight = kernels::QMatrix{t, n, k, buf.get(), nullptr};
      l.qowner = buf;
      return l;
    }
    l.qweight = kernels::QMatrix{
        t, n, k, info->data,
        scales > 0 ? reinterpret_cast<const uint16_t*>(info->data + data) : nullptr};
    l.qowner = info->file;
    l.mapped = info->file != nullptr;
    return l;
  }
  if (stored_quantized)
    fail(ErrorCode::kInvalidModel,
         "tensor '" + wname + "' is stored as " + dtype_name(info->dtype) + " and cannot be loaded as " +
             weight_storage_name(wanted) + "; quantize the original checkpoint again for another type");
  if (wanted == WeightStorage::kF32 && options.exact_f16 && info->shape.size() == 2 &&
      (info->dtype == DType::kF16 || info->dtype == DType::kF32)) {
    Linear l;
    l.bias = bias;
    l.storage = WeightStorage::kF32;
    l.weight.shape = info->shape;
    const size_t n = static_cast<size_t>(shape_numel(info->shape));
    if (info->dtype == DType::kF16 && reinterpret_cast<uintptr_t>(info->data) % 2 == 0) {
      l.weight_f16 = reinterpret_cast<const uint16_t*>(info->data);  // in place
      l.f16owner = info->file ? std::shared_ptr<const void>(info->file) : info->owner;
      l.mapped = info->file != nullptr;
      return l;
    }
    if (info->dtype == DType::kF32) {
      // Exact in half? Convert to a buffer, and keep it only if every value comes back equal.
      auto buf = aligned_bytes(n * 2);
      uint16_t* h = reinterpret_cast<uint16_t*>(buf.get());
      std::atomic<bool> exact{true};
      auto check = [&](int64_t i0, int64_t i1) {
        kernels::convert_f32_to_f16_if_exact(info->data, i0, i1, h, &exact);
      };
      if (options.pool != nullptr)
        options.pool->parallel_for(static_cast<int64_t>(n), check, 1 << 16);
      else
        check(0, static_cast<int64_t>(n));
      if (exact.load()) {
        l.weight_f16 = h;
        l.f16owner = buf;
        if (info->file) MappedFile::release(info->data, info->nbytes);
        return l;
      }
    }
  }
  Linear l = from_f32(TensorStore::to_f32(*info), bias, wanted, options.pool);
  l.mapped = wanted == WeightStorage::kF32 && info->dtype == DType::kF32 && info->file != nullptr;
  // The source pages are not read again: drop them from the resident set (a float32 checkpoint
  // would otherwise stay resident next to its converted copy).
  if (wanted != WeightStorage::kF32 && info->file) MappedFile::release(info->data, info->nbytes);
  return l;
}

}  // namespace musicgen
