#!/usr/bin/env bash
# A build without the Vulkan backend (first argument) runs the CPU path exactly as the full build
# (second argument) does, and refuses --device vulkan with a one-line error.
# Usage: scripts/no_vulkan_check.sh NO_VULKAN_MUSICGEN REFERENCE_MUSICGEN
set -euo pipefail
cd "$(dirname "$0")/.."
novk=$1 ref=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(generate --model tests/fixtures/tiny-a --prompt "no vulkan" --greedy --max-new-tokens 24 --seed 0 --quiet)
# (--seed: the codes JSON records the seed, random without it)
ASAN_OPTIONS=detect_leaks=0 "$novk" "${args[@]}" --output "$tmp/a.wav" --codes-out "$tmp/a.json"
"$ref" "${args[@]}" --output "$tmp/b.wav" --codes-out "$tmp/b.json"
cmp "$tmp/a.json" "$tmp/b.json"
if ASAN_OPTIONS=detect_leaks=0 "$novk" "${args[@]}" --device vulkan --output "$tmp/c.wav" 2> "$tmp/err"; then
  echo "no_vulkan_check: --device vulkan did not fail in a build without Vulkan" >&2
  exit 1
fi
grep -q "no Vulkan backend" "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
[ "$(wc -l < "$tmp/err")" = 1 ] || { cat "$tmp/err" >&2; exit 1; }
[ ! -e "$tmp/c.wav" ]
echo "no_vulkan_check: ok (same codes as the Vulkan build; --device vulkan refused)"
