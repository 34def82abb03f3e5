// The output loss of training, chosen by the recipe's `train.loss` (proto/train.proto,
// LossConfig): full softmax, sampled softmax with the log-Q correction, or gSASRec's gBCE.
//
//   LossFn f = catalogue_loss(recipe.train().loss(), split, recipe.train().seed());
//   // per batch:  h = model.hidden(ids, pads)                   [B,T,d] -> [N,d]
//   //             negatives, log S q = sampler.draw(step, targets)   i32 [S], f64 [S]
//   //             loss = sampled_softmax_loss(h, E, targets, negatives, log S q)
//
// Note [full softmax below 50,000 items]: AUTO picks the full softmax below
// auto_full_below items (default 50,000) and sampled softmax above. Measured with
// `prunerec bench --preset catalogue` (docs/perf.md, "Large catalogues"; width-64 model,
// shared machine): full-softmax training ran at 686 positions/s at 10,000 items and 144
// at 100,000, sampled softmax (1,024 negatives) at about 5,900 and 2,900; the full loss's
// output layer is already most of a small model's step at 10,000 items and grows
// linearly, and its dense [V, d] gradient and full-table AdamW update grow with it. The
// threshold sits above every shared data set (3,000 to 17,000 items), whose published
// results all use the exact loss (so the default changes nothing for them), and below
// 100,000, where full training was measured 20x slower than sampled. Whether sampling
// costs quality there is the open quality run of issue 17 (ML-1M, Beauty).
//
// Note [negatives from the seed]: the negatives of a step are a pure function of (seed,
// step) through the counter-based RNG (Note [counter-based RNG] in tensor/rng.h), so a
// resumed run draws the same negatives as one never interrupted.
#pragma once

#include <cstdint>
#include <vector>

#include "proto/train.pb.h"
#include "recsys/trainer.h"

namespace prunerec::recsys {

// Negatives for one step: S item ids shared by every position and, per id, log(S q_j),
// the log of its expected number of draws (0 when the correction is off).
struct Negatives {
  Tensor items;      // i32 [S]
  Tensor log_count;  // f64 [S]
};

class NegativeSampler {
 public:
  // counts: training occurrences per item (popularity sampler only; may be empty otherwise).
  NegativeSampler(std::int64_t num_items, pb::LossConfig::Sampler sampler, std::int32_t num_negatives,
                  bool logq_correction, const std::vector<double>& counts, std::uint64_t seed);
  // targets: the batch's targets (i32, any shape; negative = none); used by IN_BATCH.
  Negatives draw(std::uint64_t step, const Tensor& targets) const;

 private:
  std::int64_t num_items_;
  pb::LossConfig::Sampler sampler_;
  std::int32_t num_negatives_;
  bool logq_;
  std::vector<double> cumulative_, probability_;  // popularity sampler
  std::uint64_t seed_;
};

// The resolved kind: AUTO becomes FULL or SAMPLED by the catalogue size.
pb::LossConfig::Kind resolve_loss_kind(const pb::LossConfig& config, std::int64_t num_items);
// Whether the loss samples (and the optimizer should update rows lazily).
bool loss_samples(const pb::LossConfig& config, std::int64_t num_items);

// Throws ConfigError naming the field for a bad setting.
void validate(const pb::LossConfig& config, std::int64_t num_items);

// The loss function for the trainer (model.loss for FULL).
LossFn catalogue_loss(const pb::LossConfig& config, const DataSplit& split, std::uint64_t seed);
// The same from the item count and per-item training counts (popularity sampler only;
// may be empty otherwise), for callers without a DataSplit (the catalogue benchmark).
LossFn catalogue_loss(const pb::LossConfig& config, std::int64_t num_items, const std::vector<double>& counts,
                      std::uint64_t seed);

}  // namespace prunerec::recsys
