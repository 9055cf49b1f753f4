#include "kernels/matmul.h"

#include <algorithm>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu.h"

namespace musicgen::kernels {

namespace {

inline float wvalue(float v) { return v; }
inline float wvalue(uint16_t v) { return f16_to_f32(v); }

template <typename W>
void nt_scalar(const float* a, int64_t lda, const W* w, const float* bias, float* c, int64_t ldc,
               int64_t m, int64_t k, int64_t n_begin, int64_t n_end) {
  for (int64_t i = 0; i < m; ++i) {
    const float* ar = a + i * lda;
    for (int64_t j = n_begin; j < n_end; ++j) {
      const W* wr = w + j * k;
      // Eight interleaved partial sums, like a vector unit, then a fixed reduction order.
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t p = 0;
      for (; p + 8 <= k; p += 8)
        for (int l = 0; l < 8; ++l) acc[l] += ar[p + l] * wvalue(wr[p + l]);
      float tail = 0.0f;
      for (; p < k; ++p) tail += ar[p] * wvalue(wr[p]);
      float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
      s += tail;
      c[i * ldc + j] = bias != nullptr ? s + bias[j] : s;
    }
  }
}

// Split the output columns (weight rows): every thread streams a disjoint slice of W.
template <typename Run>
void split_columns(int64_t m, int64_t n, int64_t k, ThreadPool* pool, const Run& run) {
  const int64_t work = m * n * k;
  if (pool == nullptr || pool->size() == 1 || work < (1 << 15)) {
    run(0, n);
    return;
  }
  constexpr int64_t kBlock = 16;  // column blocks keep tiles whole
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  pool->parallel_for(blocks, [&](int64_t b0, int64_t b1) {
    run(b0 * kBlock, std::min(n, b1 * kBlock));
  });
}

}  // namespace

void matmul_nt_scalar(const float* a, int64_t lda, const float* w, const float* bias, float* c,
                      int64_t ldc, int64_t m, int64_t /*n*/, int64_t k, int64_t n_begin,
                      int64_t n_end) {
  nt_scalar(a, lda, w, bias, c, ldc, m, k, n_begin, n_end);
}

void matmul_nt_f16_scalar(const float* a, int64_t lda, const uint16_t* w, const float* bias,
                          float* c, int64_t ldc, int64_t m, int64_t /*n*/, int64_t k,
                          int64_t n_begin, int64_t n_end) {
  nt_scalar(a, lda, w, bias, c, ldc, m, k, n_begin, n_end);
}

void matmul_nt_f16_cols(const float* a, int64_t lda, const uint16_t* w, const float* bias,
                        float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, int64_t n_begin,
                        int64_t n_end) {
  const Isa isa = active_isa();
  if (isa == Isa::kAvx512)
    matmul_nt_f16_avx512(a, lda, w, bias, c, ldc, m, n, k, n_begin, n_end);
  else if (isa == Isa::kAvx2)
    matmul_nt_f16_avx2(a, lda, w, bias, c, ldc, m, n, k, n_begin, n_end);
  else
    matmul_nt_f16_scalar(a, lda, w, bias, c, ldc, m, n, k, n_begin, n_end);
}

void matmul_nt_f16(const float* a, int64_t lda, const uint16_t* w, const float* bias, float* c,
                   int64_t ldc, int64_t m, int64_t n, int64_t k, ThreadPool* pool) {
  split_columns(m, n, k, pool, [&](int64_t n_begin, int64_t n_end) {
    matmul_nt_f16_cols(a, lda, w, bias, c, ldc, m, n, k, n_begin, n_end);
  });
}

void matmul_nt_cols(const float* a, int64_t lda, const float* w, const float* bias, float* c,
                    int64_t ldc, int64_t m, int64_t n, int64_t k, int64_t n_begin, int64_t n_end) {
  if (isa_at_least(Isa::kAvx2))  // also at the AVX-512 level (matmul.h)
    matmul_nt_avx2(a, lda, w, bias, c, ldc, m, n, k, n_begin, n_end);
  else
    matmul_nt_scalar(a, lda, w, bias, c, ldc, m, n, k, n_begin, n_end);
}

void matmul_nt(const float* a, int64_t lda, const float* w, const float* bias, float* c,
               int64_t ldc, int64_t m, int64_t n, int64_t k, ThreadPool* pool) {
  split_columns(m, n, k, pool, [&](int64_t n_begin, int64_t n_end) {
    matmul_nt_cols(a, lda, w, bias, c, ldc, m, n, k, n_begin, n_end);
  });
}

}  // namespace musicgen::kernels
