// The main() of every bench program: the program registers its benchmarks (shapes chosen at
// run time, so RegisterBenchmark rather than the BENCHMARK macro), then Google Benchmark's
// usual run; a flag it does not know is an error (exit 1), not silently ignored.
//
//   int main(int argc, char** argv) { return prunerec::bench::run(argc, argv, [] { register_all(); }); }
#pragma once

#include <benchmark/benchmark.h>

namespace prunerec::bench {

template <class Register>
int run(int argc, char** argv, Register register_benchmarks) {
  register_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace prunerec::bench
