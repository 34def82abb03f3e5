#include "tensor/kernels/embedding.h"

#include <algorithm>

#include "tensor/kernels/isa.h"
#include "tensor/parallel.h"

// The kernels are written once, in embedding_impl.h, and compiled twice; the functions below
// call the copy the CPU runs best (tensor/kernels/compile_twice.h).
#define PRUNEREC_KERNEL_IMPL "tensor/kernels/embedding_impl.h"
#include "tensor/kernels/compile_twice.h"

namespace prunerec::kernels {

template <class T>
void embedding_gather(std::int64_t n, std::int64_t d, const T* table, const std::int32_t* ids, T* out) {
  return PRUNEREC_KERNEL_CALL(embedding_gather<T>, n, d, table, ids, out);
}

template <class T>
void embedding_scatter_add(std::int64_t n, std::int64_t d, std::int64_t V, const std::int32_t* ids, const T* dout, T* dtable) {
  return PRUNEREC_KERNEL_CALL(embedding_scatter_add<T>, n, d, V, ids, dout, dtable);
}

template void embedding_gather<float>(std::int64_t, std::int64_t, const float*, const std::int32_t*, float*);
template void embedding_scatter_add<float>(std::int64_t, std::int64_t, std::int64_t, const std::int32_t*, const float*, float*);
template void embedding_gather<double>(std::int64_t, std::int64_t, const double*, const std::int32_t*, double*);
template void embedding_scatter_add<double>(std::int64_t, std::int64_t, std::int64_t, const std::int32_t*, const double*, double*);

}  // namespace prunerec::kernels
