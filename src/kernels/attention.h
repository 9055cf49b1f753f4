// Attention of one query over cached keys and values, for one head: the inner loop of a decoder
// step. Keys and values are rows of d values ([keys][d], contiguous) in float32, IEEE half (the
// 16-bit KV cache) or int8 with one float scale per row (the q8 KV cache: k_jt = ks_j * k8_jt).
// With q scaled first, as Hugging Face does:
//
//   s_j = sum_t (scale * q_t) * k_jt + bias_j,   p = softmax(s),   out_t = sum_j p_j * v_jt
//
// (q8: the scaled query is quantized like a cached row, quantize_kv_row(scale * q) = (qi, sq), and
// s_j = float(sum_t qi_t * k8_jt) * (sq * ks_j) + bias_j, the sum an exact integer; out_t =
// sum_j (p_j * vs_j) * v8_jt.)
//
// bias ([keys], additive, e.g. -FLT_MAX for masked keys) may be nullptr; scratch holds `keys`
// floats. A row whose scores are all -FLT_MAX gets uniform weights, as PyTorch's finfo.min masks
// give. The AVX2 variants reproduce the scalar twins' lanes and reduction order: bitwise equal.
#pragma once

#include <cstdint>

namespace musicgen::kernels {

void attend(const float* q, const float* k, const float* v, int64_t keys, int64_t d, float scale,
            const float* bias, float* scratch, float* out);
void attend_f16(const float* q, const uint16_t* k, const uint16_t* v, int64_t keys, int64_t d,
                float scale, const float* bias, float* scratch, float* out);

// The q8 KV cache: k, v int8 [keys][d]; ks, vs the rows' scales [keys].
void attend_q8(const float* q, const int8_t* k, const float* ks, const int8_t* v, const float* vs,
               int64_t keys, int64_t d, float scale, const float* bias, float* scratch, float* out);
void attend_q8_scalar(const float* q, const int8_t* k, const float* ks, const int8_t* v,
                      const float* vs, int64_t keys, int64_t d, float scale, const float* bias,
                      float* scratch, float* out);
void attend_q8_avx2(const float* q, const int8_t* k, const float* ks, const int8_t* v,
                    const float* vs, int64_t keys, int64_t d, float scale, const float* bias,
                    float* scratch, float* out);
// One cached row into the q8 KV cache: scale = max|x| / 127, q = round(x / scale) (to nearest
// even, |q| <= 127; all zero for a zero row).
void quantize_kv_row(const float* x, int64_t d, int8_t* q, float* scale);

void attend_scalar(const float* q, const float* k, const float* v, int64_t keys, int64_t d,
                   float scale, const float* bias, float* scratch, float* out);
void attend_avx2(const float* q, const float* k, const float* v, int64_t keys, int64_t d,
                 float scale, const float* bias, float* scratch, float* out);
void attend_f16_scalar(const float* q, const uint16_t* k, const uint16_t* v, int64_t keys,
                       int64_t d, float scale, const float* bias, float* scratch, float* out);
void attend_f16_avx2(const float* q, const uint16_t* k, const uint16_t* v, int64_t keys, int64_t d,
                     float scale, const float* bias, float* scratch, float* out);

}  // namespace musicgen::kernels
