// Which instruction set the hot kernels run with, chosen once at run time.
//
//   kernels::active_isa()                   // Isa::kAvx2Fma on a CPU with AVX2 + FMA
//   kernels::set_isa(Isa::kBaseline);       // tests and benchmarks: force the portable path
//
// Note [kernel dispatch]
// ~~~~~~~~~~~~~~~~~~~~~~
// The library is built for the x86-64 baseline (SSE2), so it runs on any x86-64 CPU
// (PRUNEREC_ARCH=portable, the default; cmake/PrunerecCompileOptions.cmake). The hot
// kernels (elementwise, norm, softmax, attention, embedding) are compiled twice in the
// same translation unit (tensor/kernels/compile_twice.h): the body lives in
// <kernel>_impl.h, included once into namespace kernels::baseline and once into
// kernels::avx2 under PRUNEREC_AVX2_BEGIN/END, which puts
// target("avx2,fma") on every function defined in between (lambdas included; GCC's
// `#pragma GCC target`, Clang's `#pragma clang attribute`). The public functions of
// tensor/kernels/<kernel>.h are one-line dispatchers that call one or the other
// (PRUNEREC_KERNEL_CALL). We chose this over GCC's target_clones because the loops live
// in lambdas handed to parallel_for, which a clone attribute on the outer function does
// not reach, and because Clang's target_clones does not cover templates.
//
// Only code defined between BEGIN and END gets the target: templates defined before it
// (std::, parallel_for, math.h's exp_fast and lane_sum) keep baseline code when emitted
// out of line, and are inlined into the AVX2 callers otherwise (a baseline callee may be
// inlined into an AVX2 caller, not the reverse). So no AVX2 instruction can leak into a
// shared inline function that a baseline caller might link, the classic failure of
// compiling a whole file with -mavx2.
//
// The choice: AVX2 + FMA when the CPU has both (__builtin_cpu_supports), else baseline;
// $PRUNEREC_ISA=baseline forces the baseline path at start-up (read once, at the first
// kernel call), and set_isa() switches it for tests and benchmarks. Both paths compute
// the same IEEE operations in the same order (Note [kernel math flags]), so they give the
// same bits; tests/tensor/kernels_test.cc checks this for every dispatched kernel.
#pragma once

#include <atomic>

namespace prunerec::kernels {

enum class Isa { kBaseline = 0, kAvx2Fma = 1 };

Isa active_isa();
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);  // "baseline" or "avx2+fma"
// Process-wide; not while kernels run on other threads. ConfigError when the CPU (or
// this build) lacks `isa`.
void set_isa(Isa isa);

namespace detail {
extern std::atomic<int> g_isa;  // -1 until the first kernel call decides
int choose_isa();
inline bool use_avx2() {
  int isa = g_isa.load(std::memory_order_relaxed);
  if (isa < 0) isa = choose_isa();
  return isa == static_cast<int>(Isa::kAvx2Fma);
}
}  // namespace detail

}  // namespace prunerec::kernels

// PRUNEREC_KERNELS_AVX2: this build has the AVX2 copies (x86-64 with GCC or Clang).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(PRUNEREC_NO_KERNEL_DISPATCH)
#define PRUNEREC_KERNELS_AVX2 1
#else
#define PRUNEREC_KERNELS_AVX2 0
#endif

#if PRUNEREC_KERNELS_AVX2 && defined(__clang__)
#define PRUNEREC_AVX2_BEGIN \
  _Pragma("clang attribute push (__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define PRUNEREC_AVX2_END _Pragma("clang attribute pop")
#elif PRUNEREC_KERNELS_AVX2
#define PRUNEREC_AVX2_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define PRUNEREC_AVX2_END _Pragma("GCC pop_options")
#endif

// Calls fn (a name in namespaces baseline and avx2 of the enclosing namespace) on the
// active instruction set.
#if PRUNEREC_KERNELS_AVX2
#define PRUNEREC_KERNEL_CALL(fn, ...) \
  (::prunerec::kernels::detail::use_avx2() ? avx2::fn(__VA_ARGS__) : baseline::fn(__VA_ARGS__))
#else
#define PRUNEREC_KERNEL_CALL(fn, ...) baseline::fn(__VA_ARGS__)
#endif
