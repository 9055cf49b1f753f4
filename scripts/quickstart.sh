#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install the dependencies, build, and generate music.
# Usage: scripts/quickstart.sh [MODEL] [PROMPT]
#   MODEL defaults to the small test checkpoint in tests/fixtures (random weights: noise, but it
#   exercises the whole pipeline); pass a MusicGen checkpoint directory for real music.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
model=${1:-tests/fixtures/tiny-a}
prompt=${2:-"80s pop track with bassy drums and synth"}
build/cli/musicgen generate --model "$model" --prompt "$prompt" --duration 5 --output musicgen_out.wav
