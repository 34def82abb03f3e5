// Turning sequences into batches.
//
// Training windows: a training sequence s (n >= 2 items) gives the window whose inputs are
// its last max_len items before the final one and whose targets are the next item at every
// position: inputs s[a : n-1], targets s[a+1 : n], a = max(0, n-1-max_len). With
// all_windows, earlier stretches give further windows (stride max_len), so long histories
// are used whole. Batches are left-padded with -1 (ids and targets), so the last position
// of every row is its most recent item.
//
// Note [length buckets]: an epoch shuffles the windows (seeded by (seed, epoch)), sorts
// each run of 64 batches' worth of windows by length, cuts it into batches and shuffles
// the batch order. Rows of a batch then have similar lengths (little padding), while the
// epoch stays random. The plan is a pure function of (seed, epoch): a resumed run sees the
// same batches.
#pragma once

#include <cstdint>
#include <vector>

#include "recsys/data/split.h"
#include "tensor/tensor.h"

namespace prunerec::recsys {

struct Batch {
  Tensor ids;      // i32 [B, T], left-padded with -1
  Tensor targets;  // i32 [B, T], -1 where there is no target
  Tensor pads;     // i32 [B], leading padding per row
  std::int64_t positions = 0;  // targets >= 0
  std::vector<std::int32_t> windows;  // training batches: the window of each row
};

struct Window {
  std::int32_t sequence = 0;  // index into the training sequences
  std::int32_t start = 0;     // first input position
  std::int32_t length = 0;    // inputs (= targets)
};

class TrainBatcher {
 public:
  TrainBatcher(const std::vector<std::vector<std::int32_t>>& sequences, int max_len, int batch_size, bool all_windows);

  std::int64_t num_windows() const { return static_cast<std::int64_t>(windows_.size()); }
  const Window& window(std::int32_t w) const { return windows_[w]; }
  std::int64_t num_positions() const { return positions_; }
  std::int64_t batches_per_epoch() const;
  // Window indices of every batch of `epoch`, in order (Note [length buckets]).
  std::vector<std::vector<std::int32_t>> epoch_plan(std::uint64_t seed, int epoch) const;
  Batch make_batch(const std::vector<std::int32_t>& window_ids) const;

 private:
  const std::vector<std::vector<std::int32_t>>& sequences_;
  std::vector<Window> windows_;
  int batch_size_;
  std::int64_t positions_ = 0;
};

// A batch of histories for scoring the next item: row i is the last max_len items of
// histories[i] (left-padded); targets are all -1.
Batch make_history_batch(const std::vector<std::vector<std::int32_t>>& histories, int max_len);
// The same from eval examples (history = data.sequences[user][0:prefix_len]).
Batch make_eval_batch(const SequenceDataset& data, const std::vector<EvalExample>& examples,
                      const std::vector<std::int64_t>& rows, int max_len);

}  // namespace prunerec::recsys
