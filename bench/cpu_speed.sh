#!/usr/bin/env bash
# Before/after measurement of the CPU decoder on one quiet machine (nothing compiling), for
# docs/PERFORMANCE.md. Every result is kept as JSON or text in OUTDIR; bench/cpu_speed_summary.py
# prints the tables from them.
#   membw-N         read bandwidth, 2 and 1 threads (the floor's denominator; plain loads and loads
#                   with an L2 prefetch ahead, the faster is the figure), taken at the start, before
#                   every 1500-step run and at the end: this machine's bandwidth moves by tens of
#                   percent from minute to minute, so each long run is also set against the probe
#                   taken just before it
#   isa-*           kernel_bench --compare-isa before and after: each kernel's compute cost in cache
#   kernels-*       kernel_bench before and after, 1 and 2 threads (weights streamed from memory)
#   attention-*     attention_bench before and after, 1 and 2 threads (768 heads of 1500 keys)
#   attention_strided-*  the same with the decoder's layout: 300 keys of 1500 rows per head
#   ab-W-WHICH-R    musicgen-small, weight type W, 200 steps, before and after, alternating, 3 rounds
#   long-W          1500 steps (30 s of audio), after: first/last 100 steps, floor fraction
#   long-W-kv8      the same for q8 and q4 with the q8 KV cache (--kv-cache q8)
#   long-before-W   q8 and q8-kv8 over 1500 steps with the previous build
#   threads{1,2}-q8 1 thread against 2, after (alternating, 3 rounds)
#   reference       transformers fp32 side by side (bench/compare_reference.py; needs .venv-ref)
#   batcher-W       8 concurrent requests through the Batcher against one at a time, after
#
# Usage: bench/cpu_speed.sh OUTDIR MODEL_DIR BEFORE_DIR
#   MODEL_DIR   a random musicgen-small (`musicgen make-random-model --shape small`)
#   BEFORE_DIR  a folder with the previous build's musicgen, kernel_bench, attention_bench and
#               batcher_bench
# Environment: SECTIONS=isa,kernels,attention,ab,long,threads,reference,batcher (default all; the
# bandwidth probes always run), AB_ROUNDS (default 3) alternating rounds of the ab section.
# Build first: scripts/build.sh build
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=${1:?usage: bench/cpu_speed.sh OUTDIR MODEL_DIR BEFORE_DIR}
MODEL=${2:?usage: bench/cpu_speed.sh OUTDIR MODEL_DIR BEFORE_DIR}
BEFORE=${3:?usage: bench/cpu_speed.sh OUTDIR MODEL_DIR BEFORE_DIR}
MG="$REPO/build/cli/musicgen"
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
want() { [[ ",${SECTIONS:-all}," == *",all,"* || ",${SECTIONS:-all}," == *",$1,"* ]]; }
{ date -u; uname -a; lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200; uptime;
  echo "after: $(git -C "$REPO" rev-parse --short HEAD)"; echo "before: $BEFORE"; } > "$OUT/machine.txt"

membw_n=0
membw() {  # the probe, kept as membw-N.txt in the order taken
  membw_n=$((membw_n + 1))
  "$REPO/build/bench/membw" --threads 2 > "$OUT/membw-$(printf %02d $membw_n).txt" 2>&1
}
log membw
membw

if want isa; then
  log "kernels in cache"
  "$BEFORE/kernel_bench" --compare-isa --rows 2 > "$OUT/isa-before.txt" 2>&1
  "$REPO/build/bench/kernel_bench" --compare-isa --rows 2 > "$OUT/isa-after.txt" 2>&1
fi

if want kernels; then
  log kernels
  for r in 1 2; do
    for t in 1 2; do
      "$BEFORE/kernel_bench" --threads $t --rows 2 --reps 9 > "$OUT/kernels-before-t$t-r$r.txt" 2>&1
      "$REPO/build/bench/kernel_bench" --threads $t --rows 2 --reps 9 > "$OUT/kernels-after-t$t-r$r.txt" 2>&1
    done
  done
fi

if want attention; then
  log attention
  for r in 1 2 3; do
    for t in 1 2; do
      "$BEFORE/attention_bench" --threads $t > "$OUT/attention-before-t$t-r$r.txt" 2>&1
      "$REPO/build/bench/attention_bench" --threads $t > "$OUT/attention-after-t$t-r$r.txt" 2>&1
      # The decoder's layout: 300 keys read of each head's 1500 rows (BEFORE's attention_bench
      # must know --capacity; skipped when it does not).
      if grep -aq -- --capacity "$BEFORE/attention_bench"; then
        "$BEFORE/attention_bench" --threads $t --keys 300 --capacity 1500 \
          > "$OUT/attention_strided-before-t$t-r$r.txt" 2>&1
        "$REPO/build/bench/attention_bench" --threads $t --keys 300 --capacity 1500 \
          > "$OUT/attention_strided-after-t$t-r$r.txt" 2>&1
      fi
    done
  done
fi

bench() {  # BIN WEIGHT [extra...] -> JSON on stdout
  local bin=$1 w=$2; shift 2
  local extra=(--weights "$w"); [ "$w" = f32-plain ] && extra=(--weights f32 --no-exact-f16)
  "$bin" bench --model "$MODEL" "${extra[@]}" --threads 2 --bandwidth-mib 0 --json "$@"
}
want ab && for r in $(seq "${AB_ROUNDS:-3}"); do
  for w in f32 f32-plain bf16 q8 q4; do
    log "round $r $w"
    bench "$BEFORE/musicgen" $w --steps 200 --repeats 1 > "$OUT/ab-$w-before-$r.json"
    bench "$MG" $w --steps 200 --repeats 1 > "$OUT/ab-$w-after-$r.json"
  done
done

long() {  # BIN NAME [extra...]: one 1500-step run, after a bandwidth probe
  local bin=$1 name=$2; shift 2
  membw
  cp "$OUT/membw-$(printf %02d $membw_n).txt" "$OUT/membw-for-$name.txt"
  log "1500 steps $name"
  "$bin" bench --model "$MODEL" --steps "${LONG_STEPS:-1500}" --repeats 1 --threads 2 --json "$@" \
    > "$OUT/long-$name.json"
}
if want long; then
  for w in f32 bf16 q8 q4; do long "$MG" $w --weights $w; done
  for w in q8 q4; do long "$MG" $w-kv8 --weights $w --kv-cache q8; done
  long "$BEFORE/musicgen" before-q8 --weights q8
  long "$BEFORE/musicgen" before-q8-kv8 --weights q8 --kv-cache q8
  membw
fi

want threads && for r in 1 2 3; do
  log "threads round $r"
  "$MG" bench --model "$MODEL" --weights q8 --steps 200 --repeats 1 --threads 1 \
    --bandwidth-mib 0 --json > "$OUT/threads1-q8-$r.json"
  "$MG" bench --model "$MODEL" --weights q8 --steps 200 --repeats 1 --threads 2 \
    --bandwidth-mib 0 --json > "$OUT/threads2-q8-$r.json"
done

if want reference && [ -x "$REPO/.venv-ref/bin/python" ]; then
  log "transformers side by side"
  "$REPO/.venv-ref/bin/python" "$REPO/bench/compare_reference.py" --model "$MODEL" --threads 2 \
    --steps 200 --repeats 3 --ref-repeats 1 --weights f32 bf16 q8 q4 --musicgen "$MG" \
    --json-out "$OUT/reference.json" > "$OUT/reference.txt" 2>&1
fi

want batcher && for w in f32 q8; do
  log "batcher before $w"
  "$BEFORE/batcher_bench" --model "$MODEL" --requests 8 --steps 100 --threads 2 \
    --mode sample --weights $w > "$OUT/batcher-before-$w.json" 2> "$OUT/batcher-before-$w.err"
  log "batcher $w"
  "$REPO/build/bench/batcher_bench" --model "$MODEL" --requests 8 --steps 100 --threads 2 \
    --mode sample --weights $w > "$OUT/batcher-$w.json" 2> "$OUT/batcher-$w.err"
done
membw
log done
