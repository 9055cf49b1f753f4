// Small tensor types. Dimension letters used across the code base (declared once here):
//   B batch (guidance streams included), K codebooks, T frames, S sequence steps / text tokens,
//   C channels, H hidden width / heads (by context), D head dim, V vocabulary.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace musicgen {

using Shape = std::vector<int64_t>;

[[noreturn]] void shape_overflow(const Shape& shape);

// The number of elements. A negative dimension or a product beyond int64 (a shape read from a
// corrupt file) throws Error(kInvalidModel) instead of wrapping.
inline int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) shape_overflow(shape);
  return n;
}

std::string shape_str(const Shape& shape);

// A read-only float32 tensor: a view whose storage is kept alive by `owner` (a mapped file or a
// buffer converted at load). Row-major, contiguous.
struct ConstTensor {
  Shape shape;
  const float* data = nullptr;
  std::shared_ptr<const void> owner;

  int64_t numel() const { return shape_numel(shape); }
  int64_t dim(size_t i) const { return shape.at(i); }
  size_t rank() const { return shape.size(); }
  bool empty() const { return data == nullptr; }
};

// An owning, mutable float32 tensor for activations and state.
struct Tensor {
  Shape shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(Shape s, float fill = 0.0f) : shape(std::move(s)), data(shape_numel(shape), fill) {}
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  int64_t dim(size_t i) const { return shape.at(i); }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
  void reshape(Shape s) { shape = std::move(s); }
  ConstTensor view() const { return ConstTensor{shape, data.data(), nullptr}; }
};

// IEEE half and bfloat16 to float.
float f16_to_f32(uint16_t h);
inline float bf16_to_f32(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  __builtin_memcpy(&f, &bits, sizeof(f));
  return f;
}

}  // namespace musicgen
