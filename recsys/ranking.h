// Top-k next items for many histories at once, and what history exclusion removes: the
// ranking behind recommend() here and the embedding API's recommend_batch().
//
//   std::vector<std::vector<ScoredItem>> top =
//       top_items_batch(net, {{3, 17, 4}, {99}}, /*k=*/10, /*exclude_history=*/true);
//   top[1][0].item   // the best next item after history {99} (dense index)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "nn/transformer.h"

namespace prunerec::recsys {

struct ScoredItem {
  std::int32_t item = 0;  // dense index into the catalogue
  float score = 0;        // the model's logit
};

// The items a history excludes from its answer (Note [history exclusion] in
// recsys/eval/metrics.h): its distinct items, sorted.
std::vector<std::int32_t> history_exclusion(std::span<const std::int32_t> history);

// Histories per forward pass in top_items_batch: large enough to amortise the output
// product over the catalogue, small enough that [chunk, items] scores stay a few MB.
inline constexpr std::size_t kHistoryChunk = 64;

// How the catalogue is scored. kAuto: dense below kBlockedEvalFrom items (a [chunk, items]
// score matrix through one GEMM, fastest for small catalogues), blocked from there on
// (recsys/eval/blocked_ranking.h: item blocks with a running top-k per history, memory
// independent of the catalogue's size; scores are its fixed-order dot products, so they
// may differ from the dense ones in the last bits, and items only between near-ties).
enum class RankingPath { kAuto, kDense, kBlocked };

// The k best next items after each history (dense indices, oldest first, each non-empty;
// only the newest max_len items are read), best first, ties to the lower index, NaN never
// returned; with exclude_history the history's own items are left out. result[i] answers
// histories[i]. Histories of similar read length share a forward pass (chunks of
// kHistoryChunk, grouped by a stable sort on the length), so the same call always makes
// the same batches and gives the same bits. Scores may differ in the last bits from a
// one-history call (matrix products of another size sum in another order); the items do
// not, except between near-ties. ConfigError when k <= 0, ShapeError for an empty history.
std::vector<std::vector<ScoredItem>> top_items_batch(const nn::Transformer& net,
                                                     const std::vector<std::vector<std::int32_t>>& histories, int k,
                                                     bool exclude_history, RankingPath path = RankingPath::kAuto);

}  // namespace prunerec::recsys
