#!/usr/bin/env bash
# Installs the Debian 12 packages musicgen.cpp needs to build and test (run as root or with sudo).
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
  ca-certificates > /dev/null
