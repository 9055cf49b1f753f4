#!/usr/bin/env bash
# Reproduces the measurements of docs/PERFORMANCE.md on this machine, printing each command:
#   1. machine, date, load average;
#   2. musicgen.cpp (every weight type) against the PyTorch reference, side by side
#      (bench/compare_reference.py: 500 steps, guidance 3, median of 3);
#   3. peak RSS of a 30 s generation (q8: converted at load from the checkpoint, and from a
#      `musicgen quantize` file);
#   4. wall time of a cold `musicgen generate` of 10 s of audio (q8; page cache evicted for the
#      model files first, then warm).
#
# Usage: bench/perf_suite.sh [--shape small] [--model DIR] [--threads 2] [--out DIR]
#                            [--weights "f32 bf16 q8 q4"] [--ref-repeats N] [--skip-reference]
#                            [--skip-compare]
# Without --model, a random checkpoint of --shape is made once under /work/models-random/.
# Build first: cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MUSICGEN="${MUSICGEN:-$REPO/build-bench/cli/musicgen}"
PY="${PY:-$REPO/.venv-ref/bin/python}"
SHAPE=small
MODEL=""
THREADS=2
OUT=""
WEIGHTS="f32 bf16 q8 q4"
REF_REPEATS=""
SKIP_REF=""
SKIP_COMPARE=""
PROMPT="80s pop track with bassy drums and synth"

while [ $# -gt 0 ]; do
  case "$1" in
    --shape) SHAPE="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --weights) WEIGHTS="$2"; shift 2 ;;
    --ref-repeats) REF_REPEATS="--ref-repeats $2"; shift 2 ;;
    --skip-reference) SKIP_REF="--skip-reference"; shift ;;
    --skip-compare) SKIP_COMPARE=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "perf_suite.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$MUSICGEN" ] || { echo "perf_suite.sh: $MUSICGEN not built" >&2; exit 1; }
[ -n "$MODEL" ] || MODEL="/work/models-random/$SHAPE"
NAME="$(basename "$MODEL")"
[ -n "$OUT" ] || OUT="$(mktemp -d "/tmp/musicgen-perf-$NAME-XXXXXX")"
mkdir -p "$OUT"

run() { echo "\$ $*" >&2; "$@"; }

echo "== machine" >&2
{
  date -u +"date: %Y-%m-%d %H:%M UTC"
  lscpu | grep -E "^Model name|^CPU\(s\)|^Thread|^L3"
  free -g | awk '/^Mem:/ {print "memory: " $2 " GiB"}'
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "musicgen: $MUSICGEN ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+dirty'))"
} | tee "$OUT/machine.txt"

if [ ! -f "$MODEL/model.safetensors" ] && [ ! -f "$MODEL" ]; then
  mkdir -p "$(dirname "$MODEL")"
  run "$MUSICGEN" make-random-model --shape "$SHAPE" --out "$MODEL"
fi

if [ -z "$SKIP_COMPARE" ]; then
  echo "== musicgen.cpp vs reference" >&2
  # shellcheck disable=SC2086
  run "$PY" "$REPO/bench/compare_reference.py" --model "$MODEL" --threads "$THREADS" --steps 500 \
    --guidance 3 --repeats 3 $REF_REPEATS --weights $WEIGHTS $SKIP_REF \
    --json-out "$OUT/compare.json" | tee "$OUT/compare.txt"
fi

# Evicts a checkpoint's files from the page cache (no root needed: POSIX_FADV_DONTNEED).
evict() {
  "$PY" - "$@" <<'EOF'
import os, sys
for root in sys.argv[1:]:
    paths = [root] if os.path.isfile(root) else [os.path.join(root, f) for f in os.listdir(root)]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
EOF
}

# Peak RSS (MiB) and wall seconds of one command, from /usr/bin/time.
measure() {
  local label="$1"; shift
  echo "\$ $*" >&2
  /usr/bin/time -f "%M %e" -o "$OUT/time.txt" "$@" > /dev/null 2> "$OUT/stderr.txt" || {
    cat "$OUT/stderr.txt" >&2; return 1; }
  read -r kib wall < "$OUT/time.txt"
  awk -v l="$label" -v k="$kib" -v w="$wall" \
    'BEGIN { printf "%-50s peak RSS %6.0f MiB  wall %6.2f s\n", l, k / 1024, w }' | tee -a "$OUT/memory.txt"
}

QFILE="$OUT/$NAME.q8.mgq"
if [ -d "$MODEL" ]; then
  run "$MUSICGEN" quantize --model "$MODEL" --weights q8 --out "$QFILE" --threads "$THREADS" 2>/dev/null
fi

echo "== peak RSS, 30 s of audio" >&2
measure "30 s, q8 converted at load (checkpoint dir)" "$MUSICGEN" generate --model "$MODEL" \
  --weights q8 --prompt "$PROMPT" --duration 30 --threads "$THREADS" --output "$OUT/rss.wav" --quiet
[ -f "$QFILE" ] && measure "30 s, q8 file (musicgen quantize)" "$MUSICGEN" generate --model "$QFILE" \
  --prompt "$PROMPT" --duration 30 --threads "$THREADS" --output "$OUT/rss.wav" --quiet

echo "== cold start, 10 s of audio" >&2
evict "$MODEL"
measure "10 s, q8 from checkpoint dir, page cache evicted" "$MUSICGEN" generate --model "$MODEL" \
  --weights q8 --prompt "$PROMPT" --duration 10 --threads "$THREADS" --output "$OUT/cold.wav" --quiet
measure "10 s, q8 from checkpoint dir, page cache warm" "$MUSICGEN" generate --model "$MODEL" \
  --weights q8 --prompt "$PROMPT" --duration 10 --threads "$THREADS" --output "$OUT/cold.wav" --quiet
if [ -f "$QFILE" ]; then
  evict "$QFILE"
  measure "10 s, q8 file, page cache evicted" "$MUSICGEN" generate --model "$QFILE" \
    --prompt "$PROMPT" --duration 10 --threads "$THREADS" --output "$OUT/cold.wav" --quiet
  measure "10 s, q8 file, page cache warm" "$MUSICGEN" generate --model "$QFILE" \
    --prompt "$PROMPT" --duration 10 --threads "$THREADS" --output "$OUT/cold.wav" --quiet
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
rm -f "$OUT/rss.wav" "$OUT/cold.wav" "$QFILE"
echo "results in $OUT" >&2
