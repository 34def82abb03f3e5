#!/usr/bin/env bash
# The unit tests under AddressSanitizer and UndefinedBehaviorSanitizer (docs/reliability.md).
#   bash tools/test_sanitize.sh                 # configure + build ./build-asan, run every test
#   PRUNEREC_ASAN_DIR=out bash tools/test_sanitize.sh
#   bash tools/test_sanitize.sh -R nn_test      # extra arguments go to ctest
#
# The build is -O1 (fast to compile, still fast enough to run) with -fsanitize=address,
# undefined from cmake/PrunerecCompileOptions.cmake (Note [sanitizer builds]). Every
# report is fatal: ASan aborts on the first error (and on a leak at exit), UBSan on the
# first undefined behaviour (no recovery). PRUNEREC_NO_ALLOC_CACHE=1 turns the tensor
# allocator's cache off so ASan sees every allocation and free (tensor/allocator.cc).
# Tests that are slow under ASan read PRUNEREC_TEST_SMALL=1 and shrink their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${PRUNEREC_JOBS:-2}
start=$(date +%s)
source tools/asan_build.sh
build=$asan_build
cmake --build "$build" -j "$jobs"
built=$(date +%s)

# halt_on_error/abort_on_error: the first report ends the test with a failure.
# detect_leaks: a leak is an error too. UBSan: print the stack, fail the test.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:detect_invalid_pointer_pairs=0:allocator_may_return_null=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:report_error_type=1:${UBSAN_OPTIONS:-}"
export PRUNEREC_NO_ALLOC_CACHE=1
export PRUNEREC_TEST_SMALL=1
trap 'echo "test_sanitize: build $(( built - start )) s, tests $(( $(date +%s) - built )) s"' EXIT
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 600 "$@"
