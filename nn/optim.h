// AdamW (decoupled weight decay, bias correction), learning-rate schedules and global-norm
// gradient clipping.
//
// Optimizer state is keyed by parameter name, like everything else (nn/module.h), so
// checkpoints and pruning surgery can read and slice it by name.
//
//   AdamW opt(model, {.weight_decay = 0.01});
//   loss.backward();
//   const double norm = opt.clip_and_step(lr_at(schedule, opt.steps()), /*max_norm=*/1.0);
//   model.zero_grad();
//
// Note [lazy AdamW rows]: when a loss samples (autograd/ops.h, sampled_softmax_loss and
// gbce_loss), the item table's gradient is row-sparse (Note [row-sparse gradients] in
// autograd/var.h), and with lazy_rows the optimizer reads and writes only those rows of the
// table and of its two moments: a step costs O(rows touched x d), not O(V d). Each row
// remembers the step at which it was last updated (row_step). When a row comes back
// after k skipped steps, the skipped steps are replayed as steps with a zero gradient: the
// moments decay by beta1^k and beta2^k (exactly what dense AdamW does to them), the
// decoupled weight decay is applied as (1 - lr wd)^k, and the parameter's motion during
// those steps, lr m_hat / (sqrt(v_hat) + eps) with the decaying moments, is added as one
// sum per row (a scalar series in (beta1 / sqrt(beta2))^i, nn/optim.cc: up to ~400 terms
// per returning row while the bias corrections differ from 1, a closed form after). Two
// approximations: the current lr stands for the skipped steps' (exact for a constant
// rate; the schedule's lr moves little over them), and eps is taken to shrink with
// sqrt(v) over the gap (exact when eps << sqrt(v_hat)). Bias correction uses the global
// step count, as dense AdamW does. Consequences: a row that gets gradient at every step is
// updated bit for bit as by dense AdamW, a row touched now and then ends where dense AdamW
// puts it up to those approximations (tests in tests/nn), and a row never touched again
// keeps its last value (its pending decay and motion are not applied).
//
// Why the motion is replayed: PyTorch's SparseAdam and TF Addons' LazyAdam leave it out,
// and then a row moves by one Adam step per gradient it gets instead of the ~1 / (1 -
// beta1 / sqrt(beta2)) = 11 steps that its momentum carries it under dense AdamW. With a
// sampled loss that is a bias by popularity: a popular item's row, touched as a target at
// nearly every step, gets the full motion of each push it receives as a sampled negative,
// a rare item's row a tenth of it. Measured on Amazon Beauty (12,101 items, 256 uniform
// negatives shared by a step, the gate-xs recipe): without the replay, gBCE's item scores
// (against the mean hidden state) ended anti-correlated with training popularity
// (Spearman -0.37 after 3 epochs, -0.64 after 8 with weight decay 3), with it -0.09 (dense
// AdamW, 1 epoch: -0.05); sampled softmax reached validation NDCG@10 0.0121 / 0.0154 after 1 / 2
// epochs instead of 0.0071 / 0.0091 (seed 2: 0.0087 / 0.0105; full softmax 0.0176 /
// 0.0216). gBCE itself still does not learn there (Note [gBCE with many negatives] in
// recsys/catalogue_loss.h).
#pragma once

#include <map>
#include <string>

#include "nn/module.h"
#include "proto/train.pb.h"

namespace prunerec::nn {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.98;
  double eps = 1e-8;
  double weight_decay = 0.0;  // applied to parameters with 2+ dims (matrices, embeddings)
  // Update only the rows of parameters whose gradient is row-sparse (Note [lazy AdamW
  // rows]); when false, such gradients are made dense and every row is updated.
  bool lazy_rows = false;
};

class AdamW {
 public:
  struct State {
    Tensor exp_avg, exp_avg_sq;  // same shape as the parameter
    Tensor row_step;             // i64 [rows]: step of each row's last update (lazy rows only)
  };

  AdamW(const Module& model, AdamWOptions options);

  // Global L2 norm of all gradients (parameters in name order; deterministic).
  double grad_norm() const;
  // Clips gradients to max_norm (<= 0: no clipping) and takes one step with rate lr.
  // Returns the norm before clipping. Parameters without a gradient are skipped.
  double clip_and_step(double lr, double max_norm);
  // The same with the gradient norm already computed (callers that check it first).
  void step_with_norm(double lr, double max_norm, double norm);
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t s) { steps_ = s; }

  // State by parameter name (created lazily at the first step).
  std::map<std::string, State>& state() { return state_; }
  const std::map<std::string, State>& state() const { return state_; }
  const AdamWOptions& options() const { return options_; }

 private:
  const Module& model_;
  AdamWOptions options_;
  std::int64_t steps_ = 0;
  std::map<std::string, State> state_;
};

AdamWOptions adamw_options(const pb::OptimizerConfig& config);

// Learning rate at step `step` (0-based) of `total_steps`: linear warm-up from lr/warmup
// to lr over the first warmup_fraction of steps, then cosine or linear decay to
// lr * min_lr_ratio, or constant.
double lr_at(const pb::OptimizerConfig& config, std::int64_t step, std::int64_t total_steps);

}  // namespace prunerec::nn
