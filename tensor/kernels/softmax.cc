#include "tensor/kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tensor/kernels/isa.h"
#include "tensor/kernels/math.h"
#include "tensor/parallel.h"

// The kernels are written once, in softmax_impl.h, and compiled twice; the functions below
// call the copy the CPU runs best (tensor/kernels/compile_twice.h).
#define PRUNEREC_KERNEL_IMPL "tensor/kernels/softmax_impl.h"
#include "tensor/kernels/compile_twice.h"

namespace prunerec::kernels {

template <class T>
void softmax_rows(std::int64_t rows, std::int64_t cols, const T* x, T* out) {
  return PRUNEREC_KERNEL_CALL(softmax_rows<T>, rows, cols, x, out);
}

template <class T>
void log_softmax_rows(std::int64_t rows, std::int64_t cols, const T* x, T* out) {
  return PRUNEREC_KERNEL_CALL(log_softmax_rows<T>, rows, cols, x, out);
}

template <class T>
void cross_entropy_rows(std::int64_t rows, std::int64_t V, const T* x, const std::int32_t* target, T* loss, T* dx, T grad_scale) {
  return PRUNEREC_KERNEL_CALL(cross_entropy_rows<T>, rows, V, x, target, loss, dx, grad_scale);
}

template <class T>
void distill_rows(std::int64_t rows, std::int64_t V, const T* s, const T* t, const std::int32_t* target, T alpha, T temp, T* loss, T* ce, T* kl, T* ds, T grad_scale) {
  return PRUNEREC_KERNEL_CALL(distill_rows<T>, rows, V, s, t, target, alpha, temp, loss, ce, kl, ds, grad_scale);
}

template void softmax_rows<float>(std::int64_t, std::int64_t, const float*, float*);
template void log_softmax_rows<float>(std::int64_t, std::int64_t, const float*, float*);
template void cross_entropy_rows<float>(std::int64_t, std::int64_t, const float*, const std::int32_t*, float*, float*, float);
template void distill_rows<float>(std::int64_t, std::int64_t, const float*, const float*, const std::int32_t*, float, float, float*, float*, float*, float*, float);
template void softmax_rows<double>(std::int64_t, std::int64_t, const double*, double*);
template void log_softmax_rows<double>(std::int64_t, std::int64_t, const double*, double*);
template void cross_entropy_rows<double>(std::int64_t, std::int64_t, const double*, const std::int32_t*, double*, double*, double);
template void distill_rows<double>(std::int64_t, std::int64_t, const double*, const double*, const std::int32_t*, double, double, double*, double*, double*, double*, double);

}  // namespace prunerec::kernels
