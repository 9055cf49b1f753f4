#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan + UBSan + libFuzzer, build-fuzz/) and runs each
# for a bounded time. Usage: scripts/fuzz.sh [SECONDS_PER_HARNESS] [HARNESS...]
#   scripts/fuzz.sh              60 s each, every harness
#   scripts/fuzz.sh 300 fuzz_mgq five minutes of one harness
#   MUSICGEN_FUZZ_BUILD_ALL=1 scripts/fuzz.sh 45   builds every target with clang first (CI)
# Seeds come from fuzz/corpus/NAME (committed, never modified); what a run learns goes to
# build-fuzz/corpus/NAME (kept between runs), crashes to build-fuzz/artifacts/. Exits non-zero
# when a harness finds a crash, a leak, a sanitizer report, a timeout or an out-of-memory.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(fuzz_safetensors fuzz_config fuzz_mgq fuzz_audio fuzz_tokenizer fuzz_model_ref fuzz_pytorch)
[ $# -gt 0 ] && harnesses=("$@") || harnesses=("${all[@]}")
dir=build-fuzz
CC=${CC_FUZZ:-clang} CXX=${CXX_FUZZ:-clang++} cmake -S . -B "$dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="${CC_FUZZ:-clang}" \
  -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++}" -DMUSICGEN_FUZZ=ON -DMUSICGEN_BUILD_TESTS=OFF \
  -DMUSICGEN_VULKAN=OFF \
  > /dev/null
if [ "${MUSICGEN_FUZZ_BUILD_ALL:-0}" = 1 ]; then
  cmake --build "$dir"  # the whole project with clang: CI's clang build
else
  cmake --build "$dir" --target "${harnesses[@]}"
fi
mkdir -p "$dir/artifacts"
status=0
for h in "${harnesses[@]}"; do
  name=${h#fuzz_}
  mkdir -p "$dir/corpus/$name"
  echo "== $h: $seconds s"
  # -timeout: one input taking longer is a hang; -rss_limit_mb: memory exhaustion is a finding.
  if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       "$dir/fuzz/$h" "$dir/corpus/$name" "fuzz/corpus/$name" -dict=fuzz/musicgen.dict \
       -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -max_len=16384 \
       -artifact_prefix="$dir/artifacts/$h-" -print_final_stats=1 2> "$dir/$h.log"; then
    echo "!! $h found a problem; see $dir/$h.log and $dir/artifacts/"
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$dir/$h.log" | head -5 || true
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$dir/$h.log" | tail -3 || true
done
exit $status
