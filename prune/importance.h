// Importance scores for the units pruning removes, computed on recommendation data.
//
// The calibration set is a seeded sample of training windows (never validation or test
// data), batched like training batches. Every estimator sums per-position statistics, so
// it can run on the two halves of the set separately: their split-half Spearman
// correlation says how stable the ranking is at this calibration size, and the sum of the
// halves is the score on the whole set.
//
// Estimators (docs/pruning.md compares each with the paper and its released code; the
// paper-spec sections are cited there):
//   heads   kl:          mean KL(p || p_without_head) of the next-item distribution over
//                        every position, each head masked alone on the unpruned model
//           greedy_kl:   the released code's Algorithm 1: layer by layer from the bottom,
//                        head i of layer l is masked together with the heads already
//                        chosen for pruning in lower layers; raw_i = 1 - mean over the
//                        calibration sequences of KL_eps(p || q) at the last position
//                        (eps 1e-12: sum (p+eps) log((p+eps)/(q+eps))); normalised and
//                        smoothed per layer; the k heads with the largest smoothed s are
//                        chosen (and pruned). Its score is -s (higher = kept).
//           activation:  mean L2 norm of the head's output
//       options (HeadOptions): the mask (head gate 0, or the query scaled by 1e-4, Note
//       [query-scale mask]); per-layer normalisation (sum to 1, or min-max); smoothing over
//       layers by head index with alpha on the current layer (ours) or on the previous
//       layer's smoothed vector (the released code).
//   hidden  act_grad:    sum over residual streams and positions of |a_c * dL/da_c|, L the
//                        negative log-probability of the model's own top prediction
//           top_logit:   the released code's score in closed form: |h_T,c * E[y,c]| for the
//                        final post-norm hidden state h_T at the last position and y the
//                        top prediction there; RMS over the calibration sequences (the
//                        code's L2 norm over its batch, same ranking)
//           magnitude:   mean |y_c| over the outputs of every RMSNorm
//   mlp     topk:        how often channel j is among a position's K largest |up(x)_j|
//                        (K = the channels kept in that layer)
//           topk_signed: the same with the K largest signed up(x)_j (the released code)
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
#include "recsys/progress.h"

namespace prunerec::prune {

struct Calibration {
  std::vector<recsys::Batch> batches;
  std::int64_t sequences = 0;
  std::int64_t positions = 0;  // positions with a next-item target
  // Where work over these batches reports its progress (Note [progress of nested work]);
  // none by default. Not owned; the scoring functions below begin a phase on it and count
  // one unit per forward pass over a calibration batch.
  WorkMeter* meter = nullptr;
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

// How heads are scored (proto fields head_score, head_mask, head_normalise,
// head_smoothing, head_smoothing_alpha of StageConfig).
struct HeadOptions {
  std::string method = "kl";         // kl | greedy_kl | activation | random
  std::string mask = "gate";         // gate (head gate 0) | query_scale (query x 1e-4)
  std::string normalise = "sum";     // sum (to 1 per layer) | minmax (per layer)
  std::string smoothing = "current"; // current | previous (see smooth_layer)
  double alpha = 1.0;                // current: 1 = none; previous: 0 = none (code: 0.7)
  std::vector<int> prune_per_layer;  // greedy_kl: the k heads chosen per layer
};
HeadScores head_scores(nn::Transformer& model, const Calibration& calib, const HeadOptions& options,
                       std::uint64_t seed);
// Today's estimators with sum normalisation and current-layer smoothing.
HeadScores head_scores(nn::Transformer& model, const Calibration& calib, const std::string& method,
                       double smoothing_alpha, std::uint64_t seed);

// The per-layer pieces of the head estimators, public for tests.
// "sum": divided by the layer's total (unchanged when it is not positive);
// "minmax": (x - min) / (max - min), all zeros when every value is equal (the released
// code would divide by zero and carry NaN into every later layer).
std::vector<double> normalise_layer(std::vector<double> scores, const std::string& how);
// Smoothing of layer l's normalised scores n_l with the previous layer's smoothed vector
// s_prev (matched by head index; none for the first layer, or when the sizes differ):
//   "current":  s_l = alpha * n_l + (1 - alpha) * s_prev   (ours; alpha 1 = none)
//   "previous": s_l = alpha * s_prev + (1 - alpha) * n_l   (the released code, alpha 0.7)
std::vector<double> smooth_layer(const std::vector<double>& normalised, const std::vector<double>* smoothed_prev,
                                 const std::string& placement, double alpha);
// KL_eps(p || q) = sum_v (p_v + eps) log((p_v + eps) / (q_v + eps)) of softmax(p_logits)
// and softmax(q_logits), eps 1e-12, no renormalisation (the released code's formula).
double kl_eps(const double* p_logits, const double* q_logits, std::int64_t V);
// The greedy_kl choice per layer: the k largest s, as numpy's stable argsort()[-k:] takes
// them (among equal values the higher index is chosen), ascending.
std::vector<int> greedy_choice(const std::vector<double>& smoothed, int k);
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
