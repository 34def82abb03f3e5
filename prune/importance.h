// Importance scores for the units pruning removes, computed on recommendation data.
//
// The calibration set is a seeded sample of training windows (never validation or test
// data), batched like training batches. Every estimator sums per-position statistics, so
// it can run on the two halves of the set separately: their split-half Spearman
// correlation says how stable the ranking is at this calibration size, and the sum of the
// halves is the score on the whole set.
//
// Estimators (paper's default first, then the alternatives):
//   heads   kl:          mean KL(p || p_without_head) of the next-item distribution when
//                        the head's gate is 0; normalised to sum 1 per layer; optional
//                        smoothing s_l = alpha * s_l + (1 - alpha) * s_{l-1} (paper: 0.7)
//           activation:  mean L2 norm of the head's output
//   hidden  act_grad:    sum over residual streams and positions of |a_c * dL/da_c|, L the
//                        negative log-probability of the model's own top prediction
//           magnitude:   mean |y_c| over the outputs of every RMSNorm
//   mlp     topk:        how often channel j is among a position's K largest |up(x)_j|
//                        (K = the channels kept in that layer)
//           magnitude:   mean |silu(gate(x)) * up(x)|_j
//   layers  greedy:      repeatedly remove the unit (layer, or attention / MLP sub-block)
//                        whose removal raises the calibration cross-entropy least
//           block_influence: 1 - cos(input, output) of the unit, averaged over positions
//   any     random:      seeded uniform scores (the control)
// Higher score = more important, for every estimator.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/transformer.h"
#include "proto/prune.pb.h"
#include "recsys/batching.h"

namespace prunerec::prune {

struct Calibration {
  std::vector<recsys::Batch> batches;
  std::int64_t sequences = 0;
  std::int64_t positions = 0;  // positions with a next-item target
};

// Draws config.sequences training windows (seeded) from the training sequences.
Calibration make_calibration(const std::vector<std::vector<std::int32_t>>& train, int max_len,
                             const pb::CalibrationConfig& config);
// The two halves (alternate batches) for the stability check.
std::pair<Calibration, Calibration> split_halves(const Calibration& c);

using LayerScores = std::vector<std::vector<double>>;  // [layer][unit]

// Scores plus their split-half stability (NaN where it does not apply, e.g. random).
struct HeadScores {
  LayerScores scores;
  double stability = 0;
};
struct HiddenScores {
  std::vector<double> scores;
  double stability = 0;
};
struct MlpScores {
  LayerScores scores;
  double stability = 0;
};

HeadScores head_scores(nn::Transformer& model, const Calibration& calib, const std::string& method,
                       double smoothing_alpha, std::uint64_t seed);
HiddenScores hidden_scores(const nn::Transformer& model, const Calibration& calib, const std::string& method,
                           std::uint64_t seed);
// keep_per_layer: the K of the top-K estimator (channels kept in each layer).
MlpScores mlp_scores(const nn::Transformer& model, const Calibration& calib, const std::string& method,
                     const std::vector<int>& keep_per_layer, std::uint64_t seed);

// Depth: which units to remove. A unit is a layer or, with sub_blocks, an attention
// (unit 2l) or MLP (unit 2l + 1) sub-block.
struct DepthScores {
  std::vector<int> removal_order;      // the units to remove, first removed first
  std::vector<double> unit_scores;     // per unit, higher = more important
  std::vector<double> greedy_losses;   // greedy: calibration loss after each removal
  double base_loss = 0;                // calibration loss of the unpruned model
  double stability = 0;
};
DepthScores depth_scores(const nn::Transformer& model, const Calibration& calib, const std::string& method,
                         bool sub_blocks, int remove_count, std::uint64_t seed);

// Mean next-item cross-entropy over the calibration set with the given skips.
double calibration_loss(const nn::Transformer& model, const Calibration& calib, const nn::ForwardOptions& fo = {});

// Spearman rank correlation of two score vectors (average ranks for ties).
double spearman(const std::vector<double>& a, const std::vector<double>& b);

// Indices of the k highest scores, ascending (ties: lower index kept first).
std::vector<int> top_indices(const std::vector<double>& scores, int k);

}  // namespace prunerec::prune
