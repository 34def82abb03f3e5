// The threading policy: one pool, oneTBB's, owns the cores.
//
// Note [threading policy]: every parallel kernel runs its pieces as tasks in one
// tbb::task_arena whose concurrency is set_num_threads(n). OpenBLAS is told to use one
// thread per call at start-up; large GEMMs are split into row or column blocks, each a
// single-threaded sgemm call inside a TBB task (tensor/kernels/gemm.h). The OpenBLAS
// build must allow concurrent calls: Debian's pthread build does, its serial build does
// not (no USE_LOCKING: concurrent calls race on its buffer pool; details in
// cmake/PrunerecDependencies.cmake). So the two never oversubscribe
// the cores, and idle OpenBLAS threads never spin against TBB workers (on a 2-core
// machine a spinning BLAS pool costs a PyTorch step 25%; DESIGN.md section 7).
//
// Determinism: work is split by a rule that depends only on the sizes and the thread
// count, every output element has one writer, and reductions across pieces combine
// partial results in a fixed order. So the same inputs and thread count give the same
// bits, whatever the thread timing. Most kernels go further and split by size alone,
// which makes them independent of the thread count too.
//
//   prunerec::set_num_threads(2);
//   prunerec::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) { ... rows [lo,hi) ... });
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

namespace prunerec {

// Threads used by all kernels (default: the hardware concurrency, or $PRUNEREC_THREADS).
void set_num_threads(int n);
int num_threads();

namespace detail {
void run_parallel(std::int64_t begin, std::int64_t end, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body);
}  // namespace detail

// Runs body(lo, hi) over the pieces [begin + k*grain, begin + (k+1)*grain) covering
// [begin, end) (the last one shorter). The pieces depend only on the range and the grain,
// never on the thread count, so a kernel whose elements are computed piecewise gives the
// same bits with any number of threads. body must write disjoint outputs. Pieces run in
// order on the calling thread when there is one piece or one thread.
template <class F>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, F&& body) {
  if (end <= begin) return;
  if (grain < 1) grain = 1;
  if (end - begin <= grain) {
    body(begin, end);
    return;
  }
  if (num_threads() == 1) {
    for (std::int64_t lo = begin; lo < end; lo += grain) body(lo, std::min(end, lo + grain));
    return;
  }
  detail::run_parallel(begin, end, grain, std::function<void(std::int64_t, std::int64_t)>(body));
}

// Deterministic parallel sum: f(lo, hi) returns the partial sum of [lo, hi); pieces are
// fixed chunks of `chunk` elements (independent of the thread count), added in order.
double parallel_sum(std::int64_t n, std::int64_t chunk, const std::function<double(std::int64_t, std::int64_t)>& f);

}  // namespace prunerec
