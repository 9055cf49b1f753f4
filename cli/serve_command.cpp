#include "serve_command.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <string>

#include "command_util.h"
#include "musicgen/musicgen.h"
#include "musicgen/quantize.h"
#include "server.h"

namespace musicgen::cli {
namespace {

void print_serve_help() {
  std::printf(
      "Usage: musicgen serve --model MODEL [--model MODEL]... [options]\n\n"
      "Serves the models over HTTP (docs/SERVER.md): POST /v1/audio/music, jobs, streaming,\n"
      "/v1/models, /health, /metrics, /openapi.json, and a web page at /.\n\n"
      "Options:\n"
      "  --model MODEL        a checkpoint folder, quantized file or hub name; repeat to serve\n"
      "                       several (a request names one by its folder name or hub name)\n"
      "  --host HOST          address to listen on (default 127.0.0.1: this machine only)\n"
      "  --port N             port (default 8080; 0: a free port, printed at start)\n"
      "  --weights TYPE       f32 (default), bf16, q8 or q4\n"
      "  --kv-cache auto|q8   the decoder's attention cache (musicgen generate --help)\n"
      "  --device DEV         cpu (default), vulkan, vulkan:N or auto\n"
      "  --threads N          decoder threads (default: all cores, shared by the requests)\n"
      "  --max-batch N        requests decoded together in one continuous batch (default 8)\n"
      "  --max-queue N        requests waiting beyond those; more are answered 429 (default 16)\n"
      "  --api-key KEY        require 'Authorization: Bearer KEY' or 'X-API-Key: KEY'\n"
      "                       (default: the environment variable MUSICGEN_API_KEY, else none)\n"
      "  --api-key-file FILE  the same, read from the first line of FILE\n"
      "  --queue URL          share jobs with other replicas through Redis:\n"
      "                       redis://[user:password@]host[:port][/db] (docs/DEPLOY.md)\n"
      "  --replica NAME       this replica's name in the queue (default: host name and pid)\n"
      "  --lease-seconds S    a queued job whose replica stops renewing it for S seconds is\n"
      "                       re-claimed by another replica (default 30)\n"
      "  --max-duration S     longest audio one request may ask for (default 300)\n"
      "  --grace-seconds S    on SIGTERM/SIGINT: time running requests get to finish (default 30)\n"
      "  --quiet              no request log\n"
      "  --help, -h           show this help\n\n"
      "Example:\n"
      "  musicgen serve --model small --port 8080\n"
      "  curl -s localhost:8080/v1/audio/music -d '{\"prompt\": \"lo-fi beat\", \"duration\": 5}' -o beat.wav\n");
}

}  // namespace

int run_serve(const std::vector<std::string>& args) {
  server::ServerOptions o;
  double grace = 30;
  bool quiet = false;
  if (const char* key = std::getenv("MUSICGEN_API_KEY")) o.api_key = key;
  for (ArgReader r(args); r.next();) {
    if (r.is("--help", "-h")) {
      print_serve_help();
      return 0;
    } else if (r.is("--model")) o.models.push_back(r.value());
    else if (r.is("--host")) o.host = r.value();
    else if (r.is("--port")) o.port = static_cast<int>(r.integer_in(0, 65535));
    else if (r.is("--weights")) o.load.weights = parse_weight_type(r.weight_type());
    else if (r.is("--kv-cache")) o.load.kv_cache = r.kv_cache();
    else if (r.is("--device")) o.load.device = r.value();
    else if (r.is("--threads")) o.threads = r.threads();
    else if (r.is("--max-batch")) o.max_batch = static_cast<int>(r.integer_in(1, 256));
    else if (r.is("--max-queue")) o.max_queue = static_cast<int>(r.integer_in(0, 100000));
    else if (r.is("--api-key")) o.api_key = r.value();
    else if (r.is("--api-key-file")) {
      const std::string path = r.value();
      std::ifstream in(path);
      if (!in) command_usage("cannot read --api-key-file '" + path + "'");
      std::getline(in, o.api_key);
      while (!o.api_key.empty() && (o.api_key.back() == '\r' || o.api_key.back() == ' '))
        o.api_key.pop_back();
      if (o.api_key.empty()) command_usage("--api-key-file '" + path + "' holds no key on its first line");
    }
    else if (r.is("--queue")) o.queue_url = r.value();
    else if (r.is("--replica")) o.replica = r.value();
    else if (r.is("--lease-seconds")) o.lease_s = r.number();
    else if (r.is("--max-duration")) o.max_duration_s = r.number();
    else if (r.is("--grace-seconds")) grace = r.number();
    else if (r.is("--quiet", "-q")) quiet = true;
    else r.unknown();
  }
  if (o.models.empty()) command_usage("--model MODEL is required");
  if (!(o.max_duration_s > 0)) command_usage("--max-duration must be positive");
  if (!(grace >= 0)) command_usage("--grace-seconds must be >= 0");
  o.load.threads = o.threads;
  if (quiet) o.log = nullptr;

  // SIGTERM and SIGINT are taken by sigwait below, on this thread only: block them first, so
  // that every thread the server starts inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const std::string host = o.host;
  const bool loopback = host == "127.0.0.1" || host == "localhost" || host == "::1" ||
                        host.rfind("127.", 0) == 0;
  const bool keyless = o.api_key.empty();
  server::Server server(o);
  const int port = server.start();
  std::string names;
  for (const auto& n : server.model_names()) names += (names.empty() ? "" : ", ") + n;
  std::fprintf(stderr, "serving %s\n", names.c_str());
  if (!loopback && keyless)
    std::fprintf(stderr,
                 "warning: listening on %s without --api-key: anyone who can reach this address "
                 "can use the server\n",
                 host.c_str());
  std::printf("listening on http://%s:%d\n", host.find(':') != std::string::npos
                                                  ? ("[" + host + "]").c_str()
                                                  : host.c_str(),
              port);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "%s: draining (up to %.0f s for running requests)\n", strsignal(sig), grace);
  server.drain(grace);
  std::fprintf(stderr, "stopped\n");
  return 0;
}

}  // namespace musicgen::cli
