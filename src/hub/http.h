// A small blocking HTTP client over libcurl: one request, optional redirects, the headers of the
// final response, and a body streamed to a sink (downloads) or collected (API answers, errors).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace musicgen::hub {

using HttpHeaders = std::map<std::string, std::string>;  // names in lower case

struct HttpRequest {
  std::string method = "GET";  // GET or HEAD
  std::string url;
  std::vector<std::string> headers;  // "Name: value"; an Authorization header is never sent
                                     // on to another host after a redirect (libcurl's rule)
  bool follow_redirects = true;      // false: a 3xx answer is returned as it is
  uint64_t range_start = 0;          // > 0: ask for bytes range_start.. (a resume)
  long connect_timeout_s = 15;
  long stall_timeout_s = 60;  // abort a transfer that moves < 1 byte/s for this long
};

struct HttpResponse {
  int curl_code = 0;       // CURLcode; 0: an answer was received (any status)
  std::string curl_error;  // libcurl's explanation when curl_code != 0
  bool connected = false;  // a connection was made (errors after it may be transient)
  long status = 0;         // HTTP status of the last answer
  HttpHeaders headers;     // headers of the last answer
  std::string body;        // body when no sink took it (first 1 MiB)
  std::string effective_url;

  // A failure worth retrying: 5xx, 408, 429, a connection reset or cut, a stalled transfer.
  bool transient() const;
  // "HTTP 503" or libcurl's error text, for messages.
  std::string describe() const;
};

// Receives the body of the final (non-redirect) answer.
struct BodySink {
  // Called when the final answer's headers are complete. Returning false leaves the body in
  // HttpResponse::body instead (error pages).
  std::function<bool(long status, const HttpHeaders& headers)> on_headers;
  // Called with each chunk; returning false aborts the transfer (curl_code = write error).
  std::function<bool(const char* data, size_t n)> on_data;
};

// Performs one request (with libcurl's redirects when asked). Never throws for network errors:
// they are reported in the response. An exception thrown by a sink aborts the transfer and is
// rethrown here.
HttpResponse http_perform(const HttpRequest& request, BodySink* sink = nullptr);

// Percent-encodes a URL path segment (everything but unreserved characters; '/' too unless
// keep_slash).
std::string url_escape(const std::string& s, bool keep_slash);

}  // namespace musicgen::hub
