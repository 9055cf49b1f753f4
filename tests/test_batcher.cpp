// Continuous batching (include/musicgen/batcher.h): requests that join and leave a shared decoder
// batch at step boundaries give exactly what they give alone. Greedy requests against the
// transformers goldens of the committed fixtures, every request against Session::generate bit
// for bit (codes and audio), seeded sampling, cancellation, requests that cannot share the batch
// (audio prompt, melody), stereo, reduced weight types, and MusicgenDecoder::forward_multi itself.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "api/batcher_test_access.h"
#include "core/thread_pool.h"
#include "format/hf_config.h"
#include "generation/generator.h"
#include "golden_runs.h"
#include "models/musicgen_decoder.h"
#include "musicgen/batcher.h"
#include "musicgen/musicgen.h"
#include "test_util.h"

namespace musicgen {
namespace {

using testing::fixture_dir;
using testing::golden_json;
using testing::load_golden;

// A request of a staggered run: it starts when the previous one reaches step `start_at` of its
// own (the previous one's progress callback then holds the decoder thread until this one is
// queued, so it joins a batch that is already running).
struct Job {
  GenerationOptions opt;
  int start_at = 2;  // step of the previous job at which this one is submitted
  bool batched = true;  // joins the shared batch (else it runs as a Session: nothing to wait for)
  bool cancel = false;  // its progress callback returns false at step cancel_at
  int cancel_at = 5;
  GenerationResult result;
  std::optional<ErrorCode> error;
};

// Polls until pred() or 30 s.
template <typename Pred>
bool wait_for(Pred pred) {
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > limit) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

void run_staggered(Batcher& batcher, std::vector<Job>& jobs) {
  const size_t n = jobs.size();
  std::vector<std::promise<void>> gates(n);
  std::vector<std::atomic<bool>> released(n);
  for (auto& r : released) r = false;
  auto release = [&](size_t i) {
    if (i < n && !released[i].exchange(true)) gates[i].set_value();
  };
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) {
    Job& job = jobs[i];
    const ProgressCallback user = job.opt.progress;
    job.opt.progress = [&, i, user](int step, int total) {
      if (user && !user(step, total)) return false;
      if (i + 1 < n && step == jobs[i + 1].start_at && !released[i + 1]) {
        release(i + 1);
        // Hold this step until the next request has been queued: it joins at the next boundary.
        // (Only a batched request's callback runs on the decoder thread and holds it.)
        if (jobs[i].batched && jobs[i + 1].batched) {
          EXPECT_TRUE(wait_for([&] { return batcher.stats().waiting >= 1; }))
              << "request " << i + 1 << " never queued";
        }
      }
      return !(jobs[i].cancel && step == jobs[i].cancel_at);
    };
    threads.emplace_back([&, i] {
      gates[i].get_future().wait();
      try {
        jobs[i].result = batcher.generate(jobs[i].opt);
      } catch (const Error& e) {
        jobs[i].error = e.code();
      }
      release(i + 1);  // finished before the next one's start step
    });
  }
  release(0);
  for (auto& t : threads) t.join();
}

void expect_bitwise(const GenerationResult& got, const GenerationResult& want,
                    const std::string& what) {
  EXPECT_EQ(got.codes, want.codes) << what << ": codes differ";
  ASSERT_EQ(got.audio.size(), want.audio.size()) << what;
  EXPECT_EQ(std::memcmp(got.audio.data(), want.audio.data(), got.audio.size() * sizeof(float)), 0)
      << what << ": audio differs";
  EXPECT_EQ(got.frames, want.frames) << what;
  EXPECT_EQ(got.channels, want.channels) << what;
  EXPECT_EQ(got.leading_padding, want.leading_padding) << what;
}

// A golden run's text prompts ("texts" or "prompts"; none: unconditional).
std::vector<std::string> texts_of(const nlohmann::json& run) {
  for (const char* key : {"texts", "prompts"})
    if (run.contains(key) && !run[key].is_null()) return run[key].get<std::vector<std::string>>();
  return {};
}

std::vector<int32_t> golden_codes(const TensorStore& golden, const std::string& run) {
  const auto c = golden.get_i64(run + ".codes");
  return {c.begin(), c.end()};
}

GenerationOptions greedy(std::vector<std::string> prompts, int max_new_tokens, float guidance) {
  GenerationOptions o;
  o.prompts = std::move(prompts);
  o.max_new_tokens = max_new_tokens;
  o.guidance_scale = guidance;
  o.greedy = true;
  return o;
}

GenerationOptions seeded(std::vector<std::string> prompts, int max_new_tokens, uint64_t seed) {
  GenerationOptions o;
  o.prompts = std::move(prompts);
  o.max_new_tokens = max_new_tokens;
  o.greedy = false;
  o.seed = seed;
  return o;
}

GenerationResult alone(const std::shared_ptr<const Model>& model, GenerationOptions opt) {
  opt.progress = nullptr;
  Session session(model, {.threads = 2});
  return session.generate(opt);
}

// (a) Greedy requests with different prompts, guidance and lengths, submitted one after another
// into a running batch: the golden runs give the transformers codes, every request gives
// Session's codes and audio bit for bit, and the steps were shared.
class BatcherGreedy : public ::testing::TestWithParam<std::string> {};

TEST_P(BatcherGreedy, StaggeredRequestsMatchGoldensAndSession) {
  const std::string fixture = GetParam();
  const TensorStore golden = load_golden(fixture);
  const nlohmann::json info = golden_json(fixture);
  const auto prompts = info.at("text").at("prompts").get<std::vector<std::string>>();
  const int n16 = info.at("runs").at("greedy_g3").at("max_new_tokens").get<int>();
  auto model = Model::load(fixture_dir(fixture));
  Batcher batcher(model, {.threads = 2});
  std::vector<Job> jobs(7);
  std::vector<std::string> runs = {"greedy_g3", "single_g3", "uncond", "greedy_g1", "", "", ""};
  jobs[0].opt = greedy(prompts, n16, 3.0f);
  jobs[1].opt = greedy({prompts[0]}, n16, 3.0f);
  jobs[1].start_at = 3;
  jobs[2].opt = greedy({}, n16, 1.0f);
  jobs[2].start_at = 2;
  jobs[3].opt = greedy(prompts, n16, 1.0f);
  jobs[3].start_at = 4;
  jobs[4].opt = greedy({prompts[1]}, 9, 3.0f);  // shorter: leaves first
  jobs[4].start_at = 1;
  jobs[5].opt = greedy({prompts[1], prompts[0], "a third prompt, longer than the others"}, 27, 3.0f);
  jobs[5].start_at = 3;
  jobs[6].opt = greedy({}, 12, 1.0f);
  jobs[6].opt.unconditional_samples = 2;
  jobs[6].start_at = 6;
  run_staggered(batcher, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    ASSERT_FALSE(jobs[i].error.has_value());
    if (!runs[i].empty()) {
      EXPECT_EQ(jobs[i].result.codes, golden_codes(golden, runs[i])) << runs[i] << " vs HF";
    }
    expect_bitwise(jobs[i].result, alone(model, jobs[i].opt), "batched vs Session");
  }
  // (e) Steps were shared: more request-steps than batched steps.
  const Batcher::Stats st = batcher.stats();
  uint64_t want = 0;
  for (const Job& j : jobs) want += *j.opt.max_new_tokens;
  EXPECT_EQ(st.request_steps, want);
  EXPECT_LT(st.steps, st.request_steps);
  EXPECT_GT(st.busy_s, 0.0);
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.waiting, 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatcherGreedy, ::testing::Values("tiny-a", "tiny-b"),
                         [](const auto& i) {
                           std::string s = i.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

// (b) Seeded sampling: each request draws from its own Rng, so its codes are those of
// Session::generate with the same seed alone, whatever shares the batch (two requests with the
// same seed and prompt included).
TEST(Batcher, SeededSamplingIndependentOfBatch) {
  auto model = Model::load(fixture_dir("tiny-a"));
  Batcher batcher(model, {.threads = 2});
  std::vector<Job> jobs(5);
  jobs[0].opt = seeded({"80s pop track with bassy drums and synth"}, 20, 7);
  jobs[1].opt = seeded({"jazz"}, 14, 7);
  jobs[1].start_at = 2;
  jobs[2].opt = seeded({"80s pop track with bassy drums and synth"}, 20, 7);  // = jobs[0]
  jobs[2].start_at = 1;
  jobs[3].opt = seeded({}, 16, 12345);
  jobs[3].opt.top_k = 5;
  jobs[3].opt.temperature = 0.7f;
  jobs[3].start_at = 3;
  jobs[4].opt = seeded({"jazz", "rock"}, 18, 99);
  jobs[4].opt.top_p = 0.8f;
  jobs[4].opt.top_k = 100;
  jobs[4].start_at = 2;
  run_staggered(batcher, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    ASSERT_FALSE(jobs[i].error.has_value());
    expect_bitwise(jobs[i].result, alone(model, jobs[i].opt), "batched vs Session");
  }
  EXPECT_EQ(jobs[0].result.codes, jobs[2].result.codes);
  EXPECT_NE(jobs[0].result.codes, jobs[1].result.codes);
  EXPECT_LT(batcher.stats().steps, batcher.stats().request_steps);
}

// (c) A request cancelled by its progress callback throws Error(kCancelled) and leaves the batch;
// the others finish with their golden codes.
TEST(Batcher, CancelOneRequest) {
  const TensorStore golden = load_golden("tiny-a");
  const auto prompts =
      golden_json("tiny-a").at("text").at("prompts").get<std::vector<std::string>>();
  auto model = Model::load(fixture_dir("tiny-a"));
  Batcher batcher(model, {.threads = 2});
  std::vector<Job> jobs(3);
  jobs[0].opt = greedy(prompts, 16, 3.0f);
  jobs[1].opt = greedy({prompts[0]}, 16, 3.0f);
  jobs[1].start_at = 2;
  jobs[1].cancel = true;
  jobs[1].cancel_at = 4;
  jobs[2].opt = greedy({}, 16, 1.0f);
  jobs[2].start_at = 2;
  std::atomic<int> after_cancel{0};
  const ProgressCallback count = [&](int step, int) {
    if (step > 4) ++after_cancel;  // the cancelled request is never called again
    return true;
  };
  jobs[1].opt.progress = count;
  run_staggered(batcher, jobs);
  ASSERT_TRUE(jobs[1].error.has_value());
  EXPECT_EQ(*jobs[1].error, ErrorCode::kCancelled);
  EXPECT_EQ(after_cancel.load(), 0);
  ASSERT_FALSE(jobs[0].error.has_value());
  ASSERT_FALSE(jobs[2].error.has_value());
  EXPECT_EQ(jobs[0].result.codes, golden_codes(golden, "greedy_g3"));
  EXPECT_EQ(jobs[2].result.codes, golden_codes(golden, "uncond"));
  // The cancelled request ran 4 steps (it was given its 4th step's progress, then left).
  EXPECT_EQ(batcher.stats().request_steps, 16u + 4u + 16u);
  EXPECT_EQ(batcher.stats().running, 0);
}

// Golden audio input of a run (left padding removed), as golden_runs.cpp reads it.
AudioData golden_audio_item(const TensorStore& golden, const std::string& run, int b, int64_t pad) {
  return musicgen::testing::golden_audio(golden.get_f32(run + ".input_values"), b, pad);
}

// (d) Requests that cannot share the batch (an audio prompt; a melody checkpoint) run as a
// Session on their caller's thread, next to batched ones, and give Session's result (and the
// goldens); they add no batched steps.
TEST(Batcher, NonEligibleRequestsRunAsSession) {
  const TensorStore golden = load_golden("tiny-a");
  const nlohmann::json info = golden_json("tiny-a").at("runs").at("cont_text");
  auto model = Model::load(fixture_dir("tiny-a"));
  Batcher batcher(model, {.threads = 2});
  std::vector<Job> jobs(3);
  jobs[0].opt = greedy({"jazz"}, 16, 3.0f);
  jobs[1].opt = greedy(texts_of(info),
                       info.at("max_new_tokens").get<int>(), info.at("guidance_scale").get<float>());
  jobs[1].opt.audio_prompts.push_back(golden_audio_item(golden, "cont_text", 0, 0));
  jobs[1].batched = false;
  jobs[1].start_at = 3;
  jobs[2].opt = greedy({"rock"}, 10, 3.0f);
  jobs[2].start_at = 1;
  run_staggered(batcher, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    ASSERT_FALSE(jobs[i].error.has_value());
    expect_bitwise(jobs[i].result, alone(model, jobs[i].opt), "Batcher vs Session");
  }
  EXPECT_EQ(jobs[1].result.codes, golden_codes(golden, "cont_text"));
  // The audio-prompt request shares no step: its steps are counted on their own.
  EXPECT_EQ(batcher.stats().request_steps,
            16u + 10u + static_cast<uint64_t>(jobs[1].result.timings.decode_steps));
  EXPECT_EQ(batcher.stats().solo, 0);

  // A melody checkpoint: every request runs as a Session.
  const TensorStore mgolden = load_golden("tiny-melody");
  const nlohmann::json minfo = golden_json("tiny-melody").at("runs").at("melody_text");
  auto melody = Model::load(fixture_dir("tiny-melody"));
  Batcher mbatcher(melody, {.threads = 2});
  GenerationOptions mo = greedy(texts_of(minfo),
                                minfo.at("max_new_tokens").get<int>(),
                                minfo.at("guidance_scale").get<float>());
  const ConstTensor in = mgolden.get_f32("chroma.input");
  AudioData a;
  a.sample_rate = 32000;
  a.channels = 1;
  a.frames = in.dim(1);
  a.samples.assign(in.data, in.data + in.numel());
  mo.melodies.push_back(a);
  const GenerationResult mr = mbatcher.generate(mo);
  EXPECT_EQ(mr.codes, golden_codes(mgolden, "melody_text"));
  expect_bitwise(mr, alone(melody, mo), "melody: Batcher vs Session");
  EXPECT_EQ(mbatcher.stats().steps, 0u);
  EXPECT_EQ(mbatcher.stats().request_steps, static_cast<uint64_t>(mr.timings.decode_steps));
}

// (f) Stereo: the interleaved codebooks and two-channel audio of tiny-stereo.
TEST(Batcher, StereoMatchesGoldensAndSession) {
  const TensorStore golden = load_golden("tiny-stereo");
  const nlohmann::json info = golden_json("tiny-stereo").at("runs").at("stereo_text");
  const auto prompts = info.at("prompts").get<std::vector<std::string>>();
  const int n = info.at("max_new_tokens").get<int>();
  auto model = Model::load(fixture_dir("tiny-stereo"));
  Batcher batcher(model, {.threads = 2});
  std::vector<Job> jobs(3);
  jobs[0].opt = greedy({prompts[1]}, 11, 3.0f);
  jobs[1].opt = greedy(prompts, n, info.at("guidance_scale").get<float>());
  jobs[1].start_at = 2;
  jobs[2].opt = seeded({prompts[0]}, 13, 5);
  jobs[2].start_at = 4;
  run_staggered(batcher, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    ASSERT_FALSE(jobs[i].error.has_value());
    EXPECT_EQ(jobs[i].result.channels, 2);
    expect_bitwise(jobs[i].result, alone(model, jobs[i].opt), "batched vs Session");
  }
  EXPECT_EQ(jobs[1].result.codes, golden_codes(golden, "stereo_text"));
  EXPECT_LT(batcher.stats().steps, batcher.stats().request_steps);
}

// Reduced weight types: their kernels also compute each row alone (q8 quantizes each
// activation row by itself), and the 16-bit KV cache is per sequence.
class BatcherWeights : public ::testing::TestWithParam<WeightType> {};

TEST_P(BatcherWeights, BatchedEqualsSession) {
  auto model = Model::load(fixture_dir("tiny-b"), {.weights = GetParam()});
  Batcher batcher(model, {.threads = 2});
  std::vector<Job> jobs(3);
  jobs[0].opt = greedy({"80s pop track with bassy drums and synth", "jazz"}, 16, 3.0f);
  jobs[1].opt = seeded({"jazz"}, 12, 3);
  jobs[1].start_at = 2;
  jobs[2].opt = greedy({}, 14, 1.0f);
  jobs[2].start_at = 3;
  run_staggered(batcher, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    ASSERT_FALSE(jobs[i].error.has_value());
    expect_bitwise(jobs[i].result, alone(model, jobs[i].opt), "batched vs Session");
  }
  EXPECT_LT(batcher.stats().steps, batcher.stats().request_steps);
}

INSTANTIATE_TEST_SUITE_P(Types, BatcherWeights,
                         ::testing::Values(WeightType::kQ8, WeightType::kBF16),
                         [](const auto& i) { return i.param == WeightType::kQ8 ? "q8" : "bf16"; });

// max_batch bounds the batch: with 1, requests wait their turn and never share a step; the
// results do not change.
TEST(Batcher, MaxBatchOneQueues) {
  auto model = Model::load(fixture_dir("tiny-a"));
  Batcher batcher(model, {.threads = 1, .max_batch = 1});
  std::vector<Job> jobs(3);
  jobs[0].opt = greedy({"jazz"}, 10, 3.0f);
  jobs[1].opt = greedy({"rock"}, 9, 3.0f);
  jobs[2].opt = seeded({}, 8, 4);
  run_staggered(batcher, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    ASSERT_FALSE(jobs[i].error.has_value());
    expect_bitwise(jobs[i].result, alone(model, jobs[i].opt), "queued vs Session");
  }
  EXPECT_EQ(batcher.stats().steps, batcher.stats().request_steps);
  EXPECT_EQ(batcher.stats().request_steps, 10u + 9u + 8u);
}

// Bad options and bad Batcher options are Session's errors; the Batcher keeps serving.
TEST(Batcher, Errors) {
  auto model = Model::load(fixture_dir("tiny-a"));
  EXPECT_THROW(Batcher(nullptr), Error);
  try {
    Batcher b(model, {.threads = 1, .max_batch = 0});
    FAIL() << "max_batch 0 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("max_batch"), std::string::npos);
  }
  EXPECT_THROW(Batcher(model, {.threads = -1}), Error);
  Batcher batcher(model, {.threads = 1});
  GenerationOptions bad = greedy({"jazz"}, 10, 3.0f);
  bad.temperature = -1.0f;
  bad.greedy = false;
  try {
    batcher.generate(bad);
    FAIL() << "negative temperature accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  bad = greedy({"jazz"}, 1, 3.0f);  // too few steps
  EXPECT_THROW(batcher.generate(bad), Error);
  const GenerationOptions good = greedy({"jazz"}, 10, 3.0f);
  expect_bitwise(batcher.generate(good), alone(model, good), "after errors");
  EXPECT_EQ(batcher.model(), model);
}

// forward_multi itself: sequences with and without text, at different positions, a prefill of
// several positions next to single steps, all positions or only the last: every logit equals
// forward() on that sequence alone, bit for bit.
TEST(Batcher, ForwardMultiEqualsForward) {
  const std::string dir = fixture_dir("tiny-a");
  const MusicgenConfig cfg = load_musicgen_config(dir);
  const TensorStore store = TensorStore::open_checkpoint(dir);
  const MusicgenDecoder dec(cfg.decoder, cfg.text_encoder.d_model, store);
  const int K = cfg.decoder.num_codebooks, V = cfg.decoder.vocab_size;
  const int64_t H = cfg.decoder.hidden_size;
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::uniform_int_distribution<int> tok(0, V);
  ThreadPool pool(2);
  struct Seq {
    int batch, text_len, warm, n;
    bool all;
  };
  const std::vector<Seq> specs = {{2, 5, 3, 1, false}, {1, 0, 0, 4, true}, {4, 9, 7, 1, false},
                                  {2, 2, 1, 2, false}, {1, 0, 5, 1, false}};
  auto make_state = [&](const Seq& s, std::mt19937& g) {
    DecoderState st = dec.new_state(s.batch, 32);
    if (s.text_len > 0) {
      Tensor text({s.batch, s.text_len, H});
      for (float& v : text.data) v = uni(g);
      std::vector<int32_t> mask(static_cast<size_t>(s.batch) * s.text_len, 1);
      mask.back() = 0;
      if (s.batch > 1)
        std::fill_n(mask.begin() + s.text_len, s.text_len, 0);  // a row with no text at all
      dec.set_text(st, text, mask, &pool);
    }
    return st;
  };
  auto tokens = [&](int batch, int n, std::mt19937& g) {
    std::vector<int32_t> t(static_cast<size_t>(batch) * K * n);
    for (int32_t& v : t) v = tok(g);
    return t;
  };
  // Two identical worlds from the same random stream: one advanced alone, one together.
  std::vector<DecoderState> alone_st, multi_st;
  std::vector<std::vector<int32_t>> inputs;
  std::mt19937 g1(11), g2(11);
  for (const Seq& s : specs) {
    alone_st.push_back(make_state(s, g1));
    multi_st.push_back(make_state(s, g2));
  }
  std::vector<float> logits;
  for (size_t i = 0; i < specs.size(); ++i)
    if (specs[i].warm > 0) {  // bring each to its own position
      const auto t = tokens(specs[i].batch, specs[i].warm, g1);
      dec.forward(alone_st[i], t.data(), specs[i].warm, false, &logits, &pool);
      dec.forward(multi_st[i], t.data(), specs[i].warm, false, &logits, &pool);
    }
  for (int round = 0; round < 3; ++round) {
    std::vector<std::vector<float>> want(specs.size()), got(specs.size());
    std::vector<MusicgenDecoder::SeqStep> seqs;
    for (size_t i = 0; i < specs.size(); ++i) inputs.push_back(tokens(specs[i].batch, specs[i].n, g1));
    for (size_t i = 0; i < specs.size(); ++i) {
      const std::vector<int32_t>& t = inputs[inputs.size() - specs.size() + i];
      dec.forward(alone_st[i], t.data(), specs[i].n, specs[i].all, &want[i], &pool);
      MusicgenDecoder::SeqStep q;
      q.state = &multi_st[i];
      q.tokens = t.data();
      q.n = specs[i].n;
      q.all_positions = specs[i].all;
      q.logits = &got[i];
      seqs.push_back(q);
    }
    dec.forward_multi(seqs, round == 1 ? nullptr : &pool);
    for (size_t i = 0; i < specs.size(); ++i) {
      ASSERT_EQ(got[i].size(), want[i].size()) << "sequence " << i;
      EXPECT_EQ(std::memcmp(got[i].data(), want[i].data(), got[i].size() * sizeof(float)), 0)
          << "round " << round << " sequence " << i;
      EXPECT_EQ(multi_st[i].length, alone_st[i].length);
    }
  }
  // A full cache is refused before any state changes.
  DecoderState small = dec.new_state(1, 2);
  const auto t3 = tokens(1, 3, g1);
  MusicgenDecoder::SeqStep ok, over;
  ok.state = &multi_st[0];
  ok.tokens = inputs[0].data();
  ok.n = 1;
  ok.logits = &logits;
  over.state = &small;
  over.tokens = t3.data();
  over.n = 3;
  over.logits = &logits;
  const int before = multi_st[0].length;
  EXPECT_THROW(dec.forward_multi({ok, over}, &pool), Error);
  EXPECT_EQ(multi_st[0].length, before);
}

// Streaming frames (CodeGenRequest::on_frames, what GenerationOptions::on_audio is built on): a
// batched request gets them on its own calling thread, in order, and they concatenate to its
// codes, which equal generate_codes' alone; a slow consumer does not hold up the batch, and one
// that returns false cancels only its own request.
TEST(Batcher, StreamedFramesOnCallingThread) {
  const std::string dir = fixture_dir("tiny-a");
  const MusicgenConfig cfg = load_musicgen_config(dir);
  const TensorStore store = TensorStore::open_checkpoint(dir);
  const MusicgenDecoder dec(cfg.decoder, cfg.text_encoder.d_model, store);
  const int K = cfg.decoder.num_codebooks, kc = K / cfg.decoder.audio_channels;
  ThreadPool pool(2);
  auto model = Model::load(dir);
  Batcher batcher(model, {.threads = 2});

  struct Stream {
    std::vector<std::pair<int, int>> pieces;  // (first, count)
    std::vector<std::vector<int32_t>> codes;
    std::thread::id thread;
    bool other_thread = false;
  };
  auto collect = [](Stream* st, int delay_ms, int stop_after) {
    return [st, delay_ms, stop_after](int first, int count, const std::vector<int32_t>& c) {
      if (std::this_thread::get_id() != st->thread) st->other_thread = true;
      st->pieces.push_back({first, count});
      st->codes.push_back(c);
      if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      return static_cast<int>(st->pieces.size()) != stop_after;
    };
  };
  // Pieces [B, K, count] back into [B, K, N], checking they are contiguous and in order.
  auto stitch = [&](const Stream& st, int batch, int frames) {
    std::vector<int32_t> all(static_cast<size_t>(batch) * K * frames, -1);
    int next = 0;
    for (size_t p = 0; p < st.pieces.size(); ++p) {
      const auto [first, count] = st.pieces[p];
      EXPECT_EQ(first, next) << "piece " << p;
      for (int bk = 0; bk < batch * K; ++bk)
        for (int t = 0; t < count; ++t)
          all[static_cast<size_t>(bk) * frames + first + t] = st.codes[p][bk * count + t];
      next = first + count;
    }
    EXPECT_EQ(next, frames);
    return all;
  };

  const int steps = 40;
  Rng rng_a(21), rng_ref(21);
  CodeGenRequest a;  // sampled, unconditional, batch 2
  a.batch = 2;
  a.max_length = steps + 1;
  a.sampling.do_sample = true;
  a.sampling.top_k = 20;
  a.rng = &rng_a;
  CodeGenRequest b = a;  // greedy and long, cancelled by its stream at its first piece
  b.sampling.do_sample = false;
  b.rng = nullptr;
  b.max_length = 400 + 1;  // far longer than a and c: still decoding when its first piece comes
  CodeGenRequest c = b;  // greedy, another length
  c.max_length = 25 + 1;

  // Alone, through generate_codes (its own on_frames).
  CodeGenRequest ref = a;
  ref.rng = &rng_ref;
  Stream ref_stream;
  ref_stream.thread = std::this_thread::get_id();
  ref.on_frames = collect(&ref_stream, 0, -1);
  const CodeGenResult want_a = generate_codes(dec, ref, &pool);
  const int frames = want_a.frames;
  EXPECT_EQ(frames, steps + 1 - kc);
  EXPECT_EQ(stitch(ref_stream, 2, frames), want_a.codes);
  EXPECT_FALSE(ref_stream.other_thread);
  const CodeGenResult want_c = generate_codes(dec, c, &pool);

  Stream sa, sb, sc;
  CodeGenResult got_a, got_c;
  std::optional<ErrorCode> err_b;
  std::thread ta([&] {
    sa.thread = std::this_thread::get_id();
    a.on_frames = collect(&sa, 3, -1);  // slow: 3 ms per piece
    got_a = BatcherTestAccess::decode(batcher, a);
  });
  std::thread tb([&] {
    sb.thread = std::this_thread::get_id();
    b.on_frames = collect(&sb, 0, 1);
    try {
      BatcherTestAccess::decode(batcher, b);
    } catch (const Error& e) {
      err_b = e.code();
    }
  });
  std::thread tc([&] {
    sc.thread = std::this_thread::get_id();
    c.on_frames = collect(&sc, 0, -1);
    got_c = BatcherTestAccess::decode(batcher, c);
  });
  ta.join();
  tb.join();
  tc.join();
  EXPECT_EQ(got_a.codes, want_a.codes);
  EXPECT_EQ(stitch(sa, 2, frames), want_a.codes);
  EXPECT_FALSE(sa.other_thread) << "on_frames ran off the calling thread";
  EXPECT_EQ(got_c.codes, want_c.codes);
  EXPECT_EQ(stitch(sc, 2, want_c.frames), want_c.codes);
  EXPECT_FALSE(sc.other_thread);
  ASSERT_TRUE(err_b.has_value());
  EXPECT_EQ(*err_b, ErrorCode::kCancelled);
  EXPECT_EQ(sb.pieces.size(), 1u);  // never called again after it returned false
  EXPECT_EQ(batcher.stats().running, 0);
}

}  // namespace
}  // namespace musicgen
