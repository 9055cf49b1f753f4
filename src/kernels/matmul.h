// Matrix products on float32 pointers. W is stored as PyTorch stores a Linear weight: [N, K]
// row-major ("nt": C = A · Wᵀ). Each output element is one dot product computed with the same
// arithmetic wherever it falls in a tile or thread range, so results do not depend on the thread
// count.
#pragma once

#include <cstdint>

namespace musicgen {
class ThreadPool;
}

namespace musicgen::kernels {

// C[m, n] = sum_k A[m, k] * W[n, k] (+ bias[n] if bias != nullptr).
// A has row stride lda, C has row stride ldc. pool may be nullptr (single thread).
void matmul_nt(const float* a, int64_t lda, const float* w, const float* bias, float* c,
               int64_t ldc, int64_t m, int64_t n, int64_t k, ThreadPool* pool);

// Output columns [n_begin, n_end) only, on the calling thread, with the active instruction set
// (the building block of callers that share one parallel region between several products).
void matmul_nt_cols(const float* a, int64_t lda, const float* w, const float* bias, float* c,
                    int64_t ldc, int64_t m, int64_t n, int64_t k, int64_t n_begin, int64_t n_end);

// The scalar reference twin (same contract).
void matmul_nt_scalar(const float* a, int64_t lda, const float* w, const float* bias, float* c,
                      int64_t ldc, int64_t m, int64_t n, int64_t k, int64_t n_begin, int64_t n_end);
// AVX2+FMA variant over output columns [n_begin, n_end).
void matmul_nt_avx2(const float* a, int64_t lda, const float* w, const float* bias, float* c,
                    int64_t ldc, int64_t m, int64_t n, int64_t k, int64_t n_begin, int64_t n_end);

// The same products with W stored as IEEE half [N, K] ("exact f16" storage of float32 weights
// whose values are all representable in half): each weight is converted to float32 exactly as it
// is loaded and the arithmetic is that of matmul_nt, element for element, so the result is
// bitwise equal to matmul_nt on the float32 matrix while half the weight bytes are read.
void matmul_nt_f16(const float* a, int64_t lda, const uint16_t* w, const float* bias, float* c,
                   int64_t ldc, int64_t m, int64_t n, int64_t k, ThreadPool* pool);
void matmul_nt_f16_cols(const float* a, int64_t lda, const uint16_t* w, const float* bias,
                        float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, int64_t n_begin,
                        int64_t n_end);
void matmul_nt_f16_scalar(const float* a, int64_t lda, const uint16_t* w, const float* bias,
                          float* c, int64_t ldc, int64_t m, int64_t n, int64_t k,
                          int64_t n_begin, int64_t n_end);
void matmul_nt_f16_avx2(const float* a, int64_t lda, const uint16_t* w, const float* bias,
                        float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, int64_t n_begin,
                        int64_t n_end);
// AVX-512 (vcvtph2ps on zmm): bitwise equal to matmul_nt_f16_avx2. float32 weights use the AVX2
// kernel at the AVX-512 level (a zmm variant measured slower on Zen 4).
void matmul_nt_f16_avx512(const float* a, int64_t lda, const uint16_t* w, const float* bias,
                          float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, int64_t n_begin,
                          int64_t n_end);

}  // namespace musicgen::kernels
