#!/usr/bin/env bash
# The prepared GPU check (docs/PERFORMANCE.md "GPU"): one command for a machine with a GPU, bounded
# by a time budget (default 480 s), writing everything into OUTDIR:
#   gpu.txt, devices.txt       the GPU (nvidia-smi) and the Vulkan adapters musicgen sees
#   test_vulkan.txt            the Vulkan test suite (shader twins, every mode against the HF
#                              goldens) on the real GPU
#   ours-SHAPE-W-bB.json       musicgen bench --device vulkan, weights W, batch B
#   ref-SHAPE.json             transformers on the same GPU and checkpoint (fp32, fp16)
#   results.json, summary.md   all of it side by side (bench/gpu_summary.py)
#   profile-*.txt             MUSICGEN_VK_PROFILE=1: GPU time per kind of dispatch, host time
# Usage: bench/gpu_check.sh OUTDIR [BUDGET_S] [PLAN]   (PLAN: full (default) or second)
# Binaries: $MUSICGEN_BIN/cli/musicgen and $MUSICGEN_BIN/tests/test_vulkan (default build/), built
# here or copied from a Debian 12 build (then .devrt/ holds its shared libraries). The Vulkan loader
# may be missing on the GPU machine: .gl/ holds libvulkan1 and glvnd debs to unpack (see
# /work/.library/device/README.md), else the script says what is missing.
set -uo pipefail
out=${1:?usage: bench/gpu_check.sh OUTDIR [BUDGET_S]}
budget=${2:-480}
plan=${3:-full}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MUSICGEN_BIN:-$root/build}
mkdir -p "$out"
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
log() { echo "[gpu_check +$(($(date +%s) - start))s] $*" | tee -a "$out/log.txt"; }

have_lib() { grep -qF "$1 (" <<< "$(ldconfig -p)"; }  # (no pipe: pipefail + grep -q)
if ! have_lib libvulkan.so.1; then
  if compgen -G "$root/.gl/*.deb" > /dev/null; then
    for f in "$root"/.gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    log "unpacked the Vulkan loader from .gl/"
  else
    log "no Vulkan loader (libvulkan.so.1) here and no .gl/ debs to unpack: install libvulkan1"
  fi
fi
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
# Shared libraries of a build copied from elsewhere: only those this system lacks.
if [ -d "$root/.devrt" ]; then
  rt=/tmp/musicgen-rt
  mkdir -p "$rt"
  for f in "$root"/.devrt/*; do
    have_lib "$(basename "$f")" || ln -sf "$f" "$rt/"
  done
  export LD_LIBRARY_PATH="$rt${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  log "libraries brought along: $(ls "$rt" | tr '\n' ' ')"
fi
mg="$bin/cli/musicgen"

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv \
  > "$out/gpu.txt" 2>&1 || true
"$mg" devices > "$out/devices.txt" 2>&1
log "devices: $(tail -n +2 "$out/devices.txt" | head -3 | tr '\n' ' ')"

MUSICGEN_FIXTURES_DIR="$root/tests/fixtures" MUSICGEN_CLI="$mg" timeout 240 "$bin/tests/test_vulkan" > "$out/test_vulkan.txt" 2>&1
log "test_vulkan: $(grep -E 'PASSED|FAILED' "$out/test_vulkan.txt" | head -5 | tr '\n' ' ')"
if [ -x "$bin/tests/test_vulkan_codec" ]; then
  MUSICGEN_FIXTURES_DIR="$root/tests/fixtures" timeout 120 "$bin/tests/test_vulkan_codec" > "$out/test_vulkan_codec.txt" 2>&1
  log "test_vulkan_codec: $(grep -E 'PASSED|FAILED' "$out/test_vulkan_codec.txt" | head -5 | tr '\n' ' ')"
fi

models=/tmp/musicgen-gpu-models
mkdir -p "$models"
make_model() {
  [ -d "$models/$1" ] || timeout 240 "$mg" make-random-model --shape "$1" --dtype f16 --out "$models/$1" \
    > "$out/make-$1.txt" 2>&1
}
# shape weights batch steps [repeats]
profile() {
  if [ "$(left)" -lt 40 ]; then log "skip profile $1 $2 b$3 (budget)"; return; fi
  make_model "$1"
  MUSICGEN_VK_PROFILE=1 timeout $(( $(left) - 20 )) "$mg" bench --model "$models/$1" --device vulkan \
    --weights "$2" --batch "$3" --steps "$4" --repeats 1 --warmup-steps 0 --bandwidth-mib 0 --json \
    > "$out/profile-$1-$2-b$3.json" 2> "$out/profile-$1-$2-b$3.txt"
  log "profile $1 $2 b$3: $(grep 'per step' "$out/profile-$1-$2-b$3.txt" | tail -1)"
}
bench() {
  if [ "$(left)" -lt 40 ]; then log "skip $1 $2 $3 b$4 (budget)"; return; fi
  make_model "$1"
  timeout $(( $(left) - 20 )) "$mg" bench --model "$models/$1" --device vulkan --weights "$2" --batch "$3" \
    --steps "$4" --repeats "${5:-2}" --bandwidth-mib 0 --json > "$out/ours-$1-$2-b$3-s$4.json" \
    2> "$out/ours-$1-$2-b$3-s$4.err"
  log "ours $1 $2 b$3 $4 steps: rc $? $(grep -o '"decoder_steps_per_s": [0-9.]*' "$out/ours-$1-$2-b$3-s$4.json" | head -1)"
}
reference() {
  if [ "$(left)" -lt 60 ]; then log "skip reference $1 (budget)"; return; fi
  make_model "$1"
  local name=$1 steps=$2
  shift 2
  timeout $(( $(left) - 30 )) python3 "$root/bench/gpu_reference.py" --model "$models/$name" --steps "$steps" \
    --batch ${*:-1 8} --dtype fp32 fp16 > "$out/ref-$name.json" 2> "$out/ref-$name.err"
  log "reference $name: rc $? $(grep -c decoder_steps_per_s "$out/ref-$name.json") runs"
}

if [ "$plan" = profile ]; then  # a short run: where the time of a step goes
  profile small f32 1 300
  profile small bf16 8 300
  bench small f32 1 1500 1
  profile medium bf16 1 200
  python3 "$root/bench/gpu_summary.py" "$out" > "$out/summary.md" 2> "$out/summary.err" || true
  log "done in $(( $(date +%s) - start )) s"
  exit 0
fi
if [ "$plan" = second ]; then  # after the changes a profile suggested
  profile small f32 1 300
  bench small f32 1 1500 1
  bench small f32 1 500
  bench small bf16 1 500
  bench small bf16 8 500
  profile small bf16 8 300
  bench large bf16 1 250
  bench large bf16 8 250
  reference large 250 1
  python3 "$root/bench/gpu_summary.py" "$out" > "$out/summary.md" 2> "$out/summary.err" || true
  log "done in $(( $(date +%s) - start )) s"
  exit 0
fi
bench small f32 1 500
bench small f32 8 500
reference small 500
bench small bf16 1 500
bench small q8 1 500
bench small bf16 8 500
bench small f32 1 1500 1
bench medium bf16 1 250
bench medium bf16 8 250
reference medium 250
bench large bf16 1 250
bench large bf16 8 250
bench medium f32 1 250
bench large q8 1 250
reference large 250
python3 "$root/bench/gpu_summary.py" "$out" > "$out/summary.md" 2> "$out/summary.err" || true
log "done in $(( $(date +%s) - start )) s"
