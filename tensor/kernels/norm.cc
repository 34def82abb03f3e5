#include "tensor/kernels/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/kernels/isa.h"
#include "tensor/parallel.h"

// The kernels are written once, in norm_impl.h, and compiled twice: for the x86-64
// baseline and for AVX2 + FMA; the functions below call the copy the CPU runs best
// (Note [kernel dispatch] in tensor/kernels/isa.h). Both give the same bits (Note [kernel
// math flags] in tensor/kernels/math.h).
namespace prunerec::kernels::baseline {
#include "tensor/kernels/norm_impl.h"
}  // namespace prunerec::kernels::baseline

#if PRUNEREC_KERNELS_AVX2
PRUNEREC_AVX2_BEGIN
namespace prunerec::kernels::avx2 {
#include "tensor/kernels/norm_impl.h"
}  // namespace prunerec::kernels::avx2
PRUNEREC_AVX2_END
#endif

namespace prunerec::kernels {

template <class T>
void rmsnorm_forward(std::int64_t rows, std::int64_t cols, const T* x, const T* w, T eps, T* y, T* inv_rms) {
  return PRUNEREC_KERNEL_CALL(rmsnorm_forward<T>, rows, cols, x, w, eps, y, inv_rms);
}

template <class T>
void rmsnorm_backward(std::int64_t rows, std::int64_t cols, const T* x, const T* w, const T* inv_rms, const T* dy, T* dx, T* dw) {
  return PRUNEREC_KERNEL_CALL(rmsnorm_backward<T>, rows, cols, x, w, inv_rms, dy, dx, dw);
}

template void rmsnorm_forward<float>(std::int64_t, std::int64_t, const float*, const float*, float, float*, float*);
template void rmsnorm_backward<float>(std::int64_t, std::int64_t, const float*, const float*, const float*, const float*, float*, float*);
template void rmsnorm_forward<double>(std::int64_t, std::int64_t, const double*, const double*, double, double*, double*);
template void rmsnorm_backward<double>(std::int64_t, std::int64_t, const double*, const double*, const double*, const double*, double*, double*);

}  // namespace prunerec::kernels
