#!/usr/bin/env bash
# Installs what prunerec needs on Debian 12 (apt-get; skipped for packages already
# present), then configures and builds the release tree in ./build: the portable build
# (x86-64 baseline, kernels dispatched to AVX2+FMA at run time; Note [portable build] in
# cmake/PrunerecCompileOptions.cmake) with warnings as errors.
#   bash tools/setup.sh            # dependencies + build
#   PRUNEREC_BUILD_DIR=out bash tools/setup.sh
#   PRUNEREC_WERROR=OFF bash tools/setup.sh     # a compiler with new warnings, locally
set -euo pipefail
cd "$(dirname "$0")/.."

# One Debian package per line; add new ones where they belong.
packages=(
  # toolchain
  g++ clang cmake ninja-build pkg-config
  # libraries the engine links
  libopenblas-pthread-dev libtbb-dev libprotobuf-dev protobuf-compiler
  # tokenizers (text/, linked by the command line only)
  libpcre2-dev libutf8proc-dev libsentencepiece-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev binutils
  # data-parallel runs over MPI (PRUNEREC_MPI, docs/scale-out.md; tests/dist under mpirun)
  openmpi-bin libopenmpi-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build=${PRUNEREC_BUILD_DIR:-build}
# With the MPI backend, so the unit tests also run the data-parallel suites under mpirun
# (tests/dist); the library an embedder links is the same either way (it never links MPI).
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPRUNEREC_ARCH=portable \
  -DPRUNEREC_MPI="${PRUNEREC_MPI:-ON}" -DPRUNEREC_WERROR="${PRUNEREC_WERROR:-ON}" >/dev/null
cmake --build "$build" -j "$(nproc)"
