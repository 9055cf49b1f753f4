#!/usr/bin/env bash
# The installed library from the outside: installs BUILD_DIR (default build) into a temporary
# prefix, builds examples/consumer (the README's library snippet) against it with CMake
# (find_package(musicgen): the shared library, then MUSICGEN_STATIC=ON) and with pkg-config, and
# runs each on the tiny test checkpoint, found as "musicgen-small" in a fake Hugging Face cache, as
# the README writes it. Each must write a WAV file. Usage: scripts/consumer_check.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${1:-build}
[ -f "$build/CMakeCache.txt" ] || { echo "consumer_check: configure $build first (scripts/build.sh $build)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --build "$build" --target musicgen_cli musicgen_shared musicgen_static_merged > /dev/null
cmake --install "$build" --prefix "$tmp/prefix" > /dev/null
pc=$(find "$tmp/prefix" -name musicgen.pc)
config=$(find "$tmp/prefix" -name musicgenConfig.cmake)
for f in "$pc" "$config" "$tmp/prefix/include/musicgen/musicgen.h"; do
  [ -f "$f" ] || { echo "consumer_check: $f was not installed" >&2; exit 1; }
done
libdir=$(dirname "$(dirname "$pc")")
for f in libmusicgen.a libmusicgen.so; do
  [ -e "$libdir/$f" ] || { echo "consumer_check: $libdir/$f was not installed" >&2; exit 1; }
done

# A hub cache holding the tiny checkpoint as facebook/musicgen-small (never downloads: offline).
commit=0123456789abcdef0123456789abcdef01234567
snap=$tmp/hub/models--facebook--musicgen-small/snapshots/$commit
mkdir -p "$snap" "$tmp/hub/models--facebook--musicgen-small/refs"
for f in config.json generation_config.json model.safetensors spiece.model; do
  cp "tests/fixtures/tiny-a/$f" "$snap/"
done
printf %s "$commit" > "$tmp/hub/models--facebook--musicgen-small/refs/main"
export HF_HUB_CACHE=$tmp/hub HF_HUB_OFFLINE=1

# The consumer holds README.md's library snippet verbatim.
snippet=$(sed -n '/^## Library/,/^## /p' README.md | sed -n '/^```cpp/,/^```/p' | sed '1d;$d' | grep -v '^#include' | grep -v '^$')
[ -n "$snippet" ] || { echo "consumer_check: no C++ snippet under README.md's '## Library'" >&2; exit 1; }
while IFS= read -r line; do
  grep -qxF -- "$line" examples/consumer/main.cpp ||
    { echo "consumer_check: README line not in examples/consumer/main.cpp: $line" >&2; exit 1; }
done <<< "$snippet"

check_wav() {  # the consumer program: run in a fresh folder, it writes beat.wav there
  local dir
  dir=$(mktemp -d "$tmp/run-XXXX")
  (cd "$dir" && "$1") > /dev/null
  local out=$dir/beat.wav
  [ -f "$out" ] && [ "$(head -c 4 "$out")" = RIFF ] && [ "$(head -c 12 "$out" | tail -c 4)" = WAVE ] ||
    { echo "consumer_check: $1 wrote no WAV file" >&2; exit 1; }
  echo "consumer_check: $(basename "$1") wrote a WAV ($(stat -c %s "$out") bytes)"
}

# CMake, shared library (the default) and static library.
cmake -S examples/consumer -B "$tmp/cmake-shared" -DCMAKE_PREFIX_PATH="$tmp/prefix" > /dev/null
cmake --build "$tmp/cmake-shared" > /dev/null
check_wav "$tmp/cmake-shared/consumer"
cmake -S examples/consumer -B "$tmp/cmake-static" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DMUSICGEN_STATIC=ON > /dev/null
cmake --build "$tmp/cmake-static" > /dev/null
if ldd "$tmp/cmake-static/consumer" | grep -q libmusicgen; then
  echo "consumer_check: the MUSICGEN_STATIC consumer links libmusicgen.so" >&2; exit 1
fi
check_wav "$tmp/cmake-static/consumer"

# pkg-config, as a Makefile would.
export PKG_CONFIG_PATH=$(dirname "$pc")
g++ -std=c++20 -O1 examples/consumer/main.cpp $(pkg-config --cflags --libs musicgen) \
    -Wl,-rpath,"$libdir" -o "$tmp/consumer-pkgconfig"
check_wav "$tmp/consumer-pkgconfig"

# Not in the cache: one line naming `musicgen pull`.
if err=$(cd "$tmp" && HF_HUB_CACHE=$tmp/empty "$tmp/consumer-pkgconfig" 2>&1); then
  echo "consumer_check: an absent model did not fail" >&2; exit 1
fi
case $err in
  *"musicgen pull small"*) echo "consumer_check: an absent model says: $err" ;;
  *) echo "consumer_check: unexpected message for an absent model: $err" >&2; exit 1 ;;
esac
echo "consumer_check: ok"
