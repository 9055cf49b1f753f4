#include "audio/audio_writer.h"

#include <ebur128.h>
#include <sndfile.h>
#include <soxr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include "core/error.h"

namespace musicgen {

namespace {

// ---- normalisation ---------------------------------------------------------------------------

float db_to_gain(float db) { return static_cast<float>(std::pow(10.0, -static_cast<double>(db) / 20.0)); }

void clamp_all(float* x, size_t n, float limit) {
  for (size_t i = 0; i < n; ++i) x[i] = std::clamp(x[i], -limit, limit);
}

void scale_all(float* x, size_t n, double gain) {
  const float g = static_cast<float>(gain);
  for (size_t i = 0; i < n; ++i) x[i] *= g;
}

struct Ebur128Deleter {
  void operator()(ebur128_state* s) const { ebur128_destroy(&s); }
};

// ---- libsndfile virtual I/O on a string ------------------------------------------------------

struct MemoryFile {
  std::string bytes;
  sf_count_t pos = 0;
};

sf_count_t mem_length(void* user) { return static_cast<sf_count_t>(static_cast<MemoryFile*>(user)->bytes.size()); }

sf_count_t mem_seek(sf_count_t offset, int whence, void* user) {
  auto* m = static_cast<MemoryFile*>(user);
  sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : static_cast<sf_count_t>(m->bytes.size());
  const sf_count_t p = base + offset;
  if (p < 0) return -1;
  m->pos = p;
  return p;
}

sf_count_t mem_read(void* ptr, sf_count_t count, void* user) {
  auto* m = static_cast<MemoryFile*>(user);
  const sf_count_t size = static_cast<sf_count_t>(m->bytes.size());
  const sf_count_t n = std::clamp<sf_count_t>(size - m->pos, 0, count);
  if (n > 0) std::memcpy(ptr, m->bytes.data() + m->pos, static_cast<size_t>(n));
  m->pos += n;
  return n;
}

sf_count_t mem_write(const void* ptr, sf_count_t count, void* user) {
  auto* m = static_cast<MemoryFile*>(user);
  if (count <= 0) return 0;
  const size_t end = static_cast<size_t>(m->pos + count);
  if (end > m->bytes.size()) m->bytes.resize(end);
  std::memcpy(m->bytes.data() + m->pos, ptr, static_cast<size_t>(count));
  m->pos += count;
  return count;
}

sf_count_t mem_tell(void* user) { return static_cast<MemoryFile*>(user)->pos; }

// ---- tags ------------------------------------------------------------------------------------

int tag_type(const std::string& key) {
  static const std::pair<const char*, int> kTypes[] = {
      {"title", SF_STR_TITLE},       {"copyright", SF_STR_COPYRIGHT}, {"software", SF_STR_SOFTWARE},
      {"artist", SF_STR_ARTIST},     {"comment", SF_STR_COMMENT},     {"date", SF_STR_DATE},
      {"album", SF_STR_ALBUM},       {"license", SF_STR_LICENSE},     {"tracknumber", SF_STR_TRACKNUMBER},
      {"genre", SF_STR_GENRE}};
  for (const auto& [name, type] : kTypes)
    if (key == name) return type;
  fail(ErrorCode::kInvalidArgument,
       "unknown audio tag '" + key +
           "'; use title, copyright, software, artist, comment, date, album, license, "
           "tracknumber or genre");
}

// lame writes ID3 text as ISO-8859-1: UTF-8 text is converted, characters beyond U+00FF become
// '?' (the JSON comment escapes them as \uXXXX, so nothing is lost there).
std::string utf8_to_latin1(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + len > s.size()) len = 1;
    uint32_t cp = c;
    if (len == 2) cp = ((c & 0x1fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3fu);
    if (len == 1 && c >= 0x80) cp = '?';
    out += cp <= 0xff && len <= 2 ? static_cast<char>(cp) : '?';
    i += len;
  }
  return out;
}

// ---- Ogg: a serial number from the content ---------------------------------------------------

uint32_t ogg_crc(const unsigned char* p, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t r = i << 24;
      for (int k = 0; k < 8; ++k) r = (r & 0x80000000u) ? (r << 1) ^ 0x04c11db7u : r << 1;
      t[i] = r;
    }
    return t;
  }();
  uint32_t crc = 0;
  for (size_t i = 0; i < n; ++i) crc = (crc << 8) ^ table[((crc >> 24) ^ p[i]) & 0xff];
  return crc;
}

void put_le32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

uint32_t get_le32(const unsigned char* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// libsndfile picks a random Ogg stream serial (time-seeded); replace it by a hash of the pages
// (serial and CRC fields zeroed) so that the same audio and tags give the same file. Leaves the
// bytes alone unless they are one logical stream of well-formed pages.
void make_ogg_serial_deterministic(std::string& bytes) {
  auto* data = reinterpret_cast<unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  struct Page {
    size_t offset, size;
  };
  std::vector<Page> pages;
  uint32_t serial = 0;
  for (size_t pos = 0; pos < n;) {
    if (n - pos < 27 || std::memcmp(data + pos, "OggS", 4) != 0) return;
    const size_t segments = data[pos + 26];
    if (n - pos < 27 + segments) return;
    size_t size = 27 + segments;
    for (size_t s = 0; s < segments; ++s) size += data[pos + 27 + s];
    if (n - pos < size) return;
    const uint32_t page_serial = get_le32(data + pos + 14);
    if (pages.empty()) serial = page_serial;
    else if (page_serial != serial) return;
    pages.push_back({pos, size});
    pos += size;
  }
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the pages without serial and CRC
  for (const Page& p : pages)
    for (size_t i = 0; i < p.size; ++i) {
      const bool masked = (i >= 14 && i < 18) || (i >= 22 && i < 26);
      const unsigned char b = masked ? 0 : data[p.offset + i];
      h = (h ^ b) * 1099511628211ull;
    }
  const uint32_t new_serial = static_cast<uint32_t>(h ^ (h >> 32));
  for (const Page& p : pages) {
    unsigned char* page = data + p.offset;
    put_le32(page + 14, new_serial);
    put_le32(page + 22, 0);
    put_le32(page + 22, ogg_crc(page, p.size));
  }
}

// ---- resampling for Opus ---------------------------------------------------------------------

std::vector<float> resample_interleaved(const std::vector<float>& in, int channels, int64_t frames,
                                        int in_rate, int out_rate, int64_t* out_frames) {
  const int64_t expect = (frames * out_rate + in_rate / 2) / in_rate;
  std::vector<float> out(static_cast<size_t>(expect + 16) * channels);
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  size_t done = 0;
  const soxr_error_t err = soxr_oneshot(in_rate, out_rate, static_cast<unsigned>(channels), in.data(),
                                        static_cast<size_t>(frames), nullptr, out.data(),
                                        static_cast<size_t>(expect), &done, &io, &quality, nullptr);
  if (err != nullptr)
    fail(ErrorCode::kIo, std::string("cannot resample to ") + std::to_string(out_rate) +
                             " Hz for Opus (libsoxr: " + err + ")");
  out.resize(done * channels);
  *out_frames = static_cast<int64_t>(done);
  return out;
}

// audiocraft.data.audio_utils.i16_pcm: round(x * 2^15) (half to even, as torch.round), or
// round(x * (2^15 - 1)) when that would reach 2^15; then saturated (only unnormalised audio
// exceeds +-1; a NaN, possible only then, becomes 0).
std::vector<short> to_pcm16(const std::vector<float>& x) {
  double peak = 0;
  for (float v : x) peak = std::max(peak, static_cast<double>(v));
  const double scale = std::nearbyint(peak * 32768.0) >= 32768.0 ? 32767.0 : 32768.0;
  std::vector<short> out(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    out[i] = std::isnan(x[i]) ? 0 : static_cast<short>(std::clamp(std::nearbyint(x[i] * scale), -32768.0, 32767.0));
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// ---- public functions of this layer ----------------------------------------------------------

double integrated_loudness(const float* planar, int channels, int64_t frames, int sample_rate) {
  if (channels <= 0 || frames <= 0 || sample_rate <= 0) return -std::numeric_limits<double>::infinity();
  std::unique_ptr<ebur128_state, Ebur128Deleter> st(
      ebur128_init(static_cast<unsigned>(channels), static_cast<unsigned long>(sample_rate), EBUR128_MODE_I));
  if (!st) fail(ErrorCode::kInvalidArgument, "libebur128 cannot measure " + std::to_string(channels) +
                                                 " channels at " + std::to_string(sample_rate) + " Hz");
  // Unit weights for every channel, as torchaudio's Loudness gives the front channels.
  for (int c = 0; c < channels; ++c)
    ebur128_set_channel(st.get(), static_cast<unsigned>(c), c == 0 ? EBUR128_LEFT : c == 1 ? EBUR128_RIGHT : EBUR128_CENTER);
  constexpr int64_t kChunk = 16384;
  std::vector<float> inter(static_cast<size_t>(kChunk) * channels);
  for (int64_t t0 = 0; t0 < frames; t0 += kChunk) {
    const int64_t n = std::min(kChunk, frames - t0);
    for (int c = 0; c < channels; ++c)
      for (int64_t t = 0; t < n; ++t) inter[t * channels + c] = planar[c * frames + t0 + t];
    if (ebur128_add_frames_float(st.get(), inter.data(), static_cast<size_t>(n)) != EBUR128_SUCCESS)
      fail(ErrorCode::kIo, "libebur128 failed to measure the loudness");
  }
  double lufs = 0;
  if (ebur128_loudness_global(st.get(), &lufs) != EBUR128_SUCCESS)
    fail(ErrorCode::kIo, "libebur128 failed to measure the loudness");
  return std::isfinite(lufs) ? lufs : -std::numeric_limits<double>::infinity();
}

void normalize_audio(float* x, int channels, int64_t frames, int sample_rate, const NormalizeParams& p) {
  const size_t n = static_cast<size_t>(channels) * static_cast<size_t>(frames);
  if (p.strategy == NormalizeStrategy::kNone || n == 0) return;
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]))
      fail(ErrorCode::kInvalidArgument, "the audio holds NaN or infinite samples; it cannot be normalised");
  for (float db : {p.peak_clip_headroom_db, p.rms_headroom_db, p.loudness_headroom_db})
    if (!std::isfinite(db))
      fail(ErrorCode::kInvalidArgument, "a normalisation headroom is not a finite number of dB");
  const float scale_peak = db_to_gain(p.peak_clip_headroom_db);
  switch (p.strategy) {
    case NormalizeStrategy::kNone:
      return;
    case NormalizeStrategy::kClip:
      clamp_all(x, n, scale_peak);
      return;
    case NormalizeStrategy::kPeak: {
      float peak = 0;
      for (size_t i = 0; i < n; ++i) peak = std::max(peak, std::fabs(x[i]));
      if (peak > 0) scale_all(x, n, static_cast<double>(scale_peak) / peak);
      return;
    }
    case NormalizeStrategy::kRms: {
      double sum = 0;  // mean over channels, then the RMS of that mono signal
      for (int64_t t = 0; t < frames; ++t) {
        double m = 0;
        for (int c = 0; c < channels; ++c) m += x[c * frames + t];
        m /= channels;
        sum += m * m;
      }
      const double rms = std::sqrt(sum / static_cast<double>(frames));
      if (rms > 0) scale_all(x, n, db_to_gain(p.rms_headroom_db) / rms);
      clamp_all(x, n, 1.0f);
      return;
    }
    case NormalizeStrategy::kLoudness: {
      double sum = 0;
      for (size_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
      const double energy = std::sqrt(sum / static_cast<double>(n));
      if (energy >= 2e-3) {  // audiocraft's energy_floor
        const double lufs = integrated_loudness(x, channels, frames, sample_rate);
        if (std::isfinite(lufs))
          scale_all(x, n, std::pow(10.0, (-static_cast<double>(p.loudness_headroom_db) - lufs) / 20.0));
      }
      clamp_all(x, n, 1.0f);
      return;
    }
  }
}

int opus_sample_rate(int sample_rate) {
  for (int r : {8000, 12000, 16000, 24000, 48000})
    if (sample_rate == r) return r;
  return 48000;
}

std::string encode_audio_bytes(const float* planar, int channels, int64_t frames, int sample_rate,
                               const EncodeOptions& o) {
  if (channels <= 0 || sample_rate <= 0 || frames < 0)
    fail(ErrorCode::kInvalidArgument, "cannot encode audio with " + std::to_string(channels) +
                                          " channels at " + std::to_string(sample_rate) + " Hz");
  if (o.wav_float && o.format != EncodeFormat::kWav)
    fail(ErrorCode::kInvalidArgument, std::string("float32 samples are for WAV only; ") +
                                          encode_format_name(o.format) + " uses its own codec");
  // Tags are checked before any work.
  std::vector<std::pair<int, std::string>> tags;
  for (const auto& [key, value] : o.tags)
    tags.emplace_back(tag_type(key), o.format == EncodeFormat::kMp3 ? utf8_to_latin1(value) : value);

  std::vector<float> audio(planar, planar + static_cast<size_t>(channels) * frames);
  normalize_audio(audio.data(), channels, frames, sample_rate, o.normalize);
  std::vector<float> inter(audio.size());
  for (int c = 0; c < channels; ++c)
    for (int64_t t = 0; t < frames; ++t) inter[t * channels + c] = audio[c * frames + t];
  audio = {};

  int rate = sample_rate;
  if (o.format == EncodeFormat::kOpus && opus_sample_rate(sample_rate) != sample_rate) {
    rate = opus_sample_rate(sample_rate);
    inter = resample_interleaved(inter, channels, frames, sample_rate, rate, &frames);
  }

  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  switch (o.format) {
    case EncodeFormat::kWav: info.format = SF_FORMAT_WAV | (o.wav_float ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16); break;
    case EncodeFormat::kFlac: info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16; break;
    case EncodeFormat::kOgg: info.format = SF_FORMAT_OGG | SF_FORMAT_VORBIS; break;
    case EncodeFormat::kOpus: info.format = SF_FORMAT_OGG | SF_FORMAT_OPUS; break;
    case EncodeFormat::kMp3: info.format = SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III; break;
  }
  const std::string what = std::string(encode_format_name(o.format)) + " (" + std::to_string(channels) +
                           " channels, " + std::to_string(rate) + " Hz)";
  MemoryFile mem;
  SF_VIRTUAL_IO io{mem_length, mem_seek, mem_read, mem_write, mem_tell};
  SNDFILE* f = sf_open_virtual(&io, SFM_WRITE, &info, &mem);
  if (f == nullptr)
    fail(ErrorCode::kInvalidArgument, "cannot encode " + what + ": " + sf_strerror(nullptr));
  struct Closer {
    SNDFILE*& f;
    ~Closer() {
      if (f) sf_close(f);
    }
  } closer{f};
  // Lossy codecs' integer stages saturate instead of wrapping around.
  if (o.format != EncodeFormat::kWav && o.format != EncodeFormat::kFlac) sf_command(f, SFC_SET_CLIPPING, nullptr, SF_TRUE);
  // No PEAK chunk in float WAV: it holds the time of writing, and the same take should give
  // the same bytes.
  if (o.format == EncodeFormat::kWav && o.wav_float) sf_command(f, SFC_SET_ADD_PEAK_CHUNK, nullptr, SF_FALSE);
  if (o.format == EncodeFormat::kMp3) {
    // audiocraft's audio_write writes MP3 at 320 kb/s: constant bit rate, the highest level.
    int mode = SF_BITRATE_MODE_CONSTANT;
    double level = 0.0;
    // (libsndfile 1.2.0 returns 0 from SFC_SET_BITRATE_MODE even when it succeeds; the tests
    // check the bit rate of the file instead.)
    sf_command(f, SFC_SET_BITRATE_MODE, &mode, sizeof(mode));
    sf_command(f, SFC_SET_COMPRESSION_LEVEL, &level, sizeof(level));
  }
  for (const auto& [type, value] : tags)
    if (sf_set_string(f, type, value.c_str()) != 0)
      fail(ErrorCode::kInvalidArgument, "cannot store a tag in " + what + ": " + sf_strerror(f));
  // 16-bit formats get audiocraft's i16_pcm quantisation, done here: libsndfile's float
  // conversion scales WAV and FLAC differently (and rounds differently with clipping on).
  const bool pcm16 = o.format == EncodeFormat::kFlac || (o.format == EncodeFormat::kWav && !o.wav_float);
  const sf_count_t written =
      frames == 0 ? 0
      : pcm16     ? sf_writef_short(f, to_pcm16(inter).data(), frames)
                  : sf_writef_float(f, inter.data(), frames);
  if (written != frames) fail(ErrorCode::kIo, "encoding " + what + " failed: " + sf_strerror(f));
  SNDFILE* done = f;
  f = nullptr;
  if (sf_close(done) != 0) fail(ErrorCode::kIo, "finishing the " + what + " file failed");
  // libsndfile writes FLAC and MP3 headers with the first samples: no samples, no file.
  if (mem.bytes.empty())
    fail(ErrorCode::kInvalidArgument, "cannot write " + what + " without samples; the audio is empty");
  if (o.format == EncodeFormat::kOgg || o.format == EncodeFormat::kOpus) make_ogg_serial_deterministic(mem.bytes);
  return std::move(mem.bytes);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    fail(ErrorCode::kIo, "cannot write '" + path + "': directory '" + dir.string() +
                             "' does not exist; create it or choose another output file");
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr)
    fail(ErrorCode::kIo, "cannot write '" + path + "': " + std::strerror(errno) +
                             "; check the directory is writable");
  const bool wrote = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !closed) {
    std::remove(tmp.c_str());
    fail(ErrorCode::kIo, "writing '" + path + "' failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail(ErrorCode::kIo, "cannot move the output into '" + path + "': " + std::strerror(err));
  }
}

EncodeFormat encode_format_for_path(const std::string& path) {
  const std::string ext = lower(std::filesystem::path(path).extension().string());
  if (ext == ".wav" || ext == ".wave") return EncodeFormat::kWav;
  if (ext == ".flac") return EncodeFormat::kFlac;
  if (ext == ".ogg" || ext == ".oga") return EncodeFormat::kOgg;
  if (ext == ".opus") return EncodeFormat::kOpus;
  if (ext == ".mp3") return EncodeFormat::kMp3;
  fail(ErrorCode::kInvalidArgument,
       "cannot tell the audio format of '" + path + "'" +
           (ext.empty() ? std::string(" (no extension)") : " (unknown extension '" + ext + "')") +
           "; name it .wav, .flac, .ogg, .opus or .mp3, or give --format");
}

const char* encode_format_name(EncodeFormat format) {
  switch (format) {
    case EncodeFormat::kWav: return "wav";
    case EncodeFormat::kFlac: return "flac";
    case EncodeFormat::kOgg: return "ogg";
    case EncodeFormat::kOpus: return "opus";
    case EncodeFormat::kMp3: return "mp3";
  }
  return "?";
}

EncodeFormat parse_encode_format(const std::string& name) {
  const std::string n = lower(name);
  if (n == "wav") return EncodeFormat::kWav;
  if (n == "flac") return EncodeFormat::kFlac;
  if (n == "ogg" || n == "vorbis") return EncodeFormat::kOgg;
  if (n == "opus") return EncodeFormat::kOpus;
  if (n == "mp3") return EncodeFormat::kMp3;
  fail(ErrorCode::kInvalidArgument, "unknown audio format '" + name + "'; use wav, flac, ogg, opus or mp3");
}

}  // namespace musicgen
