#include "nn/packed_matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu.h"
#include "kernels/matmul.h"

namespace musicgen::nn {
namespace {

constexpr int64_t kP = PackedWeights::kPanel;
constexpr int64_t kRows = 6;  // micro-tile rows (6×16 tile = 12 accumulators)

// Panels per cache chunk: the panels one block of A rows is multiplied against while both stay
// in L2; A then streams once per chunk.
int64_t panels_per_chunk(int64_t k) {
  return std::max<int64_t>(1, (192 * 1024) / (k * kP * static_cast<int64_t>(sizeof(float))));
}

// Writes a tile's accumulated rows (tmp [rows][16]) to C, adding the bias, for `cols` columns.
inline void store_tile(const float* tmp, int64_t rows, int64_t cols, const float* bias, float* c,
                       int64_t ldc) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      c[r * ldc + j] = bias != nullptr ? tmp[r * kP + j] + bias[j] : tmp[r * kP + j];
}

// ---- AVX2 + FMA ------------------------------------------------------------------------------

// Accumulators are named variables (an array of __m256 would be spilled to the stack each step).
#define MG_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

template <int MR>
__attribute__((target("avx2,fma"))) void tile_avx2(const float* a, int64_t lda, const float* panel,
                                                   int64_t k, const float* bias, float* c,
                                                   int64_t ldc, int64_t cols) {
#define MG_DECL(r) __m256 x##r##0 = _mm256_setzero_ps(), x##r##1 = _mm256_setzero_ps();
  MG_ROWS(MG_DECL)
#undef MG_DECL
  const float* a_rows[6];
  for (int r = 0; r < 6; ++r) a_rows[r] = a + (r < MR ? r : 0) * lda;
  const float *a0 = a_rows[0], *a1 = a_rows[1], *a2 = a_rows[2], *a3 = a_rows[3], *a4 = a_rows[4],
              *a5 = a_rows[5];
  for (int64_t p = 0; p < k; ++p) {
    const __m256 w0 = _mm256_loadu_ps(panel + p * kP);
    const __m256 w1 = _mm256_loadu_ps(panel + p * kP + 8);
#define MG_STEP(r)                                   \
  if constexpr (r < MR) {                            \
    const __m256 av = _mm256_broadcast_ss(a##r + p); \
    x##r##0 = _mm256_fmadd_ps(av, w0, x##r##0);      \
    x##r##1 = _mm256_fmadd_ps(av, w1, x##r##1);      \
  }
    MG_ROWS(MG_STEP)
#undef MG_STEP
  }
  if (cols == kP) {
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    const bool has_bias = bias != nullptr;
    if (has_bias) {
      b0 = _mm256_loadu_ps(bias);
      b1 = _mm256_loadu_ps(bias + 8);
    }
#define MG_STORE(r)                             \
  if constexpr (r < MR) {                       \
    if (has_bias) {                             \
      x##r##0 = _mm256_add_ps(x##r##0, b0);     \
      x##r##1 = _mm256_add_ps(x##r##1, b1);     \
    }                                           \
    _mm256_storeu_ps(c + r * ldc, x##r##0);     \
    _mm256_storeu_ps(c + r * ldc + 8, x##r##1); \
  }
    MG_ROWS(MG_STORE)
#undef MG_STORE
    return;
  }
  alignas(32) float tmp[6 * kP];
#define MG_SPILL(r)                             \
  if constexpr (r < MR) {                       \
    _mm256_store_ps(tmp + r * kP, x##r##0);     \
    _mm256_store_ps(tmp + r * kP + 8, x##r##1); \
  }
  MG_ROWS(MG_SPILL)
#undef MG_SPILL
  store_tile(tmp, MR, cols, bias, c, ldc);
}
#undef MG_ROWS

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, const float*, float*, int64_t,
                        int64_t);
constexpr TileFn kTilesAvx2[kRows + 1] = {nullptr,      tile_avx2<1>, tile_avx2<2>, tile_avx2<3>,
                                          tile_avx2<4>, tile_avx2<5>, tile_avx2<6>};

// 1 or 2 rows against NP full panels at once: a matrix-vector product (the LSTM recurrence) has
// too few rows for the 6×16 tile to hide the FMA latency, so more panels supply independent
// accumulator chains. Each element's FMA chain is unchanged.
template <int MR, int NP>
__attribute__((target("avx2,fma"))) void tile_wide_avx2(const float* a, int64_t lda,
                                                        const float* panel, int64_t pstride,
                                                        int64_t k, const float* bias, float* c,
                                                        int64_t ldc) {
  static_assert(MR >= 1 && MR <= 2 && NP >= 1 && NP <= 4);
#define MG_Q(X, r) X(r, 0) X(r, 1) X(r, 2) X(r, 3)
#define MG_RQ(X) MG_Q(X, 0) MG_Q(X, 1)
#define MG_DECL(r, q) __m256 y##r##q##0 = _mm256_setzero_ps(), y##r##q##1 = _mm256_setzero_ps();
  MG_RQ(MG_DECL)
#undef MG_DECL
  const float* a0 = a;
  const float* a1 = a + (MR > 1 ? lda : 0);
  const float* w0p = panel;
  const float* w1p = panel + (NP > 1 ? pstride : 0);
  const float* w2p = panel + (NP > 2 ? 2 * pstride : 0);
  const float* w3p = panel + (NP > 3 ? 3 * pstride : 0);
  for (int64_t p = 0; p < k; ++p) {
    const __m256 b0 = _mm256_broadcast_ss(a0 + p);
    const __m256 b1 = _mm256_broadcast_ss(a1 + p);
#define MG_FMA(r, q)                                                                       \
  if constexpr (r < MR && q < NP) {                                                        \
    y##r##q##0 = _mm256_fmadd_ps(b##r, _mm256_loadu_ps(w##q##p + p * kP), y##r##q##0);     \
    y##r##q##1 = _mm256_fmadd_ps(b##r, _mm256_loadu_ps(w##q##p + p * kP + 8), y##r##q##1); \
  }
    MG_RQ(MG_FMA)
#undef MG_FMA
  }
#define MG_STORE(r, q)                                                            \
  if constexpr (r < MR && q < NP) {                                               \
    if (bias != nullptr) {                                                        \
      y##r##q##0 = _mm256_add_ps(y##r##q##0, _mm256_loadu_ps(bias + q * kP));     \
      y##r##q##1 = _mm256_add_ps(y##r##q##1, _mm256_loadu_ps(bias + q * kP + 8)); \
    }                                                                             \
    _mm256_storeu_ps(c + r * ldc + q * kP, y##r##q##0);                           \
    _mm256_storeu_ps(c + r * ldc + q * kP + 8, y##r##q##1);                       \
  }
  MG_RQ(MG_STORE)
#undef MG_STORE
#undef MG_RQ
#undef MG_Q
}

// ---- Scalar twin -----------------------------------------------------------------------------

void tile_scalar(const float* a, int64_t lda, const float* panel, int64_t k, const float* bias,
                 float* c, int64_t ldc, int64_t rows, int64_t cols) {
  float tmp[kRows * kP];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < kP; ++j) {
      float acc = 0.0f;
      for (int64_t p = 0; p < k; ++p) acc = std::fma(a[r * lda + p], panel[p * kP + j], acc);
      tmp[r * kP + j] = acc;
    }
  store_tile(tmp, rows, cols, bias, c, ldc);
}

template <typename Tile>
void run_blocks(const PackedWeights& w, int64_t m0, int64_t m1, int64_t p0, int64_t p1,
                const float* bias, float* c, int64_t ldc, Tile&& tile) {
  const int64_t chunk = panels_per_chunk(w.k());
  for (int64_t pc = p0; pc < p1; pc += chunk) {
    const int64_t pe = std::min(p1, pc + chunk);
    for (int64_t r = m0; r < m1; r += kRows) {
      const int64_t rows = std::min(kRows, m1 - r);
      for (int64_t p = pc; p < pe; ++p) {
        const int64_t col = p * kP;
        const int64_t cols = std::min(kP, w.n() - col);
        tile(r, rows, w.panel(p), bias != nullptr ? bias + col : nullptr, c + r * ldc + col, cols);
      }
    }
  }
}

}  // namespace

PackedWeights::PackedWeights(const float* w, int64_t n, int64_t k) : n_(n), k_(k) {
  data_.assign(static_cast<size_t>(panels() * k_ * kPanel), 0.0f);
  for (int64_t j = 0; j < n_; ++j) {
    float* dst = data_.data() + (j / kPanel) * k_ * kPanel + j % kPanel;
    const float* src = w + j * k_;
    for (int64_t p = 0; p < k_; ++p) dst[p * kPanel] = src[p];
  }
}

void matmul_packed_scalar(const float* a, int64_t lda, const PackedWeights& w, const float* bias,
                          float* c, int64_t ldc, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  run_blocks(
      w, m0, m1, p0, p1, bias, c, ldc,
      [&](int64_t r, int64_t rows, const float* panel, const float* b, float* cc, int64_t cols) {
        tile_scalar(a + r * lda, lda, panel, w.k(), b, cc, ldc, rows, cols);
      });
}

void matmul_packed_avx2(const float* a, int64_t lda, const PackedWeights& w, const float* bias,
                        float* c, int64_t ldc, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  if (m1 - m0 <= 2) {
    // Matrix-vector products: several full panels per call, then the rest one by one.
    const int64_t k = w.k(), pstride = k * kP;
    const int64_t full = std::min(p1, w.n() / kP);  // panels without zero padding
    for (int64_t r = m0; r < m1; r += 2) {
      const int64_t rows = std::min<int64_t>(2, m1 - r);
      const float* ar = a + r * lda;
      float* cr = c + r * ldc;
      int64_t p = p0;
      if (rows == 1)
        for (; p + 4 <= full; p += 4)
          tile_wide_avx2<1, 4>(ar, lda, w.panel(p), pstride, k, bias ? bias + p * kP : nullptr,
                               cr + p * kP, ldc);
      else
        for (; p + 2 <= full; p += 2)
          tile_wide_avx2<2, 2>(ar, lda, w.panel(p), pstride, k, bias ? bias + p * kP : nullptr,
                               cr + p * kP, ldc);
      for (; p < p1; ++p)
        kTilesAvx2[rows](ar, lda, w.panel(p), k, bias ? bias + p * kP : nullptr, cr + p * kP, ldc,
                         std::min(kP, w.n() - p * kP));
    }
    return;
  }
  run_blocks(
      w, m0, m1, p0, p1, bias, c, ldc,
      [&](int64_t r, int64_t rows, const float* panel, const float* b, float* cc, int64_t cols) {
        kTilesAvx2[rows](a + r * lda, lda, panel, w.k(), b, cc, ldc, cols);
      });
}

void matmul_packed(const float* a, int64_t lda, const PackedWeights& w, const float* bias, float* c,
                   int64_t ldc, int64_t m, ThreadPool* pool) {
  const bool avx2 = kernels::isa_at_least(kernels::Isa::kAvx2);
  auto run = [&](int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
    if (avx2)
      matmul_packed_avx2(a, lda, w, bias, c, ldc, m0, m1, p0, p1);
    else
      matmul_packed_scalar(a, lda, w, bias, c, ldc, m0, m1, p0, p1);
  };
  const int64_t panels = w.panels();
  const int threads = pool == nullptr ? 1 : pool->size();
  if (threads == 1 || m * w.n() * w.k() < (1 << 16) || m <= 0) {
    run(0, m, 0, panels);
    return;
  }
  const int64_t row_blocks = (m + kRows - 1) / kRows;
  if (row_blocks >= 4 * threads) {
    // Tall products: split rows (whole micro-tiles), every thread sees all of W.
    pool->parallel_for(row_blocks, [&](int64_t b0, int64_t b1) {
      run(b0 * kRows, std::min(m, b1 * kRows), 0, panels);
    });
  } else {
    // Few rows (the LSTM recurrence): split W's panels, each thread reads its own slice.
    pool->parallel_for(panels, [&](int64_t q0, int64_t q1) { run(0, m, q0, q1); });
  }
}

void gemm_nt(const float* a, int64_t lda, const float* w, const float* bias, float* c, int64_t ldc,
             int64_t m, int64_t n, int64_t k, ThreadPool* pool) {
  const int threads = pool == nullptr ? 1 : pool->size();
  if (threads == 1 || m * n * k < (1 << 16)) {
    kernels::matmul_nt(a, lda, w, bias, c, ldc, m, n, k, nullptr);
    return;
  }
  // matmul_nt splits output columns in blocks of 16; with few columns, split rows instead.
  if (n >= 64 * threads || m < 8 * threads) {
    kernels::matmul_nt(a, lda, w, bias, c, ldc, m, n, k, pool);
    return;
  }
  pool->parallel_for(
      m,
      [&](int64_t r0, int64_t r1) {
        kernels::matmul_nt(a + r0 * lda, lda, w, bias, c + r0 * ldc, ldc, r1 - r0, n, k, nullptr);
      },
      8);
}

namespace {
constexpr int64_t kMinPackedRows = 8;  // narrower W wastes most of a 16-wide panel
}

WeightMatrix::WeightMatrix(const std::vector<float>& w, int64_t n, int64_t k) : n_(n), k_(k) {
  if (n_ >= kMinPackedRows)
    packed_ = PackedWeights(w.data(), n_, k_);
  else
    rows_ = w;
}

void WeightMatrix::multiply(const float* a, int64_t lda, const float* bias, float* c, int64_t ldc,
                            int64_t m, ThreadPool* pool) const {
  if (n_ >= kMinPackedRows)
    matmul_packed(a, lda, packed_, bias, c, ldc, m, pool);
  else
    gemm_nt(a, lda, rows_.data(), bias, c, ldc, m, n_, k_, pool);
}

std::vector<float> WeightMatrix::unpacked() const {
  if (n_ < kMinPackedRows) return rows_;
  std::vector<float> w(static_cast<size_t>(n_ * k_));
  for (int64_t j = 0; j < n_; ++j) {
    const float* src = packed_.panel(j / PackedWeights::kPanel) + j % PackedWeights::kPanel;
    for (int64_t p = 0; p < k_; ++p) w[j * k_ + p] = src[p * PackedWeights::kPanel];
  }
  return w;
}

}  // namespace musicgen::nn
