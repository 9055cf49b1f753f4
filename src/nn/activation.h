// ELU (alpha 1) for the codec, where it runs on every activation (about 100 M values to decode
// 10 s of audio): an AVX2 expm1 with a scalar twin that performs the same IEEE operations (std::fma
// for every fused step), so both give bitwise identical results, within 2 ulp of expm1.
// Nothing here knows about models; it could live in src/kernels.
#pragma once

#include <cstdint>

namespace musicgen {
class ThreadPool;
}

namespace musicgen::nn {

// y[i] = x[i] > 0 ? x[i] : expm1(x[i]). y may equal x.
void elu(const float* x, float* y, int64_t n);
// The two bodies behind elu(): scalar reference twin and AVX2+FMA.
void elu_scalar(const float* x, float* y, int64_t n);
void elu_avx2(const float* x, float* y, int64_t n);
// In place over n values, split over the pool (nullptr: this thread).
void elu_inplace(float* x, int64_t n, ThreadPool* pool);

}  // namespace musicgen::nn
