// Helpers shared by the tests: fixture paths, golden tensors, tolerant comparisons.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/tensor.h"
#include "format/safetensors.h"

namespace musicgen::testing {

// tests/fixtures/<name>
std::string fixture_dir(const std::string& name);
// tests/fixtures/<name>/golden.safetensors
TensorStore load_golden(const std::string& name);

// Max |a - e| / max(max|e|, 1e-6): error relative to the reference's scale.
double relative_max_error(const float* actual, const float* expected, size_t n);

// Fails the test if sizes differ or relative_max_error > tol.
void expect_close(const std::vector<float>& actual, const ConstTensor& expected, double tol,
                  const std::string& what);
void expect_close(const float* actual, size_t n, const ConstTensor& expected, double tol,
                  const std::string& what);

// A fresh empty temporary directory, removed by the caller (or left in /tmp).
std::string make_temp_dir(const std::string& tag);

}  // namespace musicgen::testing
