// A Linear layer, y = x · Wᵀ + b, with W [out, in] (PyTorch layout) stored as float32 or in a
// reduced-precision storage type (bf16, q8, q4: kernels/quant.h). The type is chosen at load:
// float32 checkpoints are converted (quantized) once; tensors already stored in the requested
// type (a bf16 checkpoint, a musicgen quantized file) are used in place from the mapping.
// The bias, when present, stays float32.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "format/safetensors.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"

namespace musicgen {

// Storage type of a Linear weight.
enum class WeightStorage { kF32, kBF16, kQ8, kQ4 };
const char* weight_storage_name(WeightStorage s);
// The tensor dtype that holds a storage type in a musicgen quantized file.
DType weight_storage_dtype(WeightStorage s);

struct LinearLoadOptions {
  WeightStorage storage = WeightStorage::kF32;
  ThreadPool* pool = nullptr;  // splits the quantization at load; nullptr: one thread
  // With kF32: keep a weight whose values are all exactly representable in IEEE half as half
  // (an F16 tensor in place, an F32 one converted): kernels::matmul_nt_f16 then gives bitwise
  // the float32 result while reading half the bytes.
  bool exact_f16 = true;
};

struct Linear {
  WeightStorage storage = WeightStorage::kF32;
  ConstTensor weight;      // [out, in] when storage is kF32, else empty
  kernels::QMatrix qweight;  // when storage is not kF32
  std::shared_ptr<const void> qowner;  // keeps qweight's bytes alive
  ConstTensor bias;        // [out] or empty
  bool mapped = false;     // the weight's bytes are a checkpoint's memory mapping, used in place
  // kF32 storage of half-representable values ("exact f16"): the weight as IEEE half [out, in];
  // `weight` then keeps its shape but no data.
  const uint16_t* weight_f16 = nullptr;
  std::shared_ptr<const void> f16owner;

  // Drops a mapped weight's pages from the resident set (they are mapped back from the page
  // cache when next read); no effect on owned weights. For layers that run once per request.
  void release_resident() const;

  int64_t in_features() const { return storage == WeightStorage::kF32 ? weight.dim(1) : qweight.k; }
  int64_t out_features() const { return storage == WeightStorage::kF32 ? weight.dim(0) : qweight.n; }
  // Bytes the weight occupies (what one forward pass streams).
  size_t weight_bytes() const;

  // x [rows, in] (row stride in_features) -> y [rows, out].
  void forward(const float* x, int64_t rows, float* y, ThreadPool* pool) const;
  // Several layers applied to the same x (same in_features): ys[i] = layers[i](x), computed in
  // one parallel region (one dispatch instead of `count`; the input is quantized once). Results
  // equal separate forward() calls.
  // `after(c0, c1)`, when given, runs on the thread that computed the concatenated output
  // columns [c0, c1) (of every row) right after it computed them, inside the same parallel region:
  // an elementwise epilogue (an activation, a residual add) without another dispatch.
  static void forward_many(const Linear* const* layers, size_t count, const float* x, int64_t rows,
                           float* const* ys, ThreadPool* pool,
                           const std::function<void(int64_t, int64_t)>* after = nullptr);

  // An input prepared once for column-range products inside a caller's own parallel region: x
  // and, when a q8/q4 layer among `layers` reads it, its quantized blocks in `acts` (the caller's
  // scratch, which the products read; left as it was when no layer needs it).
  struct Input {
    const float* x = nullptr;
    int64_t rows = 0, k = 0;
    const kernels::QActs* acts = nullptr;  // never null
  };
  static Input prepare(const float* x, int64_t rows, const Linear* const* layers, size_t count,
                       kernels::QActs* acts);
  // Output columns [n0, n1) of every row into y (row stride out_features()), on this thread:
  // the same values forward() computes for them, whatever the range.
  void forward_cols(const Input& in, float* y, int64_t n0, int64_t n1) const;

  // Loads name.weight (and name.bias) in the requested storage type. A weight stored in the
  // file as bf16/q8/q4 (dtype BF16 / Q8 / Q4) is used in place when it already has that type;
  // a quantized weight cannot be converted to another type (Error kInvalidModel).
  static Linear load(const TensorStore& store, const std::string& name, bool has_bias,
                     const LinearLoadOptions& options = {});
  // The same from a float32 matrix in memory.
  static Linear from_f32(const ConstTensor& weight, const ConstTensor& bias, WeightStorage storage,
                         ThreadPool* pool);
};

// LayerNorm / RMSNorm parameters.
struct Norm {
  ConstTensor weight;
  ConstTensor bias;  // empty for RMS norm
};

}  // namespace musicgen
