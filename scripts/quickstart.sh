#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install the dependencies (only those missing), build,
# and generate music into out/ (ignored by git).
# Usage: scripts/quickstart.sh [MODEL] [PROMPT]
#   MODEL: a hub name (default facebook/musicgen-small, downloaded into the Hugging Face cache),
#   a short name (small, melody, ...) or a local checkpoint directory (e.g. tests/fixtures/tiny-a,
#   the random-weight test checkpoint, which works offline).
set -euo pipefail
cd "$(dirname "$0")/.."
# The packages the build needs (scripts/install-deps.sh also installs the test-only ones).
packages=(build-essential cmake ninja-build pkg-config libsentencepiece-dev libsndfile1-dev
  libsoxr-dev libfftw3-dev libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libebur128-dev libhiredis-dev ca-certificates)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "quickstart: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
else
  echo "quickstart: every package is installed; skipping apt"
fi
scripts/build.sh build
model=${1:-facebook/musicgen-small}
prompt=${2:-"80s pop track with bassy drums and synth"}
mkdir -p out
build/cli/musicgen generate --model "$model" --prompt "$prompt" --duration 10 --output out/musicgen_out.wav
echo "quickstart: listen to out/musicgen_out.wav"
