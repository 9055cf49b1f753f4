#!/usr/bin/env bash
# The test command: builds and runs the whole suite, then again under ASan+UBSan.
# Usage: scripts/test.sh            (both builds)
#        scripts/test.sh --quick    (release build only)
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
