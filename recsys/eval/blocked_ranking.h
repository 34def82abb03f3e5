// Ranking a large catalogue in item blocks: top-k recommendation and target ranks for
// evaluation, with a running top-k per user and history exclusion from sorted lists, so
// neither a users x items score matrix nor a dense exclusion mask is ever built.
//
//   ServingTable table(net.output_weight().value(), TableFormat::kBf16);   // [V, d] item table
//   auto top = blocked_top_k(h, table, 10, histories);    // h f32 [B, d] -> B lists of 10
//   auto ranks = blocked_target_ranks(h, table, targets, histories);  // evaluation
//
// Note [blocked ranking]: users are taken in groups of four and items one block at a time
// (kItemBlock rows, widened to f32 when the table is bf16, so the block stays in L2). The
// score of (user, item) is one fixed-order dot product, dot8(h, w): eight lanes over the
// width, combined in a fixed tree; every score goes through the same instructions whatever
// the block, the group or the thread, so a score is a pure function of (h, w) and the
// blocked result equals a full sort of the same scores (tests/recsys/blocked_ranking_test.cc).
// The table is read once per group of users and per pass; one user at a time (serving)
// is a pass over the table at memory speed, which `prunerec bench --preset catalogue`
// measures against the machine's read bandwidth.
//
// Order and ties: a top-k list is sorted by score, descending, ties by item index
// ascending; an item whose score is NaN is never recommended. A target's rank follows the
// evaluator's pessimistic rule (Note [pessimistic ties] in recsys/eval/metrics.h): the
// number of other, non-excluded items j with !(s_j < s_target).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "recsys/eval/evaluator.h"
#include "tensor/tensor.h"

namespace prunerec::recsys {

enum class TableFormat { kF32, kBf16 };

// The item table for serving: [V, d] f32 (sharing the weight's storage when it is f32 and
// contiguous: no copy), or bf16 (round to nearest even; half the bytes, a copy).
class ServingTable {
 public:
  ServingTable(const Tensor& weight, TableFormat format);  // weight: floating [V, d]
  std::int64_t items() const { return items_; }
  std::int64_t dim() const { return dim_; }
  TableFormat format() const { return format_; }
  std::int64_t bytes() const;
  // Rows [j0, j1) as f32 into out [(j1 - j0), d].
  void rows_f32(std::int64_t j0, std::int64_t j1, float* out) const;

 private:
  std::int64_t items_ = 0, dim_ = 0;
  TableFormat format_;
  Tensor f32_;
  std::vector<std::uint16_t> bf16_;
};

std::uint16_t f32_to_bf16(float x);
float bf16_to_f32(std::uint16_t x);

// The score of Note [blocked ranking], for tests and references.
float dot8(const float* h, const float* w, std::int64_t d);

struct TopK {
  std::vector<std::int32_t> items;  // best first
  std::vector<float> scores;
};

// Per user (row of h, f32 [B, d]): the k best items not in excluded[b] (sorted ascending
// is not required; may be empty for no exclusion). excluded.size() is 0 or B.
std::vector<TopK> blocked_top_k(const Tensor& h, const ServingTable& table, int k,
                                const std::vector<std::vector<std::int32_t>>& excluded = {});

// Per user: the pessimistic 0-based rank of targets[b] among items not in excluded[b].
std::vector<std::int64_t> blocked_target_ranks(const Tensor& h, const ServingTable& table,
                                               std::span<const std::int32_t> targets,
                                               const std::vector<std::vector<std::int32_t>>& excluded = {});

// Catalogues from this size on are evaluated by evaluate_blocked (evaluate_model calls it):
// a [batch, V] score matrix of 256 users at 200,000 items is already 200 MB.
inline constexpr std::int64_t kBlockedEvalFrom = 200000;

// evaluate_model for full ranking in item blocks (Note [blocked ranking]): the same
// protocol, example order and metrics as evaluate(), the scores from the last hidden state
// and the f32 output table. Sampled-ranking protocols are refused (ConfigError).
EvalResult evaluate_blocked(const nn::Transformer& net, const SequenceDataset& data, const DataSplit& split,
                            const EvalOptions& options, Progress* progress = nullptr);

}  // namespace prunerec::recsys
