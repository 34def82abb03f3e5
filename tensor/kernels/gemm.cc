#include "tensor/kernels/gemm.h"

#include <cblas.h>

#include <algorithm>

#include "tensor/parallel.h"

namespace prunerec::kernels {
namespace {

inline void blas(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
                 const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta,
                 float* C, std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

inline void blas(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, double alpha,
                 const double* A, std::int64_t lda, const double* B, std::int64_t ldb, double beta,
                 double* C, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

// Below this many multiply-adds a product runs as one call: the task overhead (~10 us)
// would outweigh the split.
constexpr std::int64_t kSplitMinWork = std::int64_t{1} << 18;
// Blocks are multiples of this many rows/columns (the widest OpenBLAS micro-tile on x86).
constexpr std::int64_t kBlockAlign = 16;
// At most this many blocks: enough to keep 8 threads busy, few enough that each call
// still amortises its packing of the other operand.
constexpr std::int64_t kMaxPieces = 8;
constexpr std::int64_t kMinBlock = 128;

}  // namespace

template <class T>
void gemm_serial(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, T alpha, const T* A,
                 std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // C = beta * C
    for (std::int64_t i = 0; i < M; ++i)
      for (std::int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  blas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <class T>
void gemm(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, T alpha, const T* A, std::int64_t lda,
          const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
  // Note [GEMM splitting]: the blocks depend on the shape only (never the thread count),
  // so 1 and 8 threads make the same BLAS calls and give the same bits.
  // Each piece repacks the operand shared by all pieces (B when splitting rows), so
  // pieces are at least kMinBlock rows (columns) long: thinner ones cost more in packing
  // than a second thread gains (a 256x256x3200 weight gradient in 8 pieces of 32 rows
  // ran at 46 GFLOP/s against 131 in one call).
  const std::int64_t work = M * N * std::max<std::int64_t>(K, 1);
  const bool split_rows = M >= N;
  const std::int64_t len = split_rows ? M : N;
  const std::int64_t pieces_wanted =
      std::clamp<std::int64_t>(std::min(work / kSplitMinWork, len / kMinBlock), 1, kMaxPieces);
  std::int64_t block = (len + pieces_wanted - 1) / pieces_wanted;
  block = (block + kBlockAlign - 1) / kBlockAlign * kBlockAlign;
  if (pieces_wanted == 1 || block >= len) {
    gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const std::int64_t pieces = (len + block - 1) / block;
  parallel_for(0, pieces, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p) {
      const std::int64_t s = p * block, n = std::min(block, len - s);
      if (split_rows) {
        const T* a = ta ? A + s : A + s * lda;
        gemm_serial(ta, tb, n, N, K, alpha, a, lda, B, ldb, beta, C + s * ldc, ldc);
      } else {
        const T* b = tb ? B + s * ldb : B + s;
        gemm_serial(ta, tb, M, n, K, alpha, A, lda, b, ldb, beta, C + s, ldc);
      }
    }
  });
}

template <class T>
void gemm_batched(std::int64_t batch, bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K,
                  T alpha, const T* A, std::int64_t lda, std::int64_t stride_a, const T* B, std::int64_t ldb,
                  std::int64_t stride_b, T beta, T* C, std::int64_t ldc, std::int64_t stride_c) {
  if (batch <= 0) return;
  if (batch < kMaxPieces) {
    for (std::int64_t b = 0; b < batch; ++b)
      gemm(ta, tb, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb, beta, C + b * stride_c, ldc);
    return;
  }
  const std::int64_t work = std::max<std::int64_t>(M * N * std::max<std::int64_t>(K, 1), 1);
  const std::int64_t grain = std::max<std::int64_t>(1, kSplitMinWork / work);
  parallel_for(0, batch, grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t b = lo; b < hi; ++b)
      gemm_serial(ta, tb, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb, beta, C + b * stride_c, ldc);
  });
}

template <class T>
void gemm_ref(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, T alpha, const T* A,
              std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
  for (std::int64_t i = 0; i < M; ++i) {
    for (std::int64_t j = 0; j < N; ++j) {
      T acc = 0;
      for (std::int64_t k = 0; k < K; ++k) {
        const T a = ta ? A[k * lda + i] : A[i * lda + k];
        const T b = tb ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      C[i * ldc + j] = alpha * acc + (beta == T(0) ? T(0) : beta * C[i * ldc + j]);
    }
  }
}

#define PR_INSTANTIATE_GEMM(T)                                                                           \
  template void gemm<T>(bool, bool, std::int64_t, std::int64_t, std::int64_t, T, const T*, std::int64_t,  \
                        const T*, std::int64_t, T, T*, std::int64_t);                                    \
  template void gemm_serial<T>(bool, bool, std::int64_t, std::int64_t, std::int64_t, T, const T*,        \
                               std::int64_t, const T*, std::int64_t, T, T*, std::int64_t);               \
  template void gemm_ref<T>(bool, bool, std::int64_t, std::int64_t, std::int64_t, T, const T*,           \
                            std::int64_t, const T*, std::int64_t, T, T*, std::int64_t);                  \
  template void gemm_batched<T>(std::int64_t, bool, bool, std::int64_t, std::int64_t, std::int64_t, T,   \
                                const T*, std::int64_t, std::int64_t, const T*, std::int64_t,            \
                                std::int64_t, T, T*, std::int64_t, std::int64_t);
PR_INSTANTIATE_GEMM(float)
PR_INSTANTIATE_GEMM(double)

}  // namespace prunerec::kernels
