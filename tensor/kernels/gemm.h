// Matrix products on raw row-major pointers, through OpenBLAS (cblas_sgemm / cblas_dgemm).
//
//   C[M,N] = alpha * op(A) @ op(B) + beta * C,   op(A) is [M,K], op(B) is [K,N]
//   A is [M,K] (lda >= K) or, transposed, [K,M] (lda >= M); B likewise; ldc >= N.
//
// Note [GEMM splitting]: under the threading policy (tensor/parallel.h) OpenBLAS runs one
// thread per call. gemm() splits a large product into up to 8 row blocks of C (or column
// blocks when C is wide and short), one sgemm call per block, run as TBB tasks. Every
// element of C is written by exactly one call. OpenBLAS's summation order for an element
// can depend on the size of the call it is in (edge tiles), so the blocks are chosen from
// the shape alone, never the thread count: any number of threads gives the same bits.
//
// Kernels check nothing: callers check shapes. gemm_ref is the plain triple loop that
// tests and benchmarks compare against.
#pragma once

#include <cstdint>

namespace prunerec::kernels {

template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
          const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc);

// The same product on one thread (for use inside other parallel kernels).
template <class T>
void gemm_serial(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
                 const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc);

// batch independent products; matrix b of A starts at A + b * stride_a, etc. Spread over
// the batch when it is large enough, otherwise each product is split as in gemm().
template <class T>
void gemm_batched(std::int64_t batch, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N,
                  std::int64_t K, T alpha, const T* A, std::int64_t lda, std::int64_t stride_a,
                  const T* B, std::int64_t ldb, std::int64_t stride_b, T beta, T* C, std::int64_t ldc,
                  std::int64_t stride_c);

// Reference twin: plain loops, accumulation in the same type.
template <class T>
void gemm_ref(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
              const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc);

}  // namespace prunerec::kernels
