// musicgen quantized files (docs/MODEL_FORMAT.md): round trip through the public API, identical
// results to quantizing at load, deterministic bytes, and one clear line for every kind of bad
// file. Also `musicgen quantize` on the command line.
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "format/crc32c.h"
#include "format/quantized_file.h"
#include "musicgen/musicgen.h"
#include "musicgen/quantize.h"
#include "test_util.h"

namespace musicgen {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

QuantizeOptions qopt(WeightType type, int threads = 0) {
  QuantizeOptions o;
  o.weights = type;
  o.threads = threads;
  return o;
}

std::vector<int32_t> greedy_codes(const std::shared_ptr<const Model>& model) {
  Session session(model, {.threads = 2});
  GenerationOptions opt;
  opt.prompts = {"80s pop track with bassy drums and synth", "calm piano"};
  opt.max_new_tokens = 24;
  opt.greedy = true;
  return session.generate(opt).codes;
}

class QuantizedFileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::make_temp_dir("qfile"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

TEST(Crc32c, KnownValues) {
  EXPECT_EQ(crc32c(0, "123456789", 9), 0xe3069283u);  // the standard check value
  EXPECT_EQ(crc32c(0, "", 0), 0u);
  const std::string s(1000, 'x');
  EXPECT_EQ(crc32c(crc32c(0, s.data(), 300), s.data() + 300, 700), crc32c(0, s.data(), 1000));
}

TEST_F(QuantizedFileTest, LoadsLikeQuantizingAtLoad) {
  const std::string src = testing::fixture_dir("tiny-a");
  for (WeightType type : {WeightType::kBF16, WeightType::kQ8, WeightType::kQ4}) {
    const std::string file = path(std::string(weight_type_name(type)) + ".mgq");
    quantize_model(src, file, qopt(type, 2));
    const auto from_file = Model::load(file);
    const auto at_load = Model::load(src, {.weights = type});
    EXPECT_EQ(greedy_codes(from_file), greedy_codes(at_load)) << weight_type_name(type);
    EXPECT_EQ(from_file->info().num_layers, at_load->info().num_layers);
    // Naming the file's own type is allowed, another one is not.
    EXPECT_NO_THROW(Model::load(file, {.weights = type}));
    const WeightType other = type == WeightType::kQ8 ? WeightType::kQ4 : WeightType::kQ8;
    try {
      Model::load(file, {.weights = other});
      ADD_FAILURE() << "loaded " << weight_type_name(type) << " as " << weight_type_name(other);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(weight_type_name(type)), std::string::npos) << e.what();
    }
  }
}

TEST_F(QuantizedFileTest, SameInputsGiveIdenticalBytes) {
  const std::string src = testing::fixture_dir("tiny-b");
  quantize_model(src, path("a.mgq"), qopt(WeightType::kQ4, 1));
  quantize_model(src, path("b.mgq"), qopt(WeightType::kQ4, 3));
  EXPECT_EQ(read_bytes(path("a.mgq")), read_bytes(path("b.mgq")));
  EXPECT_TRUE(is_quantized_file(path("a.mgq")));
  EXPECT_FALSE(is_quantized_file(src + "/model.safetensors"));
  // Only the final file remains (no temporary left behind).
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir_)) entries += e.is_regular_file();
  EXPECT_EQ(entries, 2);
}

TEST_F(QuantizedFileTest, TensorsAreAlignedAndChecked) {
  quantize_model(testing::fixture_dir("tiny-a"), path("m.mgq"), qopt(WeightType::kQ8));
  const QuantizedFile f = read_quantized_file(path("m.mgq"));
  EXPECT_EQ(f.info.weights, "q8");
  EXPECT_FALSE(f.info.config_json.empty());
  EXPECT_FALSE(f.info.tokenizer.empty());
  int q8 = 0;
  for (const std::string& name : f.store.names()) {
    const TensorInfo* t = f.store.find(name);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % kQuantizedFileAlign, 0u) << name;
    q8 += t->dtype == DType::kQ8;
  }
  EXPECT_GT(q8, 0);
  EXPECT_EQ(f.store.find("decoder.model.decoder.layers.0.fc1.weight")->dtype, DType::kQ8);
  EXPECT_EQ(f.store.find("decoder.model.decoder.embed_tokens.0.weight")->dtype,
            TensorStore::open_checkpoint(testing::fixture_dir("tiny-a"))
                .find("decoder.model.decoder.embed_tokens.0.weight")
                ->dtype);
}

// Every damaged variant fails Model::load with one line naming the file.
TEST_F(QuantizedFileTest, BadFilesFailWithOneClearLine) {
  quantize_model(testing::fixture_dir("tiny-a"), path("good.mgq"), qopt(WeightType::kQ8));
  const std::string good = read_bytes(path("good.mgq"));
  uint64_t header_len = 0, data_offset = 0;
  std::memcpy(&header_len, good.data() + 16, 8);
  std::memcpy(&data_offset, good.data() + 24, 8);
  struct Case {
    std::string name, bytes, expect;
  };
  std::vector<Case> cases;
  cases.push_back({"empty", "", "not a musicgen quantized file"});
  cases.push_back({"prelude-only", good.substr(0, 20), "shorter than"});
  cases.push_back({"cut-in-header", good.substr(0, 32 + header_len / 2), "exceeds the file size"});
  cases.push_back({"cut-in-data", good.substr(0, good.size() / 2), "truncated"});
  cases.push_back({"cut-last-byte", good.substr(0, good.size() - 1), "truncated"});
  cases.push_back({"trailing-bytes", good + "xyz", "trailing bytes"});
  std::string magic = good;
  magic[0] = 'X';
  cases.push_back({"bad-magic", magic, "not a musicgen quantized file"});
  std::string version = good;
  version[8] = 9;
  cases.push_back({"future-version", version, "format version 9"});
  std::string header = good;
  header[40] ^= 0x20;
  cases.push_back({"header-bit-flip", header, "header checksum"});
  std::string data = good;
  data[good.size() - 100] ^= 0x01;
  cases.push_back({"data-bit-flip", data, "checksum"});
  for (const Case& c : cases) {
    const std::string file = path(c.name + ".mgq");
    write_bytes(file, c.bytes);
    try {
      Model::load(file);
      ADD_FAILURE() << c.name << " loaded";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kInvalidModel) << c.name << ": " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << c.name << ": " << msg;
      EXPECT_NE(msg.find(file), std::string::npos) << c.name << ": " << msg;
      EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
    }
  }
}

TEST_F(QuantizedFileTest, QuantizeRejectsBadInputs) {
  EXPECT_THROW(quantize_model(path("missing"), path("x.mgq")), Error);
  quantize_model(testing::fixture_dir("tiny-a"), path("q.mgq"), qopt(WeightType::kQ8));
  try {
    quantize_model(path("q.mgq"), path("y.mgq"));
    ADD_FAILURE() << "re-quantized a quantized file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already a quantized file"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(path("x.mgq")));
  EXPECT_FALSE(fs::exists(path("y.mgq")));
  EXPECT_THROW(parse_weight_type("q3"), Error);
}

struct CliRun {
  int code;
  std::string err;
};

CliRun run_cli(const std::string& args) {
  const std::string cmd = std::string(MUSICGEN_CLI) + " " + args + " 2>&1 >/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST_F(QuantizedFileTest, CommandLine) {
  const std::string src = testing::fixture_dir("tiny-a");
  CliRun r = run_cli("quantize --model " + src + " --weights q4 --out " + path("c.mgq") + " --quiet");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(is_quantized_file(path("c.mgq")));
  r = run_cli("generate --model " + path("c.mgq") + " --prompt hi --max-new-tokens 12 --quiet --output " +
              path("c.wav") + " --codes-out " + path("c.json"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(path("c.wav")));
  r = run_cli("generate --model " + src + " --weights q8 --prompt hi --max-new-tokens 12 --quiet --output " +
              path("d.wav") + " --codes-out " + path("d.json"));
  EXPECT_EQ(r.code, 0) << r.err;
  // The take (as the audio's tags hold it) names the model and the weight type in use: the
  // file's own type, or the one asked for.
  auto take = [&](const std::string& name) {
    std::ifstream in(path(name));
    return nlohmann::json::parse(in);
  };
  EXPECT_EQ(take("c.json").at("weights"), "q4");
  EXPECT_EQ(take("c.json").at("model"), "c.mgq");
  EXPECT_EQ(take("d.json").at("weights"), "q8");
  EXPECT_EQ(take("d.json").at("model"), "tiny-a");
  for (const std::string& bad : {std::string("quantize --model ") + src + " --weights q5 --out x",
                                 std::string("quantize --weights q8 --out x"),
                                 std::string("quantize --model ") + src,
                                 std::string("generate --model ") + src + " --weights int8 --output x.wav"}) {
    r = run_cli(bad);
    EXPECT_EQ(r.code, 2) << bad << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << bad << ": " << r.err;
  }
}

// Issue 10: a shape whose element count overflows int64 ([2^62, 4] wrapped to 0 and passed the
// size check of a zero-byte tensor) is an error.
TEST(ShapeNumel, ShapeProductOverflowIsAnError) {
  EXPECT_EQ(shape_numel({int64_t{1} << 31, 4}), int64_t{1} << 33);
  EXPECT_EQ(shape_numel({}), 1);
  for (const Shape& bad : {Shape{int64_t{1} << 62, 4}, Shape{int64_t{1} << 32, int64_t{1} << 32},
                           Shape{-1, 4}, Shape{4, -2}}) {
    try {
      shape_numel(bad);
      ADD_FAILURE() << "no error for " << shape_str(bad);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
      EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace musicgen
