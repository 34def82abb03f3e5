// Compiles one kernel body twice, for the x86-64 baseline and for AVX2 + FMA (Note [kernel
// dispatch] in tensor/kernels/isa.h). A kernel file defines PRUNEREC_KERNEL_IMPL as its
// body's header and includes this file once, at namespace scope:
//
//   #define PRUNEREC_KERNEL_IMPL "tensor/kernels/softmax_impl.h"
//   #include "tensor/kernels/compile_twice.h"
//
// which defines every function of the body in prunerec::kernels::baseline and, where the
// compiler can target AVX2, in prunerec::kernels::avx2; PRUNEREC_KERNEL_CALL then picks
// one. Both give the same bits (Note [kernel math flags] in tensor/kernels/math.h).
// No include guard: each kernel file includes it once with its own body.
#ifndef PRUNEREC_KERNEL_IMPL
#error "define PRUNEREC_KERNEL_IMPL (the kernel body's header) before including compile_twice.h"
#endif

#include "tensor/kernels/isa.h"

namespace prunerec::kernels::baseline {
#include PRUNEREC_KERNEL_IMPL
}  // namespace prunerec::kernels::baseline

#if PRUNEREC_KERNELS_AVX2
PRUNEREC_AVX2_BEGIN
namespace prunerec::kernels::avx2 {
#include PRUNEREC_KERNEL_IMPL
}  // namespace prunerec::kernels::avx2
PRUNEREC_AVX2_END
#endif

#undef PRUNEREC_KERNEL_IMPL
