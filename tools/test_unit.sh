#!/usr/bin/env bash
# Unit tests of the release build (tools/setup.sh built it: the portable build, Note
# [portable build] in cmake/PrunerecCompileOptions.cmake). The kernels run their AVX2 + FMA
# copies where the CPU has them; the engine's suites (tensor, autograd, nn, recsys, api)
# then run once more with PRUNEREC_ISA=baseline, so the x86-64 baseline kernels, the ones
# an older CPU runs, pass the same tests (Note [kernel dispatch] in tensor/kernels/isa.h).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PRUNEREC_BUILD_DIR:-build}
ctest --test-dir "$build" --output-on-failure -j 2
echo "test_unit: the engine's suites again with PRUNEREC_ISA=baseline"
for suite in tensor/tensor_test autograd/autograd_test nn/nn_test recsys/recsys_test api/api_test; do
  [ -x "$build/tests/$suite" ] || { echo "test_unit: no $build/tests/$suite" >&2; exit 1; }
  PRUNEREC_ISA=baseline "$build/tests/$suite" --gtest_brief=1 >"$build/isa_baseline_$(basename "$suite").log" 2>&1 \
    || { cat "$build/isa_baseline_$(basename "$suite").log" >&2; echo "test_unit: $suite failed with PRUNEREC_ISA=baseline" >&2; exit 1; }
  echo "  ok: $suite"
done
