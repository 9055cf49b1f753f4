// Melody conditioning features: the chroma extractor of HF MusicgenMelodyFeatureExtractor
// (transformers 4.40.2, feature_extraction_musicgen_melody.py) for one mono 32 kHz waveform.
//
//   x  = the first min(L, 960000) samples (30 s; a single input is never padded to 30 s),
//        zero-padded to 16384 samples (pad/2 left, the rest right) when shorter
//   S  = |STFT(x)|² / Σw²: n_fft = win = 16384, hop 4096, periodic Hann w, center=True with
//        reflect padding of 8192 samples on each side, onesided (8193 bins),
//        frames T = 1 + len(x) / 4096
//   raw[c, t]  = Σ_f F[c, f] · S[f, t], F = chroma_filter_bank(...) [12, 8193] cast to float32
//   norm[c, t] = raw[c, t] / max(max_c |raw[c, t]|, 1e-6)
//   out[t, :]  = one-hot at argmax_c norm[c, t] (the first index on ties)
//
// Numerics: FFT (FFTW, double precision, FFTW_ESTIMATE so the plan and the result are the same
// on every run), spectrogram and filter products are computed in double; the filter bank is
// built in double and rounded to float32 as HF does (`.float()`); the last two steps are done in
// float32 as in the reference. See docs/AUDIO_INPUT.md.
//
// Thread safety: construct once (FFTW planning is serialised internally); extract() is const
// and may be called from several threads at once.
#pragma once

#include <cstdint>
#include <vector>

namespace musicgen {

class ChromaExtractor {
 public:
  static constexpr int kSampleRate = 32000;
  static constexpr int kNumChroma = 12;
  static constexpr int kNFft = 16384;
  static constexpr int kHopLength = 4096;
  static constexpr int kNumBins = kNFft / 2 + 1;      // 8193
  static constexpr int64_t kMaxSamples = 30 * 32000;  // chunk_length · sampling_rate

  ChromaExtractor();
  ~ChromaExtractor();
  ChromaExtractor(const ChromaExtractor&) = delete;
  ChromaExtractor& operator=(const ChromaExtractor&) = delete;

  // Number of chroma frames for `samples` input samples: 1 + max(min(n, 960000), 16384) / 4096.
  static int64_t num_frames(int64_t samples);

  // One-hot chroma [frames, 12] (row-major) of mono 32 kHz audio; frames = num_frames(samples).
  // Throws Error(kInvalidArgument) for empty input.
  std::vector<float> extract(const float* audio, int64_t samples) const;

  // The chroma before the one-hot step: raw[t, c] = Σ_f F[c, f] · S[f, t] in double, [frames, 12].
  // For tests and debugging (margins between the best and second-best bin).
  std::vector<double> raw_chroma(const float* audio, int64_t samples) const;

  // The filter bank F [12, 8193] (row-major, float32 values as HF's `chroma_filters`).
  const std::vector<float>& filter_bank() const { return filters_; }

  // HF audio_utils.chroma_filter_bank in double precision, [num_chroma, 1 + n_fft / 2].
  static std::vector<double> chroma_filter_bank(int n_fft, int num_chroma, int sampling_rate,
                                                double tuning = 0.0, double power = 2.0,
                                                double weight_center = 5.0,
                                                double weight_half_width = 2.0,
                                                bool start_at_c_chroma = true);

 private:
  std::vector<float> filters_;  // [12, 8193]
  std::vector<double> window_;  // periodic Hann, 16384
  double window_norm_ = 0.0;    // Σ w²
  void* plan_ = nullptr;        // fftw_plan (r2c, 16384, double)
};

}  // namespace musicgen
