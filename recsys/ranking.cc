#include "recsys/ranking.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "base/error.h"
#include "autograd/var.h"
#include "recsys/batching.h"
#include "recsys/eval/blocked_ranking.h"
#include "recsys/eval/metrics.h"
#include "recsys/recommender.h"

namespace prunerec::recsys {

std::vector<std::int32_t> history_exclusion(std::span<const std::int32_t> history) {
  std::vector<std::int32_t> excluded(history.begin(), history.end());
  std::sort(excluded.begin(), excluded.end());
  excluded.erase(std::unique(excluded.begin(), excluded.end()), excluded.end());
  return excluded;
}

std::vector<std::vector<ScoredItem>> top_items_batch(const nn::Transformer& net,
                                                     const std::vector<std::vector<std::int32_t>>& histories, int k,
                                                     bool exclude_history, RankingPath path) {
  PR_CHECK_T(ConfigError, k > 0, "top_items_batch: k must be positive, got ", k);
  const std::size_t n = histories.size();
  for (std::size_t i = 0; i < n; ++i)
    PR_CHECK_T(ShapeError, !histories[i].empty(), "top_items_batch: history ", i, " is empty");
  const auto max_len = static_cast<std::size_t>(net.config().max_len());
  // Histories of similar read length share a batch (little padding). The order depends
  // only on the lengths, so the same call always makes the same batches.
  auto read_len = [&](std::size_t i) { return std::min(histories[i].size(), max_len); };
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return read_len(a) < read_len(b); });

  std::vector<std::vector<ScoredItem>> out(n);
  const auto num_items = static_cast<std::int32_t>(net.vocab_size());
  const bool blocked = path == RankingPath::kBlocked || (path == RankingPath::kAuto && num_items >= kBlockedEvalFrom);
  std::optional<ServingTable> table;
  if (blocked) table.emplace(net.output_weight().value(), TableFormat::kF32);  // no copy for an f32 model
  for (std::size_t lo = 0; lo < n; lo += kHistoryChunk) {
    const std::size_t hi = std::min(n, lo + kHistoryChunk);
    std::vector<std::vector<std::int32_t>> chunk;
    chunk.reserve(hi - lo);
    for (std::size_t j = lo; j < hi; ++j) chunk.push_back(histories[order[j]]);
    const Batch b = make_history_batch(chunk, static_cast<int>(max_len));
    if (blocked) {
      std::vector<std::vector<std::int32_t>> excluded;
      if (exclude_history)
        for (const auto& h : chunk) excluded.push_back(history_exclusion(h));
      Tensor h;
      {
        ag::NoGradGuard no_grad;
        h = net.last_hidden(b.ids, b.pads).to(DType::f32).contiguous();  // [rows, d]
      }
      const std::vector<TopK> top = blocked_top_k(h, *table, k, excluded);
      for (std::size_t j = lo; j < hi; ++j) {
        const TopK& t = top[j - lo];
        for (std::size_t r = 0; r < t.items.size(); ++r) out[order[j]].push_back({t.items[r], t.scores[r]});
      }
      continue;
    }
    const Tensor scores = next_item_scores(net, b.ids, b.pads).to(DType::f32).contiguous();  // [rows, V]
    for (std::size_t j = lo; j < hi; ++j) {
      const std::size_t i = order[j];
      const std::vector<std::int32_t> excluded =
          exclude_history ? history_exclusion(histories[i]) : std::vector<std::int32_t>{};
      const float* row = scores.data<float>() + static_cast<std::int64_t>(j - lo) * num_items;
      for (const auto& [item, score] : top_k(row, num_items, k, excluded)) out[i].push_back({item, score});
    }
  }
  return out;
}

}  // namespace prunerec::recsys
