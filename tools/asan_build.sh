# Sourced by tools/test_sanitize.sh and tools/test_fuzz.sh: one clang build with
# AddressSanitizer + UndefinedBehaviorSanitizer and libFuzzer coverage serves both (the
# unit tests and the fuzz targets), so CI compiles the project twice in all, not three
# times. Sets $asan_build; configures it when missing, and configures it afresh (a new
# CMakeCache.txt, objects kept where their flags did not change) whenever the options
# below differ from the ones it was configured with, so a changed option, compiler or
# PRUNEREC_FUZZ_CMAKE_ARGS never leaves a stale cache entry behind.
asan_build=${PRUNEREC_ASAN_DIR:-build-asan}
asan_args=(-G Ninja
    -DCMAKE_CXX_COMPILER="${PRUNEREC_FUZZ_CXX:-clang++}"
    -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g1"
    -DPRUNEREC_FUZZ=ON -DPRUNEREC_SANITIZE=ON -DPRUNEREC_BUILD_TESTS=ON -DPRUNEREC_BUILD_BENCH=OFF
    -DPRUNEREC_WERROR="${PRUNEREC_WERROR:-ON}"
    ${PRUNEREC_FUZZ_CMAKE_ARGS:-})
asan_stamp="$asan_build/prunerec-configure-args.txt"
if [ ! -f "$asan_build/CMakeCache.txt" ] || [ ! -f "$asan_stamp" ] || [ "$(cat "$asan_stamp")" != "${asan_args[*]}" ]; then
  [ -f "$asan_build/CMakeCache.txt" ] && echo "asan_build: options changed, configuring $asan_build afresh"
  rm -f "$asan_build/CMakeCache.txt"
  cmake -S . -B "$asan_build" "${asan_args[@]}" >/dev/null
  printf '%s' "${asan_args[*]}" >"$asan_stamp"
fi
