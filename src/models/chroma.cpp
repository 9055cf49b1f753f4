#include "models/chroma.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <numbers>

#include "core/error.h"

namespace musicgen {
namespace {

// FFTW's planner is not thread-safe; plan creation and destruction go through this lock.
// fftw_execute_dft_r2c on a finished plan is thread-safe.
std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

struct FftwFree {
  void operator()(void* p) const { fftw_free(p); }
};

}  // namespace

std::vector<double> ChromaExtractor::chroma_filter_bank(int n_fft, int num_chroma,
                                                        int sampling_rate, double tuning,
                                                        double power, double weight_center,
                                                        double weight_half_width,
                                                        bool start_at_c_chroma) {
  const int n = n_fft;
  const double c_count = num_chroma;
  // frequencies = linspace(0, sr, n, endpoint=False)[1:] = i · (sr / n), i = 1..n-1.
  const double step = static_cast<double>(sampling_rate) / n;
  const double a0 = 440.0 * std::pow(2.0, tuning / num_chroma) / 16;
  // freq_bins[i]: position in chroma bins (12 per octave) above A0; bin 0 (DC) made up 1.5
  // octaves below bin 1.
  std::vector<double> fb(n);
  for (int i = 1; i < n; ++i) fb[i] = c_count * std::log2((i * step) / a0);
  fb[0] = fb[1] - 1.5 * c_count;
  std::vector<double> width(n, 1.0);
  for (int i = 0; i + 1 < n; ++i) width[i] = std::max(fb[i + 1] - fb[i], 1.0);

  const double half = std::nearbyint(c_count / 2);             // np.round (ties to even)
  std::vector<double> w(static_cast<size_t>(num_chroma) * n);  // [C, n] before the roll
  for (int c = 0; c < num_chroma; ++c)
    for (int i = 0; i < n; ++i) {
      // Project the distance into [-C/2, C/2); the +10·C offset keeps fmod's argument positive.
      const double d = std::fmod(fb[i] - c + half + 10 * c_count, c_count) - half;
      const double x = 2 * d / width[i];
      w[static_cast<size_t>(c) * n + i] = std::exp(-0.5 * (x * x));
    }
  if (power > 0) {
    for (int i = 0; i < n; ++i) {
      double sum = 0.0;  // row order, as numpy's axis-0 reduction
      for (int c = 0; c < num_chroma; ++c) {
        const double v = w[static_cast<size_t>(c) * n + i];
        sum += power == 2.0 ? v * v : std::pow(v, power);
      }
      const double norm = power == 2.0 ? std::sqrt(sum) : std::pow(sum, 1.0 / power);
      for (int c = 0; c < num_chroma; ++c) w[static_cast<size_t>(c) * n + i] /= norm;
    }
  }
  if (weight_half_width > 0) {
    for (int i = 0; i < n; ++i) {
      const double x = (fb[i] / c_count - weight_center) / weight_half_width;
      const double g = std::exp(-0.5 * (x * x));
      for (int c = 0; c < num_chroma; ++c) w[static_cast<size_t>(c) * n + i] *= g;
    }
  }
  const int shift = start_at_c_chroma ? 3 * (num_chroma / 12) : 0;  // roll by -shift
  const int bins = 1 + n / 2;
  std::vector<double> out(static_cast<size_t>(num_chroma) * bins);
  for (int c = 0; c < num_chroma; ++c) {
    const int src = (c + shift) % num_chroma;
    std::copy_n(w.begin() + static_cast<size_t>(src) * n, bins,
                out.begin() + static_cast<size_t>(c) * bins);
  }
  return out;
}

ChromaExtractor::ChromaExtractor() {
  const std::vector<double> fb = chroma_filter_bank(kNFft, kNumChroma, kSampleRate);
  filters_.assign(fb.begin(), fb.end());  // HF: torch.from_numpy(...).float()

  window_.resize(kNFft);
  window_norm_ = 0.0;
  for (int i = 0; i < kNFft; ++i) {
    window_[i] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / kNFft);  // periodic Hann
    window_norm_ += window_[i] * window_[i];
  }

  std::unique_ptr<double, FftwFree> in(fftw_alloc_real(kNFft));
  std::unique_ptr<fftw_complex, FftwFree> out(fftw_alloc_complex(kNumBins));
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  plan_ = fftw_plan_dft_r2c_1d(kNFft, in.get(), out.get(), FFTW_ESTIMATE);
  if (plan_ == nullptr) fail(ErrorCode::kIo, "FFTW could not plan the chroma STFT");
}

ChromaExtractor::~ChromaExtractor() {
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  fftw_destroy_plan(static_cast<fftw_plan>(plan_));
}

int64_t ChromaExtractor::num_frames(int64_t samples) {
  const int64_t n = std::max<int64_t>(std::min(samples, kMaxSamples), kNFft);
  return 1 + n / kHopLength;
}

std::vector<double> ChromaExtractor::raw_chroma(const float* audio, int64_t samples) const {
  if (audio == nullptr || samples <= 0)
    fail(ErrorCode::kInvalidArgument, "the melody audio is empty; pass a file that contains audio");
  // Truncate to 30 s, then zero-pad short inputs to n_fft (pad // 2 left, the rest right).
  const int64_t n = std::min(samples, kMaxSamples);
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(audio[i]))
      fail(ErrorCode::kInvalidArgument,
           "the melody audio contains NaN or infinite samples; pass a valid audio file");
  const int64_t len = std::max<int64_t>(n, kNFft);
  const int64_t left = (len - n) / 2;
  std::vector<double> x(static_cast<size_t>(len), 0.0);
  for (int64_t i = 0; i < n; ++i) x[left + i] = audio[i];

  // center=True: reflect-pad n_fft / 2 on both sides (no edge repeat; len >= n_fft > pad).
  constexpr int64_t kPad = kNFft / 2;
  std::vector<double> xp(static_cast<size_t>(len + 2 * kPad));
  for (int64_t i = 0; i < len + 2 * kPad; ++i) {
    int64_t j = i - kPad;
    if (j < 0) j = -j;
    if (j >= len) j = 2 * (len - 1) - j;
    xp[i] = x[j];
  }

  const int64_t frames = 1 + len / kHopLength;
  std::vector<double> raw(static_cast<size_t>(frames) * kNumChroma);  // [T, 12]
  std::unique_ptr<double, FftwFree> in(fftw_alloc_real(kNFft));
  std::unique_ptr<fftw_complex, FftwFree> out(fftw_alloc_complex(kNumBins));
  std::vector<double> power(kNumBins);
  const fftw_plan plan = static_cast<fftw_plan>(plan_);
  for (int64_t t = 0; t < frames; ++t) {
    const double* frame = xp.data() + t * kHopLength;
    for (int i = 0; i < kNFft; ++i) in.get()[i] = frame[i] * window_[i];
    fftw_execute_dft_r2c(plan, in.get(), out.get());
    // normalized=True divides the complex STFT by sqrt(Σ w²); power 2.
    for (int f = 0; f < kNumBins; ++f) {
      const double re = out.get()[f][0], im = out.get()[f][1];
      power[f] = (re * re + im * im) / window_norm_;
    }
    for (int c = 0; c < kNumChroma; ++c) {
      const float* fc = filters_.data() + static_cast<size_t>(c) * kNumBins;
      double acc = 0.0;
      for (int f = 0; f < kNumBins; ++f) acc += static_cast<double>(fc[f]) * power[f];
      raw[static_cast<size_t>(t) * kNumChroma + c] = acc;
    }
  }
  return raw;
}

std::vector<float> ChromaExtractor::extract(const float* audio, int64_t samples) const {
  const std::vector<double> raw = raw_chroma(audio, samples);
  const int64_t frames = static_cast<int64_t>(raw.size()) / kNumChroma;
  std::vector<float> out(raw.size(), 0.0f);  // [T, 12]
  for (int64_t t = 0; t < frames; ++t) {
    // In float32 as the reference: normalize(p=inf, eps=1e-6), then argmax (first on ties).
    float v[kNumChroma];
    float peak = 0.0f;
    for (int c = 0; c < kNumChroma; ++c) {
      v[c] = static_cast<float>(raw[static_cast<size_t>(t) * kNumChroma + c]);
      peak = std::max(peak, std::fabs(v[c]));
    }
    const float denom = std::max(peak, 1e-6f);
    int best = 0;
    float best_v = v[0] / denom;
    for (int c = 1; c < kNumChroma; ++c) {
      const float q = v[c] / denom;
      if (q > best_v) {
        best_v = q;
        best = c;
      }
    }
    out[static_cast<size_t>(t) * kNumChroma + best] = 1.0f;
  }
  return out;
}

}  // namespace musicgen
