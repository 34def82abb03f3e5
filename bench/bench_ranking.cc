// One user's top-10 over a large item table (recsys/eval/blocked_ranking.h, issue 17):
// the serving path, blocked_top_k on one user (item_dot, eight item rows per pass over the
// user's vector, and the k-th score compared before the heap offer: Note [item dot],
// Note [reject before the offer]), next to its naive twin, the path it replaced (one
// dot8 per item on a block copied or widened to f32, every score offered to the heap).
//
//   build/bench/bench_ranking                                  # everything, ~20 s
//   build/bench/bench_ranking --benchmark_filter='/1000000/'
//
// Names: top10/<path>/<table>/<items>/<isa>
//   path   item_dot  blocked_top_k(h [1, 64], table, 10, history)
//          dot8      the twin: 512-item pieces in parallel, each block through rows_f32,
//                    dot8 per item, every non-excluded score offered to a size-10 heap
//                    (the code of commit e95fb5f; there dot8 was built for the baseline
//                    only, so dot8/.../baseline is the old path and item_dot/.../avx2+fma
//                    the new one on an AVX2 machine)
//   table  f32 or bf16 (ServingTable), [items, 64], random N(0, 1) rows
//   isa    the instruction set of the score kernels (Note [kernel dispatch])
// The user has a history of 50 items, excluded as in serving. Times are wall clock
// (UseRealTime: the work runs on the engine's threads). bytes/s counts the table read once
// per top-10 (ServingTable::bytes); compare it with the read bandwidth that
// `prunerec bench --preset catalogue` measures.
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "recsys/eval/blocked_ranking.h"
#include "tensor/kernels/isa.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace prunerec::recsys {
namespace {

constexpr std::int64_t kDim = 64;      // the catalogue bench's model width
constexpr int kTop = 10;
constexpr std::int64_t kHistory = 50;  // the catalogue bench's max_len
constexpr std::int64_t kOldBlock = 512;

// The tables, built once per size (a 1,000,000-item f32 table is 256 MB).
struct Tables {
  std::unique_ptr<ServingTable> f32, bf16;
};
const Tables& tables(std::int64_t items) {
  static std::map<std::int64_t, Tables> cache;
  Tables& t = cache[items];
  if (!t.f32) {
    Tensor w = Tensor::empty({items, kDim}, DType::f32);
    fill_normal(w, 0.0, 1.0, /*seed=*/1, /*stream=*/items);
    t.f32 = std::make_unique<ServingTable>(w, TableFormat::kF32);
    t.bf16 = std::make_unique<ServingTable>(w, TableFormat::kBf16);
  }
  return t;
}

// The twin: one user's top-k as blocked_top_k computed it before item_dot.
std::vector<std::int32_t> dot8_top_k(const float* h, const ServingTable& table, int k,
                                     const std::vector<std::int32_t>& excluded_sorted) {
  using Entry = std::pair<float, std::int32_t>;
  // a ranks before b: higher score, then lower index; the heap's front is the worst kept.
  auto before = [](const Entry& a, const Entry& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  const std::int64_t d = table.dim(), V = table.items();
  std::vector<Entry> best;
  std::mutex merge_mutex;
  parallel_for(0, (V + kOldBlock - 1) / kOldBlock, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<Entry> heap;
    std::vector<float> rows(static_cast<std::size_t>(kOldBlock * d));
    auto cursor = std::lower_bound(excluded_sorted.begin(), excluded_sorted.end(), lo * kOldBlock);
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      const std::int64_t j0 = blk * kOldBlock, j1 = std::min(V, j0 + kOldBlock);
      table.rows_f32(j0, j1, rows.data());
      for (std::int64_t j = j0; j < j1; ++j) {
        const Entry s{dot8(h, rows.data() + (j - j0) * d, d), static_cast<std::int32_t>(j)};
        while (cursor != excluded_sorted.end() && *cursor < j) ++cursor;
        if ((cursor != excluded_sorted.end() && *cursor == j) || s.first != s.first) continue;
        if (static_cast<int>(heap.size()) < k) {
          heap.push_back(s);
          std::push_heap(heap.begin(), heap.end(), before);
        } else if (before(s, heap.front())) {
          std::pop_heap(heap.begin(), heap.end(), before);
          heap.back() = s;
          std::push_heap(heap.begin(), heap.end(), before);
        }
      }
    }
    std::lock_guard<std::mutex> lock(merge_mutex);
    best.insert(best.end(), heap.begin(), heap.end());
  });
  std::sort(best.begin(), best.end(), before);
  std::vector<std::int32_t> out;
  for (std::size_t i = 0; i < best.size() && static_cast<int>(i) < k; ++i) out.push_back(best[i].second);
  return out;
}

void top10(benchmark::State& state, std::int64_t items, TableFormat format, bool item_dot_path, kernels::Isa isa) {
  const Tables& t = tables(items);
  const ServingTable& table = format == TableFormat::kF32 ? *t.f32 : *t.bf16;
  Tensor h = Tensor::empty({1, kDim}, DType::f32);
  fill_normal(h, 0.0, 1.0, /*seed=*/2, /*stream=*/0);
  Rng rng(3);
  std::vector<std::vector<std::int32_t>> history(1);
  for (std::int64_t i = 0; i < kHistory; ++i) history[0].push_back(static_cast<std::int32_t>(rng.below(items)));
  std::vector<std::int32_t> sorted = history[0];
  std::sort(sorted.begin(), sorted.end());
  const kernels::Isa active = kernels::active_isa();
  kernels::set_isa(isa);
  // The two paths agree (the tests check it bit for bit); a bench that disagrees is void.
  if (blocked_top_k(h, table, kTop, history)[0].items != dot8_top_k(h.data<float>(), table, kTop, sorted))
    state.SkipWithError("item_dot and dot8 paths disagree");
  for (auto _ : state) {
    if (item_dot_path) {
      auto top = blocked_top_k(h, table, kTop, history);
      benchmark::DoNotOptimize(top.data());
    } else {
      auto top = dot8_top_k(h.data<float>(), table, kTop, sorted);
      benchmark::DoNotOptimize(top.data());
    }
  }
  kernels::set_isa(active);
  state.SetBytesProcessed(state.iterations() * table.bytes());
}

void register_all() {
  std::vector<kernels::Isa> isas{kernels::Isa::kBaseline};
  if (kernels::isa_supported(kernels::Isa::kAvx2Fma)) isas.push_back(kernels::Isa::kAvx2Fma);
  for (std::int64_t items : {100000, 1000000})
    for (TableFormat format : {TableFormat::kF32, TableFormat::kBf16})
      for (bool item_dot_path : {false, true})
        for (kernels::Isa isa : isas) {
          const std::string name = std::string("top10/") + (item_dot_path ? "item_dot/" : "dot8/") +
                                   (format == TableFormat::kF32 ? "f32/" : "bf16/") + std::to_string(items) + "/" +
                                   kernels::isa_name(isa);
          benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { top10(st, items, format, item_dot_path, isa); })
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond)
              ->MinTime(0.3);
        }
}

}  // namespace
}  // namespace prunerec::recsys

int main(int argc, char** argv) {
  return prunerec::bench::run(argc, argv, [] { prunerec::recsys::register_all(); });
}
