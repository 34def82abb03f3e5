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
// Note [gBCE with many negatives]: gBCE over 256 uniform negatives shared by a step does
// not learn on Amazon Beauty with the gate-xs recipe (12,101 items, 2 layers of width 128,
// RMS-normed final hidden state, tied item table, dot-product scores with no bias). Valid
// NDCG@10 after 1 / 2 epochs, seed 1, one thread (the lazy AdamW replay of Note [lazy
// AdamW rows] in nn/optim.h in place; before it gBCE also fell below random):
//   sampled softmax (log-Q, same negatives)          0.0121 / 0.0154   full softmax 0.0176 / 0.0216
//   gBCE S = 256, t = 0.75 (beta 0.27)               0.0009 / 0.0005
//   gBCE S = 256, untied output table                 0.0009 / 0.0014
//   gBCE S = 256, dense AdamW (no lazy rows)          0.0002 (1 epoch)
//   gBCE S = 256, own negatives per position, dense   0.0025 (1 epoch)
//   gBCE S = 12,000 (~every item every step, beta ~1) 0.0012 (1 epoch)
//   gBCE S = 16 / 4, t = 0.75                         0.0009 / 0.0003,  0.0003 / 0.0002
//   gBCE S = 4, t = 0 (beta 1)                        0.0005 / 0.0007
//   gBCE S = 1, t = 0.75 / t = 0 (SASRec's BCE)       0.0020 / 0.0031,  0.0025 / 0.0082
// The loss and its gradient are right: on a real batch (1,152 positions, S = 256) the op's
// loss equals an f64 dense reference to 8 digits and its item-table gradient to 1e-9 of
// 3e-3. What goes wrong is representational: BCE, unlike softmax, is not shift-invariant;
// it wants every negative's score far below zero, and with |h| fixed by the final RMSNorm
// and no output bias the model can only get that offset from one direction shared by
// every h and every item vector. The negatives' term, S / beta ~ 950 times the positive's,
// drives that first, and h collapses onto it: the spread of h around its mean is 0.7% of
// |h| after 2 epochs of gBCE (0.8% with per-position negatives), against 92% for full
// softmax and 72% for sampled softmax, and the positives' scores sit below the negatives'.
// A fixed offset of -5 added to every gBCE score (an experiment, not in the code) kept
// the spread at 11% and gave 0.0019 / 0.0037. Shared negatives make it worse on top: all
// positions push away from the same S items, and the item scores do not even learn
// popularity (Spearman with training counts -0.05 after an epoch of dense AdamW; 0.46 with
// per-position negatives). The engine does not refuse gBCE: its failure was measured over
// 3 epochs of one recipe, and the paper trains far longer; but on this architecture use
// SAMPLED (or FULL, which AUTO picks below 50,000 items), or gBCE with one negative and
// t = 0. The runs: the gate-xs recipe with weight decay 0 and train.loss changed.
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
