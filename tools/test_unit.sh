#!/usr/bin/env bash
# Unit tests of the release build (tools/setup.sh built it).
set -euo pipefail
cd "$(dirname "$0")/.."
ctest --test-dir "${PRUNEREC_BUILD_DIR:-build}" --output-on-failure -j 2
