#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz/, docs/reliability.md), each run briefly on its seed
# corpus. Fails on any finding: a crash, an abort (uncaught or InternalError), an ASan or
# UBSan report, a timeout, or memory beyond the limit.
#   bash tools/test_fuzz.sh                          # CI: ~8 s per target, 2 at a time
#   PRUNEREC_FUZZ_SECONDS=100 nice -n 19 bash tools/test_fuzz.sh   # a longer campaign
#   PRUNEREC_FUZZ_TARGETS="fuzz_checkpoint" bash tools/test_fuzz.sh
#   PRUNEREC_ASAN_DIR=build-campaign PRUNEREC_FUZZ_CMAKE_ARGS=-DPRUNEREC_STDLIB_ASSERTIONS=OFF ...
#   build-asan/tests/fuzz/fuzz_checkpoint CRASH_FILE  # replay one input
# The corpus each run grows is kept in build-asan/corpus/<target>/ (the committed seeds
# in tests/fuzz/corpus/ are only read); crash inputs land in build-asan/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${PRUNEREC_FUZZ_SECONDS:-8}
jobs=${PRUNEREC_JOBS:-2}
start=$(date +%s)
source tools/asan_build.sh
build=$asan_build
cmake --build "$build" -j "$jobs" --target prunerec_fuzzers
built=$(date +%s)

targets=${PRUNEREC_FUZZ_TARGETS:-$(cd "$build/tests/fuzz" && ls fuzz_* | grep -v make_seeds | sort)}
mkdir -p "$build/artifacts" "$build/logs"
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
export PRUNEREC_NO_ALLOC_CACHE=1

run_one() {
  local target=$1 seeds="tests/fuzz/corpus/${1#fuzz_}"
  local corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  [ -d "$seeds" ] || { echo "test_fuzz: no seed corpus $seeds" >&2; return 1; }
  local dict="tests/fuzz/${1#fuzz_}.dict" dict_flag=()
  case "$target" in fuzz_data_*) dict="tests/fuzz/data.dict" ;; esac
  [ -f "$dict" ] && dict_flag=(-dict="$dict")
  local rc=0
  "$build/tests/fuzz/$target" "$corpus" "$seeds" "${dict_flag[@]}" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
      -max_len=16384 -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" \
      >"$build/logs/$target.log" 2>&1 &
  local pid=$!
  wait "$pid" || rc=$?
  # A target that crashed could not remove its scratch folder (tests/fuzz/fuzz_common.h).
  rm -rf "/dev/shm/prunerec-fuzz-$pid" "${TMPDIR:-/tmp}/prunerec-fuzz-$pid"
  return "$rc"
}

failed=()
declare -A pids=()
for target in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$target" &
  pids[$target]=$!
done
for target in $targets; do
  if ! wait "${pids[$target]}"; then failed+=("$target"); fi
done

printf '%-26s %12s %8s %s\n' target executions corpus result
for target in $targets; do
  log="$build/logs/$target.log"
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
  size=$(ls "$build/corpus/$target" | wc -l)
  result=ok
  for f in "${failed[@]:-}"; do [ "$f" = "$target" ] && result=FINDING; done
  printf '%-26s %12s %8s %s\n' "$target" "${execs:-?}" "$size" "$result"
done
echo "test_fuzz: build $(( built - start )) s, fuzzing $(( $(date +%s) - built )) s (${seconds} s per target, $jobs at a time)"

if [ ${#failed[@]} -gt 0 ]; then
  for target in "${failed[@]}"; do
    echo "=== $target: finding (log $build/logs/$target.log)" >&2
    grep -E 'ERROR|prunerec fuzz finding|SUMMARY|Test unit written|runtime error|Assertion' "$build/logs/$target.log" | head -20 >&2 || true
  done
  exit 1
fi
