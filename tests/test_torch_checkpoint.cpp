// PyTorch checkpoints (format/torch_checkpoint.h): the fixtures that transformers saved with
// save_pretrained(safe_serialization=False) (single and sharded, mono and stereo) and in F16
// safetensors give the same greedy codes and waveform as transformers on the same files; the
// tensors equal those of the source safetensors; and hostile or broken archives (a GLOBAL
// os.system + REDUCE, unknown classes, oversized storages, truncation, compressed entries, legacy
// files) are refused with one line, never run.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "format/torch_checkpoint.h"
#include "format/torch_writer.h"
#include "musicgen/tools.h"
#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen {
namespace {

namespace fs = std::filesystem;
using testing::expect_close;
using testing::fixture_dir;
using testing::load_golden;

// ---------------------------------------------------------------------------------------------
// Parity with transformers on the derived fixtures

nlohmann::json run_info(const std::string& fixture, const std::string& run) {
  std::ifstream in(fixture_dir(fixture) + "/golden.json");
  return nlohmann::json::parse(in).at("runs").at(run);
}

struct Case {
  std::string fixture, run;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.fixture << "/" << c.run; }

class TorchParity : public ::testing::TestWithParam<Case> {};

TEST_P(TorchParity, GreedyCodesAndAudioMatchHf) {
  const Case& c = GetParam();
  const TensorStore golden = load_golden(c.fixture);
  const nlohmann::json info = run_info(c.fixture, c.run);
  auto model = Model::load(fixture_dir(c.fixture));
  Session session(model, {.threads = 2});
  GenerationOptions opt;
  for (const char* key : {"texts", "prompts"})
    if (info.contains(key) && !info[key].is_null() && opt.prompts.empty())
      opt.prompts = info[key].get<std::vector<std::string>>();
  opt.max_new_tokens = info.at("max_new_tokens").get<int>();
  opt.guidance_scale = info.at("guidance_scale").get<float>();
  opt.greedy = true;
  const int batch = info.at("batch").get<int>();
  if (golden.has(c.run + ".input_values")) {  // audio continuation, [B, C, L] with left padding
    const ConstTensor in = golden.get_f32(c.run + ".input_values");
    const auto pads = info.at("left_padding").get<std::vector<int64_t>>();
    for (int b = 0; b < batch; ++b) {
      AudioData a;
      a.sample_rate = 32000;
      a.channels = static_cast<int>(in.dim(1));
      const int64_t L = in.dim(2);
      a.frames = L - pads[b];
      for (int ch = 0; ch < a.channels; ++ch)
        a.samples.insert(a.samples.end(), in.data + (b * a.channels + ch) * L + pads[b],
                         in.data + (b * a.channels + ch) * L + L);
      opt.audio_prompts.push_back(a);
    }
  }
  const GenerationResult r = session.generate(opt);
  const auto codes = golden.get_i64(c.run + ".codes");
  const Shape& cs = golden.find(c.run + ".codes")->shape;
  ASSERT_EQ(r.batch, cs[0]);
  ASSERT_EQ(r.num_codebooks, cs[1]);
  ASSERT_EQ(r.frames, cs[2]);
  EXPECT_EQ(r.codes, std::vector<int32_t>(codes.begin(), codes.end())) << "codes differ from HF";
  expect_close(r.audio, golden.get_f32(c.run + ".audio"), 1e-4, c.run + " waveform");
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, TorchParity,
    ::testing::Values(Case{"tiny-a-bin", "greedy_g3"}, Case{"tiny-a-bin", "uncond"},
                      Case{"tiny-a-bin", "cont_text"}, Case{"tiny-a-bin-sharded", "greedy_g1"},
                      Case{"tiny-a-bin-sharded", "single_g3"},
                      Case{"tiny-a-bin-sharded", "cont_notext"},
                      Case{"tiny-stereo-bin", "stereo_text"}, Case{"tiny-stereo-bin", "stereo_cont"},
                      Case{"tiny-stereo-bin-sharded", "stereo_text"},
                      Case{"tiny-stereo-f16", "stereo_text"}, Case{"tiny-stereo-f16", "stereo_cont"}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::string n = i.param.fixture + "_" + i.param.run;
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

// The .bin holds exactly the tensors of the safetensors it was made from (plus the tied T5
// embedding, which torch.save keeps as a second view of the shared storage), mapped in place.
TEST(TorchCheckpoint, SameTensorsAsTheSafetensorsSource) {
  const TensorStore st = TensorStore::open_checkpoint(fixture_dir("tiny-a"));
  const TensorStore pt = TensorStore::open_checkpoint(fixture_dir("tiny-a-bin"));
  EXPECT_NE(pt.source().find("pytorch_model.bin"), std::string::npos);
  for (const std::string& name : st.names()) {
    const TensorInfo* a = st.find(name);
    const TensorInfo* b = pt.find(name);
    ASSERT_NE(b, nullptr) << name;
    EXPECT_EQ(a->shape, b->shape) << name;
    ASSERT_EQ(a->nbytes, b->nbytes) << name;
    EXPECT_EQ(std::memcmp(a->data, b->data, a->nbytes), 0) << name;
    EXPECT_NE(b->file, nullptr) << name << " was copied instead of mapped";
  }
  const TensorInfo* shared = pt.find("text_encoder.shared.weight");
  const TensorInfo* tied = pt.find("text_encoder.encoder.embed_tokens.weight");
  ASSERT_NE(shared, nullptr);
  ASSERT_NE(tied, nullptr);
  EXPECT_EQ(shared->data, tied->data) << "a shared storage is one mapping";
}

TEST(TorchCheckpoint, SafetensorsPreferredWhenBothExist) {
  const std::string dir = testing::make_temp_dir("torch-both");
  for (const char* f : {"config.json", "generation_config.json", "spiece.model", "pytorch_model.bin"})
    fs::copy_file(fixture_dir("tiny-a-bin") + "/" + f, dir + "/" + f);
  fs::copy_file(fixture_dir("tiny-a") + "/model.safetensors", dir + "/model.safetensors");
  EXPECT_NE(TensorStore::open_checkpoint(dir).source().find("model.safetensors"), std::string::npos);
  EXPECT_EQ(TensorStore::find_weight_files(dir).format, "safetensors");
  fs::remove(dir + "/model.safetensors");
  EXPECT_EQ(TensorStore::find_weight_files(dir).format, "pytorch");
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Hand-made archives

void put16(std::string* s, uint32_t v) {
  s->push_back(static_cast<char>(v & 0xff));
  s->push_back(static_cast<char>((v >> 8) & 0xff));
}
void put32(std::string* s, uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}

// A zip of stored entries (CRCs left 0: the reader does not check them). `method` is written
// into every header.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries,
                     uint16_t method = 0) {
  std::string out, cd;
  for (const auto& [name, data] : entries) {
    const uint32_t lho = static_cast<uint32_t>(out.size());
    put32(&out, 0x04034b50);
    put16(&out, 20);
    put16(&out, 0);
    put16(&out, method);
    put32(&out, 0);  // time, date
    put32(&out, 0);  // crc
    put32(&out, static_cast<uint32_t>(data.size()));
    put32(&out, static_cast<uint32_t>(data.size()));
    put16(&out, static_cast<uint32_t>(name.size()));
    put16(&out, 0);
    out += name;
    out += data;
    put32(&cd, 0x02014b50);
    put16(&cd, 20);
    put16(&cd, 20);
    put16(&cd, 0);
    put16(&cd, method);
    put32(&cd, 0);
    put32(&cd, 0);
    put32(&cd, static_cast<uint32_t>(data.size()));
    put32(&cd, static_cast<uint32_t>(data.size()));
    put16(&cd, static_cast<uint32_t>(name.size()));
    put16(&cd, 0);
    put16(&cd, 0);
    put16(&cd, 0);
    put16(&cd, 0);
    put32(&cd, 0);
    put32(&cd, lho);
    cd += name;
  }
  const uint32_t cd_offset = static_cast<uint32_t>(out.size());
  out += cd;
  put32(&out, 0x06054b50);
  put32(&out, 0);
  put16(&out, static_cast<uint32_t>(entries.size()));
  put16(&out, static_cast<uint32_t>(entries.size()));
  put32(&out, static_cast<uint32_t>(cd.size()));
  put32(&out, cd_offset);
  put16(&out, 0);
  return out;
}

// Pickle pieces (protocol 2, as torch.save writes).
std::string str(const std::string& s) {
  std::string o = "X";
  put32(&o, static_cast<uint32_t>(s.size()));
  return o + s;
}
std::string i32(int32_t v) {
  std::string o = "J";
  put32(&o, static_cast<uint32_t>(v));
  return o;
}
std::string tuple(const std::vector<int>& v) {
  std::string o = "(";
  for (int x : v) o += i32(x);
  return o + "t";
}
std::string global(const std::string& module, const std::string& name) {
  return "c" + module + "\n" + name + "\n";
}

// `key`: _rebuild_tensor_v2(storage 'key' of `numel` floats, offset, size, stride).
std::string tensor_item(const std::string& key, const std::string& storage_key, int numel,
                        int offset, const std::vector<int>& size, const std::vector<int>& stride,
                        const std::string& storage_class = "FloatStorage") {
  std::string o = str(key);
  o += global("torch._utils", "_rebuild_tensor_v2");
  o += "((";
  o += str("storage");
  o += global("torch", storage_class);
  o += str(storage_key);
  o += str("cpu");
  o += i32(numel);
  o += "tQ";
  o += i32(offset);
  o += tuple(size);
  o += tuple(stride);
  o += "\x89";
  o += global("collections", "OrderedDict");
  o += ")RtR";
  return o;
}

std::string state_dict(const std::string& items) {
  return std::string("\x80\x02") + global("collections", "OrderedDict") + ")R(" + items + "u.";
}

std::string floats(int n) {
  std::string s(static_cast<size_t>(n) * 4, '\0');
  for (int i = 0; i < n; ++i) {
    const float v = static_cast<float>(i);
    std::memcpy(&s[static_cast<size_t>(i) * 4], &v, 4);
  }
  return s;
}

class Archives : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::make_temp_dir("torch-archives"); }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& bytes, const std::string& name = "pytorch_model.bin") {
    const std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  std::string archive(const std::string& pkl, const std::string& data0 = floats(8)) {
    return make_zip({{"archive/data.pkl", pkl}, {"archive/data/0", data0},
                     {"archive/version", "3\n"}, {"archive/byteorder", "little"}});
  }
  // The one-line error read_torch_checkpoint gives for these bytes ("" if it reads them).
  std::string error_of(const std::string& bytes) {
    try {
      read_torch_checkpoint(write(bytes));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
      const std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos) << "not one line: " << m;
      return m;
    }
    return "";
  }

  std::string dir_;
};

TEST_F(Archives, ContiguousViewIsMappedAndStridedViewIsMaterialised) {
  const std::string pkl = state_dict(tensor_item("a", "0", 8, 1, {2, 3}, {3, 1}) +
                                     tensor_item("t", "0", 8, 0, {3, 2}, {1, 3}));
  const TorchCheckpoint ck = read_torch_checkpoint(write(archive(pkl)));
  ASSERT_EQ(ck.tensors.size(), 2u);
  const TensorInfo& a = ck.tensors[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.shape, (Shape{2, 3}));
  EXPECT_EQ(a.file, ck.file);
  const ConstTensor av = TensorStore::to_f32(a);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(av.data[i], static_cast<float>(1 + i));
  const TensorInfo& t = ck.tensors[1];  // the transpose of the [2, 3] block at offset 0
  EXPECT_EQ(t.file, nullptr);
  EXPECT_EQ(ck.materialised, 1);
  const ConstTensor tv = TensorStore::to_f32(t);
  const float expect[6] = {0, 3, 1, 4, 2, 5};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(tv.data[i], expect[i]) << i;
}

TEST_F(Archives, GlobalOsSystemIsRefusedAndNeverRun) {
  const std::string marker = dir_ + "/pwned";
  const std::string pkl = std::string("\x80\x02") + global("os", "system") + "(" +
                          str("touch " + marker) + "tR.";
  const std::string m = error_of(archive(pkl));
  EXPECT_NE(m.find("os.system"), std::string::npos) << m;
  EXPECT_NE(m.find("refusing"), std::string::npos) << m;
  EXPECT_FALSE(fs::exists(marker));
  // The same through a STACK_GLOBAL (protocol 4 spelling).
  const std::string pkl4 = std::string("\x80\x04") + str("posix") + str("system") + "\x93(" +
                           str("touch " + marker) + "tR.";
  EXPECT_NE(error_of(archive(pkl4)).find("posix.system"), std::string::npos);
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(Archives, UnknownClassesAndCallsAreRefused) {
  // An unknown storage class in a persistent id.
  EXPECT_NE(error_of(archive(state_dict(tensor_item("a", "0", 8, 0, {8}, {1}, "EvilStorage"))))
                .find("torch.EvilStorage"),
            std::string::npos);
  // An unknown class reduced.
  EXPECT_NE(error_of(archive(std::string("\x80\x02") + global("__main__", "Exploit") + ")R.")).find("__main__.Exploit"),
            std::string::npos);
  // REDUCE of something that is not one of the three known callables (a storage class).
  EXPECT_NE(error_of(archive(std::string("\x80\x02") + global("torch", "FloatStorage") + ")R."))
                .find("REDUCE"),
            std::string::npos);
  // An opcode a state dict never uses (INST).
  EXPECT_NE(error_of(archive(std::string("\x80\x02") + "i" + "os\nsystem\n.")).find("opcode 0x69"),
            std::string::npos);
  // A top-level object that is not a dict of tensors.
  EXPECT_NE(error_of(archive(std::string("\x80\x02") + "]" + ".")).find("top-level list"), std::string::npos);
  EXPECT_NE(error_of(archive(state_dict(str("x") + i32(1)))).find("instead of a tensor"),
            std::string::npos);
}

TEST_F(Archives, StorageAndViewBoundsAreChecked) {
  // The storage claims 100 floats, the entry holds 8.
  std::string m = error_of(archive(state_dict(tensor_item("a", "0", 100, 0, {100}, {1}))));
  EXPECT_NE(m.find("claims 100"), std::string::npos) << m;
  // A view past the end of its storage.
  m = error_of(archive(state_dict(tensor_item("a", "0", 8, 4, {2, 3}, {3, 1}))));
  EXPECT_NE(m.find("reads element 9"), std::string::npos) << m;
  // A storage with no data entry.
  m = error_of(archive(state_dict(tensor_item("a", "7", 8, 0, {8}, {1}))));
  EXPECT_NE(m.find("archive/data/7"), std::string::npos) << m;
}

TEST_F(Archives, TruncatedArchivesAreRefused) {
  const std::string good = archive(state_dict(tensor_item("a", "0", 8, 0, {8}, {1})));
  ASSERT_EQ(error_of(good), "");
  EXPECT_NE(error_of(good.substr(0, good.size() - 10)).find("end-of-central-directory"),
            std::string::npos);
  // Every prefix of the archive and of a real checkpoint gives an error, never a crash.
  for (size_t n = 0; n < good.size(); ++n) EXPECT_NE(error_of(good.substr(0, n)), "") << n;
  std::ifstream in(fixture_dir("tiny-a-bin") + "/pytorch_model.bin", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string real = ss.str();
  for (size_t n : {real.size() / 2, real.size() - 1, size_t{100}})
    EXPECT_NE(error_of(real.substr(0, n)).find("truncated"), std::string::npos) << n;
  // A truncated pickle inside a complete archive.
  const std::string pkl = state_dict(tensor_item("a", "0", 8, 0, {8}, {1}));
  EXPECT_NE(error_of(archive(pkl.substr(0, pkl.size() - 3))).find("data.pkl"), std::string::npos);
}

TEST_F(Archives, EveryByteFlipGivesAnErrorOrAValidStore) {
  const std::string good = archive(state_dict(tensor_item("a", "0", 8, 1, {2, 3}, {3, 1}) +
                                              tensor_item("t", "0", 8, 0, {3, 2}, {1, 3})));
  for (size_t i = 0; i < good.size(); ++i)
    for (uint8_t x : {0xff}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ x);
      try {
        const TorchCheckpoint ck = read_torch_checkpoint(write(bad));
        for (const TensorInfo& t : ck.tensors) TensorStore::to_f32(t);
      } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
      }
    }
}

TEST_F(Archives, CompressedEntryIsRefused) {
  const std::string pkl = state_dict(tensor_item("a", "0", 8, 0, {8}, {1}));
  const std::string z = make_zip({{"archive/data.pkl", pkl}, {"archive/data/0", floats(8)}}, 8);
  const std::string m = error_of(z);
  EXPECT_NE(m.find("compressed (method 8)"), std::string::npos) << m;
}

TEST_F(Archives, LegacyAndForeignFilesAreRefused) {
  std::string m = error_of(std::string("\x80\x02\x8a\x0a") + std::string(20, '\0'));
  EXPECT_NE(m.find("legacy"), std::string::npos) << m;
  EXPECT_NE(m.find("re-save it with a recent torch"), std::string::npos) << m;
  m = error_of("hello, not a checkpoint");
  EXPECT_NE(m.find("not a torch.save zip archive"), std::string::npos) << m;
  m = error_of(make_zip({{"a.txt", "x"}}));
  EXPECT_NE(m.find("no <name>/data.pkl"), std::string::npos) << m;
  m = error_of(make_zip({{"archive/data.pkl", state_dict("")}, {"archive/byteorder", "big"}}));
  EXPECT_NE(m.find("big-endian"), std::string::npos) << m;
}

TEST_F(Archives, DanglingSafetensorsIndexBesideABinIsSkipped) {
  write(archive(state_dict(tensor_item("w", "0", 8, 0, {8}, {1}))));
  std::ofstream(dir_ + "/model.safetensors.index.json")
      << R"({"weight_map": {"w": "model-00001-of-00002.safetensors"}})";
  EXPECT_EQ(TensorStore::find_weight_files(dir_).format, "pytorch");
  EXPECT_TRUE(TensorStore::open_checkpoint(dir_).has("w"));
  fs::remove(dir_ + "/pytorch_model.bin");
  try {
    TensorStore::find_weight_files(dir_);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("model-00001-of-00002.safetensors"), std::string::npos);
  }
}

TEST_F(Archives, DirectoryWithOnlyBinLoadsThroughTheStore) {
  const std::string pkl = state_dict(tensor_item("w", "0", 8, 0, {8}, {1}));
  write(archive(pkl));
  const TensorStore s = TensorStore::open_checkpoint(dir_);
  ASSERT_TRUE(s.has("w"));
  EXPECT_EQ(s.get_f32("w").data[7], 7.0f);
  // A sharded index whose shard is missing names the shard.
  fs::remove(dir_ + "/pytorch_model.bin");
  std::ofstream(dir_ + "/pytorch_model.bin.index.json")
      << R"({"weight_map": {"w": "pytorch_model-00001-of-00002.bin"}})";
  try {
    TensorStore::open_checkpoint(dir_);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pytorch_model-00001-of-00002.bin"), std::string::npos);
  }
}

}  // namespace
}  // namespace musicgen

namespace musicgen {
namespace {

// make-random-model --format bin: the same tensors as the safetensors it would write, single
// and sharded, and the pickle/zip the writer makes is read back exactly.
TEST(TorchWriter, RandomModelBinEqualsSafetensors) {
  const std::string dir = testing::make_temp_dir("torch-writer");
  RandomModelOptions o;
  o.shape = "test-tiny";
  o.seed = 7;
  o.threads = 2;
  o.out_dir = dir + "/st";
  make_random_model(o);
  o.format = "bin";
  o.dtype = "f32";
  o.out_dir = dir + "/bin";
  make_random_model(o);
  o.shards = 3;
  o.out_dir = dir + "/bin3";
  make_random_model(o);
  EXPECT_TRUE(fs::exists(dir + "/bin/pytorch_model.bin"));
  EXPECT_TRUE(fs::exists(dir + "/bin3/pytorch_model-00003-of-00003.bin"));
  EXPECT_TRUE(fs::exists(dir + "/bin3/pytorch_model.bin.index.json"));
  const TensorStore st = TensorStore::open_checkpoint(dir + "/st");
  for (const char* sub : {"/bin", "/bin3"}) {
    const TensorStore pt = TensorStore::open_checkpoint(dir + sub);
    EXPECT_EQ(pt.names(), st.names()) << sub;
    for (const std::string& name : st.names()) {
      const TensorInfo* a = st.find(name);
      const TensorInfo* b = pt.find(name);
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(a->shape, b->shape) << name;
      ASSERT_EQ(a->nbytes, b->nbytes) << name;
      EXPECT_EQ(std::memcmp(a->data, b->data, a->nbytes), 0) << name;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data) % 64, 0u) << name << " is not 64-byte aligned";
    }
  }
  auto model = Model::load(dir + "/bin3");
  EXPECT_GT(model->info().num_layers, 0);
  fs::remove_all(dir);
}

TEST(TorchWriter, DtypesShapesAndCrcs) {
  const std::string dir = testing::make_temp_dir("torch-writer2");
  const std::vector<TensorDecl> decls = {{"a.f16", DType::kF16, {3, 5}},
                                         {"empty", DType::kF32, {0, 4}},
                                         {"b.bf16", DType::kBF16, {7}},
                                         {"c.i64", DType::kI64, {2, 1, 2}},
                                         {"scalar", DType::kF32, {}}};
  const std::string path = dir + "/pytorch_model.bin";
  {
    TorchZipWriter w(path, decls);
    for (const TensorDecl& d : decls) {
      std::string bytes(d.nbytes(), '\0');
      for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + d.name.size());
      for (size_t i = 0; i < bytes.size(); i += 3)  // odd chunk sizes
        w.write(bytes.data() + i, std::min<size_t>(3, bytes.size() - i));
    }
    w.finish();
  }
  const TorchCheckpoint ck = read_torch_checkpoint(path);
  ASSERT_EQ(ck.tensors.size(), decls.size());
  for (size_t t = 0; t < decls.size(); ++t) {
    EXPECT_EQ(ck.tensors[t].name, decls[t].name);
    EXPECT_EQ(ck.tensors[t].dtype, decls[t].dtype);
    EXPECT_EQ(ck.tensors[t].shape, decls[t].shape);
    ASSERT_EQ(ck.tensors[t].nbytes, decls[t].nbytes());
    for (size_t i = 0; i < ck.tensors[t].nbytes; ++i)
      ASSERT_EQ(ck.tensors[t].data[i], static_cast<uint8_t>(i * 7 + decls[t].name.size()));
  }
  EXPECT_EQ(crc32_update(0, "123456789", 9), 0xCBF43926u);  // the CRC-32 check value
  fs::remove_all(dir);
}

}  // namespace
}  // namespace musicgen
