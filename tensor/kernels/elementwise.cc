#include "tensor/kernels/elementwise.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/kernels/isa.h"
#include "tensor/kernels/math.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"

// The kernels are written once, in elementwise_impl.h, and compiled twice; the functions below
// call the copy the CPU runs best (tensor/kernels/compile_twice.h).
#define PRUNEREC_KERNEL_IMPL "tensor/kernels/elementwise_impl.h"
#include "tensor/kernels/compile_twice.h"

namespace prunerec::kernels {

template <class T>
void add(std::int64_t n, const T* a, const T* b, T* out) {
  return PRUNEREC_KERNEL_CALL(add<T>, n, a, b, out);
}

template <class T>
void axpy(std::int64_t n, T alpha, const T* x, T* y) {
  return PRUNEREC_KERNEL_CALL(axpy<T>, n, alpha, x, y);
}

template <class T>
void scale(std::int64_t n, T alpha, const T* x, T* out) {
  return PRUNEREC_KERNEL_CALL(scale<T>, n, alpha, x, out);
}

template <class T>
void mul(std::int64_t n, const T* a, const T* b, T* out) {
  return PRUNEREC_KERNEL_CALL(mul<T>, n, a, b, out);
}

template <class T>
void fill(std::int64_t n, T value, T* out) {
  return PRUNEREC_KERNEL_CALL(fill<T>, n, value, out);
}

template <class T>
void copy(std::int64_t n, const T* x, T* out) {
  return PRUNEREC_KERNEL_CALL(copy<T>, n, x, out);
}

template <class T>
void mul_cols(std::int64_t rows, std::int64_t cols, const T* x, const T* colscale, T* out) {
  return PRUNEREC_KERNEL_CALL(mul_cols<T>, rows, cols, x, colscale, out);
}

template <class T>
void swiglu_forward(std::int64_t rows, std::int64_t cols, const T* g, const T* u, const T* gate, T* out) {
  return PRUNEREC_KERNEL_CALL(swiglu_forward<T>, rows, cols, g, u, gate, out);
}

template <class T>
void swiglu_backward(std::int64_t rows, std::int64_t cols, const T* g, const T* u, const T* gate, const T* dout, T* dg, T* du) {
  return PRUNEREC_KERNEL_CALL(swiglu_backward<T>, rows, cols, g, u, gate, dout, dg, du);
}

template <class T>
void dropout_apply(std::int64_t n, float p, std::uint64_t seed, std::uint64_t stream, const T* x, T* out) {
  return PRUNEREC_KERNEL_CALL(dropout_apply_rows<T>, 1, n, n, 0, p, seed, stream, x, out);
}

template <class T>
void dropout_apply_rows(std::int64_t rows, std::int64_t cols, std::int64_t stride, std::int64_t first, float p,
                        std::uint64_t seed, std::uint64_t stream, const T* x, T* out) {
  return PRUNEREC_KERNEL_CALL(dropout_apply_rows<T>, rows, cols, stride, first, p, seed, stream, x, out);
}

template <class T>
double sum(std::int64_t n, const T* x) {
  return PRUNEREC_KERNEL_CALL(sum<T>, n, x);
}

template <class T>
double sum_squares(std::int64_t n, const T* x) {
  return PRUNEREC_KERNEL_CALL(sum_squares<T>, n, x);
}

template <class T>
void sum_rows(std::int64_t rows, std::int64_t cols, const T* x, T* out, bool accumulate) {
  return PRUNEREC_KERNEL_CALL(sum_rows<T>, rows, cols, x, out, accumulate);
}

template <class T>
bool all_finite(std::int64_t n, const T* x) {
  return PRUNEREC_KERNEL_CALL(all_finite<T>, n, x);
}

template void add<float>(std::int64_t, const float*, const float*, float*);
template void axpy<float>(std::int64_t, float, const float*, float*);
template void scale<float>(std::int64_t, float, const float*, float*);
template void mul<float>(std::int64_t, const float*, const float*, float*);
template void fill<float>(std::int64_t, float, float*);
template void copy<float>(std::int64_t, const float*, float*);
template void mul_cols<float>(std::int64_t, std::int64_t, const float*, const float*, float*);
template void swiglu_forward<float>(std::int64_t, std::int64_t, const float*, const float*, const float*, float*);
template void swiglu_backward<float>(std::int64_t, std::int64_t, const float*, const float*, const float*, const float*, float*, float*);
template void dropout_apply<float>(std::int64_t, float, std::uint64_t, std::uint64_t, const float*, float*);
template void dropout_apply_rows<float>(std::int64_t, std::int64_t, std::int64_t, std::int64_t, float, std::uint64_t,
                                       std::uint64_t, const float*, float*);
template double sum<float>(std::int64_t, const float*);
template double sum_squares<float>(std::int64_t, const float*);
template void sum_rows<float>(std::int64_t, std::int64_t, const float*, float*, bool);
template bool all_finite<float>(std::int64_t, const float*);
template void add<double>(std::int64_t, const double*, const double*, double*);
template void axpy<double>(std::int64_t, double, const double*, double*);
template void scale<double>(std::int64_t, double, const double*, double*);
template void mul<double>(std::int64_t, const double*, const double*, double*);
template void fill<double>(std::int64_t, double, double*);
template void copy<double>(std::int64_t, const double*, double*);
template void mul_cols<double>(std::int64_t, std::int64_t, const double*, const double*, double*);
template void swiglu_forward<double>(std::int64_t, std::int64_t, const double*, const double*, const double*, double*);
template void swiglu_backward<double>(std::int64_t, std::int64_t, const double*, const double*, const double*, const double*, double*, double*);
template void dropout_apply<double>(std::int64_t, float, std::uint64_t, std::uint64_t, const double*, double*);
template void dropout_apply_rows<double>(std::int64_t, std::int64_t, std::int64_t, std::int64_t, float, std::uint64_t,
                                       std::uint64_t, const double*, double*);
template double sum<double>(std::int64_t, const double*);
template double sum_squares<double>(std::int64_t, const double*);
template void sum_rows<double>(std::int64_t, std::int64_t, const double*, double*, bool);
template bool all_finite<double>(std::int64_t, const double*);

}  // namespace prunerec::kernels
