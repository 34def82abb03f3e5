#include "tensor/kernels/isa.h"

#include <cstdlib>
#include <cstring>

#include "base/error.h"

namespace prunerec::kernels {

namespace detail {

std::atomic<int> g_isa{-1};

int choose_isa() {
  int isa = static_cast<int>(isa_supported(Isa::kAvx2Fma) ? Isa::kAvx2Fma : Isa::kBaseline);
  if (const char* env = std::getenv("PRUNEREC_ISA"); env != nullptr && std::strcmp(env, "baseline") == 0)
    isa = static_cast<int>(Isa::kBaseline);
  int expected = -1;  // a concurrent first call or set_isa() may have decided already
  if (!g_isa.compare_exchange_strong(expected, isa, std::memory_order_relaxed)) return expected;
  return isa;
}

}  // namespace detail

bool isa_supported(Isa isa) {
  if (isa == Isa::kBaseline) return true;
#if PRUNEREC_KERNELS_AVX2
  __builtin_cpu_init();  // needed when called before the constructors ran
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

Isa active_isa() { return detail::use_avx2() ? Isa::kAvx2Fma : Isa::kBaseline; }

const char* isa_name(Isa isa) { return isa == Isa::kAvx2Fma ? "avx2+fma" : "baseline"; }

void set_isa(Isa isa) {
  PR_CHECK_T(ConfigError, isa_supported(isa), "set_isa: ", isa_name(isa),
             " is not available on this CPU or in this build");
  detail::g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace prunerec::kernels
