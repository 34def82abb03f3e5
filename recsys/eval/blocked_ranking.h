// Ranking a large catalogue in item blocks: top-k recommendation and target ranks for
// evaluation, with a running top-k per user and history exclusion from sorted lists, so
// neither a users x items score matrix nor a dense exclusion mask is ever built.
//
//   ServingTable table(net.output_weight().value(), TableFormat::kBf16);   // [V, d] item table
//   auto top = blocked_top_k(h, table, 10, histories);    // h f32 [B, d] -> B lists of 10
//   auto ranks = blocked_target_ranks(h, table, targets, histories);  // evaluation
//
// Note [blocked ranking]: the items are cut into tasks of RankingBlocks::task_items, run
// in parallel, each with its own running lists (merged at the end: exact in any order,
// because the order of items is total); a task takes its items one block of
// RankingBlocks::block_items at a time, and every user in turn scores the block (while
// its rows are in cache) into a small buffer, which the top-k or the rank count then
// reads. The score of (user, item) is one fixed-order dot product, dot8(h, w): eight lanes
// over the width, combined in a fixed tree. The kernel that computes it, item_dot (Note
// [item dot] in recsys/eval/ranking_dot_impl.h), scores eight item rows per pass over the
// user's vector straight from the table, f32 or bf16 (widened in registers), and gives
// dot8's bits for every row. So a score is a pure function of (h, w) whatever the block,
// the thread or the instruction set (the kernel is compiled for the x86-64 baseline and
// for AVX2, Note [kernel dispatch] in tensor/kernels/isa.h), and the blocked result
// equals a full sort of the same scores (tests/recsys/blocked_ranking_test.cc).
// Note [reject before the offer]: a running top-k keeps its k-th best score as a floor
// (minus infinity until it holds k items); a score is compared with it first, and only a
// score that reaches it pays for the history check and the heap. After the first few
// thousand items almost every item is rejected by that one compare, so one user's top-k
// costs little more than the scores themselves: a pass over the table, which
// `prunerec bench --preset catalogue` measures against the machine's read bandwidth and
// bench/bench_ranking.cc against the dot8-per-item path it replaced.
//
// Order and ties: a top-k list is sorted by score, descending, ties by item index
// ascending; an item whose score is NaN is never recommended. A target's rank follows the
// evaluator's pessimistic rule (Note [pessimistic ties] in recsys/eval/metrics.h): the
// number of other, non-excluded items j with !(s_j < s_target).
#pragma once

#include <cstdint>
#include <cstring>
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
  // One user's scores against rows [j0, j1), written into out [(j1 - j0)]: out[i] is
  // dot8(h, row j0 + i as f32), bit for bit, through item_dot straight from the table's
  // storage (no copy, no allocation). h: f32 [d].
  void score(const float* h, std::int64_t j0, std::int64_t j1, float* out) const;

 private:
  std::int64_t items_ = 0, dim_ = 0;
  TableFormat format_;
  Tensor f32_;
  std::vector<std::uint16_t> bf16_;
};

std::uint16_t f32_to_bf16(float x);
inline float bf16_to_f32(std::uint16_t x) {  // exact: bf16 is the high half of an f32
  const std::uint32_t u = static_cast<std::uint32_t>(x) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The score of Note [blocked ranking], the definition the kernels are tested against.
// h, w: f32 [d].
float dot8(const float* h, const float* w, std::int64_t d);

// Note [item dot] (recsys/eval/ranking_dot_impl.h): one user's scores against n
// consecutive item rows, eight rows per pass; out[i] == dot8(h, row i widened to f32),
// bit for bit. h: f32 [d]; w: f32 or bf16 [n, d]; out: f32 [n].
void item_dot(const float* h, const float* w, std::int64_t n, std::int64_t d, float* out);
void item_dot(const float* h, const std::uint16_t* w, std::int64_t n, std::int64_t d, float* out);

// How blocked ranking cuts the items (Note [blocked ranking]). Any positive sizes give the
// same results; these only trade cache use against scheduling.
struct RankingBlocks {
  // Items per parallel task: the unit a thread takes, with its own running lists, merged
  // once. 8,192 items give 123 tasks at 1,000,000 items (balanced over the threads) and
  // keep the per-task set-up (lists, buffers, a locked merge) far below the task's work.
  std::int64_t task_items = 8192;
  // Items scored at a time, every user in turn: 128 x d f32 rows are 32 KiB at d = 64,
  // so the block stays in L1 (or at worst L2) while the users take turns on it, and one
  // user's scores of the block (512 bytes) are read back from L1 by the top-k or the rank
  // count. 512 was a third slower for 256 users in evaluation; one user does not care.
  std::int64_t block_items = 128;
};

struct TopK {
  std::vector<std::int32_t> items;  // best first
  std::vector<float> scores;
};

// Per user (row of h, f32 [B, d]): the k best items not in excluded[b] (sorted ascending
// is not required; may be empty for no exclusion). excluded.size() is 0 or B.
std::vector<TopK> blocked_top_k(const Tensor& h, const ServingTable& table, int k,
                                const std::vector<std::vector<std::int32_t>>& excluded = {},
                                const RankingBlocks& blocks = {});

// Per user: the pessimistic 0-based rank of targets[b] among items not in excluded[b].
std::vector<std::int64_t> blocked_target_ranks(const Tensor& h, const ServingTable& table,
                                               std::span<const std::int32_t> targets,
                                               const std::vector<std::vector<std::int32_t>>& excluded = {},
                                               const RankingBlocks& blocks = {});

// Catalogues from this size on are evaluated by evaluate_blocked (evaluate_model calls it):
// a [batch, V] score matrix of 256 users at 200,000 items is already 200 MB.
inline constexpr std::int64_t kBlockedEvalFrom = 200000;

// evaluate_model for full ranking in item blocks (Note [blocked ranking]): the same
// protocol, example order and metrics as evaluate(), the scores from the last hidden state
// and the output table in protocol.item_table's format (f32, or a bf16 copy). Sampled-ranking protocols are refused (ConfigError).
EvalResult evaluate_blocked(const nn::Transformer& net, const SequenceDataset& data, const DataSplit& split,
                            const EvalOptions& options, Progress* progress = nullptr);

}  // namespace prunerec::recsys
