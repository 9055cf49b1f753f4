// `musicgen make-random-model`: the official tensor list and shapes (musicgen-small, checked
// against the tables of the spec, section 2, written out here independently of the generator),
// loading with Model::load, determinism, storage types, heavy tails, and bad options.
#include <sentencepiece_processor.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "format/random_checkpoint.h"
#include "format/safetensors.h"
#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Temporary directories of this test binary, removed at exit (checkpoints are megabytes).
class TempDirs : public ::testing::Environment {
 public:
  static std::string make(const std::string& tag) {
    dirs().push_back(testing::make_temp_dir(tag));
    return dirs().back();
  }
  void TearDown() override {
    for (const auto& d : dirs()) {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  }

 private:
  static std::vector<std::string>& dirs() {
    static std::vector<std::string> d;
    return d;
  }
};
const auto* const kTempDirs = ::testing::AddGlobalTestEnvironment(new TempDirs);

struct CliResult {
  int exit_code = -1;
  std::string err;
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

CliResult run_cli(const std::vector<std::string>& args) {
  static int counter = 0;
  const std::string err_path = TempDirs::make("rm-cli") + "/stderr" + std::to_string(counter++);
  std::string cmd = quote(MUSICGEN_CLI);
  for (const auto& a : args) {
    cmd += ' ';
    cmd += quote(a);
  }
  cmd += " > /dev/null 2> ";
  cmd += quote(err_path);
  cmd += " < /dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err_path);
  return r;
}

// Makes a checkpoint in a fresh temporary directory; returns its path.
std::string make_model(std::vector<std::string> extra) {
  const std::string dir = TempDirs::make("rm") + "/model";
  std::vector<std::string> args = {"make-random-model", "--out", dir, "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  const CliResult r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return dir;
}

// The musicgen-small tensors of the spec (section 2), name -> shape.
std::map<std::string, Shape> official_small_tensors() {
  std::map<std::string, Shape> t;
  const int64_t H = 1024;
  const std::string d = "decoder.model.decoder.";
  for (int k = 0; k < 4; ++k) {
    t[d + "embed_tokens." + std::to_string(k) + ".weight"] = {2049, H};
    t["decoder.lm_heads." + std::to_string(k) + ".weight"] = {2048, H};
  }
  t[d + "embed_positions.weights"] = {2048, H};
  for (int i = 0; i < 24; ++i) {
    const std::string l = d + "layers." + std::to_string(i) + ".";
    for (const char* a : {"self_attn.", "encoder_attn."})
      for (const char* p : {"q_proj", "k_proj", "v_proj", "out_proj"})
        t[l + a + p + ".weight"] = {H, H};
    for (const char* n : {"self_attn_layer_norm", "encoder_attn_layer_norm", "final_layer_norm"}) {
      t[l + n + ".weight"] = {H};
      t[l + n + ".bias"] = {H};
    }
    t[l + "fc1.weight"] = {4096, H};
    t[l + "fc2.weight"] = {H, 4096};
  }
  t[d + "layer_norm.weight"] = {H};
  t[d + "layer_norm.bias"] = {H};
  t["enc_to_dec_proj.weight"] = {H, 768};
  t["enc_to_dec_proj.bias"] = {H};

  t["text_encoder.shared.weight"] = {32128, 768};
  for (int i = 0; i < 12; ++i) {
    const std::string b = "text_encoder.encoder.block." + std::to_string(i) + ".layer.";
    for (const char* p : {"q", "k", "v", "o"})
      t[b + "0.SelfAttention." + p + ".weight"] = {768, 768};
    t[b + "0.layer_norm.weight"] = {768};
    t[b + "1.DenseReluDense.wi.weight"] = {3072, 768};
    t[b + "1.DenseReluDense.wo.weight"] = {768, 3072};
    t[b + "1.layer_norm.weight"] = {768};
  }
  t["text_encoder.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = {32, 12};
  t["text_encoder.encoder.final_layer_norm.weight"] = {768};

  // EnCodec 32 kHz, spec tables 2.4: (layer, weight_v shape, bias size).
  struct Conv {
    std::string name;
    Shape v;
  };
  const std::vector<Conv> enc = {
      {"0", {64, 1, 7}},       {"1.block.1", {32, 64, 3}},    {"1.block.3", {64, 32, 1}},
      {"3", {128, 64, 8}},     {"4.block.1", {64, 128, 3}},   {"4.block.3", {128, 64, 1}},
      {"6", {256, 128, 8}},    {"7.block.1", {128, 256, 3}},  {"7.block.3", {256, 128, 1}},
      {"9", {512, 256, 10}},   {"10.block.1", {256, 512, 3}}, {"10.block.3", {512, 256, 1}},
      {"12", {1024, 512, 16}}, {"15", {128, 1024, 7}}};
  const std::vector<Conv> dec = {
      {"0", {1024, 128, 7}},        {"3", {1024, 512, 16}}, {"4.block.1", {256, 512, 3}},
      {"4.block.3", {512, 256, 1}}, {"6", {512, 256, 10}},  {"7.block.1", {128, 256, 3}},
      {"7.block.3", {256, 128, 1}}, {"9", {256, 128, 8}},   {"10.block.1", {64, 128, 3}},
      {"10.block.3", {128, 64, 1}}, {"12", {128, 64, 8}},   {"13.block.1", {32, 64, 3}},
      {"13.block.3", {64, 32, 1}},  {"15", {1, 64, 7}}};
  auto add_convs = [&](const std::string& prefix, const std::vector<Conv>& convs,
                       bool transposed_ok) {
    for (const Conv& c : convs) {
      const std::string p = prefix + c.name + ".conv.";
      t[p + "weight_v"] = c.v;
      t[p + "weight_g"] = {c.v[0], 1, 1};
      // Transposed convs (decoder 3, 6, 9, 12) store v as [in, out, k]: the bias has `out`.
      const bool transposed =
          transposed_ok && (c.name == "3" || c.name == "6" || c.name == "9" || c.name == "12");
      t[p + "bias"] = {transposed ? c.v[1] : c.v[0]};
    }
  };
  add_convs("audio_encoder.encoder.layers.", enc, false);
  add_convs("audio_encoder.decoder.layers.", dec, true);
  for (const std::string lstm :
       {"audio_encoder.encoder.layers.13.lstm.", "audio_encoder.decoder.layers.1.lstm."})
    for (const char* l : {"l0", "l1"}) {
      t[lstm + "weight_ih_" + l] = {4096, 1024};
      t[lstm + "weight_hh_" + l] = {4096, 1024};
      t[lstm + "bias_ih_" + l] = {4096};
      t[lstm + "bias_hh_" + l] = {4096};
    }
  for (int q = 0; q < 4; ++q) {
    const std::string c = "audio_encoder.quantizer.layers." + std::to_string(q) + ".codebook.";
    t[c + "embed"] = {2048, 128};
    t[c + "embed_avg"] = {2048, 128};
    t[c + "cluster_size"] = {2048};
    t[c + "inited"] = {1};
  }
  return t;
}

// One full-size musicgen-small checkpoint (bf16 storage to halve the write) shared by the tests
// that need it: written once, read by the header check and by Model::load.
class SmallShape : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(make_model({"--shape", "small", "--dtype", "bf16"}));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(fs::path(*dir_).parent_path(), ec);
    delete dir_;
  }
  static std::string* dir_;
};
std::string* SmallShape::dir_ = nullptr;

TEST_F(SmallShape, WritesTheOfficialTensorListAndShapes) {
  const auto file = SafetensorsFile::open(*dir_ + "/model.safetensors");
  std::map<std::string, Shape> actual;
  for (const TensorInfo& t : file->tensors()) {
    actual[t.name] = t.shape;
    EXPECT_EQ(t.dtype, DType::kBF16) << t.name;
  }
  const std::map<std::string, Shape> expected = official_small_tensors();
  for (const auto& [name, shape] : expected) {
    auto it = actual.find(name);
    if (it == actual.end()) {
      ADD_FAILURE() << "missing " << name;
      continue;
    }
    EXPECT_EQ(it->second, shape) << name;
  }
  for (const auto& [name, shape] : actual)
    EXPECT_TRUE(expected.count(name)) << "unexpected " << name;
  EXPECT_EQ(actual.size(), expected.size());
  EXPECT_EQ(file->metadata().at("format"), "pt");

  const json c = json::parse(read_file(*dir_ + "/config.json"));
  EXPECT_EQ(c.at("model_type"), "musicgen");
  EXPECT_EQ(c.at("architectures")[0], "MusicgenForConditionalGeneration");
  EXPECT_EQ(c.at("torch_dtype"), "bfloat16");
  const json& d = c.at("decoder");
  EXPECT_EQ(d.at("hidden_size"), 1024);
  EXPECT_EQ(d.at("num_hidden_layers"), 24);
  EXPECT_EQ(d.at("num_attention_heads"), 16);
  EXPECT_EQ(d.at("ffn_dim"), 4096);
  EXPECT_EQ(d.at("num_codebooks"), 4);
  EXPECT_EQ(d.at("vocab_size"), 2048);
  EXPECT_EQ(d.at("pad_token_id"), 2048);
  EXPECT_EQ(c.at("text_encoder").at("d_model"), 768);
  EXPECT_EQ(c.at("text_encoder").at("num_layers"), 12);
  EXPECT_EQ(c.at("text_encoder").at("vocab_size"), 32128);
  EXPECT_EQ(c.at("audio_encoder").at("num_filters"), 64);
  EXPECT_EQ(c.at("audio_encoder").at("codebook_size"), 2048);
  const json g = json::parse(read_file(*dir_ + "/generation_config.json"));
  EXPECT_EQ(g.at("do_sample"), true);
  EXPECT_EQ(g.at("guidance_scale"), 3.0);
  EXPECT_EQ(g.at("max_length"), 1500);
  for (const char* k : {"bos_token_id", "pad_token_id", "decoder_start_token_id"})
    EXPECT_EQ(g.at(k), 2048) << k;
}

TEST_F(SmallShape, LoadsWithTheEngine) {
  const auto model = Model::load(*dir_);
  EXPECT_EQ(model->info().hidden_size, 1024);
  EXPECT_EQ(model->info().num_layers, 24);
  EXPECT_EQ(model->info().num_codebooks, 4);
  EXPECT_EQ(model->info().sample_rate, 32000);
  EXPECT_EQ(model->info().default_max_length, 1500);
}

TEST(RandomModel, TinyShapeGeneratesFiniteAudio) {
  const std::string dir = make_model({"--shape", "test-tiny", "--seed", "3"});
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir + "/spiece.model").ok());
  EXPECT_EQ(sp.pad_id(), 0);
  EXPECT_EQ(sp.eos_id(), 1);
  EXPECT_EQ(sp.unk_id(), 2);
  EXPECT_GT(sp.GetPieceSize(), 100);

  const auto model = Model::load(dir);
  Session session(model, {.threads = 2});
  GenerationOptions opt;
  opt.prompts = {"upbeat jazz track with a walking bass"};
  opt.max_new_tokens = 12;
  const GenerationResult r = session.generate(opt);
  ASSERT_EQ(r.frames, 9);
  double ss = 0;
  for (float v : r.audio) {
    ASSERT_TRUE(std::isfinite(v));
    ss += static_cast<double>(v) * v;
  }
  const double rms = std::sqrt(ss / r.audio.size());
  EXPECT_GT(rms, 1e-3);
  EXPECT_LT(rms, 10.0);
}

TEST(RandomModel, StereoAndMelodyCheckpointsLoadAndGenerate) {
  for (const char* shape : {"test-tiny-stereo", "test-tiny-melody"}) {
    const std::string dir = make_model({"--shape", shape});
    const auto model = Model::load(dir);
    const bool stereo = std::string(shape) == "test-tiny-stereo";
    EXPECT_EQ(model->info().num_codebooks, stereo ? 8 : 4) << shape;
    EXPECT_EQ(model->info().audio_channels, stereo ? 2 : 1) << shape;
    EXPECT_EQ(model->info().model_type, stereo ? "musicgen" : "musicgen_melody") << shape;
    Session session(model, {.threads = 2});
    GenerationOptions opt;
    opt.prompts = {"calm ambient track"};
    opt.duration_s = 0.2;
    const GenerationResult r = session.generate(opt);
    EXPECT_EQ(r.channels, stereo ? 2 : 1) << shape;
    EXPECT_EQ(r.frames, 10) << shape;
    for (float v : r.audio) ASSERT_TRUE(std::isfinite(v)) << shape;
  }
}

TEST(RandomModel, SameSeedSameBytesAnyThreadCount) {
  const std::string a = make_model({"--shape", "test-tiny", "--seed", "5", "--threads", "1"});
  const std::string b = make_model({"--shape", "test-tiny", "--seed", "5", "--threads", "2"});
  const std::string c = make_model({"--shape", "test-tiny", "--seed", "6"});
  for (const char* f :
       {"config.json", "generation_config.json", "model.safetensors", "spiece.model"})
    EXPECT_TRUE(read_file(a + "/" + f) == read_file(b + "/" + f)) << f << " differs";
  EXPECT_FALSE(read_file(a + "/model.safetensors") == read_file(c + "/model.safetensors"));
  EXPECT_TRUE(read_file(a + "/spiece.model") == read_file(c + "/spiece.model"));
}

TEST(RandomModel, HalfPrecisionStorageRoundsTheSameValues) {
  const std::string f32 = make_model({"--shape", "test-tiny"});
  for (const char* dtype : {"bf16", "f16"}) {
    const std::string half = make_model({"--shape", "test-tiny", "--dtype", dtype});
    const TensorStore a = TensorStore::open_checkpoint(f32), b = TensorStore::open_checkpoint(half);
    ASSERT_EQ(a.names(), b.names());
    // Round to nearest: relative error at most half an ulp, 2^-8 (bf16, 8 significant bits) or
    // 2^-11 (f16, 11 bits), for values in the normal range; absolute below (f16 subnormals start
    // at 6e-5).
    const double tol = std::string(dtype) == "bf16" ? 1.0 / 256 : 1.0 / 2048;
    for (const std::string& name : a.names()) {
      EXPECT_EQ(b.find(name)->dtype, std::string(dtype) == "bf16" ? DType::kBF16 : DType::kF16);
      const ConstTensor x = a.get_f32(name), y = b.get_f32(name);
      double worst = 0;
      for (int64_t i = 0; i < x.numel(); ++i)
        worst = std::max(worst, std::fabs(static_cast<double>(x.data[i]) - y.data[i]) /
                                    std::max(1e-4, std::fabs(static_cast<double>(x.data[i]))));
      // weight_g is the norm of the rounded weight_v, rounded once more.
      const bool g = name.size() > 8 && name.compare(name.size() - 8, 8, "weight_g") == 0;
      EXPECT_LE(worst, g ? 2 * tol : tol) << dtype << " " << name;
    }
    EXPECT_NO_THROW(Model::load(half));
  }
}

// By default the decoder's float32 values are half-representable (as the official checkpoints'
// are) and the model loads them as exact f16; --no-f16-exact draws full float32 values.
TEST(RandomModel, DecoderValuesAreF16ExactByDefault) {
  auto exact = Model::load(make_model({"--shape", "test-tiny"}));
  auto full = Model::load(make_model({"--shape", "test-tiny", "--no-f16-exact"}));
  EXPECT_EQ(exact->info().decoder_exact_f16, exact->info().decoder_matrices);
  EXPECT_EQ(full->info().decoder_exact_f16, 0);
}

TEST(RandomModel, HeavyTailsScaleOutlierColumnsOfMatricesOnly) {
  // Full float32 values: the x20 scaling is exact only before any rounding to f16.
  const std::string plain = make_model({"--shape", "test-tiny", "--no-f16-exact"});
  const std::string heavy = make_model({"--shape", "test-tiny", "--heavy-tails", "--no-f16-exact"});
  const TensorStore a = TensorStore::open_checkpoint(plain),
                    b = TensorStore::open_checkpoint(heavy);
  // fc1 [256, 64]: max(1, 64 / 100) = 1 column x20, the rest identical.
  const ConstTensor x = a.get_f32("decoder.model.decoder.layers.0.fc1.weight");
  const ConstTensor y = b.get_f32("decoder.model.decoder.layers.0.fc1.weight");
  const int64_t rows = x.dim(0), cols = x.dim(1);
  int scaled = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const float ratio = y.data[c] / x.data[c];
    if (std::fabs(ratio - 20.0f) < 1e-4f) ++scaled;
    for (int64_t r = 0; r < rows; ++r)
      ASSERT_FLOAT_EQ(y.data[r * cols + c],
                      x.data[r * cols + c] * (std::fabs(ratio - 20.0f) < 1e-4f ? 20.0f : 1.0f));
  }
  EXPECT_EQ(scaled, 1);
  // fc2 [64, 256]: 2 columns.
  const ConstTensor x2 = a.get_f32("decoder.model.decoder.layers.0.fc2.weight");
  const ConstTensor y2 = b.get_f32("decoder.model.decoder.layers.0.fc2.weight");
  int scaled2 = 0;
  for (int64_t c = 0; c < x2.dim(1); ++c)
    scaled2 += std::fabs(y2.data[c] / x2.data[c] - 20.0f) < 1e-4f;
  EXPECT_EQ(scaled2, 2);
  for (const char* same : {"decoder.model.decoder.layers.0.final_layer_norm.weight",
                           "decoder.model.decoder.embed_tokens.0.weight",
                           "audio_encoder.decoder.layers.0.conv.weight_v",
                           "audio_encoder.quantizer.layers.0.codebook.embed"}) {
    const ConstTensor p = a.get_f32(same), q = b.get_f32(same);
    EXPECT_TRUE(std::equal(p.data, p.data + p.numel(), q.data)) << same;
  }
  EXPECT_NO_THROW(Model::load(heavy));
}

TEST(RandomModel, StereoAndMelodyShapesHaveTheirTensors) {
  // The plans that make-random-model writes, without writing gigabytes.
  auto plan = [](const std::string& shape) {
    std::map<std::string, Shape> m;
    for (const PlannedTensor& t : plan_random_checkpoint(*find_random_shape(shape), DType::kF32))
      m[t.decl.name] = t.decl.shape;
    return m;
  };
  const auto small = plan("small");
  EXPECT_EQ(small, official_small_tensors());

  const auto stereo = plan("stereo-small");
  EXPECT_EQ(stereo.at("decoder.model.decoder.embed_tokens.7.weight"), (Shape{2049, 1024}));
  EXPECT_EQ(stereo.at("decoder.lm_heads.7.weight"), (Shape{2048, 1024}));
  EXPECT_FALSE(stereo.count("decoder.model.decoder.embed_tokens.8.weight"));
  EXPECT_EQ(stereo.size(), small.size() + 8);

  const auto medium = plan("medium");
  EXPECT_EQ(medium.at("decoder.model.decoder.layers.47.fc1.weight"), (Shape{6144, 1536}));
  const auto large = plan("large");
  EXPECT_EQ(large.at("decoder.model.decoder.layers.47.encoder_attn.q_proj.weight"),
            (Shape{2048, 2048}));
  EXPECT_EQ(large.at("enc_to_dec_proj.weight"), (Shape{2048, 768}));

  const auto melody = plan("melody");
  for (const auto& [name, shape] : melody)
    EXPECT_EQ(name.find("encoder_attn"), std::string::npos) << name;
  EXPECT_EQ(melody.at("audio_enc_to_dec_proj.weight"), (Shape{1536, 12}));
  EXPECT_EQ(melody.at("audio_enc_to_dec_proj.bias"), (Shape{1536}));
  EXPECT_EQ(melody.at("decoder.model.decoder.layers.47.self_attn.q_proj.weight"),
            (Shape{1536, 1536}));
  EXPECT_EQ(plan("stereo-melody").at("decoder.lm_heads.7.weight"), (Shape{2048, 1536}));
  EXPECT_EQ(plan("melody-large").at("audio_enc_to_dec_proj.weight"), (Shape{2048, 12}));

  const json mc = json::parse(random_config_json(*find_random_shape("melody"), DType::kF32));
  EXPECT_EQ(mc.at("model_type"), "musicgen_melody");
  EXPECT_EQ(mc.at("decoder").at("model_type"), "musicgen_melody_decoder");
  EXPECT_EQ(mc.at("num_chroma"), 12);
  EXPECT_EQ(mc.at("chroma_length"), 235);
  const json sc = json::parse(random_config_json(*find_random_shape("stereo-large"), DType::kF32));
  EXPECT_EQ(sc.at("decoder").at("audio_channels"), 2);
  EXPECT_EQ(sc.at("decoder").at("num_codebooks"), 8);
  EXPECT_EQ(sc.at("audio_encoder").at("audio_channels"), 1);

  // musicgen-large in f32 is about 13.7 GB (3.3B decoder + T5-base + EnCodec); small 2.36 GB.
  const double large_gb =
      static_cast<double>(random_checkpoint_bytes(*find_random_shape("large"), DType::kF32)) / 1e9;
  EXPECT_GT(large_gb, 13.5);
  EXPECT_LT(large_gb, 14.0);
  const double small_gb =
      static_cast<double>(random_checkpoint_bytes(*find_random_shape("small"), DType::kF32)) / 1e9;
  EXPECT_NEAR(small_gb, 2.36, 0.01);
}

TEST(RandomModel, BadOptionsFailWithOneLine) {
  const std::string tmp = TempDirs::make("rm-bad");
  const std::string out = tmp + "/m";
  auto expect_one_line = [&](const std::vector<std::string>& args, const std::string& needle,
                             int code) {
    std::vector<std::string> full = {"make-random-model"};
    full.insert(full.end(), args.begin(), args.end());
    const CliResult r = run_cli(full);
    EXPECT_EQ(r.exit_code, code) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("musicgen: error: ", 0), 0u) << r.err;
    EXPECT_FALSE(fs::exists(out));
  };
  expect_one_line({"--shape", "huge", "--out", out}, "unknown --shape 'huge'", 2);
  expect_one_line({"--shape", "small"}, "--out DIR is required", 2);
  expect_one_line({"--out", out}, "--shape is required", 2);
  expect_one_line({"--shape", "small", "--out", out, "--dtype", "f8"},
                  "--dtype must be f32, f16 or bf16", 2);
  expect_one_line({"--shape", "small", "--out", out, "--seed", "x"}, "--seed expects an integer",
                  2);
  expect_one_line({"--shape", "small", "--out", out, "--threads", "0"}, "--threads must be between",
                  2);
  expect_one_line({"--shape", "small", "--out", out, "--bogus"}, "unknown option '--bogus'", 2);
  expect_one_line({"--shape", "test-tiny", "--out", tmp + "/no/such/dir/m"}, "does not exist", 1);
  // An existing directory is kept unless --force.
  fs::create_directory(out);
  std::ofstream(out + "/keep.txt") << "x";
  const CliResult r =
      run_cli({"make-random-model", "--shape", "test-tiny", "--out", out, "--quiet"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(out + "/keep.txt"));
  const CliResult f =
      run_cli({"make-random-model", "--shape", "test-tiny", "--out", out, "--quiet", "--force"});
  EXPECT_EQ(f.exit_code, 0) << f.err;
  EXPECT_FALSE(fs::exists(out + "/keep.txt"));
  EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
  for (const auto& e : fs::directory_iterator(tmp))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos)
        << e.path() << " left behind";
}

}  // namespace
}  // namespace musicgen
