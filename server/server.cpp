#include "server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "audio_response.h"
#include "backend.h"
#include "embedded.h"
#include "musicgen/error.h"
#include "musicgen/hub.h"
#include "queue/queue_worker.h"
#include "queue/redis_queue.h"

namespace musicgen::server {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A request the server refuses: HTTP status, message, and the JSON field at fault (if any).
struct ApiError {
  int status;
  std::string message;
  std::string field;
  double retry_after_s = 0;
};

[[noreturn]] void bad(const std::string& field, const std::string& message, int status = 400) {
  throw ApiError{status, message, field};
}

void send_error(httplib::Response& res, const ApiError& e) {
  json err = {{"message", e.message}};
  err["field"] = e.field.empty() ? json(nullptr) : json(e.field);
  res.status = e.status;
  if (e.retry_after_s > 0)
    res.set_header("Retry-After", std::to_string(static_cast<int>(std::ceil(e.retry_after_s))));
  res.set_content(json{{"error", err}}.dump() + "\n", "application/json");
}

// ---- base64 ----
const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kB64[(v >> s) & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    if (i + 1 < in.size()) v |= uint8_t(in[i + 1]) << 8;
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// Accepts standard and URL-safe alphabets, with or without padding, and a "data:...;base64,"
// prefix; whitespace is skipped. false for anything else.
bool base64_decode(const std::string& text, std::string* out) {
  std::string_view in(text);
  if (in.substr(0, 5) == "data:") {
    const size_t comma = in.find(',');
    if (comma == std::string_view::npos) return false;
    in.remove_prefix(comma + 1);
  }
  out->clear();
  out->reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
    else if (ch == '+' || ch == '-') v = 62;
    else if (ch == '/' || ch == '_') v = 63;
    else if (ch == '=') { padding = true; continue; }
    else if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') continue;
    else return false;
    if (padding) return false;  // data after padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return bits < 6;
}

// ---- the client's socket, to notice a disconnect while generating ----
// httplib 0.11 does not expose the connection to a handler, so it is found by its addresses.
class ClientWatch {
 public:
  explicit ClientWatch(const httplib::Request& req) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc/self/fd", ec)) {
      int fd = -1;
      try {
        fd = std::stoi(entry.path().filename().string());
      } catch (...) {
        continue;
      }
      struct stat st;
      if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
      sockaddr_storage peer{}, local{};
      socklen_t pl = sizeof(peer), ll = sizeof(local);
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) continue;
      if (port_of(peer) == req.remote_port && port_of(local) == req.local_port &&
          addr_of(peer) == req.remote_addr) {
        fd_ = fd;
        break;
      }
    }
  }
  // True once the client has closed its end (or the connection broke).
  bool closed() const {
    if (fd_ < 0) return false;
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  }

 private:
  static int port_of(const sockaddr_storage& a) {
    if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
    if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
    return -1;
  }
  static std::string addr_of(const sockaddr_storage& a) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (a.ss_family == AF_INET)
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, buf, sizeof(buf));
    else if (a.ss_family == AF_INET6)
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, buf, sizeof(buf));
    return buf;
  }
  int fd_ = -1;
};

// cpp-httplib 0.11 listens with a backlog of 5: a burst of clients connecting at once is reset.
// Its socket is private, so it is found by its port and listen() is called again with the
// system's maximum (Linux updates the backlog of a listening socket).
void raise_listen_backlog(int port) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    try {
      fd = std::stoi(entry.path().filename().string());
    } catch (...) {
      continue;
    }
    int accepting = 0;
    socklen_t len = sizeof(accepting);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting) continue;
    sockaddr_storage local{};
    socklen_t ll = sizeof(local);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) continue;
    const int p = local.ss_family == AF_INET    ? ntohs(reinterpret_cast<sockaddr_in&>(local).sin_port)
                  : local.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6&>(local).sin6_port)
                                                : -1;
    if (p == port) ::listen(fd, SOMAXCONN);
  }
}

struct LoadedModel {
  std::string name, path, revision;
  std::unique_ptr<Backend> backend;
};

// A generation request after validation.
struct Parsed {
  LoadedModel* model = nullptr;
  GenerationOptions opt;
  AudioEncoding enc;
  bool stream = false;
  bool list_prompt = false;
  int batch = 1;
};

// ---- JSON field readers: every problem is a 400 naming the field ----
double get_number(const json& j, const char* f) {
  if (!j.is_number()) bad(f, std::string("'") + f + "' must be a number");
  const double v = j.get<double>();
  if (!std::isfinite(v)) bad(f, std::string("'") + f + "' must be finite");
  return v;
}
long long get_integer(const json& j, const char* f) {
  if (j.is_number_integer()) return j.get<long long>();
  if (j.is_number_unsigned()) {
    if (j.get<unsigned long long>() > static_cast<unsigned long long>(INT64_MAX))
      bad(f, std::string("'") + f + "' is too large");
    return static_cast<long long>(j.get<unsigned long long>());
  }
  if (j.is_number_float()) {
    const double v = j.get<double>();
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15) return static_cast<long long>(v);
  }
  bad(f, std::string("'") + f + "' must be an integer");
}
bool get_bool(const json& j, const char* f) {
  if (!j.is_boolean()) bad(f, std::string("'") + f + "' must be true or false");
  return j.get<bool>();
}
std::string get_string(const json& j, const char* f) {
  if (!j.is_string()) bad(f, std::string("'") + f + "' must be a string");
  return j.get<std::string>();
}

std::string fmt_num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

}  // namespace

// ---- jobs ----
struct Job {
  std::string id;
  std::string model;
  uint64_t seed = 0;
  std::atomic<bool> cancel{false};
  mutable std::mutex mu;
  std::string status = "queued";  // queued, running, succeeded, failed, canceled
  double progress = 0, eta_s = -1;
  double created = 0, finished = 0;
  std::string error;
  std::string body, content_type;
  std::thread thread;
};

struct Server::Impl {
  ServerOptions o;
  std::vector<std::unique_ptr<LoadedModel>> models;
  std::string temp_dir;
  httplib::Server http;
  std::thread listener;
  bool started = false, drained = false;
  std::atomic<bool> draining{false};
  std::atomic<bool> cancel_all{false};

  // Admission: requests admitted (generating or waiting); at most max_batch + max_queue.
  std::mutex admit_mu;
  std::condition_variable admit_cv;
  int admitted = 0;

  // Metrics.
  std::mutex metrics_mu;
  std::map<int, uint64_t> requests_by_status;
  double audio_seconds = 0;
  uint64_t generations_ok = 0, generations_failed = 0, generations_canceled = 0;
  std::deque<std::pair<double, uint64_t>> step_samples;  // (time, total steps) for steps/s

  std::mutex jobs_mu;
  std::map<std::string, std::shared_ptr<Job>> jobs;

  std::atomic<uint64_t> upload_counter{0};

  // The shared queue (--queue): client operations, and the worker that runs this replica's jobs.
  std::unique_ptr<queue::RedisQueue> rq;
  std::unique_ptr<queue::QueueWorker> worker;

  explicit Impl(ServerOptions options) : o(std::move(options)) {}

  // --- admission ---
  struct Ticket {
    Impl* impl = nullptr;
    explicit Ticket(Impl* i) : impl(i) {}
    Ticket(const Ticket&) = delete;
    ~Ticket() {
      if (!impl) return;
      std::lock_guard<std::mutex> lock(impl->admit_mu);
      --impl->admitted;
      impl->admit_cv.notify_all();
    }
  };
  std::shared_ptr<Ticket> admit() {
    std::lock_guard<std::mutex> lock(admit_mu);
    if (admitted >= o.max_batch + o.max_queue) {
      ApiError e{429, "the server is busy (" + std::to_string(admitted) +
                          " requests running or queued); retry later", ""};
      e.retry_after_s = 2;
      throw e;
    }
    ++admitted;
    return std::make_shared<Ticket>(this);
  }

  LoadedModel* find_model(const std::string& name) {
    for (auto& m : models)
      if (m->name == name) return m.get();
    return nullptr;
  }

  AudioData decode_upload(const std::string& b64, const char* field,
                          std::optional<double> duration) {
    std::string bytes;
    if (!base64_decode(b64, &bytes)) bad(field, std::string("'") + field + "' is not valid base64");
    if (bytes.empty()) bad(field, std::string("'") + field + "' is empty");
    if (bytes.size() > o.max_upload_bytes)
      bad(field, std::string("'") + field + "' is " + std::to_string(bytes.size()) +
                     " bytes; the limit is " + std::to_string(o.max_upload_bytes), 413);
    const std::string path =
        (fs::path(temp_dir) / ("upload-" + std::to_string(upload_counter.fetch_add(1)))).string();
    {
      std::ofstream out(path, std::ios::binary);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (!out) {
        std::remove(path.c_str());
        throw ApiError{500, "cannot store the upload in the server's temporary folder", ""};
      }
    }
    try {
      AudioData a = load_audio_file(path, 0.0, duration);
      std::remove(path.c_str());
      return a;
    } catch (const Error& e) {
      std::remove(path.c_str());
      std::string msg = e.what();
      const size_t at = msg.find(path);  // never echo the server's file names
      if (at != std::string::npos) msg.replace(at, path.size(), "upload");
      bad(field, std::string("'") + field + "' could not be decoded as audio: " + msg);
    }
  }

  // Validates a /v1/audio/music body.
  Parsed parse_music(const json& body) {
    if (!body.is_object()) bad("", "the request body must be a JSON object");
    static const std::set<std::string> known = {
        "model", "prompt", "duration", "max_new_tokens", "do_sample", "guidance_scale", "top_k",
        "top_p", "temperature", "seed", "audio", "audio_mode", "prompt_duration",
        "response_format", "sample_format", "stream", "normalize"};
    for (auto it = body.begin(); it != body.end(); ++it)
      if (!known.count(it.key()))
        bad(it.key(), "unknown field '" + it.key() + "' (docs/SERVER.md lists the fields)");
    Parsed p;
    if (body.contains("model")) {
      const std::string name = get_string(body["model"], "model");
      p.model = find_model(name);
      if (!p.model) bad("model", "model '" + name + "' is not served here; GET /v1/models lists them", 404);
    } else {
      p.model = models.front().get();
    }
    const ModelInfo& info = p.model->backend->model()->info();
    if (body.contains("prompt")) {
      const json& pr = body["prompt"];
      if (pr.is_string()) {
        p.opt.prompts = {pr.get<std::string>()};
      } else if (pr.is_array()) {
        if (pr.empty()) bad("prompt", "'prompt' is an empty list");
        if (static_cast<int>(pr.size()) > o.max_prompts)
          bad("prompt", "'prompt' lists " + std::to_string(pr.size()) + " prompts; at most " +
                            std::to_string(o.max_prompts));
        for (const auto& s : pr) {
          if (!s.is_string()) bad("prompt", "'prompt' must be a string or a list of strings");
          p.opt.prompts.push_back(s.get<std::string>());
        }
        p.list_prompt = true;
      } else {
        bad("prompt", "'prompt' must be a string or a list of strings");
      }
      for (const auto& s : p.opt.prompts)
        if (s.size() > 4096) bad("prompt", "a prompt is longer than 4096 characters");
    }
    p.batch = p.opt.prompts.empty() ? 1 : static_cast<int>(p.opt.prompts.size());
    if (body.contains("duration") && body.contains("max_new_tokens"))
      bad("duration", "give either 'duration' or 'max_new_tokens', not both");
    if (body.contains("duration")) {
      const double d = get_number(body["duration"], "duration");
      if (d <= 0 || d > o.max_duration_s)
        bad("duration", "'duration' must be in (0, " + fmt_num(o.max_duration_s) + "] seconds");
      if (std::floor(d * info.frame_rate) < 1)
        bad("duration", "'duration' is shorter than one frame (" + fmt_num(1.0 / info.frame_rate) + " s)");
      p.opt.duration_s = d;
    }
    if (body.contains("max_new_tokens")) {
      const long long n = get_integer(body["max_new_tokens"], "max_new_tokens");
      const long long hi = static_cast<long long>(o.max_duration_s * info.frame_rate) + 3;
      if (n < 4 || n > hi)
        bad("max_new_tokens", "'max_new_tokens' must be in [4, " + std::to_string(hi) + "]");
      p.opt.max_new_tokens = static_cast<int>(n);
    }
    if (body.contains("do_sample")) p.opt.greedy = !get_bool(body["do_sample"], "do_sample");
    if (body.contains("guidance_scale")) {
      const double g = get_number(body["guidance_scale"], "guidance_scale");
      if (g < 1 || g > 100) bad("guidance_scale", "'guidance_scale' must be in [1, 100] (1 disables guidance)");
      p.opt.guidance_scale = static_cast<float>(g);
    }
    if (body.contains("top_k")) {
      const long long k = get_integer(body["top_k"], "top_k");
      if (k < 1 || k > info.vocab_size) bad("top_k", "'top_k' must be in [1, " + std::to_string(info.vocab_size) + "]");
      p.opt.top_k = static_cast<int>(k);
    }
    if (body.contains("top_p")) {
      const double v = get_number(body["top_p"], "top_p");
      if (!(v > 0 && v <= 1)) bad("top_p", "'top_p' must be in (0, 1]");
      p.opt.top_p = static_cast<float>(v);
    }
    if (body.contains("temperature")) {
      const double v = get_number(body["temperature"], "temperature");
      if (!(v > 0 && v <= 100)) bad("temperature", "'temperature' must be in (0, 100]");
      p.opt.temperature = static_cast<float>(v);
    }
    if (body.contains("seed")) {
      const long long s = get_integer(body["seed"], "seed");
      if (s < 0) bad("seed", "'seed' must be >= 0");
      p.opt.seed = static_cast<uint64_t>(s);
    } else {
      static std::mutex rng_mu;
      static std::mt19937_64 rng{std::random_device{}()};
      std::lock_guard<std::mutex> lock(rng_mu);
      p.opt.seed = rng() & ((1ull << 31) - 1);  // small enough for every JSON reader
    }
    std::string mode = "continuation";
    if (body.contains("audio_mode")) {
      mode = get_string(body["audio_mode"], "audio_mode");
      if (mode != "continuation" && mode != "melody")
        bad("audio_mode", "'audio_mode' must be 'continuation' or 'melody'");
      if (!body.contains("audio")) bad("audio_mode", "'audio_mode' needs 'audio'");
    }
    std::optional<double> prompt_duration;
    if (body.contains("prompt_duration")) {
      const double d = get_number(body["prompt_duration"], "prompt_duration");
      if (d <= 0 || d > o.max_duration_s) bad("prompt_duration", "'prompt_duration' must be in (0, " + fmt_num(o.max_duration_s) + "] seconds");
      if (!body.contains("audio")) bad("prompt_duration", "'prompt_duration' needs 'audio'");
      if (mode != "continuation") bad("prompt_duration", "'prompt_duration' applies to audio_mode 'continuation'");
      prompt_duration = d;
    }
    if (body.contains("audio")) {
      const std::string b64 = get_string(body["audio"], "audio");
      if (mode == "melody" && !info.melody)
        bad("audio_mode", "model '" + p.model->name + "' takes no melody; use audio_mode 'continuation' or a melody model");
      AudioData a = decode_upload(b64, "audio", mode == "continuation" ? prompt_duration : std::nullopt);
      if (mode == "melody") p.opt.melodies.push_back(std::move(a));
      else p.opt.audio_prompts.push_back(std::move(a));
    }
    if (body.contains("response_format")) {
      const std::string f = get_string(body["response_format"], "response_format");
      if (!parse_response_format(f, &p.enc.format))
        bad("response_format", "'response_format' must be wav, pcm, flac, ogg, opus or mp3");
    }
    if (body.contains("sample_format")) {
      const std::string f = get_string(body["sample_format"], "sample_format");
      if (f == "pcm16") p.enc.sample_format = SampleFormat::kPcm16;
      else if (f == "f32") p.enc.sample_format = SampleFormat::kFloat32;
      else bad("sample_format", "'sample_format' must be pcm16 or f32");
    }
    if (body.contains("stream")) p.stream = get_bool(body["stream"], "stream");
    if (p.stream && p.batch > 1) bad("stream", "'stream' takes a single prompt, not a list");
    p.enc.normalize = p.stream ? Normalization::kClip : Normalization::kPeak;
    if (body.contains("normalize")) {
      const std::string f = get_string(body["normalize"], "normalize");
      try {
        p.enc.normalize = parse_normalization(f);
      } catch (const Error&) {
        bad("normalize", "'normalize' must be peak, loudness, rms, clip or none");
      }
    }
    try {
      check_encodable(p.enc, p.stream);
    } catch (const Error& e) {
      const bool fmt = std::string(e.what()).find("normalis") == std::string::npos;
      bad(fmt ? (p.enc.sample_format == SampleFormat::kFloat32 && !p.stream ? "sample_format"
                                                                             : "response_format")
              : "normalize",
          e.what());
    }
    return p;
  }

  // The ElevenLabs / LocalAI sound-generation names, mapped onto parse_music's.
  Parsed parse_sound_generation(const json& body) {
    if (!body.is_object()) bad("", "the request body must be a JSON object");
    json m = json::object();
    for (auto it = body.begin(); it != body.end(); ++it) {
      const std::string& k = it.key();
      if (k == "text") m["prompt"] = it.value();
      else if (k == "duration_seconds") {
        if (!it.value().is_null()) m["duration"] = it.value();
      } else if (k == "model_id" || k == "model") m["model"] = it.value();
      else if (k == "prompt_influence") get_number(it.value(), "prompt_influence");  // accepted, ignored
      else if (k == "do_sample" || k == "temperature" || k == "seed" || k == "guidance_scale" ||
               k == "top_k" || k == "top_p") m[k] = it.value();
      else bad(k, "unknown field '" + k + "' (docs/SERVER.md lists the fields)");
    }
    if (!body.contains("text")) bad("text", "'text' is required");
    if (!m["prompt"].is_string()) bad("text", "'text' must be a string");
    try {
      return parse_music(m);
    } catch (ApiError& e) {  // name the field as the request did
      auto rename = [&](const std::string& from, const std::string& to) {
        if (e.field != from) return;
        e.field = to;
        const size_t at = e.message.find("'" + from + "'");
        if (at != std::string::npos) e.message.replace(at, from.size() + 2, "'" + to + "'");
      };
      rename("prompt", "text");
      rename("duration", "duration_seconds");
      if (body.contains("model_id")) rename("model", "model_id");
      throw;
    }
  }

  // Runs a request, with a progress hook that may stop it (false).
  GenerationResult generate(Parsed& p, const std::function<bool(int, int)>& progress) {
    p.opt.progress = [&](int step, int total) {
      if (cancel_all.load()) return false;
      return progress(step, total);
    };
    const double t0 = now_s();
    (void)t0;
    try {
      GenerationResult r = p.model->backend->run(p.opt);
      std::lock_guard<std::mutex> lock(metrics_mu);
      ++generations_ok;
      audio_seconds += static_cast<double>(r.samples) * r.batch / std::max(1, r.sample_rate);
      return r;
    } catch (const Error& e) {
      std::lock_guard<std::mutex> lock(metrics_mu);
      if (e.code() == ErrorCode::kCancelled) ++generations_canceled;
      else ++generations_failed;
      throw;
    }
  }

  ApiError api_error_of(const Error& e) const {
    if (e.code() == ErrorCode::kCancelled && cancel_all.load())
      return {503, "the server shut down before the request finished; retry", ""};
    if (e.code() == ErrorCode::kIo && rq && std::string(e.what()).rfind("Redis", 0) == 0) {
      ApiError a{503, e.what(), ""};
      a.retry_after_s = 2;
      return a;
    }
    switch (e.code()) {
      case ErrorCode::kInvalidArgument: return {400, e.what(), ""};
      case ErrorCode::kUnsupported: return {400, e.what(), ""};
      case ErrorCode::kCancelled: return {499, "the request was canceled", ""};
      default: return {500, e.what(), ""};
    }
  }

  void set_audio_headers(httplib::Response& res, const Parsed& p) {
    res.set_header("X-Seed", std::to_string(p.opt.seed));
    res.set_header("X-Model", p.model->name);
    res.set_header("X-Model-Revision", p.model->revision);
  }

  // The response body of a finished generation: the file, or JSON with one file per prompt.
  void fill_result(const Parsed& p, const GenerationResult& r, std::string* body, std::string* ct) {
    if (!p.list_prompt) {
      *body = encode_item(r, 0, p.enc);
      *ct = content_type(p.enc);
      return;
    }
    json items = json::array();
    for (int b = 0; b < r.batch; ++b)
      items.push_back({{"index", b}, {"prompt", p.opt.prompts[b]},
                       {"content_type", content_type(p.enc)},
                       {"data", base64_encode(encode_item(r, b, p.enc))}});
    *body = json{{"model", p.model->name}, {"revision", p.model->revision},
                 {"seed", p.opt.seed}, {"sample_rate", r.sample_rate},
                 {"channels", r.channels}, {"audio", items}}
                .dump();
    *ct = "application/json";
  }

  json parse_body(const httplib::Request& req) {
    if (req.is_multipart_form_data()) return parse_multipart(req);
    if (req.body.empty()) bad("", "the request needs a JSON body");
    try {
      return json::parse(req.body);
    } catch (const json::parse_error& e) {
      bad("", std::string("the body is not valid JSON: ") + e.what());
    }
  }

  // multipart/form-data: an optional part "request" holding the JSON body, form fields named as
  // the JSON fields, and the audio file as the raw bytes of the part "audio".
  json parse_multipart(const httplib::Request& req) {
    json j = json::object();
    if (req.has_file("request")) {
      j = json::parse(req.get_file_value("request").content, nullptr, false);
      if (!j.is_object()) bad("request", "the part 'request' must hold a JSON object");
    }
    static const std::set<std::string> strings = {"prompt", "text", "model", "model_id",
        "audio_mode", "response_format", "sample_format", "normalize"};
    for (const auto& [name, part] : req.files) {
      if (name == "request") continue;
      if (j.contains(name)) bad(name, "'" + name + "' is given twice");
      if (name == "audio") {
        if (part.content.size() > o.max_upload_bytes)
          bad("audio", "'audio' is " + std::to_string(part.content.size()) +
                           " bytes; the limit is " + std::to_string(o.max_upload_bytes), 413);
        j["audio"] = base64_encode(part.content);
        continue;
      }
      if (strings.count(name)) {
        j[name] = part.content;
        continue;
      }
      json v = json::parse(part.content, nullptr, false);  // numbers, true/false, lists
      j[name] = v.is_discarded() ? json(part.content) : v;
    }
    return j;
  }

  // ---- handlers ----
  void handle_music(const httplib::Request& req, httplib::Response& res, bool sound_generation) {
    if (draining) throw ApiError{503, "the server is shutting down", ""};
    const json body = parse_body(req);
    Parsed p = sound_generation ? parse_sound_generation(body) : parse_music(body);
    auto ticket = admit();
    if (p.stream) return handle_stream(req, res, std::move(p), std::move(ticket));
    if (rq) return handle_music_queued(req, res, body, p, sound_generation);
    ClientWatch watch(req);
    GenerationResult r;
    try {
      r = generate(p, [&](int, int) { return !watch.closed(); });
    } catch (const Error& e) {
      throw api_error_of(e);
    }
    std::string out, ct;
    fill_result(p, r, &out, &ct);
    set_audio_headers(res, p);
    res.set_content(out, ct.c_str());
  }

  struct StreamState {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::string> chunks;
    bool started = false, done = false, failed = false;
    std::optional<Error> error;
    std::atomic<bool> cancel{false};
    bool audio_seen = false;
    std::thread worker;
  };

  void handle_stream(const httplib::Request& req, httplib::Response& res, Parsed p,
                     std::shared_ptr<Ticket> ticket) {
    auto st = std::make_shared<StreamState>();
    auto parsed = std::make_shared<Parsed>(std::move(p));
    const AudioEncoding enc = parsed->enc;
    auto push = [st](std::string s) {
      std::lock_guard<std::mutex> lock(st->mu);
      if (!s.empty()) st->chunks.push_back(std::move(s));
      st->cv.notify_all();
    };
    parsed->opt.on_audio = [st, enc, push](const float* audio, int batch, int channels,
                                            int64_t, int64_t count) {
      st->audio_seen = true;
      push(stream_samples(audio, batch, channels, count, 0, 0, enc));
      return !st->cancel.load();
    };
    st->worker = std::thread([this, st, parsed, enc, push, ticket]() {
      try {
        GenerationResult r = generate(*parsed, [st](int, int) {
          {
            std::lock_guard<std::mutex> lock(st->mu);
            st->started = true;
          }
          st->cv.notify_all();
          return !st->cancel.load();
        });
        // Fallback when the engine did not stream: the whole audio at the end.
        if (!st->audio_seen) {
          const int64_t skip = r.leading_padding.empty() ? 0 : r.leading_padding[0];
          push(stream_samples(r.audio.data(), r.batch, r.channels, r.samples, 0, skip, enc));
        }
        std::lock_guard<std::mutex> lock(st->mu);
        st->started = st->done = true;
        st->cv.notify_all();
      } catch (const Error& e) {
        std::lock_guard<std::mutex> lock(st->mu);
        st->failed = true;
        st->error = e;
        st->cv.notify_all();
      } catch (...) {
        std::lock_guard<std::mutex> lock(st->mu);
        st->failed = true;
        st->error = Error(ErrorCode::kIo, "internal error");
        st->cv.notify_all();
      }
    });
    // Errors before the first decoder step (validation) are still a proper HTTP error.
    auto watch = std::make_shared<ClientWatch>(req);
    {
      std::unique_lock<std::mutex> lock(st->mu);
      while (!st->started && !st->failed) {
        st->cv.wait_for(lock, std::chrono::milliseconds(100));
        if (watch->closed()) st->cancel = true;
      }
      if (st->failed) {
        lock.unlock();
        st->worker.join();
        throw api_error_of(*st->error);
      }
    }
    set_audio_headers(res, *parsed);
    const int channels = parsed->model->backend->model()->info().audio_channels;
    const int rate = parsed->model->backend->model()->info().sample_rate;
    auto header_sent = std::make_shared<bool>(false);
    res.set_chunked_content_provider(
        content_type(enc),
        [st, watch, header_sent, enc, channels, rate](size_t, httplib::DataSink& sink) {
          if (!*header_sent) {
            *header_sent = true;
            const std::string h = stream_header(enc, channels, rate);
            if (!h.empty() && !sink.write(h.data(), h.size())) {
              st->cancel = true;
              return false;
            }
            return true;
          }
          std::unique_lock<std::mutex> lock(st->mu);
          while (st->chunks.empty() && !st->done && !st->failed) {
            st->cv.wait_for(lock, std::chrono::milliseconds(100));
            if (st->chunks.empty() && watch->closed()) {
              st->cancel = true;
              return false;
            }
          }
          if (!st->chunks.empty()) {
            std::string c = std::move(st->chunks.front());
            st->chunks.pop_front();
            lock.unlock();
            if (!sink.write(c.data(), c.size())) {
              st->cancel = true;
              return false;
            }
            return true;
          }
          if (st->failed) return false;  // the client sees a truncated stream
          lock.unlock();
          sink.done();
          return true;
        },
        [st](bool) {
          st->cancel = true;
          if (st->worker.joinable()) st->worker.join();
        });
  }

  // ---- the shared queue (--queue) ----
  // The request as the queue stores it: the canonical body with its seed fixed, so a re-run
  // after a lost replica gives the same take.
  std::string queue_request(const json& body, const Parsed& p, bool sound_generation) {
    json q = body;
    if (sound_generation) {  // stored under parse_music's names
      q = json::object();
      if (body.contains("text")) q["prompt"] = body["text"];
      if (body.contains("duration_seconds") && !body["duration_seconds"].is_null())
        q["duration"] = body["duration_seconds"];
      for (const char* k : {"do_sample", "temperature", "guidance_scale", "top_k", "top_p",
                            "response_format", "sample_format", "normalize"})
        if (body.contains(k)) q[k] = body[k];
    }
    q["seed"] = p.opt.seed;
    q["model"] = p.model->name;
    q.erase("stream");
    return q.dump();
  }

  static std::optional<uint64_t> request_seed(const std::string& request) {
    const json r = json::parse(request, nullptr, false);
    if (r.is_object() && r.contains("seed") && r["seed"].is_number_unsigned())
      return r["seed"].get<uint64_t>();
    return std::nullopt;
  }

  json queue_job_json(const queue::JobRecord& r) {
    json j = {{"id", r.id}, {"status", r.status}, {"progress", r.progress}, {"model", r.model},
              {"attempts", r.attempts}};
    j["eta_s"] = r.eta_s >= 0 && r.status != "succeeded" ? json(r.eta_s) : json(nullptr);
    if (r.status == "succeeded") j["eta_s"] = 0;
    j["replica"] = r.owner.empty() ? json(nullptr) : json(r.owner);
    if (auto seed = request_seed(r.request)) j["seed"] = *seed;
    if (!r.error.empty() && r.status == "failed") j["error"] = {{"message", r.error}, {"field", nullptr}};
    return j;
  }

  queue::JobRecord queue_find(const std::string& id) {
    auto r = rq->get(id);
    if (!r) throw ApiError{404, "no job '" + id + "' (finished jobs are kept for a while only)", "id"};
    return *r;
  }

  std::string idempotency_key(const httplib::Request& req) {
    const std::string k = req.get_header_value("Idempotency-Key");
    if (k.size() > 200) bad("Idempotency-Key", "the Idempotency-Key header is longer than 200 characters");
    for (char c : k)
      if (c < 0x21 || c > 0x7e) bad("Idempotency-Key", "the Idempotency-Key header must be printable ASCII without spaces");
    return k;
  }

  // A synchronous request through the queue: submitted like a job, answered when it ends (on
  // whichever replica runs it); a client that goes away cancels it.
  void handle_music_queued(const httplib::Request& req, httplib::Response& res, const json& body,
                           const Parsed& p, bool sound_generation) {
    ClientWatch watch(req);
    const std::string id = rq->submit(p.model->name, queue_request(body, p, sound_generation),
                                      idempotency_key(req));
    for (;;) {
      const queue::JobRecord r = queue_find(id);
      if (r.status == "succeeded") {
        auto out = rq->result(id);
        if (!out) throw ApiError{500, "job '" + id + "' succeeded but its audio expired", ""};
        set_audio_headers(res, p);
        res.set_header("X-Job-Id", id);
        res.set_content(*out, r.content_type.c_str());
        return;
      }
      if (r.status == "failed") throw ApiError{500, r.error, ""};
      if (r.status == "canceled") throw ApiError{499, "the request was canceled", ""};
      if (watch.closed() || cancel_all.load()) {
        rq->cancel(id);
        throw ApiError{cancel_all.load() ? 503 : 499, "the request was canceled", ""};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Runs one job claimed from the queue (on a worker thread of this replica).
  queue::WorkResult run_queued(const queue::ClaimedJob& job, const queue::ReportFn& report) {
    const json body = json::parse(job.request, nullptr, false);
    if (!body.is_object()) fail(ErrorCode::kInvalidArgument, "the queued request is not a JSON object");
    Parsed p;
    try {
      p = parse_music(body);
    } catch (const ApiError& e) {
      fail(ErrorCode::kInvalidArgument, e.message);
    }
    p.stream = false;
    double first = 0;
    GenerationResult r = generate(p, [&](int step, int total) {
      const double now = now_s();
      if (step == 1) first = now;
      const double eta = step > 1 ? (now - first) / (step - 1) * (total - step) : -1;
      return report(total > 0 ? static_cast<double>(step) / total : 0, eta);
    });
    queue::WorkResult w;
    fill_result(p, r, &w.body, &w.content_type);
    return w;
  }

  void purge_jobs() {  // with jobs_mu held
    const double now = now_s();
    std::vector<std::shared_ptr<Job>> finished;
    for (auto it = jobs.begin(); it != jobs.end();) {
      std::lock_guard<std::mutex> lock(it->second->mu);
      if (it->second->finished > 0 && now - it->second->finished > o.job_ttl_s) {
        finished.push_back(it->second);
        it = jobs.erase(it);
      } else {
        ++it;
      }
    }
    // Bound the finished count: drop the oldest beyond max_finished_jobs.
    std::vector<std::shared_ptr<Job>> done;
    for (auto& [id, j] : jobs) {
      std::lock_guard<std::mutex> lock(j->mu);
      if (j->finished > 0) done.push_back(j);
    }
    if (static_cast<int>(done.size()) > o.max_finished_jobs) {
      std::sort(done.begin(), done.end(), [](const auto& a, const auto& b) {
        return a->finished < b->finished;
      });
      for (size_t i = 0; i < done.size() - o.max_finished_jobs; ++i) jobs.erase(done[i]->id);
    }
    for (auto& j : finished)
      if (j && j->thread.joinable()) j->thread.join();
    for (auto& j : done)
      if (jobs.count(j->id) == 0 && j->thread.joinable()) j->thread.join();
  }

  json job_json(const Job& j) {
    std::lock_guard<std::mutex> lock(j.mu);
    json r = {{"id", j.id}, {"status", j.status}, {"progress", j.progress}, {"model", j.model},
              {"seed", j.seed}};
    r["eta_s"] = j.eta_s >= 0 ? json(j.eta_s) : json(nullptr);
    if (!j.error.empty()) r["error"] = {{"message", j.error}, {"field", nullptr}};
    return r;
  }

  void handle_job_create(const httplib::Request& req, httplib::Response& res) {
    if (draining) throw ApiError{503, "the server is shutting down", ""};
    const json body = parse_body(req);
    auto parsed = std::make_shared<Parsed>(parse_music(body));
    if (parsed->stream) bad("stream", "jobs do not stream; use POST /v1/audio/music with stream");
    if (rq) {
      bool existed = false;
      const std::string id = rq->submit(parsed->model->name, queue_request(body, *parsed, false),
                                        idempotency_key(req), &existed);
      const queue::JobRecord r = queue_find(id);
      res.status = existed ? 200 : 202;
      res.set_header("Location", "/v1/audio/music/jobs/" + id);
      res.set_header("X-Model", parsed->model->name);
      res.set_header("X-Model-Revision", parsed->model->revision);
      if (auto seed = request_seed(r.request)) res.set_header("X-Seed", std::to_string(*seed));
      res.set_content(queue_job_json(r).dump() + "\n", "application/json");
      return;
    }
    auto ticket = admit();
    auto job = std::make_shared<Job>();
    {
      static std::mt19937_64 rng{std::random_device{}()};
      char id[40];
      std::lock_guard<std::mutex> lock(jobs_mu);
      std::snprintf(id, sizeof(id), "job_%016llx", static_cast<unsigned long long>(rng()));
      job->id = id;
    }
    job->model = parsed->model->name;
    job->seed = parsed->opt.seed;
    job->created = now_s();
    {
      std::lock_guard<std::mutex> lock(jobs_mu);
      purge_jobs();
      jobs[job->id] = job;
      job->thread = std::thread([this, job, parsed, ticket]() mutable {
        double first = 0;
        std::string status, error, out, ct;
        try {
          GenerationResult r = generate(*parsed, [&](int step, int total) {
            const double now = now_s();
            if (step == 1) first = now;
            std::lock_guard<std::mutex> lock(job->mu);
            job->status = "running";
            job->progress = total > 0 ? static_cast<double>(step) / total : 0;
            job->eta_s = step > 1 ? (now - first) / (step - 1) * (total - step) : -1;
            return !job->cancel.load();
          });
          fill_result(*parsed, r, &out, &ct);
          status = "succeeded";
        } catch (const Error& e) {
          status = e.code() == ErrorCode::kCancelled ? "canceled" : "failed";
          if (e.code() != ErrorCode::kCancelled) error = e.what();
        } catch (const std::exception& e) {
          status = "failed";
          error = e.what();
        }
        // The slot is free before anyone can see the job finished.
        ticket.reset();
        parsed.reset();
        std::lock_guard<std::mutex> lock(job->mu);
        job->status = status;
        job->error = error;
        job->body = std::move(out);
        job->content_type = ct;
        if (status == "succeeded") {
          job->progress = 1;
          job->eta_s = 0;
        } else {
          job->eta_s = -1;
        }
        job->finished = now_s();
      });
    }
    res.status = 202;
    res.set_header("Location", "/v1/audio/music/jobs/" + job->id);
    set_audio_headers(res, *parsed);
    res.set_content(job_json(*job).dump() + "\n", "application/json");
  }

  std::shared_ptr<Job> find_job(const std::string& id) {
    std::lock_guard<std::mutex> lock(jobs_mu);
    purge_jobs();
    auto it = jobs.find(id);
    if (it == jobs.end()) throw ApiError{404, "no job '" + id + "' (finished jobs are kept for a while only)", "id"};
    return it->second;
  }

  std::string metrics_text() {
    std::string m;
    auto line = [&](const std::string& s) { m += s + "\n"; };
    line("# HELP musicgen_requests_total HTTP requests answered, by status code.");
    line("# TYPE musicgen_requests_total counter");
    {
      std::lock_guard<std::mutex> lock(metrics_mu);
      for (auto& [code, n] : requests_by_status)
        line("musicgen_requests_total{code=\"" + std::to_string(code) + "\"} " + std::to_string(n));
      line("# HELP musicgen_generations_total Generations ended, by outcome.");
      line("# TYPE musicgen_generations_total counter");
      line("musicgen_generations_total{outcome=\"ok\"} " + std::to_string(generations_ok));
      line("musicgen_generations_total{outcome=\"failed\"} " + std::to_string(generations_failed));
      line("musicgen_generations_total{outcome=\"canceled\"} " + std::to_string(generations_canceled));
      line("# HELP musicgen_audio_seconds_generated_total Seconds of audio generated (all batch items).");
      line("# TYPE musicgen_audio_seconds_generated_total counter");
      line("musicgen_audio_seconds_generated_total " + fmt_num(audio_seconds));
    }
    int running = 0;
    uint64_t steps = 0;
    double busy = 0;
    for (auto& mdl : models) {
      const BackendStats s = mdl->backend->stats();
      running += s.running;
      steps += s.steps;
      busy += s.busy_s;
    }
    int admitted_now;
    {
      std::lock_guard<std::mutex> lock(admit_mu);
      admitted_now = admitted;
    }
    double rate = 0;
    {
      std::lock_guard<std::mutex> lock(metrics_mu);
      const double now = now_s();
      step_samples.emplace_back(now, steps);
      while (step_samples.size() > 2 && now - step_samples.front().first > 10) step_samples.pop_front();
      const auto& [t0, s0] = step_samples.front();
      if (now - t0 > 0.05) rate = static_cast<double>(steps - s0) / (now - t0);
    }
    line("# HELP musicgen_queue_depth Requests admitted and waiting for a decoder.");
    line("# TYPE musicgen_queue_depth gauge");
    line("musicgen_queue_depth " + std::to_string(std::max(0, admitted_now - running)));
    line("# HELP musicgen_batch_size Requests decoding now.");
    line("# TYPE musicgen_batch_size gauge");
    line("musicgen_batch_size " + std::to_string(running));
    line("# HELP musicgen_decoder_steps_total Decoder steps run (summed over requests).");
    line("# TYPE musicgen_decoder_steps_total counter");
    line("musicgen_decoder_steps_total " + std::to_string(steps));
    line("# HELP musicgen_decoder_steps_per_second Decoder steps per second over the last 10 s (between scrapes).");
    line("# TYPE musicgen_decoder_steps_per_second gauge");
    line("musicgen_decoder_steps_per_second " + fmt_num(rate));
    line("# HELP musicgen_decoder_busy_seconds_total Seconds with at least one request decoding.");
    line("# TYPE musicgen_decoder_busy_seconds_total counter");
    line("musicgen_decoder_busy_seconds_total " + fmt_num(busy));
    std::map<std::string, int> by_status;
    {
      std::lock_guard<std::mutex> lock(jobs_mu);
      for (auto& [id, j] : jobs) {
        std::lock_guard<std::mutex> l2(j->mu);
        ++by_status[j->status];
      }
    }
    if (worker) {
      const queue::WorkerStats w = worker->stats();
      line("# HELP musicgen_queue_jobs_total Jobs this replica took from the shared queue, by outcome (succeeded: results it stored).");
      line("# TYPE musicgen_queue_jobs_total counter");
      line("musicgen_queue_jobs_total{outcome=\"claimed\"} " + std::to_string(w.claimed));
      line("musicgen_queue_jobs_total{outcome=\"reclaimed\"} " + std::to_string(w.reclaimed));
      line("musicgen_queue_jobs_total{outcome=\"succeeded\"} " + std::to_string(w.succeeded));
      line("musicgen_queue_jobs_total{outcome=\"failed\"} " + std::to_string(w.failed));
      line("musicgen_queue_jobs_total{outcome=\"canceled\"} " + std::to_string(w.canceled));
      line("musicgen_queue_jobs_total{outcome=\"lost\"} " + std::to_string(w.lost));
    }
    line("# HELP musicgen_jobs Jobs held, by status.");
    line("# TYPE musicgen_jobs gauge");
    for (const char* s : {"queued", "running", "succeeded", "failed", "canceled"})
      line(std::string("musicgen_jobs{status=\"") + s + "\"} " + std::to_string(by_status[s]));
    return m;
  }

  json models_json() {
    json data = json::array();
    for (auto& m : models) {
      const ModelInfo& i = m->backend->model()->info();
      data.push_back({{"id", m->name}, {"object", "model"}, {"revision", m->revision},
                      {"model_type", i.model_type}, {"melody", i.melody},
                      {"sample_rate", i.sample_rate}, {"audio_channels", i.audio_channels},
                      {"frame_rate", i.frame_rate}, {"num_codebooks", i.num_codebooks},
                      {"device", i.device}, {"max_duration", o.max_duration_s},
                      {"defaults",
                       {{"do_sample", i.default_do_sample},
                        {"guidance_scale", i.default_guidance_scale},
                        {"top_k", i.default_top_k},
                        {"top_p", i.default_top_p},
                        {"temperature", i.default_temperature},
                        {"max_new_tokens", i.default_max_length}}}});
    }
    return {{"object", "list"}, {"data", data}};
  }

  bool authorized(const httplib::Request& req) const {
    if (o.api_key.empty()) return true;
    std::string given;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0) given = auth.substr(7);
    else if (req.has_header("X-API-Key")) given = req.get_header_value("X-API-Key");
    if (given.size() != o.api_key.size()) return false;
    unsigned char diff = 0;  // constant time in the key's length
    for (size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ o.api_key[i]);
    return diff == 0;
  }

  // Wraps a handler: ApiError and Error become JSON errors.
  httplib::Server::Handler wrap(std::function<void(const httplib::Request&, httplib::Response&)> f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      try {
        f(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const Error& e) {
        send_error(res, api_error_of(e));
      } catch (const std::bad_alloc&) {
        send_error(res, {503, "out of memory; try a shorter duration", ""});
      } catch (const std::exception& e) {
        send_error(res, {500, std::string("internal error: ") + e.what(), ""});
      }
    };
  }

  void routes();
};

namespace {
thread_local double t_request_start = 0;
}

void Server::Impl::routes() {
  http.set_payload_max_length(o.max_body_bytes);
  http.set_keep_alive_timeout(2);
  http.set_read_timeout(30);
  http.set_write_timeout(30);
  const int threads = std::max(4, o.http_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_request_start = now_s();
    if (req.path == "/" || req.path == "/health" || req.path == "/index.html") return httplib::Server::HandlerResponse::Unhandled;
    if (!authorized(req)) {
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, {401, "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'", ""});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    {
      std::lock_guard<std::mutex> lock(metrics_mu);
      ++requests_by_status[res.status];
    }
    if (o.log) {
      if (t_request_start > 0)
        std::fprintf(o.log, "%s %s %d %.0f ms\n", req.method.c_str(), req.path.c_str(), res.status,
                     (now_s() - t_request_start) * 1000.0);
      else  // refused before routing (a malformed or oversized request)
        std::fprintf(o.log, "%s %s %d - ms\n", req.method.c_str(), req.path.c_str(), res.status);
      std::fflush(o.log);
    }
    t_request_start = 0;
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.content_length_ > 0) return;
    if (res.status == 404) send_error(res, {404, "no endpoint " + req.method + " " + req.path + " (GET /openapi.json lists them)", ""});
    else if (res.status == 413) send_error(res, {413, "the request body is too large", ""});
    else send_error(res, {res.status, "the request failed (HTTP " + std::to_string(res.status) + ")", ""});
  });

  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kWebIndexHtml, "text/html; charset=utf-8");
  });
  http.Get("/health", wrap([this](const httplib::Request&, httplib::Response& res) {
    int admitted_now;
    {
      std::lock_guard<std::mutex> lock(admit_mu);
      admitted_now = admitted;
    }
    const bool queue_ok = !rq || rq->healthy();
    res.status = draining || !queue_ok ? 503 : 200;
    json h = {{"status", draining ? "draining" : queue_ok ? "ok" : "queue unavailable"},
              {"models", models.size()},
              {"admitted", admitted_now}};
    if (rq) h["queue"] = {{"healthy", queue_ok}, {"replica", rq->options().consumer}};
    res.set_content(h.dump() + "\n", "application/json");
  }));
  http.Get("/openapi.json", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kOpenApiJson, "application/json");
  });
  http.Get("/metrics", wrap([this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  }));
  http.Get("/v1/models", wrap([this](const httplib::Request&, httplib::Response& res) {
    res.set_content(models_json().dump() + "\n", "application/json");
  }));
  http.Post("/v1/audio/music", wrap([this](const httplib::Request& req, httplib::Response& res) {
    handle_music(req, res, false);
  }));
  http.Post("/v1/sound-generation", wrap([this](const httplib::Request& req, httplib::Response& res) {
    handle_music(req, res, true);
  }));
  http.Post("/v1/audio/music/jobs", wrap([this](const httplib::Request& req, httplib::Response& res) {
    handle_job_create(req, res);
  }));
  http.Get(R"(/v1/audio/music/jobs/([A-Za-z0-9_]+))", wrap([this](const httplib::Request& req, httplib::Response& res) {
    if (rq) {
      res.set_content(queue_job_json(queue_find(req.matches[1])).dump() + "\n", "application/json");
      return;
    }
    auto job = find_job(req.matches[1]);
    res.set_content(job_json(*job).dump() + "\n", "application/json");
  }));
  http.Get(R"(/v1/audio/music/jobs/([A-Za-z0-9_]+)/audio)", wrap([this](const httplib::Request& req, httplib::Response& res) {
    if (rq) {
      const queue::JobRecord r = queue_find(req.matches[1]);
      auto out = r.status == "succeeded" ? rq->result(r.id) : std::nullopt;
      if (!out)
        throw ApiError{409, "job '" + r.id + "' is " + r.status + "; its audio exists once it has succeeded", ""};
      if (auto seed = request_seed(r.request)) res.set_header("X-Seed", std::to_string(*seed));
      res.set_header("X-Model", r.model);
      res.set_content(*out, r.content_type.c_str());
      return;
    }
    auto job = find_job(req.matches[1]);
    std::lock_guard<std::mutex> lock(job->mu);
    if (job->status != "succeeded")
      throw ApiError{409, "job '" + job->id + "' is " + job->status + "; its audio exists once it has succeeded", ""};
    res.set_header("X-Seed", std::to_string(job->seed));
    res.set_header("X-Model", job->model);
    res.set_content(job->body, job->content_type.c_str());
  }));
  http.Delete(R"(/v1/audio/music/jobs/([A-Za-z0-9_]+))", wrap([this](const httplib::Request& req, httplib::Response& res) {
    if (rq) {
      if (!rq->cancel(req.matches[1]))
        throw ApiError{404, "no job '" + std::string(req.matches[1]) + "'", "id"};
      res.set_content(queue_job_json(queue_find(req.matches[1])).dump() + "\n", "application/json");
      return;
    }
    auto job = find_job(req.matches[1]);
    job->cancel = true;
    bool finished;
    {
      std::lock_guard<std::mutex> lock(job->mu);
      finished = job->finished > 0;
    }
    if (finished) {  // a finished job is deleted
      std::lock_guard<std::mutex> lock(jobs_mu);
      jobs.erase(job->id);
      if (job->thread.joinable()) job->thread.join();
    }
    res.set_content(job_json(*job).dump() + "\n", "application/json");
  }));
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  auto& o = impl_->o;
  if (o.models.empty()) fail(ErrorCode::kInvalidArgument, "give at least one --model");
  if (o.max_batch == 0) o.max_batch = kDefaultMaxBatch;
  if (o.max_batch < 1) fail(ErrorCode::kInvalidArgument, "--max-batch must be >= 1");
  if (o.max_queue < 0) fail(ErrorCode::kInvalidArgument, "--max-queue must be >= 0");
  for (const auto& ref : o.models) {
    auto m = std::make_unique<LoadedModel>();
    std::string path = ref;
    if (fs::exists(ref)) {
      fs::path p = fs::path(ref).lexically_normal();
      if (p.filename().empty()) p = p.parent_path();
      m->name = p.filename().string();
      if (fs::is_regular_file(p) && p.has_extension()) m->name = p.stem().string();
      m->revision = "local";
    } else {
      ResolveOptions ro;
      ro.progress = ProgressDisplay::kNever;
      path = resolve_model(ref, ro);
      m->name = ref;
      const fs::path rp(path);
      m->revision = rp.parent_path().filename() == "snapshots" ? rp.filename().string() : "local";
    }
    if (impl_->find_model(m->name))
      fail(ErrorCode::kInvalidArgument, "two --model options are both named '" + m->name + "'");
    m->path = path;
    m->backend = std::make_unique<Backend>(Model::load(path, o.load), o.threads, o.max_batch);
    impl_->models.push_back(std::move(m));
  }
  std::string tmpl = (fs::temp_directory_path() / "musicgen-serve-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    fail(ErrorCode::kIo, "cannot create a private temporary folder under " +
                             fs::temp_directory_path().string());
  impl_->temp_dir = tmpl;
  if (!o.queue_url.empty()) {
    if (!(o.lease_s >= 0.1 && o.lease_s <= 3600))
      fail(ErrorCode::kInvalidArgument, "--lease-seconds must be between 0.1 and 3600");
    queue::QueueOptions qo;
    qo.consumer = o.replica;
    if (qo.consumer.empty()) {
      char host[256] = {};
      ::gethostname(host, sizeof(host) - 1);
      qo.consumer = std::string(host) + "-" + std::to_string(::getpid());
    }
    qo.lease_ms = static_cast<int>(o.lease_s * 1000);
    const queue::RedisUrl url = queue::parse_redis_url(o.queue_url);
    impl_->rq = std::make_unique<queue::RedisQueue>(url, qo);
    if (!impl_->rq->healthy())
      fail(ErrorCode::kIo, "Redis at " + url.host + ":" + std::to_string(url.port) +
                               " does not answer; start it or fix --queue");
    std::vector<std::string> names;
    for (auto& m : impl_->models) names.push_back(m->name);
    Impl* im = impl_.get();
    impl_->worker = std::make_unique<queue::QueueWorker>(
        url, qo, names, o.max_batch,
        [im](const queue::ClaimedJob& j, const queue::ReportFn& report) { return im->run_queued(j, report); });
    impl_->worker->on_finished([im](const queue::ClaimedJob& j, const std::string& outcome) {
      if (!im->o.log) return;
      std::fprintf(im->o.log, "queue job %s %s (model %s, attempt %d)\n", j.id.c_str(),
                   outcome.c_str(), j.model.c_str(), j.attempts);
      std::fflush(im->o.log);
    });
  }
  impl_->routes();
}

Server::~Server() {
  try {
    drain(0);
  } catch (...) {
  }
  std::error_code ec;
  fs::remove_all(impl_->temp_dir, ec);
}

int Server::start() {
  auto& im = *impl_;
  if (im.started) fail(ErrorCode::kInvalidArgument, "the server is already started");
  int port = im.o.port;
  if (port == 0) {
    port = im.http.bind_to_any_port(im.o.host);
    if (port <= 0) fail(ErrorCode::kIo, "cannot bind " + im.o.host + " to a free port");
  } else if (!im.http.bind_to_port(im.o.host, port)) {
    fail(ErrorCode::kIo, "cannot listen on " + im.o.host + ":" + std::to_string(port) +
                             " (in use, or a privileged port); choose another --port");
  }
  raise_listen_backlog(port);
  im.started = true;
  im.listener = std::thread([&im] { im.http.listen_after_bind(); });
  if (im.worker) im.worker->start();
  return port;
}

void Server::drain(double grace_s) {
  auto& im = *impl_;
  if (im.drained) return;
  im.drained = true;
  im.draining = true;
  if (im.started) im.http.stop();  // no new connections
  if (im.worker) im.worker->request_stop();  // no new queued jobs
  const double deadline = now_s() + std::max(0.0, grace_s);
  {
    std::unique_lock<std::mutex> lock(im.admit_mu);
    while (im.admitted > 0 && now_s() < deadline)
      im.admit_cv.wait_for(lock, std::chrono::milliseconds(50));
  }
  if (im.worker) {  // queued jobs running here get the rest of the grace period
    const auto running = [&] {
      const queue::WorkerStats w = im.worker->stats();
      return w.claimed > w.succeeded + w.failed + w.canceled + w.lost;
    };
    while (running() && now_s() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  im.cancel_all = true;  // what still runs is canceled (a queued job: another replica re-runs it)
  if (im.worker) im.worker->stop();
  {
    std::lock_guard<std::mutex> lock(im.jobs_mu);
    for (auto& [id, j] : im.jobs) j->cancel = true;
  }
  if (im.listener.joinable()) im.listener.join();
  std::vector<std::shared_ptr<Job>> all;
  {
    std::lock_guard<std::mutex> lock(im.jobs_mu);
    for (auto& [id, j] : im.jobs) all.push_back(j);
  }
  for (auto& j : all)
    if (j->thread.joinable()) j->thread.join();
}

std::vector<std::string> Server::model_names() const {
  std::vector<std::string> names;
  for (auto& m : impl_->models) names.push_back(m->name);
  return names;
}

}  // namespace musicgen::server
