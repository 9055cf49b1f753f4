#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

namespace musicgen::testing {

std::string fixture_dir(const std::string& name) {
  // MUSICGEN_FIXTURES_DIR in the environment overrides the build's path (a test binary copied to
  // another machine, e.g. the GPU check in bench/gpu_check.sh).
  const char* env = std::getenv("MUSICGEN_FIXTURES_DIR");
  return std::string(env != nullptr && *env != 0 ? env : MUSICGEN_FIXTURES_DIR) + "/" + name;
}

TensorStore load_golden(const std::string& name) {
  return TensorStore::open_file(fixture_dir(name) + "/golden.safetensors");
}

double relative_max_error(const float* actual, const float* expected, size_t n) {
  double scale = 1e-6, err = 0.0;
  for (size_t i = 0; i < n; ++i) {
    scale = std::max(scale, static_cast<double>(std::fabs(expected[i])));
    const double d = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    if (std::isnan(d)) return INFINITY;
    err = std::max(err, d);
  }
  return err / scale;
}

void expect_close(const float* actual, size_t n, const ConstTensor& expected, double tol,
                  const std::string& what) {
  ASSERT_EQ(n, static_cast<size_t>(expected.numel())) << what << ": size differs";
  const double err = relative_max_error(actual, expected.data, n);
  EXPECT_LE(err, tol) << what << ": relative max error " << err;
}

void expect_close(const std::vector<float>& actual, const ConstTensor& expected, double tol,
                  const std::string& what) {
  expect_close(actual.data(), actual.size(), expected, tol, what);
}

std::string make_temp_dir(const std::string& tag) {
  std::string templ = (std::filesystem::temp_directory_path() / ("musicgen-" + tag + "-XXXXXX")).string();
  char* p = mkdtemp(templ.data());
  if (p == nullptr) throw std::runtime_error("mkdtemp failed");
  return p;
}

}  // namespace musicgen::testing
