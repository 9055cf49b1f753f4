// `musicgen serve`: the HTTP layer (docs/SERVER.md). A layer beside cli/ on the public API only.
//
//   musicgen::server::ServerOptions o;
//   o.models = {"tests/fixtures/tiny-a"};
//   o.port = 0;                                  // a free port
//   musicgen::server::Server server(o);          // loads the models (throws musicgen::Error)
//   int port = server.start();                   // listening on 127.0.0.1:port
//   ...
//   server.drain(30);                            // stop accepting, finish or cancel, return
#pragma once

#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "musicgen/musicgen.h"

namespace musicgen::server {

struct ServerOptions {
  // Checkpoint folders, quantized files or hub names; each is served under its folder name (a
  // path) or as given (a hub name). Loaded at start; a request can only name these.
  std::vector<std::string> models;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: a free port (start() returns it)
  LoadOptions load;
  int threads = 0;    // decoder threads per worker (0: the cores divided among max_batch)
  int max_batch = 0;  // requests generating at the same time (0: 8 with the batcher, else 1)
  int max_queue = 16; // requests waiting beyond those; more get 429
  std::string api_key;  // non-empty: every API request needs it (Bearer or X-API-Key)
  size_t max_body_bytes = 32u << 20;    // request body (413 above)
  size_t max_upload_bytes = 24u << 20;  // decoded audio upload (413 above)
  double max_duration_s = 300;          // longest audio a request may ask for
  int max_prompts = 16;                 // longest prompt list
  int max_finished_jobs = 64;           // finished jobs kept for GET .../audio
  double job_ttl_s = 3600;              // and for at most this long
  int http_threads = 64;                // connections served at once
  FILE* log = stderr;                   // one line per request; nullptr: quiet
  // A job queue shared by replicas (docs/DEPLOY.md): redis://[user:password@]host[:port][/db].
  // Jobs and synchronous requests go into Redis; this replica runs the queued jobs of the
  // models it holds. Empty: the in-process queue.
  std::string queue_url;
  std::string replica;   // this replica's name in the queue (default: host name and process id)
  double lease_s = 30;   // a job whose replica stopped renewing it for this long is re-claimed
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // drain(0) if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts serving on a background thread; returns the port. Throws Error(kIo) when
  // the address cannot be bound.
  int start();
  // Stops accepting, lets running requests and jobs finish for up to grace_s seconds, cancels
  // what still runs, and returns when every request has ended.
  void drain(double grace_s);
  // The served model names, in --model order.
  std::vector<std::string> model_names() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace musicgen::server
