// C = A·Wᵀ + bias against a constant weight matrix W [N, K] (PyTorch Linear layout) that is packed
// once at load, for the convolutions and the LSTM of the codec.
//
// Why not kernels::matmul_nt: that kernel takes one horizontal sum per output and re-streams W for
// every small block of A rows; the codec's products are tall (up to 320k rows) with small K, where
// it reaches about a quarter of the FMA peak. Here W is stored in panels of 16 rows laid out
// k-major ([K][16]), and an AVX2 micro-kernel computes a 6×16 tile of C with 6 broadcasts of A,
// 2 loads of W and 12 FMAs per k, no horizontal sums.
//
// Determinism: every C element is a single FMA chain over k = 0..K−1 starting from 0, then + bias.
// Tiles, thread splits and the scalar twin (std::fma in the same order) therefore give bitwise
// identical results. Nothing here knows about models; it could live in src/kernels.
#pragma once

#include <cstdint>
#include <vector>

namespace musicgen {
class ThreadPool;
}

namespace musicgen::nn {

class PackedWeights {
 public:
  static constexpr int64_t kPanel = 16;  // W rows (C columns) per panel

  PackedWeights() = default;
  // w [n, k] row-major.
  PackedWeights(const float* w, int64_t n, int64_t k);

  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int64_t panels() const { return (n_ + kPanel - 1) / kPanel; }
  // Panel p: [k][kPanel] floats; rows past n are zero.
  const float* panel(int64_t p) const { return data_.data() + p * k_ * kPanel; }

 private:
  int64_t n_ = 0, k_ = 0;
  std::vector<float> data_;
};

// C[i, j] = Σ_k A[i, k]·W[j, k] (+ bias[j]) for i < m, j < w.n(). A has row stride lda (rows may
// overlap, e.g. the sliding windows of a convolution), C row stride ldc. pool may be nullptr.
void matmul_packed(const float* a, int64_t lda, const PackedWeights& w, const float* bias, float* c,
                   int64_t ldc, int64_t m, ThreadPool* pool);

// The bodies over rows [m0, m1) and panels [p0, p1): scalar reference twin and AVX2+FMA.
void matmul_packed_scalar(const float* a, int64_t lda, const PackedWeights& w, const float* bias,
                          float* c, int64_t ldc, int64_t m0, int64_t m1, int64_t p0, int64_t p1);
void matmul_packed_avx2(const float* a, int64_t lda, const PackedWeights& w, const float* bias,
                        float* c, int64_t ldc, int64_t m0, int64_t m1, int64_t p0, int64_t p1);

// kernels::matmul_nt (W unpacked [n, k]) split over the pool by output columns when there are
// many, else by rows. Deterministic whatever the split.
void gemm_nt(const float* a, int64_t lda, const float* w, const float* bias, float* c, int64_t ldc,
             int64_t m, int64_t n, int64_t k, ThreadPool* pool);

// A constant weight matrix W [n, k] ready for C = A·Wᵀ + bias: packed panels, or plain rows used
// through gemm_nt when n is too narrow for 16-wide panels (e.g. the final 1-channel conv).
class WeightMatrix {
 public:
  WeightMatrix() = default;
  WeightMatrix(const std::vector<float>& w, int64_t n, int64_t k);
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  void multiply(const float* a, int64_t lda, const float* bias, float* c, int64_t ldc, int64_t m,
                ThreadPool* pool) const;
  // W [n, k] row-major, as given at construction (for backends that lay weights out their way).
  std::vector<float> unpacked() const;

 private:
  int64_t n_ = 0, k_ = 0;
  PackedWeights packed_;     // n >= kMinPackedRows
  std::vector<float> rows_;  // otherwise
};

}  // namespace musicgen::nn
