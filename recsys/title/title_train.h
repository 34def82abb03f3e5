// Training a title-mode model: next-token cross-entropy on the target tokens of the
// prompt ++ target sequences (recsys/title/title_data.h), AdamW with the recipe's schedule
// and clipping, validation by title generation after every epoch, the best model kept.
//
//   st = resume_run(state_path) or a new run      (recsys/run_state.h)
//   per epoch: batches of batch_size sequences of similar length (Rng(seed, epoch);
//              Note [length-grouped batches])
//     stop asked -> save state, throw Interrupted
//     loss = model.loss(ids, pads, targets)       targets -1 on prompt positions (or spec.loss)
//     clip_and_step(lr_at(step, total)); zero_grad; save state every checkpoint_every_steps
//   validate() -> NDCG@10; the best epoch so far is saved through save_best; save state
//
// Resumable like the item-token trainer (recsys/trainer.h, Notes [resumable training] and
// [extending a run]), with the same state format and checks (recsys/run_state.h): given a
// state_path, a run killed at any moment and rerun with the same spec ends with the same
// weights and curves, bit for bit (same seed and thread count), because the batches are a
// function of (seed, epoch), dropout masks of (seed, step) and the rate of (step, total).
// Without a state_path (the prune schedule's recoveries) nothing is saved and a stopped
// run starts over.
#pragma once

#include <atomic>
#include <functional>
#include <iosfwd>
#include <vector>

#include "nn/checkpoint.h"
#include "nn/transformer.h"
#include "proto/train.pb.h"
#include "tensor/rng.h"
#include "recsys/eval/metrics.h"
#include "recsys/progress.h"
#include "recsys/title/title_data.h"

namespace prunerec::recsys {

// The loss of one batch: the default is the model's own next-token cross-entropy on the
// target rows, model.loss(ids, pads, targets, fo); a recovery after pruning passes a
// distillation loss (prune/title_distill.h).
using TitleLossFn = std::function<ag::Var(const nn::Transformer&, const TitleBatch&, const nn::ForwardOptions&)>;

struct TitleTrainSpec {
  const std::vector<TitleSequence>* train = nullptr;
  TitleLossFn loss;                                             // null: model.loss
  pb::TrainConfig config;                                       // epochs, batch_size, dropout, optimizer, patience, seed
  std::function<EvalResult(const nn::Transformer&)> validate;   // null: no validation, the last epoch is kept
  std::function<void(const nn::Transformer&)> save_best;        // called whenever validation improves
  std::ostream* log = nullptr;                                  // one line per epoch; null = silent
  Progress::Mode progress = Progress::Mode::kAuto;              // the live line on log (a terminal only)
  // The run state (recsys/run_state.h): "" = none, nothing is saved and nothing resumes.
  std::string state_path;
  bool resume = true;                                           // continue from state_path when it exists
  // What the state file carries besides weights, moments and state (catalogue, metadata,
  // title-mode record); its pointers must outlive the run. .optimizer and .state are set
  // by the trainer.
  nn::SaveOptions state_record;
  // What the run depends on besides its training sequences (which the trainer adds): the
  // validation data, template, tokenizer (Note [run fingerprints] in recsys/run_state.h).
  std::uint32_t data_fingerprint = 0;
  // A run-specific stop flag besides the process-wide request: either makes the run save
  // its state (with a state_path) and throw Interrupted before the next step.
  const std::atomic<bool>* stop = nullptr;
  // Called after every optimizer step with the step (0-based) and its loss.
  std::function<void(std::int64_t step, double loss)> on_step;
};

struct TitleTrainResult {
  int epochs_run = 0;
  int best_epoch = -1;
  EvalResult best_valid;            // the metrics of the best validation (kept in the run state)
  std::vector<double> loss_curve;   // mean target-token loss per epoch
  std::vector<double> valid_curve;  // validation NDCG@10 per epoch (with spec.validate)
  std::int64_t steps = 0;
  double seconds = 0;
  double tokens_per_second = 0;     // supervised (target) tokens
  bool stopped_early = false;
  bool resumed = false;             // continued from spec.state_path
};

TitleTrainResult train_title_model(nn::Transformer& model, const TitleTrainSpec& spec);

// One epoch's batches (rows of seqs), Note [length-grouped batches]: every sequence once.
std::vector<std::vector<std::int32_t>> length_grouped_batches(const std::vector<TitleSequence>& seqs,
                                                              std::int64_t batch_size, Rng& rng);

}  // namespace prunerec::recsys
