// `musicgen serve` (server/): every endpoint with good and bad input, in process on a free
// loopback port against the tiny fixture, through cpp-httplib's client. The audio a request gets
// is compared with Session::generate + write_audio_file (the CLI's path) for the same settings.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "musicgen/musicgen.h"
#include "server.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using musicgen::testing::fixture_dir;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string b64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += t[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    if (i + 1 < in.size()) v |= uint8_t(in[i + 1]) << 8;
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += i + 1 < in.size() ? t[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string unb64(const std::string& in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char* p = std::strchr(t, c);
    if (c == '=' || !p) continue;
    acc = (acc << 6) | static_cast<uint32_t>(p - t);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

// The WAV bytes the CLI writes for `opt` (Session::generate + write_audio_file).
std::vector<std::string> reference_wavs(musicgen::GenerationOptions opt,
                                        musicgen::SampleFormat f = musicgen::SampleFormat::kPcm16,
                                        bool clip = false) {
  auto model = musicgen::Model::load(fixture_dir("tiny-a"));
  musicgen::Session session(model, {.threads = 1});
  musicgen::GenerationResult r = session.generate(opt);
  const std::string dir = musicgen::testing::make_temp_dir("server-ref");
  std::vector<std::string> out;
  for (int b = 0; b < r.batch; ++b) {
    const std::string p = dir + "/" + std::to_string(b) + ".wav";
    musicgen::AudioWriteOptions w;
    w.sample_format = f;
    w.normalize = clip ? musicgen::Normalization::kClip : musicgen::Normalization::kPeak;
    musicgen::write_audio_file(p, r, b, w);
    out.push_back(read_file(p));
  }
  fs::remove_all(dir);
  return out;
}

struct Running {
  std::unique_ptr<musicgen::server::Server> server;
  int port = 0;
  explicit Running(musicgen::server::ServerOptions o) {
    if (o.models.empty()) o.models = {fixture_dir("tiny-a")};
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.log = nullptr;
    server = std::make_unique<musicgen::server::Server>(o);
    port = server->start();
  }
  httplib::Client client(int read_timeout_s = 60) const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(read_timeout_s, 0);
    c.set_connection_timeout(5, 0);
    return c;
  }
};

httplib::Result post(const httplib::Client& c0, const std::string& path, const json& body) {
  auto& c = const_cast<httplib::Client&>(c0);
  return c.Post(path.c_str(), body.dump(), "application/json");
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    musicgen::server::ServerOptions o;
    o.max_batch = 2;
    o.max_queue = 8;
    running_ = new Running(o);
  }
  static void TearDownTestSuite() {
    delete running_;
    running_ = nullptr;
  }
  static Running* running_;
};
Running* ServerTest::running_ = nullptr;

TEST_F(ServerTest, GreedyRequestEqualsTheCliBytes) {
  auto c = running_->client();
  auto res = post(c, "/v1/audio/music",
                  {{"prompt", "a jazz trio"}, {"duration", 0.5}, {"do_sample", false}, {"seed", 5}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "audio/wav");
  EXPECT_EQ(res->get_header_value("X-Seed"), "5");
  EXPECT_EQ(res->get_header_value("X-Model"), "tiny-a");
  EXPECT_EQ(res->get_header_value("X-Model-Revision"), "local");
  musicgen::GenerationOptions opt;
  opt.prompts = {"a jazz trio"};
  opt.duration_s = 0.5;
  opt.greedy = true;
  opt.seed = 5;
  const auto ref = reference_wavs(opt);
  EXPECT_TRUE(res->body == ref[0]) << "response differs from Session::generate + write_audio_file";
  // f32 too.
  auto f = post(c, "/v1/audio/music",
                {{"prompt", "a jazz trio"}, {"duration", 0.5}, {"do_sample", false},
                 {"sample_format", "f32"}});
  ASSERT_EQ(f->status, 200);
  EXPECT_TRUE(f->body == reference_wavs(opt, musicgen::SampleFormat::kFloat32)[0]);
}

TEST_F(ServerTest, SampledRequestReturnsItsSeedAndRepeats) {
  auto c = running_->client();
  const json body = {{"prompt", "drums"}, {"max_new_tokens", 20}};
  auto a = post(c, "/v1/audio/music", body);
  ASSERT_EQ(a->status, 200) << a->body;
  const std::string seed = a->get_header_value("X-Seed");
  ASSERT_FALSE(seed.empty());
  json again = body;
  again["seed"] = std::stoull(seed);
  auto b = post(c, "/v1/audio/music", again);
  ASSERT_EQ(b->status, 200);
  EXPECT_TRUE(a->body == b->body) << "the returned seed does not reproduce the audio";
  musicgen::GenerationOptions opt;
  opt.prompts = {"drums"};
  opt.max_new_tokens = 20;
  opt.seed = std::stoull(seed);
  EXPECT_TRUE(a->body == reference_wavs(opt)[0]);
}

TEST_F(ServerTest, ListPromptGivesOneFilePerPrompt) {
  auto c = running_->client();
  auto res = post(c, "/v1/audio/music",
                  {{"prompt", {"rock", "calm piano"}}, {"duration", 0.3}, {"do_sample", false},
                   {"seed", 1}});
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  ASSERT_EQ(j["audio"].size(), 2u);
  musicgen::GenerationOptions opt;
  opt.prompts = {"rock", "calm piano"};
  opt.duration_s = 0.3;
  opt.greedy = true;
  opt.seed = 1;
  const auto ref = reference_wavs(opt);
  for (int b = 0; b < 2; ++b) {
    EXPECT_EQ(j["audio"][b]["prompt"], opt.prompts[b]);
    EXPECT_TRUE(unb64(j["audio"][b]["data"].get<std::string>()) == ref[b]) << "item " << b;
  }
  EXPECT_EQ(j["seed"], 1);
}

TEST_F(ServerTest, StreamEqualsWholeClippedOutput) {
  auto c = running_->client();
  const json base = {{"prompt", "synth"}, {"duration", 0.6}, {"do_sample", false}, {"seed", 2}};
  json whole = base;
  whole["normalize"] = "clip";
  auto w = post(c, "/v1/audio/music", whole);
  ASSERT_EQ(w->status, 200) << w->body;
  json s = base;
  s["stream"] = true;
  auto st = post(c, "/v1/audio/music", s);
  ASSERT_EQ(st->status, 200) << st->body;
  EXPECT_EQ(st->get_header_value("Transfer-Encoding"), "chunked");
  ASSERT_GE(st->body.size(), 44u);
  EXPECT_EQ(st->body.substr(0, 4), "RIFF");
  EXPECT_EQ(st->body.substr(36, 4), "data");
  // The samples: the streamed data equals the whole file's data chunk (44-byte PCM header).
  ASSERT_EQ(w->body.substr(36, 4), "data");
  EXPECT_TRUE(st->body.substr(44) == w->body.substr(44)) << "streamed samples differ from the whole";
  // Raw pcm streams are the same samples without a header; f32 streams are the raw floats.
  s["response_format"] = "pcm";
  auto p = post(c, "/v1/audio/music", s);
  ASSERT_EQ(p->status, 200);
  EXPECT_TRUE(p->body == w->body.substr(44));
  whole["response_format"] = "pcm";
  auto wp = post(c, "/v1/audio/music", whole);
  EXPECT_TRUE(wp->body == p->body);
}

// Compressed formats come from the library's encoder (the CLI's): the same bytes as
// encode_audio for the same take, with each format's magic.
TEST_F(ServerTest, CompressedFormatsAreTheLibrarysEncoding) {
  auto c = running_->client();
  musicgen::GenerationOptions opt;
  opt.prompts = {"drums"};
  opt.duration_s = 0.4;
  opt.greedy = true;
  opt.seed = 3;
  auto model = musicgen::Model::load(fixture_dir("tiny-a"));
  musicgen::Session session(model, {.threads = 1});
  const musicgen::GenerationResult r = session.generate(opt);
  const std::vector<std::tuple<std::string, musicgen::AudioFileFormat, std::string, std::string>>
      formats = {{"flac", musicgen::AudioFileFormat::kFlac, "fLaC", "audio/flac"},
                 {"ogg", musicgen::AudioFileFormat::kOgg, "OggS", "audio/ogg"},
                 {"opus", musicgen::AudioFileFormat::kOpus, "OggS", "audio/ogg; codecs=opus"},
                 {"mp3", musicgen::AudioFileFormat::kMp3, "", "audio/mpeg"}};
  for (const auto& [name, format, magic, type] : formats) {
    SCOPED_TRACE(name);
    const json body = {{"prompt", "drums"}, {"duration", 0.4}, {"do_sample", false},
                       {"seed", 3}, {"response_format", name}, {"normalize", "loudness"}};
    auto res = post(c, "/v1/audio/music", body);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), type);
    if (!magic.empty()) {
      EXPECT_EQ(res->body.substr(0, 4), magic);
    }
    musicgen::AudioWriteOptions w;
    w.format = format;
    w.normalize = musicgen::Normalization::kLoudness;
    EXPECT_TRUE(res->body == musicgen::encode_audio(r, 0, w)) << "differs from encode_audio";
  }
}

TEST_F(ServerTest, UploadedAudioContinuation) {
  auto c = running_->client();
  const std::string wav = read_file(fixture_dir("audio") + "/16k_mono.wav");
  auto res = post(c, "/v1/audio/music",
                  {{"prompt", "more"}, {"duration", 0.8}, {"do_sample", false},
                   {"audio", b64(wav)}, {"audio_mode", "continuation"}, {"prompt_duration", 0.3}});
  ASSERT_EQ(res->status, 200) << res->body;
  musicgen::GenerationOptions opt;
  opt.prompts = {"more"};
  opt.duration_s = 0.8;
  opt.greedy = true;
  opt.audio_prompts = {musicgen::load_audio_file(fixture_dir("audio") + "/16k_mono.wav", 0.0, 0.3)};
  EXPECT_TRUE(res->body == reference_wavs(opt)[0]);
}

TEST_F(ServerTest, MultipartUploadEqualsBase64Upload) {
  auto c = running_->client();
  const std::string wav = read_file(fixture_dir("audio") + "/44k_stereo.wav");
  const json body = {{"prompt", "more"}, {"duration", 0.7}, {"do_sample", false},
                     {"audio", b64(wav)}, {"prompt_duration", 0.2}};
  auto a = post(c, "/v1/audio/music", body);
  ASSERT_EQ(a->status, 200) << a->body;
  httplib::MultipartFormDataItems items = {
      {"prompt", "more", "", ""},
      {"duration", "0.7", "", ""},
      {"do_sample", "false", "", ""},
      {"prompt_duration", "0.2", "", ""},
      {"audio", wav, "clip.wav", "audio/wav"},
  };
  auto m = c.Post("/v1/audio/music", items);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200) << m->body;
  EXPECT_TRUE(a->body == m->body);
  // A JSON part plus the file.
  httplib::MultipartFormDataItems items2 = {
      {"request", json{{"prompt", "more"}, {"duration", 0.7}, {"do_sample", false}, {"prompt_duration", 0.2}}.dump(), "", "application/json"},
      {"audio", wav, "clip.wav", "audio/wav"},
  };
  auto m2 = c.Post("/v1/audio/music", items2);
  ASSERT_EQ(m2->status, 200) << m2->body;
  EXPECT_TRUE(a->body == m2->body);
  httplib::MultipartFormDataItems bad = {{"audio", "not audio", "x.wav", "audio/wav"}};
  auto b = c.Post("/v1/audio/music", bad);
  EXPECT_EQ(b->status, 400);
  EXPECT_EQ(json::parse(b->body)["error"]["field"], "audio");
}

TEST_F(ServerTest, BadInputIs400NamingTheField) {
  auto c = running_->client();
  const std::string wav = b64(read_file(fixture_dir("audio") + "/16k_mono.wav"));
  struct Case {
    json body;
    int status;
    std::string field;
  };
  const std::vector<Case> cases = {
      {{{"prompt", "x"}, {"bogus", 1}}, 400, "bogus"},
      {{{"prompt", 3}}, 400, "prompt"},
      {{{"prompt", json::array()}}, 400, "prompt"},
      {{{"prompt", {"a", 2}}}, 400, "prompt"},
      {{{"duration", "5"}}, 400, "duration"},
      {{{"duration", -1}}, 400, "duration"},
      {{{"duration", 1e9}}, 400, "duration"},
      {{{"duration", 1}, {"max_new_tokens", 10}}, 400, "duration"},
      {{{"max_new_tokens", 2.5}}, 400, "max_new_tokens"},
      {{{"max_new_tokens", 0}}, 400, "max_new_tokens"},
      {{{"do_sample", "yes"}}, 400, "do_sample"},
      {{{"guidance_scale", 0.5}}, 400, "guidance_scale"},
      {{{"top_k", 0}}, 400, "top_k"},
      {{{"top_p", 0}}, 400, "top_p"},
      {{{"top_p", 1.5}}, 400, "top_p"},
      {{{"temperature", 0}}, 400, "temperature"},
      {{{"seed", -1}}, 400, "seed"},
      {{{"seed", "1"}}, 400, "seed"},
      {{{"audio", "!!!not base64"}}, 400, "audio"},
      {{{"audio", b64("this is not audio at all, just text")}}, 400, "audio"},
      {{{"audio", wav}, {"audio_mode", "melody"}}, 400, "audio_mode"},
      {{{"audio_mode", "continuation"}}, 400, "audio_mode"},
      {{{"prompt_duration", 1}}, 400, "prompt_duration"},
      {{{"audio_mode", "remix"}, {"audio", wav}}, 400, "audio_mode"},
      {{{"response_format", "aiff"}}, 400, "response_format"},
      {{{"response_format", "flac"}, {"sample_format", "f32"}}, 400, "sample_format"},
      {{{"response_format", "mp3"}, {"stream", true}}, 400, "response_format"},
      {{{"normalize", "peak"}, {"stream", true}}, 400, "normalize"},
      {{{"sample_format", "s24"}}, 400, "sample_format"},
      {{{"normalize", "loud"}}, 400, "normalize"},
      {{{"stream", 1}}, 400, "stream"},
      {{{"stream", true}, {"prompt", {"a", "b"}}}, 400, "stream"},
      {{{"model", "nope"}}, 404, "model"},
      {{{"model", "../tiny-a"}}, 404, "model"},
      {{{"model", fixture_dir("tiny-a")}}, 404, "model"},  // never a path
  };
  for (const auto& cs : cases) {
    auto res = post(c, "/v1/audio/music", cs.body);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, cs.status) << cs.body.dump() << " -> " << res->body;
    const json j = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << res->body;
    EXPECT_EQ(j["error"]["field"], cs.field) << cs.body.dump() << " -> " << res->body;
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  }
  // Malformed JSON, a non-object, no body: 400 without a field.
  for (const std::string body : {"{bad", "[1,2]", "", "\"text\""}) {
    auto res = c.Post("/v1/audio/music", body, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << body;
    const json j = json::parse(res->body);
    EXPECT_TRUE(j["error"]["field"].is_null()) << res->body;
  }
  auto nf = c.Get("/v1/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_TRUE(json::parse(nf->body).contains("error"));
}

TEST_F(ServerTest, SoundGenerationAlias) {
  auto c = running_->client();
  auto a = post(c, "/v1/sound-generation",
                {{"text", "birds"}, {"duration_seconds", 0.4}, {"prompt_influence", 0.3},
                 {"do_sample", false}});
  ASSERT_EQ(a->status, 200) << a->body;
  auto b = post(c, "/v1/audio/music", {{"prompt", "birds"}, {"duration", 0.4}, {"do_sample", false}});
  EXPECT_TRUE(a->body == b->body);
  auto bad1 = post(c, "/v1/sound-generation", {{"duration_seconds", 1}});
  EXPECT_EQ(bad1->status, 400);
  EXPECT_EQ(json::parse(bad1->body)["error"]["field"], "text");
  auto bad2 = post(c, "/v1/sound-generation", {{"text", "x"}, {"voice", "y"}});
  EXPECT_EQ(bad2->status, 400);
  EXPECT_EQ(json::parse(bad2->body)["error"]["field"], "voice");
  auto bad3 = post(c, "/v1/sound-generation", {{"text", "x"}, {"duration_seconds", "long"}});
  EXPECT_EQ(json::parse(bad3->body)["error"]["field"], "duration_seconds");
  auto bad4 = post(c, "/v1/sound-generation", {{"text", "x"}, {"model_id", "eleven_v2"}});
  EXPECT_EQ(bad4->status, 404);
  EXPECT_EQ(json::parse(bad4->body)["error"]["field"], "model_id");
}

json wait_job(const httplib::Client& c0, const std::string& id, double timeout_s = 60) {
  auto& c = const_cast<httplib::Client&>(c0);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  json j;
  while (std::chrono::steady_clock::now() < end) {
    auto r = c.Get(("/v1/audio/music/jobs/" + id).c_str());
    if (!r || r->status != 200) return json();
    j = json::parse(r->body);
    const std::string s = j["status"];
    if (s == "succeeded" || s == "failed" || s == "canceled") return j;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return j;
}

TEST_F(ServerTest, JobLifecycle) {
  auto c = running_->client();
  const json body = {{"prompt", "folk"}, {"duration", 0.5}, {"do_sample", false}, {"seed", 9}};
  auto created = post(c, "/v1/audio/music/jobs", body);
  ASSERT_EQ(created->status, 202) << created->body;
  const json cj = json::parse(created->body);
  const std::string id = cj["id"];
  EXPECT_TRUE(cj["status"] == "queued" || cj["status"] == "running");
  const json done = wait_job(c, id);
  ASSERT_EQ(done["status"], "succeeded") << done.dump();
  EXPECT_EQ(done["progress"], 1.0);
  auto audio = c.Get(("/v1/audio/music/jobs/" + id + "/audio").c_str());
  ASSERT_EQ(audio->status, 200);
  auto sync = post(c, "/v1/audio/music", body);
  EXPECT_TRUE(audio->body == sync->body) << "a job's audio differs from the synchronous request's";
  // Deleting a finished job removes it.
  auto del = c.Delete(("/v1/audio/music/jobs/" + id).c_str());
  EXPECT_EQ(del->status, 200);
  EXPECT_EQ(c.Get(("/v1/audio/music/jobs/" + id).c_str())->status, 404);
  EXPECT_EQ(c.Get("/v1/audio/music/jobs/job_nope")->status, 404);
  EXPECT_EQ(c.Delete("/v1/audio/music/jobs/job_nope")->status, 404);
  auto bad = post(c, "/v1/audio/music/jobs", {{"top_k", "many"}});
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(json::parse(bad->body)["error"]["field"], "top_k");
}

TEST_F(ServerTest, JobCancel) {
  auto c = running_->client();
  auto created = post(c, "/v1/audio/music/jobs", {{"prompt", "long"}, {"duration", 60}});
  ASSERT_EQ(created->status, 202);
  const std::string id = json::parse(created->body)["id"];
  // Wait until it runs, then check progress moves and the audio is not there yet.
  json j;
  for (int i = 0; i < 400; ++i) {
    j = json::parse(c.Get(("/v1/audio/music/jobs/" + id).c_str())->body);
    if (j["status"] == "running" && j["progress"].get<double>() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_EQ(j["status"], "running") << j.dump();
  EXPECT_GT(j["progress"].get<double>(), 0.0);
  EXPECT_LT(j["progress"].get<double>(), 1.0);
  EXPECT_EQ(c.Get(("/v1/audio/music/jobs/" + id + "/audio").c_str())->status, 409);
  auto del = c.Delete(("/v1/audio/music/jobs/" + id).c_str());
  EXPECT_EQ(del->status, 200);
  const json done = wait_job(c, id, 20);
  EXPECT_EQ(done["status"], "canceled") << done.dump();
}

TEST_F(ServerTest, ModelsHealthOpenApiPageMetrics) {
  auto c = running_->client();
  auto m = c.Get("/v1/models");
  ASSERT_EQ(m->status, 200);
  const json mj = json::parse(m->body);
  ASSERT_EQ(mj["data"].size(), 1u);
  EXPECT_EQ(mj["data"][0]["id"], "tiny-a");
  EXPECT_EQ(mj["data"][0]["defaults"]["guidance_scale"], 3.0);
  EXPECT_EQ(mj["data"][0]["defaults"]["do_sample"], true);
  auto h = c.Get("/health");
  ASSERT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  auto o = c.Get("/openapi.json");
  ASSERT_EQ(o->status, 200);
  const json oj = json::parse(o->body);
  EXPECT_EQ(oj["openapi"].get<std::string>().substr(0, 2), "3.");
  for (const char* p : {"/v1/audio/music", "/v1/audio/music/jobs", "/v1/audio/music/jobs/{id}",
                        "/v1/audio/music/jobs/{id}/audio", "/v1/models", "/health", "/metrics",
                        "/v1/sound-generation"})
    EXPECT_TRUE(oj["paths"].contains(p)) << p;
  auto page = c.Get("/");
  ASSERT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<canvas"), std::string::npos);
  EXPECT_NE(page->body.find("/v1/audio/music/jobs"), std::string::npos);
  EXPECT_EQ(page->body.find("http://"), std::string::npos) << "the page must not load from a CDN";
  EXPECT_EQ(page->body.find("https://"), std::string::npos) << "the page must not load from a CDN";
  ASSERT_EQ(post(c, "/v1/audio/music", {{"duration", 0.2}})->status, 200);
  ASSERT_EQ(post(c, "/v1/audio/music", {{"duration", -2}})->status, 400);
  // Requests are counted when their log line is written, just after the answer: poll briefly.
  auto mt = c.Get("/metrics");
  for (int i = 0; i < 100 && mt->body.find("musicgen_requests_total{code=\"400\"}") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    mt = c.Get("/metrics");
  }
  ASSERT_EQ(mt->status, 200);
  for (const char* s : {"musicgen_requests_total{code=\"200\"}", "musicgen_requests_total{code=\"400\"}",
                        "musicgen_queue_depth ", "musicgen_batch_size ", "musicgen_decoder_steps_total ",
                        "musicgen_decoder_steps_per_second ", "musicgen_audio_seconds_generated_total "})
    EXPECT_NE(mt->body.find(s), std::string::npos) << s;
  const size_t at = mt->body.find("\nmusicgen_decoder_steps_total ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GT(std::stoll(mt->body.substr(at + 30)), 0);
}

TEST(ServerLimits, FullQueueIs429WithRetryAfter) {
  musicgen::server::ServerOptions o;
  o.max_batch = 1;
  o.max_queue = 0;
  Running r(o);
  auto c = r.client();
  auto job = post(c, "/v1/audio/music/jobs", {{"prompt", "slow"}, {"duration", 60}});
  ASSERT_EQ(job->status, 202);
  auto busy = post(c, "/v1/audio/music", {{"prompt", "x"}, {"duration", 0.2}});
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 429);
  EXPECT_FALSE(busy->get_header_value("Retry-After").empty());
  EXPECT_EQ(post(c, "/v1/audio/music/jobs", {{"duration", 0.2}})->status, 429);
  const std::string id = json::parse(job->body)["id"];
  c.Delete(("/v1/audio/music/jobs/" + id).c_str());
  EXPECT_EQ(wait_job(c, id, 20)["status"], "canceled");
  // The slot is free again.
  EXPECT_EQ(post(c, "/v1/audio/music", {{"duration", 0.2}})->status, 200);
}

TEST(ServerLimits, ABurstOfClientsIsAnsweredNotReset) {
  musicgen::server::ServerOptions o;
  o.max_batch = 1;
  o.max_queue = 2;
  Running r(o);
  std::atomic<int> ok{0}, busy{0}, lost{0}, other{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 100; ++i)
    ts.emplace_back([&] {
      auto c = r.client(60);
      auto res = post(c, "/v1/audio/music", {{"prompt", "x"}, {"duration", 0.1}});
      if (!res) ++lost;
      else if (res->status == 200) ++ok;
      else if (res->status == 429 && !res->get_header_value("Retry-After").empty()) ++busy;
      else ++other;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(lost.load(), 0) << "connections were reset or timed out";
  EXPECT_EQ(other.load(), 0);
  EXPECT_GE(ok.load(), 1);
  EXPECT_EQ(ok.load() + busy.load(), 100);
}

TEST(ServerLimits, BodyTooLargeIs413) {
  musicgen::server::ServerOptions o;
  o.max_body_bytes = 1024;
  Running r(o);
  auto c = r.client();
  auto res = post(c, "/v1/audio/music", {{"prompt", std::string(4000, 'a')}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
}

TEST(ServerLimits, ApiKey) {
  musicgen::server::ServerOptions o;
  o.api_key = "s3cret";
  Running r(o);
  auto c = r.client();
  auto none = c.Get("/v1/models");
  EXPECT_EQ(none->status, 401);
  EXPECT_TRUE(json::parse(none->body).contains("error"));
  EXPECT_EQ(post(c, "/v1/audio/music", {{"duration", 0.2}})->status, 401);
  httplib::Headers wrong = {{"Authorization", "Bearer s3creT"}};
  EXPECT_EQ(c.Get("/v1/models", wrong)->status, 401);
  httplib::Headers bearer = {{"Authorization", "Bearer s3cret"}};
  EXPECT_EQ(c.Get("/v1/models", bearer)->status, 200);
  httplib::Headers xkey = {{"X-API-Key", "s3cret"}};
  EXPECT_EQ(c.Get("/metrics", xkey)->status, 200);
  EXPECT_EQ(c.Get("/health")->status, 200);  // liveness needs no key
}

TEST(ServerLimits, ClientDisconnectStopsTheWork) {
  Running r(musicgen::server::ServerOptions{});
  auto c = r.client();
  for (const bool stream : {false, true}) {
    httplib::Client slow("127.0.0.1", r.port);
    slow.set_read_timeout(60, 0);
    std::thread t([&] {
      slow.Post("/v1/audio/music", json{{"prompt", "long"}, {"duration", 60}, {"stream", stream}}.dump(),
                "application/json");
    });
    auto metric = [&](const std::string& line) {
      return c.Get("/metrics")->body.find(line) != std::string::npos;
    };
    for (int i = 0; i < 1000 && !metric("musicgen_batch_size 1"); ++i)  // 20 s at most
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(metric("musicgen_batch_size 1")) << "the request never started";
    slow.stop();  // the client goes away mid-generation
    t.join();
    const std::string want = std::string("musicgen_generations_total{outcome=\"canceled\"} ") +
                             (stream ? "2" : "1");
    bool canceled = false;
    for (int i = 0; i < 200 && !canceled; ++i) {
      canceled = metric(want) && metric("musicgen_batch_size 0");
      if (!canceled) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(canceled) << (stream ? "stream: " : "") << "the generation kept running after the client left:\n"
                          << c.Get("/metrics")->body;
  }
}

TEST(ServerLimits, DrainFinishesRunningRequestsAndRefusesNewOnes) {
  Running r(musicgen::server::ServerOptions{});
  auto c = r.client();
  std::atomic<int> status{-1};
  std::thread t([&] {
    auto c2 = r.client();
    auto res = post(c2, "/v1/audio/music", {{"prompt", "x"}, {"duration", 1.0}, {"do_sample", false}});
    status = res ? res->status : 0;
  });
  // Wait until it is admitted, then drain with a long grace: it must complete normally.
  for (int i = 0; i < 2000 && status < 0; ++i) {  // up to 20 s on a loaded machine
    if (json::parse(c.Get("/health")->body)["admitted"] == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.server->drain(30);
  t.join();
  EXPECT_EQ(status.load(), 200);
  EXPECT_FALSE(c.Get("/health"));  // no longer listening
}

}  // namespace
