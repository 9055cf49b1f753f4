// `musicgen bench`: the JSON report on a fixture (keys and sane values), the cached random
// checkpoint of --shape, and bad options.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"

namespace musicgen {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// env: "NAME=value " assignments put before the command (may be empty).
CliResult run_cli(const std::vector<std::string>& args, const std::string& env = "") {
  const std::string dir = testing::make_temp_dir("bench-cli");
  std::string cmd = env + quote(MUSICGEN_CLI);
  for (const auto& a : args) {
    cmd += ' ';
    cmd += quote(a);
  }
  cmd += " > ";
  cmd += quote(dir + "/out");
  cmd += " 2> ";
  cmd += quote(dir + "/err");
  cmd += " < /dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(dir + "/out");
  r.err = read_file(dir + "/err");
  fs::remove_all(dir);
  return r;
}

void expect_positive_finite(const json& j, const char* key) {
  ASSERT_TRUE(j.contains(key)) << key;
  ASSERT_TRUE(j.at(key).is_number()) << key;
  const double v = j.at(key).get<double>();
  EXPECT_TRUE(std::isfinite(v)) << key;
  EXPECT_GT(v, 0.0) << key;
}

TEST(Bench, JsonReportOnTinyFixture) {
  // One thread: under ctest -j2 a second spinning pool on the 2 cores makes every parallel region
  // of this tiny model wait for a time slice, and the rate bound below is about the report.
  const CliResult r = run_cli({"bench", "--model", testing::fixture_dir("tiny-a"), "--steps", "20",
                               "--repeats", "2", "--threads", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j;
  ASSERT_NO_THROW(j = json::parse(r.out)) << r.out;
  ASSERT_TRUE(j.is_object());
  for (const char* k : {"decoder_steps_per_s", "audio_decode_rtf", "end_to_end_rtf",
                        "peak_rss_bytes", "load_s", "text_encode_s", "decode_s", "audio_decode_s",
                        "audio_seconds", "decoder_weight_bytes_per_step",
                        "achieved_weight_bandwidth_gb_s", "machine_read_bandwidth_gb_s"})
    expect_positive_finite(j, k);
  EXPECT_EQ(j.at("weights"), "f32");
  EXPECT_GE(j.at("threads").get<int>(), 1);
  EXPECT_EQ(j.at("steps"), 20);
  EXPECT_EQ(j.at("repeats"), 2);
  EXPECT_EQ(j.at("runs").size(), 2u);
  // 20 steps give 17 frames of 20 ms.
  EXPECT_NEAR(j.at("audio_seconds").get<double>(), 17 * 0.02, 1e-9);
  // Sanity bounds for a 2-layer, 64-wide model: far faster than real time, RSS between 1 MB and
  // a few GB (the bandwidth buffer is allocated after RSS is read).
  EXPECT_GT(j.at("decoder_steps_per_s").get<double>(), 50.0);
  EXPECT_LT(j.at("end_to_end_rtf").get<double>(), 10.0);
  EXPECT_GT(j.at("peak_rss_bytes").get<double>(), 1e6);
  EXPECT_LT(j.at("peak_rss_bytes").get<double>(), 4e9);
  // Weights per step of tiny-a: 2 layers x (4 + 2) x 64 x 64 + 2 x 256 x 64 x 2 + 4 x 128 x 64.
  EXPECT_EQ(j.at("decoder_step_params"), 2 * (6 * 64 * 64 + 2 * 256 * 64) + 4 * 128 * 64);
  EXPECT_DOUBLE_EQ(j.at("decoder_weight_bytes_per_step").get<double>(),
                   4.0 * j.at("decoder_step_params").get<double>());
  // RTFs are consistent with the times they come from.
  EXPECT_LE(j.at("audio_decode_rtf").get<double>(), j.at("end_to_end_rtf").get<double>());
  // The kernels' instruction set, and the memory floor: weights plus the mean KV cache read per
  // step (2 layers x K and V x 2 guidance streams x 64 wide x 4 bytes x (20 + 1) / 2 positions).
  const std::string isa = j.at("isa").get<std::string>();
  EXPECT_TRUE(isa == "scalar" || isa == "avx2" || isa == "avx512") << isa;
  EXPECT_DOUBLE_EQ(j.at("kv_bytes_per_step_avg").get<double>(), 2.0 * 2 * 2 * 64 * 4 * 21 / 2);
  const double floor_bw = (j.at("decoder_weight_bytes_per_step").get<double>() +
                           j.at("kv_bytes_per_step_avg").get<double>()) *
                          j.at("decoder_steps_per_s").get<double>() / 1e9;
  EXPECT_NEAR(j.at("floor_bandwidth_gb_s").get<double>(), floor_bw, 1e-9 * floor_bw);
  EXPECT_NEAR(j.at("floor_fraction").get<double>(),
              floor_bw / j.at("machine_read_bandwidth_gb_s").get<double>(), 1e-9);
  // The probe's two methods, the faster being the figure.
  EXPECT_DOUBLE_EQ(j.at("machine_read_bandwidth_gb_s").get<double>(),
                   std::max(j.at("machine_read_bandwidth_plain_gb_s").get<double>(),
                            j.at("machine_read_bandwidth_prefetch_gb_s").get<double>()));
  // The thread pool's figures are fractions (the tiny model runs most products inline).
  for (const char* k : {"pool_wait_fraction", "pool_start_fraction", "pool_region_fraction"}) {
    EXPECT_GE(j.at(k).get<double>(), 0.0) << k;
    EXPECT_LE(j.at(k).get<double>(), 1.0) << k;
  }
  EXPECT_GE(j.at("pool_regions_per_step").get<double>(), 0.0);
  // Fewer than 201 steps: no first/last 100-step rates.
  EXPECT_TRUE(j.at("first_100_steps_per_s").is_null());
  EXPECT_TRUE(j.at("last_100_steps_per_s").is_null());
}

// MUSICGEN_ISA=scalar forces the scalar kernels (and the JSON says so); 201+ steps report the
// first and last 100 steps' rates.
TEST(Bench, IsaForcedAndFirstLastStepRates) {
  const CliResult r = run_cli({"bench", "--model", testing::fixture_dir("tiny-a"), "--steps", "210",
                               "--repeats", "1", "--warmup-steps", "0", "--bandwidth-mib", "64",
                               "--json"},
                              "MUSICGEN_ISA=scalar ");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j;
  ASSERT_NO_THROW(j = json::parse(r.out)) << r.out;
  EXPECT_EQ(j.at("isa"), "scalar");
  expect_positive_finite(j, "first_100_steps_per_s");
  expect_positive_finite(j, "last_100_steps_per_s");
  const CliResult t = run_cli({"bench", "--model", testing::fixture_dir("tiny-a"), "--steps", "8",
                               "--repeats", "1", "--bandwidth-mib", "0"},
                              "MUSICGEN_ISA=scalar ");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("kernel instruction set"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("scalar"), std::string::npos) << t.out;
}

// Decoder weight bytes per step of tiny-a in a weight type (quantized on load from the fixture, or
// stored in a quantized file), from the bench's JSON.
double bytes_per_step(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"bench",  "--steps",         "10", "--repeats", "1",
                                   "--json", "--bandwidth-mib", "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  const CliResult r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  expect_positive_finite(j, "decoder_steps_per_s");
  return j.at("decoder_weight_bytes_per_step").get<double>();
}

TEST(Bench, WeightTypesAndQuantizedFiles) {
  const std::string m = testing::fixture_dir("tiny-a");
  const double params = 2 * (6 * 64 * 64 + 2 * 256 * 64) + 4 * 128 * 64;  // see above
  const double bf16 = bytes_per_step({"--model", m, "--weights", "bf16"});
  const double q8 = bytes_per_step({"--model", m, "--weights", "q8"});
  const double q4 = bytes_per_step({"--model", m, "--weights", "q4"});
  EXPECT_DOUBLE_EQ(bf16, 2 * params);
  // Blocks of 32 with f16 scales (padded per row: exact ratios only for wide rows).
  EXPECT_GE(q8, params * 34 / 32);
  EXPECT_LT(q8, bf16);
  EXPECT_GE(q4, params * 18 / 32);
  EXPECT_LT(q4, q8);

  // A quantized file reports its stored type and the bytes it stores, which equal what loading
  // the checkpoint with that type builds.
  const std::string dir = testing::make_temp_dir("bench-q");
  const std::string file = dir + "/tiny-a.q4.mgq";
  const CliResult q = run_cli({"quantize", "--model", m, "--weights", "q4", "--out", file});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const CliResult r = run_cli({"bench", "--model", file, "--steps", "10", "--repeats", "1",
                               "--json", "--bandwidth-mib", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("weights"), "q4");
  EXPECT_DOUBLE_EQ(j.at("decoder_weight_bytes_per_step").get<double>(), q4);
  fs::remove_all(dir);
}

TEST(Bench, ThreadsAndTableOutput) {
  const CliResult r = run_cli({"bench", "--model", testing::fixture_dir("tiny-b"), "--steps", "10",
                               "--repeats", "1", "--threads", "2", "--bandwidth-mib", "16"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* needle : {"decoder steps/s", "audio decoding RTF", "end-to-end RTF", "peak RSS",
                             "machine read bandwidth", "2 threads", "lower is better"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << "\n" << r.out;
}

TEST(Bench, ShapeCreatesAndCachesARandomCheckpoint) {
  const std::string cache = testing::make_temp_dir("bench-cache");
  const std::vector<std::string> args = {
      "bench",     "--shape", "test-tiny", "--cache-dir",     cache, "--steps", "8",
      "--repeats", "1",       "--json",    "--bandwidth-mib", "0"};
  const CliResult first = run_cli(args);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("creating random test-tiny checkpoint"), std::string::npos) << first.err;
  const json j = json::parse(first.out);
  EXPECT_EQ(j.at("shape"), "test-tiny");
  EXPECT_EQ(j.at("hidden_size"), 64);
  EXPECT_TRUE(fs::exists(cache + "/random-test-tiny-seed0-f32/model.safetensors"));
  const CliResult second = run_cli(args);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.err.find("creating"), std::string::npos) << second.err;
  fs::remove_all(cache);
}

TEST(Bench, BadOptionsFailWithOneLine) {
  auto expect_usage = [](const std::vector<std::string>& args, const std::string& needle) {
    std::vector<std::string> full = {"bench"};
    full.insert(full.end(), args.begin(), args.end());
    const CliResult r = run_cli(full);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("musicgen: error: ", 0), 0u) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  };
  const std::string m = testing::fixture_dir("tiny-a");
  expect_usage({}, "exactly one of --model PATH or --shape SHAPE");
  expect_usage({"--model", m, "--shape", "small"}, "exactly one of");
  expect_usage({"--shape", "gigantic"}, "unknown --shape 'gigantic'");
  expect_usage({"--model", m, "--weights", "q9"},
               "--weights must be f32, bf16, q8 or q4, got 'q9'");
  expect_usage({"--model", m, "--steps", "3"}, "--steps must be between");
  expect_usage({"--model", m, "--repeats", "0"}, "--repeats must be between");
  expect_usage({"--model", m, "--guidance", "0.5"}, "--guidance must be >= 1");
  expect_usage({"--model", m, "--threads", "x"}, "--threads expects an integer");
  expect_usage({"--model", m, "--frobnicate"}, "unknown option '--frobnicate'");
  const CliResult missing = run_cli({"bench", "--model", "/no/such/model", "--json"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
  EXPECT_TRUE(missing.out.empty());
}

// Issue 10: a step matrix that is not a matrix (a 0-d lm_heads) is one clear error, not an
// "internal error".
TEST(BenchCommand, ZeroDimensionalMatrixIsAnError) {
  const std::string dir = testing::make_temp_dir("bench-0d");
  for (const auto& e : fs::directory_iterator(testing::fixture_dir("tiny-a")))
    if (e.path().extension() == ".json" || e.path().extension() == ".model" ||
        e.path().filename() == "model.safetensors")
      fs::copy(e.path(), fs::path(dir) / e.path().filename());
  const std::string st = dir + "/model.safetensors";
  const std::string bytes = read_file(st);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  json header = json::parse(bytes.substr(8, n));
  json& t = header.at("decoder.lm_heads.0.weight");
  const uint64_t begin = t["data_offsets"][0].get<uint64_t>();
  t["shape"] = json::array();
  t["data_offsets"] = {begin, begin + 4};
  const std::string h = header.dump();
  const uint64_t hn = h.size();
  {
    std::ofstream out(st, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(&hn), 8);
    out << h << bytes.substr(8 + n);
  }
  const CliResult r = run_cli({"bench", "--model", dir, "--steps", "10", "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("decoder.lm_heads.0.weight"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace musicgen
