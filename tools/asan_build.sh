# Sourced by tools/test_sanitize.sh and tools/test_fuzz.sh: one clang build with
# AddressSanitizer + UndefinedBehaviorSanitizer and libFuzzer coverage serves both (the
# unit tests and the fuzz targets), so CI compiles the project twice in all, not three
# times. Sets $asan_build; configures it when missing.
asan_build=${PRUNEREC_ASAN_DIR:-build-asan}
if [ ! -f "$asan_build/CMakeCache.txt" ]; then
  cmake -S . -B "$asan_build" -G Ninja \
      -DCMAKE_CXX_COMPILER="${PRUNEREC_FUZZ_CXX:-clang++}" \
      -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g1" \
      -DPRUNEREC_FUZZ=ON -DPRUNEREC_SANITIZE=ON -DPRUNEREC_BUILD_TESTS=ON -DPRUNEREC_BUILD_BENCH=OFF \
      ${PRUNEREC_FUZZ_CMAKE_ARGS:-} >/dev/null
fi
