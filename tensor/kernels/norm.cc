#include "tensor/kernels/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/kernels/isa.h"
#include "tensor/parallel.h"

// The kernels are written once, in norm_impl.h, and compiled twice; the functions below
// call the copy the CPU runs best (tensor/kernels/compile_twice.h).
#define PRUNEREC_KERNEL_IMPL "tensor/kernels/norm_impl.h"
#include "tensor/kernels/compile_twice.h"

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
