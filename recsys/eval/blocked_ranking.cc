#include "recsys/eval/blocked_ranking.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>

#include "base/error.h"
#include "tensor/kernels/isa.h"
#include "tensor/parallel.h"

// GCC warns (-Wpsabi) that passing a 32-byte vector by value has a different ABI with and
// without AVX. The kernels' Lanes never cross a translation unit (they are internal and
// inlined), so no two builds ever disagree about a call; the warning is silenced here only.
#pragma GCC diagnostic ignored "-Wpsabi"

// The score kernels are written once, in ranking_dot_impl.h, and compiled twice; the
// functions below call the copy the CPU runs best (tensor/kernels/compile_twice.h).
#define PRUNEREC_KERNEL_IMPL "recsys/eval/ranking_dot_impl.h"
#include "tensor/kernels/compile_twice.h"

namespace prunerec::recsys {
namespace {

namespace baseline = kernels::baseline::ranking;  // PRUNEREC_KERNEL_CALL's two copies
#if PRUNEREC_KERNELS_AVX2
namespace avx2 = kernels::avx2::ranking;
#endif

struct Scored {
  float score;
  std::int32_t item;
};
// a ranks before b: higher score, then lower index.
inline bool before(const Scored& a, const Scored& b) {
  return a.score > b.score || (a.score == b.score && a.item < b.item);
}

// Running top-k: a heap whose front is the worst kept item, and its score as the floor of
// Note [reject before the offer].
class RunningTopK {
 public:
  explicit RunningTopK(int k) : k_(k) { heap_.reserve(static_cast<std::size_t>(k)); }
  // No item scoring below floor() can enter (nor a NaN).
  float floor() const { return floor_; }
  void offer(float score, std::int32_t item) {
    if (!(score >= floor_)) return;  // below the k-th, or NaN: never recommended
    const Scored s{score, item};
    if (static_cast<int>(heap_.size()) < k_) {
      heap_.push_back(s);
      std::push_heap(heap_.begin(), heap_.end(), before);
    } else if (before(s, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), before);
      heap_.back() = s;
      std::push_heap(heap_.begin(), heap_.end(), before);
    }
    if (static_cast<int>(heap_.size()) == k_) floor_ = heap_.front().score;
  }
  void merge(const RunningTopK& other) {
    for (const Scored& s : other.heap_) offer(s.score, s.item);
  }
  TopK sorted() const {
    std::vector<Scored> v = heap_;
    std::sort(v.begin(), v.end(), before);
    TopK out;
    for (const Scored& s : v) {
      out.items.push_back(s.item);
      out.scores.push_back(s.score);
    }
    return out;
  }

 private:
  int k_;
  float floor_ = -std::numeric_limits<float>::infinity();
  std::vector<Scored> heap_;
};

// h as contiguous f32 [B, d].
std::vector<float> users_f32(const Tensor& h, std::int64_t d) {
  PR_CHECK(h.defined() && h.dim() == 2 && h.size(1) == d && is_floating(h.dtype()), "blocked ranking: h ",
           h.defined() ? h.shape_str() : "undefined", " must be floating [B, ", d, "]");
  const Tensor hf = h.to(DType::f32).contiguous();
  return std::vector<float>(hf.data<float>(), hf.data<float>() + h.size(0) * d);
}

std::vector<std::vector<std::int32_t>> sorted_exclusions(const std::vector<std::vector<std::int32_t>>& excluded,
                                                         std::int64_t B, std::int64_t V) {
  PR_CHECK(excluded.empty() || static_cast<std::int64_t>(excluded.size()) == B, "blocked ranking: ", excluded.size(),
           " exclusion lists for ", B, " users");
  std::vector<std::vector<std::int32_t>> out(static_cast<std::size_t>(B));
  for (std::size_t b = 0; b < excluded.size(); ++b) {
    out[b] = excluded[b];
    for (std::int32_t j : out[b])
      PR_CHECK(j >= 0 && j < V, "blocked ranking: excluded item ", j, " of user ", b, " is out of range for ", V, " items");
    std::sort(out[b].begin(), out[b].end());
    out[b].erase(std::unique(out[b].begin(), out[b].end()), out[b].end());
  }
  return out;
}

// A user's place in their sorted exclusion list, moved forward with the items.
struct ExclusionCursor {
  const std::vector<std::int32_t>* list;
  std::size_t next;
  ExclusionCursor(const std::vector<std::int32_t>& sorted, std::int64_t first)
      : list(&sorted), next(static_cast<std::size_t>(std::lower_bound(sorted.begin(), sorted.end(), first) - sorted.begin())) {}
  // Whether item j is excluded; items must come in ascending order.
  bool excludes(std::int64_t j) {
    while (next < list->size() && (*list)[next] < j) ++next;
    return next < list->size() && (*list)[next] == j;
  }
};

std::vector<ExclusionCursor> cursors(const std::vector<std::vector<std::int32_t>>& ex, std::int64_t first) {
  std::vector<ExclusionCursor> out;
  out.reserve(ex.size());
  for (const auto& e : ex) out.emplace_back(e, first);
  return out;
}

// The pass of Note [blocked ranking]: the items [0, V) in tasks of blocks.task_items, run
// in parallel. Each task makes its state with start(first item), then for every block
// [j0, j0 + n) and every user b calls consume(state, b, j0, scores, n), scores[i] being
// dot8(h_b, row j0 + i); at the end finish(state) runs under a lock. The users take turns
// on a block while its rows are still in cache.
template <class Start, class Consume, class Finish>
void score_pass(const std::vector<float>& hf, std::int64_t B, const ServingTable& table, const RankingBlocks& blocks,
                Start&& start, Consume&& consume, Finish&& finish) {
  PR_CHECK_T(ConfigError, blocks.task_items > 0 && blocks.block_items > 0, "blocked ranking: block sizes must be positive, got ",
             blocks.task_items, " items per task and ", blocks.block_items, " per block");
  const std::int64_t d = table.dim(), V = table.items();
  const std::int64_t tasks = (V + blocks.task_items - 1) / blocks.task_items, block = blocks.block_items;
  std::mutex finish_mutex;
  parallel_for(0, tasks, 1, [&](std::int64_t lo, std::int64_t hi) {
    auto state = start(lo * blocks.task_items);
    std::vector<float> scores(static_cast<std::size_t>(block));
    const std::int64_t end = std::min(V, hi * blocks.task_items);
    for (std::int64_t j0 = lo * blocks.task_items; j0 < end; j0 += block) {
      const std::int64_t n = std::min(end - j0, block);
      for (std::int64_t b = 0; b < B; ++b) {
        table.score(hf.data() + b * d, j0, j0 + n, scores.data());
        consume(state, b, j0, scores.data(), n);
      }
    }
    std::lock_guard<std::mutex> lock(finish_mutex);
    finish(state);
  });
}

}  // namespace

std::uint16_t f32_to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<std::uint16_t>(u >> 16);
}

float dot8(const float* h, const float* w, std::int64_t d) { return PRUNEREC_KERNEL_CALL(dot8<float>, h, w, d); }

void item_dot(const float* h, const float* w, std::int64_t n, std::int64_t d, float* out) {
  PRUNEREC_KERNEL_CALL(item_dot<float>, h, w, n, d, out);
}

void item_dot(const float* h, const std::uint16_t* w, std::int64_t n, std::int64_t d, float* out) {
  PRUNEREC_KERNEL_CALL(item_dot<std::uint16_t>, h, w, n, d, out);
}

ServingTable::ServingTable(const Tensor& weight, TableFormat format) : format_(format) {
  PR_CHECK(weight.defined() && weight.dim() == 2 && is_floating(weight.dtype()), "serving table: weight ",
           weight.defined() ? weight.shape_str() : "undefined", " must be floating [V, d]");
  items_ = weight.size(0);
  dim_ = weight.size(1);
  const Tensor w = weight.to(DType::f32).contiguous();
  const float* p = w.data<float>();
  if (format == TableFormat::kF32) {
    f32_ = w;
  } else {
    bf16_.resize(static_cast<std::size_t>(w.numel()));
    for (std::int64_t i = 0; i < w.numel(); ++i) bf16_[i] = f32_to_bf16(p[i]);
  }
}

std::int64_t ServingTable::bytes() const {
  return format_ == TableFormat::kF32 ? f32_.numel() * static_cast<std::int64_t>(sizeof(float))
                                      : static_cast<std::int64_t>(bf16_.size() * sizeof(std::uint16_t));
}

void ServingTable::rows_f32(std::int64_t j0, std::int64_t j1, float* out) const {
  const std::int64_t n = (j1 - j0) * dim_;
  if (format_ == TableFormat::kF32)
    std::memcpy(out, f32_.data<float>() + j0 * dim_, static_cast<std::size_t>(n) * sizeof(float));
  else
    PRUNEREC_KERNEL_CALL(widen_bf16, bf16_.data() + j0 * dim_, n, out);
}

void ServingTable::score(const float* h, std::int64_t j0, std::int64_t j1, float* out) const {
  if (format_ == TableFormat::kF32)
    item_dot(h, f32_.data<float>() + j0 * dim_, j1 - j0, dim_, out);
  else
    item_dot(h, bf16_.data() + j0 * dim_, j1 - j0, dim_, out);
}

std::vector<TopK> blocked_top_k(const Tensor& h, const ServingTable& table, int k,
                                const std::vector<std::vector<std::int32_t>>& excluded, const RankingBlocks& blocks) {
  PR_CHECK_T(ConfigError, k > 0, "blocked_top_k: k must be positive, got ", k);
  const std::int64_t d = table.dim(), V = table.items();
  const std::vector<float> hf = users_f32(h, d);
  const std::int64_t B = h.size(0);
  const auto ex = sorted_exclusions(excluded, B, V);
  std::vector<RunningTopK> best(static_cast<std::size_t>(B), RunningTopK(k));
  struct Task {
    std::vector<RunningTopK> top;
    std::vector<ExclusionCursor> excluded;
  };
  score_pass(
      hf, B, table, blocks,
      [&](std::int64_t first) { return Task{std::vector<RunningTopK>(static_cast<std::size_t>(B), RunningTopK(k)), cursors(ex, first)}; },
      [&](Task& task, std::int64_t b, std::int64_t j0, const float* scores, std::int64_t n) {
        RunningTopK& top = task.top[b];
        float floor = top.floor();
        for (std::int64_t i = 0; i < n; ++i) {
          if (!(scores[i] >= floor)) continue;  // Note [reject before the offer]
          if (task.excluded[b].excludes(j0 + i)) continue;
          top.offer(scores[i], static_cast<std::int32_t>(j0 + i));
          floor = top.floor();
        }
      },
      // Merging is exact in any order: the order of items is total (score, then index).
      [&](const Task& task) {
        for (std::int64_t b = 0; b < B; ++b) best[b].merge(task.top[b]);
      });
  std::vector<TopK> out;
  out.reserve(static_cast<std::size_t>(B));
  for (const RunningTopK& r : best) out.push_back(r.sorted());
  return out;
}

std::vector<std::int64_t> blocked_target_ranks(const Tensor& h, const ServingTable& table,
                                               std::span<const std::int32_t> targets,
                                               const std::vector<std::vector<std::int32_t>>& excluded,
                                               const RankingBlocks& blocks) {
  const std::int64_t d = table.dim(), V = table.items();
  const std::vector<float> hf = users_f32(h, d);
  const std::int64_t B = h.size(0);
  PR_CHECK(static_cast<std::int64_t>(targets.size()) == B, "blocked_target_ranks: ", targets.size(), " targets for ", B,
           " users");
  const auto ex = sorted_exclusions(excluded, B, V);
  // The target's own score, through the same dot (Note [blocked ranking]).
  std::vector<float> target_score(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    PR_CHECK(targets[b] >= 0 && targets[b] < V, "blocked_target_ranks: target ", targets[b], " of user ", b,
             " is out of range for ", V, " items");
    table.score(hf.data() + b * d, targets[b], targets[b] + 1, &target_score[b]);
  }
  std::vector<std::int64_t> ranks(static_cast<std::size_t>(B), 0);
  struct Task {
    std::vector<std::int64_t> ahead;  // per user: items counted so far
    std::vector<ExclusionCursor> excluded;
  };
  score_pass(
      hf, B, table, blocks,
      [&](std::int64_t first) { return Task{std::vector<std::int64_t>(static_cast<std::size_t>(B), 0), cursors(ex, first)}; },
      [&](Task& task, std::int64_t b, std::int64_t j0, const float* scores, std::int64_t n) {
        // Count every item with !(s < s_t) (ties and NaN count) without a branch, then take
        // back the target and the excluded items among them: they are few, and whether a
        // score passes is a coin toss the branch predictor would lose.
        const float target = target_score[b];
        std::int64_t ahead = 0;
        for (std::int64_t i = 0; i < n; ++i) ahead += !(scores[i] < target);
        if (targets[b] >= j0 && targets[b] < j0 + n) --ahead;  // the target's own !(s_t < s_t)
        ExclusionCursor& cursor = task.excluded[b];
        for (; cursor.next < cursor.list->size() && (*cursor.list)[cursor.next] < j0 + n; ++cursor.next) {
          const std::int32_t j = (*cursor.list)[cursor.next];
          if (j >= j0 && j != targets[b] && !(scores[j - j0] < target)) --ahead;
        }
        task.ahead[b] += ahead;
      },
      [&](const Task& task) {
        for (std::int64_t b = 0; b < B; ++b) ranks[b] += task.ahead[b];
      });
  return ranks;
}

EvalResult evaluate_blocked(const nn::Transformer& net, const SequenceDataset& data, const DataSplit& split,
                            const EvalOptions& options, Progress* progress) {
  const auto t0 = std::chrono::steady_clock::now();
  Protocol protocol = options.protocol;
  protocol.split_kind = split.kind;
  validate(protocol);
  PR_CHECK_T(ConfigError, protocol.ranking != "sampled", "evaluate: blocked ranking is for full ranking only");
  PR_CHECK_T(ConfigError, protocol.split == "valid" || protocol.split == "test", "evaluate: split must be valid or test, got '",
             protocol.split, "'");
  PR_CHECK_T(ConfigError, net.vocab_size() == split.num_items, "evaluate: model scores ", net.vocab_size(),
             " items but the data has ", split.num_items);
  const std::vector<EvalExample>& all = protocol.split == "valid" ? split.valid : split.test;
  const std::int64_t n = options.limit > 0 ? std::min<std::int64_t>(options.limit, all.size()) : all.size();
  PR_CHECK_T(ConfigError, n > 0, "evaluate: the ", protocol.split, " split has no examples");
  PR_CHECK_T(ConfigError, options.batch_size > 0 && options.max_len > 0, "evaluate: batch_size and max_len must be positive");
  // The same batching by history length as evaluate().
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  auto len = [&](std::int64_t i) { return std::min<std::int64_t>(options.max_len, all[i].prefix_len); };
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return len(a) < len(b); });
  const ServingTable table(net.output_weight().value(),
                           options.protocol.item_table == "bf16" ? TableFormat::kBf16 : TableFormat::kF32);
  std::vector<std::int64_t> ranks(static_cast<std::size_t>(n), 0);
  Communicator& comm = options.comm ? *options.comm : world();  // Note [data-parallel evaluation]
  for (std::int64_t b0 = 0; b0 < n; b0 += options.batch_size) {
    if ((b0 / options.batch_size) % comm.size() != comm.rank()) continue;
    const std::vector<std::int64_t> rows(order.begin() + b0, order.begin() + std::min<std::int64_t>(n, b0 + options.batch_size));
    const Batch batch = make_eval_batch(data, all, rows, options.max_len);
    Tensor h;
    {
      ag::NoGradGuard no_grad;
      h = net.last_hidden(batch.ids, batch.pads);
    }
    std::vector<std::int32_t> targets;
    std::vector<std::vector<std::int32_t>> histories(rows.size());
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const EvalExample& e = all[rows[r]];
      targets.push_back(e.target);
      if (protocol.exclude_history) {
        const auto& seq = data.sequences[e.user];
        histories[r].assign(seq.begin(), seq.begin() + e.prefix_len);
      }
    }
    const std::vector<std::int64_t> batch_ranks = blocked_target_ranks(h, table, targets, histories);
    for (std::size_t r = 0; r < rows.size(); ++r) ranks[rows[r]] = batch_ranks[r];
    if (progress) progress->update(b0 + static_cast<std::int64_t>(rows.size()), "");
  }
  if (comm.size() > 1) comm.allreduce_sum(ranks.data(), n);
  EvalResult result = result_from_ranks(protocol, std::move(ranks), all);  // ranks and users too: --per-user
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace prunerec::recsys
