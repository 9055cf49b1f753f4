#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install the dependencies, build, and generate music.
# Usage: scripts/quickstart.sh [MODEL] [PROMPT]
#   MODEL: a hub name (default facebook/musicgen-small, downloaded into the Hugging Face cache),
#   a short name (small, melody, ...) or a local checkpoint directory (e.g. tests/fixtures/tiny-a,
#   the random-weight test checkpoint, which works offline).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
model=${1:-facebook/musicgen-small}
prompt=${2:-"80s pop track with bassy drums and synth"}
build/cli/musicgen generate --model "$model" --prompt "$prompt" --duration 10 --output musicgen_out.wav
