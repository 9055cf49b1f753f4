#include "hub/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <mutex>

namespace musicgen::hub {

namespace {

constexpr size_t kMaxCollectedBody = 1 << 20;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  const HttpRequest* request = nullptr;
  BodySink* sink = nullptr;
  HttpResponse* response = nullptr;
  bool to_sink = false;      // the current answer's body goes to the sink
  std::exception_ptr error;  // thrown by a sink: rethrown once libcurl has returned
};

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

size_t handle_header(Transfer* t, char* data, size_t len) {
  const std::string line(data, len);
  HttpResponse& r = *t->response;
  if (line.rfind("HTTP/", 0) == 0) {  // a new answer starts (after a redirect or a 1xx)
    r.headers.clear();
    r.status = 0;
    t->to_sink = false;
    const size_t sp = line.find(' ');
    if (sp != std::string::npos) r.status = std::strtol(line.c_str() + sp + 1, nullptr, 10);
    return len;
  }
  const std::string trimmed = trim(line);
  if (trimmed.empty()) {  // end of this answer's headers
    const bool redirect = r.status >= 300 && r.status < 400 && r.headers.count("location") &&
                          t->request->follow_redirects;
    if (r.status >= 200 && !redirect && t->sink != nullptr && t->sink->on_headers)
      t->to_sink = t->sink->on_headers(r.status, r.headers);
    return len;
  }
  const size_t colon = trimmed.find(':');
  if (colon != std::string::npos) {
    std::string name = trimmed.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    r.headers[name] = trim(trimmed.substr(colon + 1));
  }
  return len;
}

size_t handle_body(Transfer* t, char* data, size_t len) {
  if (t->to_sink) return t->sink->on_data(data, len) ? len : 0;
  std::string& body = t->response->body;
  if (body.size() < kMaxCollectedBody)
    body.append(data, std::min(len, kMaxCollectedBody - body.size()));
  return len;
}

// libcurl's callbacks: no exception may cross its C frames, so one is kept and the transfer
// aborted (returning a short count).
size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  try {
    return handle_header(t, data, size * n);
  } catch (...) {
    t->error = std::current_exception();
    return 0;
  }
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  try {
    return handle_body(t, data, size * n);
  } catch (...) {
    t->error = std::current_exception();
    return 0;
  }
}

}  // namespace

bool HttpResponse::transient() const {
  switch (curl_code) {
    case CURLE_OK:
      return status >= 500 || status == 408 || status == 429;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    case CURLE_OPERATION_TIMEDOUT:  // a stalled transfer, not an unreachable host
      return connected;
    default:
      return false;
  }
}

std::string HttpResponse::describe() const {
  if (curl_code != CURLE_OK) return curl_error;
  return "HTTP " + std::to_string(status);
}

HttpResponse http_perform(const HttpRequest& request, BodySink* sink) {
  global_init();
  HttpResponse response;
  Transfer t;
  t.request = &request;
  t.sink = sink;
  t.response = &response;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    response.curl_code = CURLE_FAILED_INIT;
    response.curl_error = "libcurl could not start a transfer";
    return response;
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "musicgen.cpp/0.1 (libcurl)");
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, request.connect_timeout_s);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, request.stall_timeout_s);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  if (request.method == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  const std::string range = std::to_string(request.range_start) + "-";
  if (request.range_start > 0) curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());

  const CURLcode rc = curl_easy_perform(curl);
  response.curl_code = rc;
  if (rc != CURLE_OK)
    response.curl_error = errbuf[0] != '\0' ? trim(errbuf) : curl_easy_strerror(rc);
  char* effective = nullptr;
  if (curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &effective) == CURLE_OK && effective)
    response.effective_url = effective;
  curl_off_t connect_time = 0;
  curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connect_time);
  response.connected = connect_time > 0 || response.status != 0;
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (t.error) std::rethrow_exception(t.error);
  return response;
}

std::string url_escape(const std::string& s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace musicgen::hub
