// Reduced-precision weight matrices and their products with float32 activations.
//
// A matrix W [N, K] (PyTorch Linear layout, row n = output n) is stored in one of three types:
//
//   bf16  the upper 16 bits of each float32 (round to nearest even), [N][K] uint16.
//   q8    blocks of 32 weights along K: w = d * q, q int8 in [-127, 127], d an f16 scale.
//   q4    blocks of 32 weights along K: w = d * q + m, q in [0, 15], d and m f16.
//
// Block layouts (Kp = K rounded up to 32, nb = Kp / 32 blocks per row, nbp = nb rounded up to 8;
// padding weights are 0, padding scales 0):
//   q8  data:   int8 [N][Kp]                       scales: f16 [N][nbp]        (d)
//   q4  data:   uint8 [N][Kp / 2]                  scales: f16 [N][2][nbp]     (d then m)
//       byte j of a block holds element j in its low nibble and element j + 16 in its high one.
//
// The q8 and q4 products quantize each activation row on the fly to int8 in blocks of 32 (one
// float32 scale per block, round to nearest even) and form integer dot products per block
// (AVX2: maddubs/madd; AVX-512: VNNI vpdpbusd), scaled and accumulated in float32. Every output element is computed by
// the same sequence of operations whichever tile, thread range or instruction set computes it:
// the scalar twins reproduce the AVX2 lane structure (8 partial sums, fixed reduction order), so
// SIMD and scalar results are bitwise equal and results never depend on the thread count.
//
// q4 block pairs: the q4 products take blocks two at a time. One 32-byte load holds the 16 bytes
// of blocks b and b + 1; its low nibbles are elements 0-15 of both blocks, its high nibbles
// elements 16-31. Lanes 0-3 of the integer sums belong to block b and lanes 4-7 to block b + 1
// (lane l sums elements 4l'..4l'+3 and 16+4l'..16+4l'+3 of its block, l' = l mod 4), so one
// conversion and one FMA with the scales [d_b x 4, d_b+1 x 4] serve two blocks. A block count
// that is odd pairs the last block with a zero one.
//
// The kernels read each weight row once for all activation rows of a call (the guidance streams
// and batch items of a decoder step share one read of the weights).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace musicgen {
class ThreadPool;
}

namespace musicgen::kernels {

enum class QType { kBF16, kQ8, kQ4 };
const char* qtype_name(QType type);

constexpr int64_t kQBlock = 32;
inline int64_t q_padded_k(int64_t k) { return (k + kQBlock - 1) / kQBlock * kQBlock; }
inline int64_t q_blocks(int64_t k) { return q_padded_k(k) / kQBlock; }
// Activation bytes per row in the q4 pair order (QActs::qp): padded K rounded up to two blocks.
inline int64_t q_paired_k(int64_t kp) { return (kp + 2 * kQBlock - 1) / (2 * kQBlock) * (2 * kQBlock); }
// Scale entries per row (blocks rounded up to 8, the AVX2 group).
inline int64_t q_scale_stride(int64_t k) { return (q_blocks(k) + 7) / 8 * 8; }

// Bytes of the two parts of an [n, k] matrix of `type` (bf16 has no scales).
size_t q_data_bytes(QType type, int64_t n, int64_t k);
size_t q_scale_bytes(QType type, int64_t n, int64_t k);

// A read-only view of a stored matrix.
struct QMatrix {
  QType type = QType::kQ8;
  int64_t n = 0, k = 0;
  const uint8_t* data = nullptr;     // q_data_bytes
  const uint16_t* scales = nullptr;  // q_scale_bytes / 2 f16 values; nullptr for bf16
};

// Quantizes rows [row_begin, row_end) of w [n, k] into data/scales laid out as above (the
// buffers hold the whole matrix). Pure function of the rows: any split gives the same bytes.
void quantize_rows(QType type, const float* w, int64_t k, int64_t row_begin, int64_t row_end,
                   uint8_t* data, uint16_t* scales);
// Whole matrix, rows split over the pool (may be nullptr).
void quantize_matrix(QType type, const float* w, int64_t n, int64_t k, uint8_t* data,
                     uint16_t* scales, ThreadPool* pool);
// The float32 values row `row` stands for (k values).
void dequantize_row(const QMatrix& w, int64_t row, float* out);

// f32 <-> f16 / bf16 scalar conversions (round to nearest even).
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);

// The exact-f16 test (LoadOptions::exact_f16, `musicgen info`): converts float32 values [i0, i1)
// of x (raw bytes, any alignment) to IEEE half into h (when not null) and clears *exact at the
// first value that does not come back bit-equal. Stops early once *exact is false, so several
// threads can share one flag over ranges of the same matrix.
void convert_f32_to_f16_if_exact(const uint8_t* x, int64_t i0, int64_t i1, uint16_t* h,
                                 std::atomic<bool>* exact);

// Row conversion float32 -> IEEE half (the 16-bit KV cache); F16C when available, bitwise equal.
void convert_f32_to_f16(const float* x, uint16_t* y, int64_t n);
void convert_f32_to_f16_avx2(const float* x, uint16_t* y, int64_t n);

// Activation rows quantized to int8 blocks (for q8 and q4 weights).
struct QActs {
  int64_t m = 0, k = 0, kp = 0, nbp = 0;
  std::vector<int8_t> q;  // [m][kp], padding 0
  std::vector<float> d;   // [m][nbp]: block scales, padding 0
  std::vector<float> s;   // [m][nbp]: d * sum(q) of each block (the q4 min term), padding 0
  // [m][kp / 4]: -128 x (q[4l] + q[4l+1] + q[4l+2] + q[4l+3]), the start value of each int32 lane
  // when the AVX-512 q8 product reads the weights offset to unsigned (q + 128, quant_avx512.cpp).
  std::vector<int32_t> c;
  // [m][kpp], kpp = q_paired_k(kp): q in the q4 pair order (quant.h, "q4 block pairs"),
  // per pair of blocks (b, b + 1): elements 0-15 of b, 0-15 of b + 1, 16-31 of b, 16-31 of
  // b + 1; a last block without a partner pairs with zeros. The q4 products load it as it is.
  std::vector<int8_t> qp;
  int64_t kpp = 0;
};
void quantize_acts(const float* x, int64_t ldx, int64_t m, int64_t k, QActs* out);
// Fills out->c from out->q (the scalar quantizer calls it last; the AVX2 one forms c as it goes).
void fill_offset_sums(QActs* out);
// Fills out->qp from out->q (the scalar quantizer calls it last; the AVX2 one stores qp as it goes).
void fill_pairs(QActs* out);
void quantize_acts_scalar(const float* x, int64_t ldx, int64_t m, int64_t k, QActs* out);
void quantize_acts_avx2(const float* x, int64_t ldx, int64_t m, int64_t k, QActs* out);

// y[i, j] = sum_p x[i, p] * W[j, p] (+ bias[j]) for i < m, j < w.n: x [m, k] with row stride
// ldx, y row stride ldy. Picks the instruction set (kernels/cpu.h) and splits output columns
// over the pool (nullptr: one thread).
void qmatmul(const float* x, int64_t ldx, int64_t m, const QMatrix& w, const float* bias,
             float* y, int64_t ldy, ThreadPool* pool);

// Output columns [n_begin, n_end) only, on the calling thread, with the active instruction set.
// acts: x quantized by quantize_acts (q8/q4 weights; unused for bf16).
void qmatmul_cols(const float* x, int64_t ldx, int64_t m, const QActs& acts, const QMatrix& w,
                  const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end);

// The bodies over output columns [n_begin, n_end): scalar reference twins and AVX2 variants.
// bf16 takes the float activations; q8/q4 the quantized ones.
void qmatmul_bf16_scalar(const float* x, int64_t ldx, int64_t m, const QMatrix& w,
                         const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end);
void qmatmul_bf16_avx2(const float* x, int64_t ldx, int64_t m, const QMatrix& w,
                       const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end);
void qmatmul_q8_scalar(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                       int64_t n_begin, int64_t n_end);
void qmatmul_q8_avx2(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                     int64_t n_begin, int64_t n_end);
void qmatmul_q4_scalar(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                       int64_t n_begin, int64_t n_end);
void qmatmul_q4_avx2(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                     int64_t n_begin, int64_t n_end);
// AVX-512 level (VNNI vpdpbusd on 256-bit registers): bitwise equal to the scalar twins. bf16 uses
// its AVX2 kernel at this level (a zmm variant measured slower on Zen 4, docs/PERFORMANCE.md).
void qmatmul_q8_avx512(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                       int64_t n_begin, int64_t n_end);
void qmatmul_q4_avx512(const QActs& x, const QMatrix& w, const float* bias, float* y, int64_t ldy,
                       int64_t n_begin, int64_t n_end);

}  // namespace musicgen::kernels
