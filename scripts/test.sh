#!/usr/bin/env bash
# The test command: builds and runs the whole suite, then again under ASan+UBSan.
# Usage: scripts/test.sh            (both builds, then the clang build and the fuzzers)
#        scripts/test.sh --quick    (release build only)
# The last stage builds the whole project with clang 14 (ASan + UBSan + libFuzzer
# instrumentation, build-fuzz/) and runs every libFuzzer harness for FUZZ_SECONDS (default 45)
# seconds: about 15-20 minutes in all on 2 cores (clang build 12-15, fuzzing 4.5), which keeps the
# whole of scripts/test.sh near 40 minutes. MUSICGEN_SKIP_FUZZ=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
scripts/build.sh build
(cd build && ctest --output-on-failure -j "$jobs")
# The installed library: headers, libmusicgen.a/.so, find_package(musicgen), musicgen.pc, and a
# program outside the tree (examples/consumer) built against them and run.
scripts/consumer_check.sh build
if [ "${1:-}" != "--quick" ]; then
  scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMUSICGEN_SANITIZE=ON
  # Whole generations on lavapipe are the release pass's: under ASan the driver's LLVM compiles
  # every shader again through the sanitizer's allocator (about 20x slower); the ASan pass keeps
  # the Vulkan host code's other tests (shader twins, long form, sessions, errors, the codec).
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j "$jobs" -E 'VulkanText|VulkanModes')
fi
if [ "${1:-}" != "--quick" ] && [ "${MUSICGEN_SKIP_FUZZ:-0}" != 1 ]; then
  MUSICGEN_FUZZ_BUILD_ALL=1 scripts/fuzz.sh "${FUZZ_SECONDS:-45}"
  # The clang build is also the build without the Vulkan backend: it must give the gcc build's
  # codes, and say plainly that --device vulkan is not in it.
  scripts/no_vulkan_check.sh build-fuzz/cli/musicgen build/cli/musicgen
fi
