#!/usr/bin/env bash
# Installs the Debian 12 packages musicgen.cpp needs to build and test (run as root or with sudo);
# clang-14 and libclang-rt-14-dev are for the clang build and the libFuzzer harnesses; redis-server,
# chromium, chromium-driver and python3-selenium only for tests (the server's page, the Redis queue).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build pkg-config \
  libsentencepiece-dev libsndfile1-dev libsoxr-dev libfftw3-dev libcurl4-openssl-dev libssl-dev \
  nlohmann-json3-dev libcpp-httplib-dev libopenblas-dev libgtest-dev libgmock-dev \
  libvulkan-dev glslc mesa-vulkan-drivers spirv-tools \
  clang-14 libclang-rt-14-dev ca-certificates \
  libebur128-dev libhiredis-dev redis-server chromium chromium-driver python3-selenium > /dev/null
