#include "tensor/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tensor/kernels/gemm.h"
#include "tensor/kernels/isa.h"
#include "tensor/kernels/math.h"
#include "tensor/parallel.h"

// The kernels are written once, in attention_impl.h, and compiled twice; the functions below
// call the copy the CPU runs best (tensor/kernels/compile_twice.h).
#define PRUNEREC_KERNEL_IMPL "tensor/kernels/attention_impl.h"
#include "tensor/kernels/compile_twice.h"

namespace prunerec::kernels {

template <class T>
void attention_forward(const AttentionDims& d, const T* q, const T* k, const T* v, const std::int32_t* pads, const std::int32_t* kv_map, const T* gates, const RopeTable<T>& rope, T scale, T* out, T* lse) {
  return PRUNEREC_KERNEL_CALL(attention_forward<T>, d, q, k, v, pads, kv_map, gates, rope, scale, out, lse);
}

template <class T>
void attention_forward_last(const AttentionDims& d, const T* q_last, const T* k, const T* v, const std::int32_t* pads, const std::int32_t* kv_map, const T* gates, const RopeTable<T>& rope, T scale, T* out_last) {
  return PRUNEREC_KERNEL_CALL(attention_forward_last<T>, d, q_last, k, v, pads, kv_map, gates, rope, scale, out_last);
}

template <class T>
void attention_decode(const AttentionDims& d, const T* q_last, const T* k_rot, const T* v, std::int64_t capacity, const std::int32_t* rows, std::int64_t rows_ld, const std::int32_t* pads, const std::int32_t* kv_map, const T* gates, const RopeTable<T>& rope, T scale, T* out_last) {
  return PRUNEREC_KERNEL_CALL(attention_decode<T>, d, q_last, k_rot, v, capacity, rows, rows_ld, pads, kv_map, gates, rope, scale, out_last);
}

template <class T>
void attention_backward(const AttentionDims& d, const T* q, const T* k, const T* v, const std::int32_t* pads, const std::int32_t* kv_map, const T* gates, const RopeTable<T>& rope, T scale, const T* out, const T* lse, const T* dout, T* dq, T* dk, T* dv) {
  return PRUNEREC_KERNEL_CALL(attention_backward<T>, d, q, k, v, pads, kv_map, gates, rope, scale, out, lse, dout, dq, dk, dv);
}

template void attention_forward<float>(const AttentionDims&, const float*, const float*, const float*, const std::int32_t*, const std::int32_t*, const float*, const RopeTable<float>&, float, float*, float*);
template void attention_forward_last<float>(const AttentionDims&, const float*, const float*, const float*, const std::int32_t*, const std::int32_t*, const float*, const RopeTable<float>&, float, float*);
template void attention_decode<float>(const AttentionDims&, const float*, const float*, const float*, std::int64_t, const std::int32_t*, std::int64_t, const std::int32_t*, const std::int32_t*, const float*, const RopeTable<float>&, float, float*);
template void attention_backward<float>(const AttentionDims&, const float*, const float*, const float*, const std::int32_t*, const std::int32_t*, const float*, const RopeTable<float>&, float, const float*, const float*, const float*, float*, float*, float*);
template void attention_forward<double>(const AttentionDims&, const double*, const double*, const double*, const std::int32_t*, const std::int32_t*, const double*, const RopeTable<double>&, double, double*, double*);
template void attention_forward_last<double>(const AttentionDims&, const double*, const double*, const double*, const std::int32_t*, const std::int32_t*, const double*, const RopeTable<double>&, double, double*);
template void attention_decode<double>(const AttentionDims&, const double*, const double*, const double*, std::int64_t, const std::int32_t*, std::int64_t, const std::int32_t*, const std::int32_t*, const double*, const RopeTable<double>&, double, double*);
template void attention_backward<double>(const AttentionDims&, const double*, const double*, const double*, const std::int32_t*, const std::int32_t*, const double*, const RopeTable<double>&, double, const double*, const double*, const double*, double*, double*, double*);

}  // namespace prunerec::kernels
