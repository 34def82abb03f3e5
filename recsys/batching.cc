#include "recsys/batching.h"

#include <algorithm>

#include "tensor/rng.h"

namespace prunerec::recsys {
namespace {

constexpr int kBucketBatches = 64;  // Note [length buckets]

// Fills row r of a [B, T] left-padded batch from items[0:n] (inputs) and, when targets
// is not null, targets[0:n].
void fill_row(Batch& b, std::int64_t r, std::int64_t T, const std::int32_t* items, const std::int32_t* targets,
              std::int64_t n) {
  std::int32_t* ids = b.ids.data<std::int32_t>() + r * T;
  std::int32_t* tg = b.targets.data<std::int32_t>() + r * T;
  const std::int64_t pad = T - n;
  std::fill(ids, ids + pad, -1);
  std::fill(tg, tg + pad, -1);
  std::copy(items, items + n, ids + pad);
  if (targets) {
    std::copy(targets, targets + n, tg + pad);
    b.positions += n;
  } else {
    std::fill(tg + pad, tg + T, -1);
  }
  b.pads.data<std::int32_t>()[r] = static_cast<std::int32_t>(pad);
}

Batch empty_batch(std::int64_t B, std::int64_t T) {
  Batch b;
  b.ids = Tensor::empty({B, T}, DType::i32);
  b.targets = Tensor::empty({B, T}, DType::i32);
  b.pads = Tensor::empty({B}, DType::i32);
  return b;
}

}  // namespace

TrainBatcher::TrainBatcher(const std::vector<std::vector<std::int32_t>>& sequences, int max_len, int batch_size,
                           bool all_windows)
    : sequences_(sequences), batch_size_(batch_size) {
  PR_CHECK_T(ConfigError, max_len > 0 && batch_size > 0, "batching: max_len ", max_len, " and batch_size ",
             batch_size, " must be positive");
  for (std::size_t s = 0; s < sequences.size(); ++s) {
    const std::int64_t n = static_cast<std::int64_t>(sequences[s].size());
    // The window ending at the last item, then earlier ones when asked.
    for (std::int64_t end = n - 1; end >= 1; end -= max_len) {
      const std::int64_t start = std::max<std::int64_t>(0, end - max_len);
      windows_.push_back({static_cast<std::int32_t>(s), static_cast<std::int32_t>(start),
                          static_cast<std::int32_t>(end - start)});
      positions_ += end - start;
      if (!all_windows) break;
    }
  }
  PR_CHECK_T(ConfigError, !windows_.empty(), "batching: no training sequence has 2 or more items");
}

std::int64_t TrainBatcher::batches_per_epoch() const { return (num_windows() + batch_size_ - 1) / batch_size_; }

std::vector<std::vector<std::int32_t>> TrainBatcher::epoch_plan(std::uint64_t seed, int epoch) const {
  Rng rng(seed, hash_stream(0xba7c4, static_cast<std::uint64_t>(epoch)));
  std::vector<std::int32_t> order(windows_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int32_t>(i);
  rng.shuffle(order);
  std::vector<std::vector<std::int32_t>> batches;
  const std::size_t bucket = static_cast<std::size_t>(batch_size_) * kBucketBatches;
  for (std::size_t b0 = 0; b0 < order.size(); b0 += bucket) {
    const auto first = order.begin() + static_cast<std::ptrdiff_t>(b0);
    const auto last = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), b0 + bucket));
    std::stable_sort(first, last, [&](std::int32_t a, std::int32_t b) { return windows_[a].length < windows_[b].length; });
    for (auto it = first; it < last; it += std::min<std::ptrdiff_t>(batch_size_, last - it))
      batches.emplace_back(it, it + std::min<std::ptrdiff_t>(batch_size_, last - it));
  }
  rng.shuffle(batches);
  return batches;
}

Batch TrainBatcher::make_batch(const std::vector<std::int32_t>& window_ids) const {
  std::int64_t T = 1;
  for (std::int32_t w : window_ids) T = std::max<std::int64_t>(T, windows_[w].length);
  Batch b = empty_batch(static_cast<std::int64_t>(window_ids.size()), T);
  for (std::size_t r = 0; r < window_ids.size(); ++r) {
    const Window& w = windows_[window_ids[r]];
    const std::int32_t* s = sequences_[w.sequence].data() + w.start;
    fill_row(b, static_cast<std::int64_t>(r), T, s, s + 1, w.length);
  }
  b.windows = window_ids;
  return b;
}

Batch make_history_batch(const std::vector<std::vector<std::int32_t>>& histories, int max_len) {
  std::int64_t T = 1;
  for (const auto& h : histories) T = std::max<std::int64_t>(T, std::min<std::int64_t>(max_len, h.size()));
  Batch b = empty_batch(static_cast<std::int64_t>(histories.size()), T);
  for (std::size_t r = 0; r < histories.size(); ++r) {
    const auto& h = histories[r];
    const std::int64_t n = std::min<std::int64_t>(max_len, h.size());
    fill_row(b, static_cast<std::int64_t>(r), T, h.data() + h.size() - n, nullptr, n);
  }
  return b;
}

Batch make_eval_batch(const SequenceDataset& data, const std::vector<EvalExample>& examples,
                      const std::vector<std::int64_t>& rows, int max_len) {
  std::int64_t T = 1;
  for (std::int64_t i : rows) T = std::max<std::int64_t>(T, std::min<std::int64_t>(max_len, examples[i].prefix_len));
  Batch b = empty_batch(static_cast<std::int64_t>(rows.size()), T);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const EvalExample& e = examples[rows[r]];
    const std::int64_t n = std::min<std::int64_t>(max_len, e.prefix_len);
    fill_row(b, static_cast<std::int64_t>(r), T, data.sequences[e.user].data() + e.prefix_len - n, nullptr, n);
  }
  return b;
}

}  // namespace prunerec::recsys
