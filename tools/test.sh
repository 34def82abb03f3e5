#!/usr/bin/env bash
# The test command: sets up (tools/setup.sh), then runs every test suite:
#   unit tests (ctest; with the data-parallel suites under mpirun -np 2), the AddressSanitizer/UBSan build of the unit tests, the fuzz
#   targets briefly on their corpora, and the embedding example against a fresh install.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
start=$(date +%s)
for part in tools/test_unit.sh tools/test_sanitize.sh tools/test_fuzz.sh tools/test_install.sh; do
  [ -f "$part" ] || { echo "tools/test.sh: $part is missing" >&2; exit 1; }
  echo "=== $part"
  bash "$part"
done
echo "all tests passed in $(( $(date +%s) - start )) s"
