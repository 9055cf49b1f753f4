// The `musicgen` command end to end: output files, codes against the reference, reproducibility,
// and bad input (non-zero exit, one-line error, no output left behind).
#include <sys/stat.h>
#include <sys/wait.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "audio/wav_writer.h"
#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::fixture_dir;

struct CliResult {
  int exit_code = -1;
  std::string err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CliResult run_cli(const std::vector<std::string>& args) {
  static int counter = 0;
  const std::string err_path = testing::make_temp_dir("cli") + "/stderr" + std::to_string(counter++);
  std::string cmd = quote(MUSICGEN_CLI);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " > /dev/null 2> " + quote(err_path) + " < /dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_path);
  std::stringstream ss;
  ss << in.rdbuf();
  r.err = ss.str();
  return r;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int64_t> codes_from_json(const std::string& path) {
  const json j = json::parse(read_file(path));
  std::vector<int64_t> flat;
  for (const auto& b : j.at("codes"))
    for (const auto& k : b)
      for (const auto& t : k) flat.push_back(t.get<int64_t>());
  return flat;
}

// Copies a fixture checkpoint to a fresh directory that the test may damage.
std::string copy_fixture(const std::string& name) {
  const std::string dir = testing::make_temp_dir("model");
  for (const auto& e : fs::directory_iterator(fixture_dir(name)))
    if (e.path().filename() != "golden.safetensors" && e.path().filename() != "golden.json")
      fs::copy(e.path(), fs::path(dir) / e.path().filename());
  return dir;
}

// Rewrites a safetensors file with an edited header (data unchanged).
void edit_header(const std::string& path, const std::function<void(json&)>& edit) {
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  json header = json::parse(bytes.substr(8, n));
  edit(header);
  const std::string h = header.dump();
  const uint64_t hn = h.size();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&hn), 8);
  out << h << bytes.substr(8 + n);
}

void expect_clean_failure(const CliResult& r, const std::string& needle, const std::string& out) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  // One line: the message and its newline.
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr: " << r.err;
  EXPECT_EQ(r.err.rfind("musicgen: error: ", 0), 0u) << "stderr: " << r.err;
  if (!out.empty()) {
    EXPECT_FALSE(fs::exists(out)) << out << " was left behind";
  }
  if (!out.empty() && fs::is_directory(fs::path(out).parent_path())) {
    for (const auto& e : fs::directory_iterator(fs::path(out).parent_path()))
      EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << "temp file left";
  }
}

TEST(Cli, GeneratesWavAndReferenceCodes) {
  const std::string out_dir = testing::make_temp_dir("out");
  const std::string wav = out_dir + "/song.wav", codes = out_dir + "/codes.json";
  const json g = json::parse(read_file(fixture_dir("tiny-a") + "/golden.json"));
  const int steps = g.at("runs").at("single_g3").at("max_new_tokens").get<int>();
  const std::string prompt = g.at("text").at("prompts")[0].get<std::string>();
  const CliResult r = run_cli({"generate", "--model", fixture_dir("tiny-a"), "--prompt", prompt,
                               "--max-new-tokens", std::to_string(steps), "--greedy", "--guidance",
                               "3", "--output", wav, "--codes-out", codes, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int channels = 0, sr = 0;
  int64_t frames = 0;
  read_audio(wav, &channels, &frames, &sr);
  EXPECT_EQ(sr, 32000);
  EXPECT_EQ(channels, 1);
  EXPECT_EQ(frames, static_cast<int64_t>(steps - 3) * 640);
  const TensorStore golden = testing::load_golden("tiny-a");
  EXPECT_EQ(codes_from_json(codes), golden.get_i64("single_g3.codes"));
}

TEST(Cli, DurationGivesExactFrameCountAndBatchFiles) {
  const std::string out_dir = testing::make_temp_dir("out");
  const CliResult r = run_cli({"generate", "--model", fixture_dir("tiny-b"), "--prompt", "jazz",
                               "--prompt", "rock", "--duration", "0.5", "--output",
                               out_dir + "/x.wav", "--sample-format", "f32", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* name : {"/x_0.wav", "/x_1.wav"}) {
    int channels = 0, sr = 0;
    int64_t frames = 0;
    read_audio(out_dir + name, &channels, &frames, &sr);
    EXPECT_EQ(frames, 25 * 640) << name;
  }
  EXPECT_FALSE(fs::exists(out_dir + "/x.wav"));
}

TEST(Cli, LongFormWritesTheWholeFile) {
  const std::string out_dir = testing::make_temp_dir("out");
  const CliResult r = run_cli({"generate", "--model", fixture_dir("tiny-a"), "--prompt", "blues",
                               "--duration", "75", "--output", out_dir + "/long.wav",
                               "--codes-out", out_dir + "/long.json", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int channels = 0, sr = 0;
  int64_t frames = 0;
  read_audio(out_dir + "/long.wav", &channels, &frames, &sr);
  EXPECT_EQ(frames, int64_t{3750} * 640);
  EXPECT_EQ(codes_from_json(out_dir + "/long.json").size(), 4u * 3750u);
}

TEST(Cli, SameSeedAndAnyThreadCountGiveIdenticalCodes) {
  const std::string out_dir = testing::make_temp_dir("out");
  auto run = [&](const std::string& tag, const std::string& threads, const std::string& seed) {
    const std::string codes = out_dir + "/" + tag + ".json";
    const CliResult r = run_cli({"generate", "--model", fixture_dir("tiny-a"), "--prompt",
                                 "happy rock", "--max-new-tokens", "20", "--seed", seed,
                                 "--threads", threads, "--output", out_dir + "/" + tag + ".wav",
                                 "--codes-out", codes, "--quiet"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return codes_from_json(codes);
  };
  const auto a = run("a", "1", "7");
  const auto b = run("b", "2", "7");
  const auto c = run("c", "2", "7");
  const auto d = run("d", "2", "8");
  EXPECT_EQ(a, b);
  EXPECT_EQ(b, c);
  EXPECT_NE(a, d) << "a different seed should change sampled codes";
}

TEST(Cli, HelpDocumentsEveryOption) {
  const std::string help = [] {
    const std::string path = testing::make_temp_dir("help") + "/help.txt";
    std::system((quote(MUSICGEN_CLI) + " generate --help > " + quote(path)).c_str());
    return read_file(path);
  }();
  for (const char* opt : {"--model", "--prompt", "--duration", "--max-new-tokens", "--guidance",
                          "--top-k", "--top-p", "--temperature", "--seed", "--greedy",
                          "--threads", "--sample-format", "--codes-out", "--output"})
    EXPECT_NE(help.find(opt), std::string::npos) << opt;
}

class CliBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    out_dir_ = testing::make_temp_dir("out");
    out_ = out_dir_ + "/out.wav";
  }
  CliResult gen(const std::string& model, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"generate", "--model", model, "--prompt", "x",
                                     "--max-new-tokens", "8", "--output", out_, "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args);
  }
  std::string out_dir_, out_;
};

TEST_F(CliBadInput, MissingDirectory) {
  expect_clean_failure(gen("/nonexistent/model"), "does not exist", out_);
}

TEST_F(CliBadInput, MissingWeightsFile) {
  const std::string dir = copy_fixture("tiny-a");
  fs::remove(dir + "/model.safetensors");
  expect_clean_failure(gen(dir), "no model.safetensors", out_);
}

TEST_F(CliBadInput, MissingTokenizer) {
  const std::string dir = copy_fixture("tiny-a");
  fs::remove(dir + "/spiece.model");
  expect_clean_failure(gen(dir), "spiece.model", out_);
}

TEST_F(CliBadInput, TruncatedSafetensors) {
  const std::string dir = copy_fixture("tiny-a");
  const std::string f = dir + "/model.safetensors";
  fs::resize_file(f, fs::file_size(f) / 2);
  expect_clean_failure(gen(dir), "truncated", out_);
}

TEST_F(CliBadInput, HeaderOffsetsOutsideFile) {
  const std::string dir = copy_fixture("tiny-a");
  edit_header(dir + "/model.safetensors", [](json& h) {
    for (auto it = h.begin(); it != h.end(); ++it)
      if (it.key() != "__metadata__") {
        (*it)["data_offsets"][1] = (*it)["data_offsets"][1].get<uint64_t>() + (1u << 30);
        break;
      }
  });
  expect_clean_failure(gen(dir), "outside the file", out_);
}

TEST_F(CliBadInput, TensorWithWrongShape) {
  const std::string dir = copy_fixture("tiny-a");
  const std::string name = "decoder.model.decoder.layers.0.fc1.weight";
  edit_header(dir + "/model.safetensors", [&](json& h) {
    auto shape = h.at(name).at("shape");
    h[name]["shape"] = {shape[0].get<int64_t>() / 2, shape[1].get<int64_t>() * 2};
  });
  expect_clean_failure(gen(dir), name, out_);
}

TEST_F(CliBadInput, UnknownModelType) {
  const std::string dir = copy_fixture("tiny-a");
  json cfg = json::parse(read_file(dir + "/config.json"));
  cfg["model_type"] = "bert";
  std::ofstream(dir + "/config.json") << cfg.dump();
  expect_clean_failure(gen(dir), "model_type 'bert'", out_);
}

TEST_F(CliBadInput, InvalidOptions) {
  const std::string m = fixture_dir("tiny-a");
  expect_clean_failure(run_cli({"generate", "--model", m, "--duration", "-1", "--output", out_}),
                       "--duration must be positive", out_);
  expect_clean_failure(gen(m, {"--top-k", "0"}), "--top-k must be >= 1", out_);
  expect_clean_failure(gen(m, {"--top-p", "1.5"}), "--top-p must be in (0, 1]", out_);
  expect_clean_failure(gen(m, {"--top-p", "0"}), "--top-p must be in (0, 1]", out_);
  expect_clean_failure(gen(m, {"--guidance", "0.5"}), "--guidance must be >= 1", out_);
  expect_clean_failure(gen(m, {"--temperature", "0"}), "--temperature must be > 0", out_);
  expect_clean_failure(gen(m, {"--threads", "0"}), "--threads", out_);
  expect_clean_failure(gen(m, {"--sample-format", "mp3"}), "--sample-format", out_);
  expect_clean_failure(gen(m, {"--bogus"}), "unknown option '--bogus'", out_);
  expect_clean_failure(gen(m, {"--kv-cache", "q4"}), "--kv-cache must be auto or q8", out_);
  expect_clean_failure(gen(m, {"--seed", "abc"}), "--seed expects an integer", out_);
  expect_clean_failure(run_cli({"generate", "--model", m, "--prompt", "x", "--duration", "4000",
                                "--output", out_, "--quiet"}),
                       "limited to one hour", out_);
  expect_clean_failure(run_cli({"generate", "--model", m, "--prompt", "x", "--max-new-tokens", "2",
                                "--output", out_, "--quiet"}),
                       "max_new_tokens must be at least", out_);
  expect_clean_failure(run_cli({"generate", "--model", m, "--prompt", "x", "--output", out_,
                                "--duration", "1", "--max-new-tokens", "9"}),
                       "not both", out_);
  expect_clean_failure(run_cli({"generate", "--prompt", "x", "--output", out_}), "--model", out_);
}

TEST_F(CliBadInput, BadAudioPromptFiles) {
  const std::string m = fixture_dir("tiny-a");
  expect_clean_failure(gen(m, {"--audio-prompt", out_dir_ + "/missing.wav"}), "missing.wav", out_);
  const std::string text = out_dir_ + "/notes.wav";
  std::ofstream(text) << "this is not audio\n";
  expect_clean_failure(gen(m, {"--audio-prompt", text}), "notes.wav", out_);
  const std::string empty = out_dir_ + "/empty.wav";
  write_wav(empty, nullptr, 1, 0, 32000, WavFormat::kPcm16);
  expect_clean_failure(gen(m, {"--audio-prompt", empty}), "empty.wav", out_);
  expect_clean_failure(gen(m, {"--melody", fixture_dir("tiny-melody") + "/melody.wav"}),
                       "takes no melody", out_);
  // A 0.3 s prompt cannot be continued to a total of 0.2 s.
  expect_clean_failure(run_cli({"generate", "--model", m, "--audio-prompt",
                                fixture_dir("tiny-a") + "/cont_text.wav", "--duration", "0.1",
                                "--output", out_, "--quiet"}),
                       "longer than the requested output", out_);
  expect_clean_failure(gen(m, {"--prompt-start", "1"}), "need --audio-prompt", out_);
}

TEST_F(CliBadInput, UnwritableOutputPath) {
  const std::string bad = out_dir_ + "/no/such/dir/out.wav";
  const CliResult r = gen(fixture_dir("tiny-a"), {"--output", bad});
  expect_clean_failure(r, "does not exist", bad);
  if (::geteuid() != 0) {  // root can write anywhere
    fs::permissions(out_dir_, fs::perms::owner_read | fs::perms::owner_exec);
    expect_clean_failure(gen(fixture_dir("tiny-a")), "not writable", out_);
    fs::permissions(out_dir_, fs::perms::owner_all);
  }
}

// ---- Issue 10: the output rule, the input rule, bounded config numbers, range-checked options.

// Runs the CLI with stdout to `stdout_path` and a time limit (a hang fails instead of blocking).
CliResult run_cli_to(const std::vector<std::string>& args, const std::string& stdout_path,
                     const std::string& env = "") {
  static int counter = 0;
  const std::string err_path = testing::make_temp_dir("cli") + "/stderr" + std::to_string(counter++);
  std::string cmd = env + " timeout -s KILL 120 " + quote(MUSICGEN_CLI);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " > " + quote(stdout_path) + " 2> " + quote(err_path) + " < /dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err_path);
  return r;
}

bool no_temporaries(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) return false;
  return true;
}

TEST_F(CliBadInput, IntegerOptionsAreRangeChecked) {
  const std::string m = fixture_dir("tiny-a");
  expect_clean_failure(gen(m, {"--top-k", "4294967297"}), "--top-k must be at most 2147483647", out_);
  expect_clean_failure(gen(m, {"--top-k", "99999999999999999999999"}), "--top-k expects an integer", out_);
  expect_clean_failure(run_cli({"generate", "--model", m, "--prompt", "x", "--max-new-tokens",
                                "4294967304", "--output", out_, "--quiet"}),
                       "--max-new-tokens must be at most", out_);
  expect_clean_failure(gen(m, {"--seed", "-1"}), "--seed must be >= 0", out_);
  // prompt frames + max_new_tokens must not overflow
  expect_clean_failure(run_cli({"generate", "--model", m, "--audio-prompt",
                                fixture_dir("tiny-a") + "/cont_text.wav", "--max-new-tokens",
                                "2147483647", "--output", out_, "--quiet"}),
                       "exceeds the model's", out_);
}

TEST_F(CliBadInput, SymlinkOutputReplacesItsTargetAndKeepsTheLink) {
  const std::string target = out_dir_ + "/target.wav", link = out_dir_ + "/link.wav";
  std::ofstream(target) << "old";
  fs::create_symlink("target.wav", link);
  const CliResult r = gen(fixture_dir("tiny-a"), {"--output", link});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read_file(target).substr(0, 4), "RIFF");
  EXPECT_TRUE(no_temporaries(out_dir_));
}

TEST_F(CliBadInput, NonRegularOutputIsRefusedBeforeWork) {
  const std::string fifo = out_dir_ + "/out.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const CliResult r = run_cli_to({"generate", "--model", fixture_dir("tiny-a"), "--prompt", "x",
                                  "--max-new-tokens", "8", "--output", fifo, "--quiet"},
                                 "/dev/null");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("a FIFO, not a regular file"), std::string::npos) << r.err;
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced";
  // a link to a device is refused as well, and the link stays
  const std::string link = out_dir_ + "/null.wav";
  fs::create_symlink("/dev/null", link);
  expect_clean_failure(gen(fixture_dir("tiny-a"), {"--output", link}), "a character device", "");
  EXPECT_TRUE(fs::is_symlink(link));
  expect_clean_failure(gen(fixture_dir("tiny-a"), {"--codes-out", out_dir_}), "it is a directory", out_);
}

TEST_F(CliBadInput, DashWritesTheWavToStdout) {
  const std::string captured = out_dir_ + "/captured";
  const std::string cwd = fs::current_path();
  fs::current_path(out_dir_);
  const CliResult r = run_cli_to({"generate", "--model", fixture_dir("tiny-a"), "--prompt", "x",
                                  "--max-new-tokens", "8", "--output", "-", "--quiet"},
                                 captured);
  fs::current_path(cwd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string wav = read_file(captured);
  ASSERT_GT(wav.size(), 44u);
  EXPECT_EQ(wav.substr(0, 4), "RIFF");
  EXPECT_FALSE(fs::exists(out_dir_ + "/-")) << "a file named '-' was written";
  expect_clean_failure(run_cli({"generate", "--model", fixture_dir("tiny-a"), "--prompt", "a",
                                "--prompt", "b", "--max-new-tokens", "8", "--output", "-"}),
                       "needs a file name", "");
}

TEST_F(CliBadInput, OutputsEqualToEachOtherOrToAnInputAreRefused) {
  const std::string m = fixture_dir("tiny-a");
  std::ofstream(out_) << "old audio";
  expect_clean_failure(gen(m, {"--codes-out", out_}), "names the same file", "");
  EXPECT_EQ(read_file(out_), "old audio");
  // the audio prompt
  const std::string prompt = out_dir_ + "/prompt.wav";
  fs::copy(m + "/cont_text.wav", prompt);
  const std::string before = read_file(prompt);
  expect_clean_failure(gen(m, {"--audio-prompt", prompt, "--output", prompt}),
                       "would destroy that input", "");
  EXPECT_EQ(read_file(prompt), before);
  // a file of the model (through a link, too)
  const std::string dir = copy_fixture("tiny-a");
  const std::string config = read_file(dir + "/config.json");
  expect_clean_failure(gen(dir, {"--output", dir + "/config.json"}), "would destroy that input", "");
  fs::create_symlink(dir + "/spiece.model", out_dir_ + "/tok.wav");
  expect_clean_failure(gen(dir, {"--output", out_dir_ + "/tok.wav"}), "would destroy that input", "");
  EXPECT_EQ(read_file(dir + "/config.json"), config);
  EXPECT_TRUE(no_temporaries(out_dir_));
}

TEST_F(CliBadInput, QuantizeIntoItsSourceIsRefused) {
  const std::string dir = copy_fixture("tiny-a");
  const std::string weights = read_file(dir + "/model.safetensors");
  const CliResult r = run_cli({"quantize", "--model", dir, "--weights", "q8", "--out",
                               dir + "/model.safetensors", "--quiet"});
  expect_clean_failure(r, "would destroy that input", "");
  EXPECT_EQ(read_file(dir + "/model.safetensors"), weights);
  EXPECT_TRUE(no_temporaries(dir));
}

TEST_F(CliBadInput, ASignalBeforeTheRenameRemovesTemporariesAndKeepsOldFiles) {
  std::ofstream(out_) << "old audio";
  const std::string codes = out_dir_ + "/codes.json";
  std::ofstream(codes) << "old codes";
  for (const char* sig : {"15", "2"}) {  // SIGTERM, SIGINT
    const CliResult r = run_cli_to({"generate", "--model", fixture_dir("tiny-a"), "--prompt", "x",
                                    "--max-new-tokens", "8", "--output", out_, "--codes-out",
                                    codes, "--quiet"},
                                   "/dev/null", std::string("MUSICGEN_TEST_SIGNAL_BEFORE_COMMIT=") + sig);
    EXPECT_NE(r.exit_code, 0) << sig;
    EXPECT_EQ(read_file(out_), "old audio") << sig;
    EXPECT_EQ(read_file(codes), "old codes") << sig;
    EXPECT_TRUE(no_temporaries(out_dir_)) << sig;
  }
}

TEST_F(CliBadInput, SpecialFilesAsInputsGiveAnErrorNotAHang) {
  for (const char* name : {"config.json", "model.safetensors", "spiece.model"}) {
    const std::string dir = copy_fixture("tiny-a");
    fs::remove(dir + "/" + name);
    ASSERT_EQ(::mkfifo((dir + "/" + name).c_str(), 0600), 0);
    const CliResult r = run_cli_to({"generate", "--model", dir, "--prompt", "x",
                                    "--max-new-tokens", "8", "--output", out_, "--quiet"},
                                   "/dev/null");
    expect_clean_failure(r, "a FIFO, not a regular file", out_);
    fs::remove(dir + "/" + name);
    fs::create_directory(dir + "/" + name);
    expect_clean_failure(gen(dir), "is a directory", out_);
  }
  const std::string fifo = out_dir_ + "/prompt.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_clean_failure(run_cli_to({"generate", "--model", fixture_dir("tiny-a"), "--audio-prompt",
                                   fifo, "--max-new-tokens", "8", "--output", out_, "--quiet"},
                                  "/dev/null"),
                       "a FIFO, not a regular file", out_);
}

TEST_F(CliBadInput, OversizedTokenizerIsRefusedBeforeReading) {
  const std::string dir = copy_fixture("tiny-a");
  fs::resize_file(dir + "/spiece.model", (uint64_t{64} << 20) + 1);  // sparse
  expect_clean_failure(gen(dir), "more than the", out_);
  const std::string dir2 = copy_fixture("tiny-a");
  fs::resize_file(dir2 + "/config.json", (uint64_t{64} << 20) + 1);
  expect_clean_failure(gen(dir2), "more than the", out_);
}

TEST_F(CliBadInput, ConfigNumbersAreBoundedBeforeTheySizeAnything) {
  struct Case {
    const char* section;
    const char* key;
    json value;
    const char* needle;
  };
  const Case cases[] = {
      {"decoder", "num_hidden_layers", 2000000000, "num_hidden_layers = 2000000000"},
      {"decoder", "num_hidden_layers", 1.5, "'num_hidden_layers' must be an integer"},
      {"decoder", "num_hidden_layers", 1e20, "'num_hidden_layers' is out of range"},
      {"decoder", "num_codebooks", 4294967297ull, "'num_codebooks' is out of range"},
      {"text_encoder", "num_layers", 100000, "num_layers = 100000"},
      {"audio_encoder", "upsampling_ratios", json::array({65536, 65536, 2}), "out of range"},
      {"audio_encoder", "sampling_rate", 2000000000, "above 768000"},
      {"audio_encoder", "num_filters", 1 << 28, "'num_filters' times 2^"},
      {"audio_encoder", "num_residual_layers", 40, "'dilation_growth_rate' to the power"},
  };
  for (const Case& c : cases) {
    const std::string dir = copy_fixture("tiny-a");
    json cfg = json::parse(read_file(dir + "/config.json"));
    cfg[c.section][c.key] = c.value;
    std::ofstream(dir + "/config.json") << cfg.dump();
    expect_clean_failure(gen(dir), c.needle, out_);
  }
  const std::string dir = copy_fixture("tiny-a");
  json g = json::parse(read_file(dir + "/generation_config.json"));
  g["max_length"] = -5;
  std::ofstream(dir + "/generation_config.json") << g.dump();
  expect_clean_failure(gen(dir, {}), "'max_length' must be positive", out_);
}

TEST_F(CliBadInput, NanAndTruncatedAudioPromptsAreRefused) {
  const std::string m = fixture_dir("tiny-a");
  const std::string nan_wav = out_dir_ + "/nan.wav";
  std::vector<float> x(3200, 0.1f);
  x[1000] = std::nanf("");
  write_wav(nan_wav, x.data(), 1, static_cast<int64_t>(x.size()), 32000, WavFormat::kFloat32);
  expect_clean_failure(gen(m, {"--audio-prompt", nan_wav}), "NaN or infinite sample", out_);
  // A PCM16 WAV whose data chunk claims 2000 bytes but holds 1000.
  auto wav = [](uint32_t claimed, const std::string& payload) {
    std::string h = "RIFF";
    auto u32 = [&](uint32_t v) { h.append(reinterpret_cast<const char*>(&v), 4); };
    auto u16 = [&](uint16_t v) { h.append(reinterpret_cast<const char*>(&v), 2); };
    u32(36 + claimed);
    h += "WAVEfmt ";
    u32(16); u16(1); u16(1); u32(16000); u32(32000); u16(2); u16(16);
    h += "data";
    u32(claimed);
    return h + payload;
  };
  const std::string truncated = out_dir_ + "/truncated.wav";
  std::ofstream(truncated, std::ios::binary) << wav(2000, std::string(1000, '\x01'));
  expect_clean_failure(gen(m, {"--audio-prompt", truncated}), "is truncated", out_);
  const std::string huge = out_dir_ + "/huge.wav";
  std::ofstream(huge, std::ios::binary) << wav(0x7fffff00u, std::string(2000, '\x01'));
  expect_clean_failure(gen(m, {"--audio-prompt", huge}), "is truncated", out_);
}

// Found by fuzz_config: a model_type that is not a string escaped as a JSON type error ("internal
// error"); the same in `info` and in a .mgq header's "format".
TEST_F(CliBadInput, ConfigFieldsOfTheWrongJsonTypeAreOneClearError) {
  const std::string dir = copy_fixture("tiny-a");
  json cfg = json::parse(read_file(dir + "/config.json"));
  cfg["model_type"] = json::object();
  std::ofstream(dir + "/config.json") << cfg.dump();
  expect_clean_failure(gen(dir), "is not a MusicGen model", out_);
  const CliResult info = run_cli({"info", dir});
  EXPECT_EQ(info.err.find("internal error"), std::string::npos) << info.err;
  std::ofstream(dir + "/config.json") << "[1, 2, 3]";
  const CliResult info2 = run_cli({"info", dir});
  EXPECT_EQ(info2.err.find("internal error"), std::string::npos) << info2.err;
}

// Found by fuzz_tokenizer: a spiece.model with a piece starting with a NUL byte made
// libsentencepiece abort the process (an exception thrown through it) instead of failing.
TEST_F(CliBadInput, TokenizerWithANulPieceIsAnErrorNotAnAbort) {
  const std::string dir = copy_fixture("tiny-a");
  fs::copy_file(std::string(MUSICGEN_SOURCE_DIR) + "/fuzz/regressions/tokenizer-nul-piece.model",
                dir + "/spiece.model", fs::copy_options::overwrite_existing);
  expect_clean_failure(gen(dir), "contains a NUL byte", out_);
}

// ---- issue 13: progress, conventions, model references -------------------------------------

struct CliOutput {
  int exit_code = -1;
  std::string out, err;
};

// Runs the command with stdout and stderr captured (both files, so neither is a terminal).
CliOutput run_cli_captured(const std::vector<std::string>& args, const std::string& env = "") {
  static int counter = 0;
  const std::string dir = testing::make_temp_dir("cli-cap") + "/" + std::to_string(counter++);
  std::string cmd = env + " " + quote(MUSICGEN_CLI);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " > " + quote(dir + ".out") + " 2> " + quote(dir + ".err") + " < /dev/null";
  const int status = std::system(cmd.c_str());
  CliOutput r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(dir + ".out");
  r.err = read_file(dir + ".err");
  return r;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(CliConventions, NonTerminalProgressIsPlainLinesInSecondsOfAudio) {
  const std::string out = testing::make_temp_dir("progress") + "/p.wav";
  const CliOutput r = run_cli_captured({"generate", "--model", fixture_dir("tiny-a"), "--prompt",
                                        "x", "--duration", "1", "--output", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << "a carriage return on a non-terminal:\n" << r.err;
  // The first line starts the count; the last says how much audio was made.
  EXPECT_TRUE(contains(r.err, "generating: 0.0 of 1.0 s of audio")) << r.err;
  EXPECT_TRUE(contains(r.err, "generated 1.0 s of audio in ")) << r.err;
  EXPECT_FALSE(contains(r.err, "ETA 0")) << "an ETA before any rate is known:\n" << r.err;
  EXPECT_FALSE(contains(r.err, "steps/s  ETA")) << r.err;
  // The load line names the model by its folder, the weight type and the device, and f32 on the
  // CPU points at q8 with the measured ratio.
  EXPECT_TRUE(contains(r.err, "loaded tiny-a (f32 weights, cpu) in ")) << r.err;
  EXPECT_FALSE(contains(r.err, fixture_dir("tiny-a"))) << "the whole path in the load line";
  EXPECT_TRUE(contains(r.err, "hint: --weights q8 ran the decoder about 3.2x faster than plain f32"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "2-core AVX-512 machine")) << r.err;

  const CliOutput q8 = run_cli_captured({"generate", "-m", fixture_dir("tiny-a"), "-p", "x",
                                         "-d", "0.2", "-w", "q8", "-o", out, "--no-progress"});
  ASSERT_EQ(q8.exit_code, 0) << q8.err;
  EXPECT_TRUE(contains(q8.err, "loaded tiny-a (q8 weights, cpu)")) << q8.err;
  EXPECT_FALSE(contains(q8.err, "hint:")) << q8.err;
  EXPECT_FALSE(contains(q8.err, "q8 KV cache")) << q8.err;
  const CliOutput kv8 = run_cli_captured({"generate", "-m", fixture_dir("tiny-a"), "-p", "x",
                                          "-d", "0.2", "-w", "q8", "--kv-cache=q8", "-o", out,
                                          "--no-progress"});
  ASSERT_EQ(kv8.exit_code, 0) << kv8.err;
  EXPECT_TRUE(contains(kv8.err, ", q8 KV cache")) << kv8.err;
  EXPECT_FALSE(contains(q8.err, "generating")) << "--no-progress:\n" << q8.err;

  // --progress forces progress; on a non-terminal it stays plain lines.
  const CliOutput forced = run_cli_captured({"generate", "-m", fixture_dir("tiny-a"), "-p", "x",
                                             "-d", "0.2", "-o", out, "--progress"});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_TRUE(contains(forced.err, "generating: 0.0 of 0.2 s of audio")) << forced.err;
  EXPECT_EQ(forced.err.find('\r'), std::string::npos) << forced.err;
  const CliOutput quiet = run_cli_captured({"generate", "-m", fixture_dir("tiny-a"), "-p", "x",
                                            "-d", "0.2", "-o", out, "-q"});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "");
}

TEST(CliConventions, ShortFlagsAndEqualsFormGiveTheSameFile) {
  const std::string dir = testing::make_temp_dir("flags");
  const std::string model = fixture_dir("tiny-a");
  const CliOutput longf = run_cli_captured(
      {"generate", "--model", model, "--prompt", "jazz", "--duration", "0.4", "--seed", "7",
       "--threads", "1", "--weights", "bf16", "--output", dir + "/long.wav", "--quiet"});
  const CliOutput shortf = run_cli_captured({"generate", "-m", model, "-p", "jazz", "-d", "0.4",
                                             "-s", "7", "-t", "1", "-w", "bf16", "-o",
                                             dir + "/short.wav", "-q"});
  const CliOutput eq = run_cli_captured(
      {"generate", "--model=" + model, "--prompt=jazz", "--duration=0.4", "--seed=7",
       "--threads=1", "--weights=bf16", "--output=" + dir + "/eq.wav", "--quiet"});
  const CliOutput other = run_cli_captured({"generate", "-m", model, "-p", "jazz", "-d", "0.4",
                                            "-s", "8", "-t", "1", "-w", "bf16", "-o",
                                            dir + "/seed8.wav", "-q"});
  for (const CliOutput* r : {&longf, &shortf, &eq, &other}) ASSERT_EQ(r->exit_code, 0) << r->err;
  const std::string a = read_file(dir + "/long.wav");
  ASSERT_GT(a.size(), 44u);
  EXPECT_EQ(a, read_file(dir + "/short.wav"));
  EXPECT_EQ(a, read_file(dir + "/eq.wav"));
  EXPECT_NE(a, read_file(dir + "/seed8.wav")) << "-s did not reach the sampler";

  // A flag without a value given one, and an empty value, are one-line errors.
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--greedy=yes"}, {"--quiet=1"}, {"--seed="}}) {
    std::vector<std::string> args = {"generate", "-m", model, "-o", dir + "/bad.wav"};
    args.insert(args.end(), bad.begin(), bad.end());
    const CliOutput r = run_cli_captured(args);
    EXPECT_EQ(r.exit_code, 2) << bad[0];
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("musicgen: error: ", 0), 0u) << r.err;
  }
  // Short flags of options a command does not have stay unknown.
  const CliOutput r = run_cli_captured({"quantize", "-p", "x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "unknown option '-p'")) << r.err;
}

TEST(CliConventions, VersionOnEveryCommandNamesCommitCompilerAndIsa) {
  for (const char* cmd : {"", "generate", "bench", "quantize", "info", "pull", "list",
                          "make-random-model", "devices"}) {
    std::vector<std::string> args;
    if (*cmd) args.push_back(cmd);
    args.push_back("--version");
    const CliOutput r = run_cli_captured(args);
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.err;
    EXPECT_EQ(r.out.rfind("musicgen 0.", 0), 0u) << cmd << ": " << r.out;
    for (const char* part : {"commit:", "compiler:", "cpu isa:"})
      EXPECT_TRUE(contains(r.out, part)) << cmd << " lacks " << part << ":\n" << r.out;
    EXPECT_TRUE(contains(r.out, "avx512") || contains(r.out, "avx2") || contains(r.out, "scalar"))
        << r.out;
  }
  // The ISA is the one in use: MUSICGEN_ISA=scalar forces the scalar kernels.
  const CliOutput forced = run_cli_captured({"generate", "--version"}, "MUSICGEN_ISA=scalar");
  EXPECT_TRUE(contains(forced.out, "cpu isa:  scalar")) << forced.out;
}

TEST(CliConventions, ContradictoryOptionsAreOneLineErrors) {
  const std::string dir = testing::make_temp_dir("contra");
  const std::string out = dir + "/c.wav";
  const std::vector<std::vector<std::string>> cases = {
      {"--greedy", "--top-k", "5"},
      {"--top-p=0.9", "--greedy"},
      {"--greedy", "--temperature", "0.7"},
      {"--duration", "1", "--max-new-tokens", "8"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"generate", "-m", fixture_dir("tiny-a"), "-p", "x", "-o", out};
    args.insert(args.end(), c.begin(), c.end());
    const CliOutput r = run_cli_captured(args);
    EXPECT_EQ(r.exit_code, 2) << c[0] << ": " << r.err;  // a bad command line (usage error)
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("musicgen: error: ", 0), 0u) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
  const CliOutput g = run_cli_captured({"generate", "-m", fixture_dir("tiny-a"), "--greedy",
                                        "--top-k", "5", "-o", out});
  EXPECT_TRUE(contains(g.err, "--greedy")) << g.err;
  EXPECT_TRUE(contains(g.err, "--top-k")) << g.err;
}

// A Hugging Face cache holding the tiny checkpoint as facebook/musicgen-small, offline.
class CliModelReferences : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = testing::make_temp_dir("hub-cache");
    const fs::path repo = fs::path(cache_) / "models--facebook--musicgen-small";
    snapshot_ = (repo / "snapshots" / kCommit).string();
    fs::create_directories(snapshot_);
    fs::create_directories(repo / "refs");
    for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "spiece.model"})
      fs::copy_file(fixture_dir("tiny-a") + "/" + f, snapshot_ + "/" + f);
    std::ofstream(repo / "refs" / "main") << kCommit;
    ::setenv("HF_HUB_CACHE", cache_.c_str(), 1);
    ::setenv("HF_HUB_OFFLINE", "1", 1);
    out_ = testing::make_temp_dir("refs");
  }
  void TearDown() override {
    ::unsetenv("HF_HUB_CACHE");
    ::unsetenv("HF_HUB_OFFLINE");
  }
  static constexpr const char* kCommit = "0123456789abcdef0123456789abcdef01234567";
  std::string cache_, snapshot_, out_;
};

TEST_F(CliModelReferences, EveryCommandResolvesTheSameWay) {
  std::string first_wav;
  int n = 0;
  for (const std::string& ref : {std::string("facebook/musicgen-small"), std::string("small"),
                                std::string("musicgen-small"),
                                std::string("facebook/musicgen-small@main"), snapshot_}) {
    SCOPED_TRACE(ref);
    const std::string wav = out_ + "/g" + std::to_string(n) + ".wav";
    const std::string mgq = out_ + "/q" + std::to_string(n++) + ".mgq";
    const CliOutput g = run_cli_captured(
        {"generate", "-m", ref, "-p", "x", "--max-new-tokens", "10", "--greedy", "-s", "0", "-o", wav});
    ASSERT_EQ(g.exit_code, 0) << g.err;
    EXPECT_TRUE(contains(g.err, "loaded facebook/musicgen-small")) << g.err;
    EXPECT_FALSE(contains(g.err, "snapshots")) << "the snapshot path in the load line";
    if (first_wav.empty()) first_wav = read_file(wav);
    EXPECT_EQ(read_file(wav), first_wav) << "the same checkpoint, the same greedy output";

    const CliOutput info = run_cli_captured({"info", ref});
    ASSERT_EQ(info.exit_code, 0) << info.err;
    EXPECT_TRUE(contains(info.out, "directory:     " + snapshot_)) << info.out;
    EXPECT_TRUE(contains(info.out, "licence:       CC-BY-NC 4.0")) << info.out;
    const CliOutput info_m = run_cli_captured({"info", "--model=" + ref});
    EXPECT_EQ(info_m.out, info.out);

    const CliOutput q = run_cli_captured({"quantize", "-m", ref, "-w", "q8", "-o", mgq, "-q"});
    ASSERT_EQ(q.exit_code, 0) << q.err;
    EXPECT_TRUE(fs::exists(mgq));

    const CliOutput b = run_cli_captured({"bench", "-m", ref, "--steps", "8", "--repeats", "1",
                                          "--warmup-steps", "0", "--bandwidth-mib", "0", "--json"});
    ASSERT_EQ(b.exit_code, 0) << b.err;
    EXPECT_TRUE(contains(b.out, "\"steps\"") || contains(b.out, "steps")) << b.out;
  }
  // A quantized file made from the cache keeps the repo id: info names it and its licence.
  const CliOutput info = run_cli_captured({"info", out_ + "/q0.mgq"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_TRUE(contains(info.out, "(facebook/musicgen-small)")) << info.out;
  EXPECT_TRUE(contains(info.out, "licence:       CC-BY-NC 4.0")) << info.out;

  // Not cached (offline): every command fails the same way, in one line.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"generate", "-m", "medium", "-p", "x", "-o", out_ + "/m.wav"},
        {"info", "medium"},
        {"quantize", "-m", "medium", "-o", out_ + "/m.mgq"},
        {"bench", "-m", "medium", "--steps", "8"}}) {
    const CliOutput r = run_cli_captured(args);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.err;
    EXPECT_EQ(r.err.rfind("musicgen: error: facebook/musicgen-medium is not in the model cache", 0), 0u)
        << args[0] << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST_F(CliModelReferences, LibraryLoadResolvesNamesFromTheCacheWithoutDownloading) {
  // README's snippet: Model::load("musicgen-small").
  auto model = Model::load("musicgen-small");
  EXPECT_EQ(model->info().num_layers, 2);
  EXPECT_EQ(model->info().weights, "f32");
  EXPECT_EQ(Model::load("facebook/musicgen-small", {.weights = WeightType::kQ8})->info().weights, "q8");
  // Absent: kNotFound naming `musicgen pull`, even with the network allowed.
  ::unsetenv("HF_HUB_OFFLINE");
  try {
    Model::load("melody");
    ADD_FAILURE() << "loaded a model that is not in the cache";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_TRUE(contains(e.what(), "musicgen pull melody")) << e.what();
  }
  // A path-like reference that does not exist stays a missing-path error.
  try {
    Model::load("./no-such-model-dir");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_TRUE(contains(e.what(), "does not exist")) << e.what();
  }
}

TEST(CliConventions, InfoDescribesAQuantizedFile) {
  const std::string mgq = testing::make_temp_dir("info-mgq") + "/tiny.q4.mgq";
  const CliOutput q = run_cli_captured({"quantize", "--model", fixture_dir("tiny-a"), "--weights",
                                        "q4", "--out", mgq, "--quiet"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const CliOutput r = run_cli_captured({"info", mgq});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* part : {"weights:       musicgen quantized file, q4 matrices (tiny.q4.mgq)",
                           "decoder:       2 layers, hidden 64", "Q4", "total",
                           "licence:       see the checkpoint's model card"})
    EXPECT_TRUE(contains(r.out, part)) << part << " not in:\n" << r.out;
  // The parameter count equals the checkpoint's.
  const CliOutput dir_info = run_cli_captured({"info", fixture_dir("tiny-a")});
  auto total = [](const std::string& out) {
    const size_t at = out.find("  total");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  EXPECT_FALSE(total(r.out).empty());
  EXPECT_EQ(total(r.out), total(dir_info.out));
}

}  // namespace
}  // namespace musicgen
