#include "tensor/parallel.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/error.h"

extern "C" void openblas_set_num_threads(int);  // present in serial and threaded OpenBLAS

namespace prunerec {
namespace {

int default_threads() {
  if (const char* env = std::getenv("PRUNEREC_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

struct Pool {
  std::mutex mu;
  int threads = 0;
  std::unique_ptr<tbb::task_arena> arena;
};

Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool;  // leaked on purpose: usable during static destruction
    q->threads = default_threads();
    q->arena = std::make_unique<tbb::task_arena>(q->threads);
    openblas_set_num_threads(1);  // Note [threading policy]
    return q;
  }();
  return *p;
}

}  // namespace

void set_num_threads(int n) {
  PR_CHECK_T(ConfigError, n >= 1 && n <= 1024, "set_num_threads: ", n, " is not in [1, 1024]");
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  if (p.threads == n) return;
  p.threads = n;
  p.arena = std::make_unique<tbb::task_arena>(n);
}

int num_threads() { return pool().threads; }

namespace detail {
void run_parallel(std::int64_t begin, std::int64_t end, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body) {
  const std::int64_t pieces = (end - begin + grain - 1) / grain;
  pool().arena->execute([&] {
    tbb::parallel_for(
        tbb::blocked_range<std::int64_t>(0, pieces, 1),
        [&](const tbb::blocked_range<std::int64_t>& r) {
          for (std::int64_t p = r.begin(); p < r.end(); ++p)
            body(begin + p * grain, std::min(end, begin + (p + 1) * grain));
        },
        tbb::static_partitioner());
  });
}
}  // namespace detail

double parallel_sum(std::int64_t n, std::int64_t chunk, const std::function<double(std::int64_t, std::int64_t)>& f) {
  if (n <= 0) return 0.0;
  if (chunk < 1) chunk = 1;
  const std::int64_t pieces = (n + chunk - 1) / chunk;
  std::vector<double> partial(static_cast<std::size_t>(pieces), 0.0);
  parallel_for(0, pieces, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p) partial[p] = f(p * chunk, std::min(n, (p + 1) * chunk));
  });
  double total = 0.0;
  for (double v : partial) total += v;
  return total;
}

}  // namespace prunerec
