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
if [ "${1:-}" != "--quick" ]; then
  scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMUSICGEN_SANITIZE=ON
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j "$jobs")
fi
if [ "${1:-}" != "--quick" ] && [ "${MUSICGEN_SKIP_FUZZ:-0}" != 1 ]; then
  MUSICGEN_FUZZ_BUILD_ALL=1 scripts/fuzz.sh "${FUZZ_SECONDS:-45}"
fi
