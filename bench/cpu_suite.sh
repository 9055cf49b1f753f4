#!/usr/bin/env bash
# The CPU measurements of docs/PERFORMANCE.md ("CPU kernels", "Server", "Replicas"), one after the
# other on a quiet machine (nothing compiling), every result kept as JSON in OUTDIR:
#   membw            2-thread and 1-thread read bandwidth (the floor's denominator)
#   isa-*            musicgen-small, every weight type, AVX2 against AVX-512 kernels
#   long-*           1500 steps (30 s of audio): first/last 100 steps, floor fraction
#   threads1-q8      1 thread against 2
#   reference        transformers fp32 side by side (bench/compare_reference.py, needs .venv-ref)
#   batcher          8 concurrent requests through the Batcher against one at a time
#   server-load      100 clients for 60 s on the tiny fixture (429s, p50/p99, RSS)
#   server-8         8 concurrent requests on musicgen-small through `musicgen serve`
#   replicas         the failover test and 1 against 3 replicas (tests/server/test_replicas.py)
#
# Usage: bench/cpu_suite.sh OUTDIR [MODEL_DIR]   (MODEL_DIR: a random musicgen-small, made if absent)
# Build first: scripts/build.sh build
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=${1:?usage: bench/cpu_suite.sh OUTDIR [MODEL_DIR]}
MODEL=${2:-/tmp/mr-small}
MG="$REPO/build/cli/musicgen"
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
{ date -u; uname -a; lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200; uptime; } > "$OUT/machine.txt"
[ -f "$MODEL/model.safetensors" ] || "$MG" make-random-model --shape small --out "$MODEL"

log membw
"$REPO/build/bench/membw" --threads 2 > "$OUT/membw-2.txt" 2>&1
"$REPO/build/bench/membw" --threads 1 > "$OUT/membw-1.txt" 2>&1

for isa in avx2 avx512; do
  for w in f32 f32-plain bf16 q8 q4; do
    extra=(--weights "$w"); [ "$w" = f32-plain ] && extra=(--weights f32 --no-exact-f16)
    log "isa $isa $w"
    MUSICGEN_ISA=$isa "$MG" bench --model "$MODEL" "${extra[@]}" --steps 200 --repeats 3 \
      --threads 2 --json > "$OUT/isa-$isa-$w.json"
  done
done
for w in f32 bf16 q8 q4; do
  log "1500 steps $w"
  "$MG" bench --model "$MODEL" --weights "$w" --steps 1500 --repeats 1 --threads 2 --json \
    > "$OUT/long-$w.json"
done
log "1 thread q8"
"$MG" bench --model "$MODEL" --weights q8 --steps 200 --repeats 3 --threads 1 --json > "$OUT/threads1-q8.json"
log "2 threads q8 (same run)"
"$MG" bench --model "$MODEL" --weights q8 --steps 200 --repeats 3 --threads 2 --json > "$OUT/threads2-q8.json"

if [ -x "$REPO/.venv-ref/bin/python" ]; then
  log "transformers side by side"
  "$REPO/.venv-ref/bin/python" "$REPO/bench/compare_reference.py" --model "$MODEL" --threads 2 \
    --steps 200 --repeats 3 --ref-repeats 1 --weights f32 bf16 q8 q4 --musicgen "$MG" \
    --json-out "$OUT/reference.json" > "$OUT/reference.txt" 2>&1
fi

log "batcher"
"$REPO/build/bench/batcher_bench" --model "$MODEL" --requests 8 --steps 100 --threads 2 \
  --mode sample > "$OUT/batcher.json" 2> "$OUT/batcher.err"

log "server load (tiny, 100 clients, 60 s)"
"$MG" serve --model "$REPO/tests/fixtures/tiny-a" --port 18080 --max-queue 16 --quiet > /dev/null 2>&1 &
P=$!; sleep 2
python3 "$REPO/bench/server_load.py" --port 18080 --pid $P --clients 100 --seconds 60 --duration 1 \
  > "$OUT/server-load.txt" 2> "$OUT/server-load.err"
kill -TERM $P; wait $P

log "server, 8 concurrent on musicgen-small"
"$MG" serve --model "$MODEL" --port 18081 --max-batch 8 --threads 2 --quiet > /dev/null 2>&1 &
P=$!
for _ in $(seq 120); do curl -sf localhost:18081/health > /dev/null && break; sleep 1; done
python3 "$REPO/bench/server_load.py" --port 18081 --concurrent 8 --compare-sequential --duration 2 \
  > "$OUT/server-8.txt" 2> "$OUT/server-8.err"
kill -TERM $P; wait $P

log "replicas"
/usr/bin/python3 "$REPO/tests/server/test_replicas.py" "$MG" "$REPO/tests/fixtures/tiny-a" \
  --throughput 12 > "$OUT/replicas.txt" 2>&1
log done
