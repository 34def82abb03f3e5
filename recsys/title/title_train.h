// Training a title-mode model: next-token cross-entropy on the target tokens of the
// prompt ++ target sequences (recsys/title/title_data.h), AdamW with the recipe's schedule
// and clipping, validation by title generation after every epoch, the best model kept.
//
//   per epoch: batches of batch_size sequences of similar length (Rng(seed, epoch);
//              Note [length-grouped batches])
//     loss = model.loss(ids, pads, targets)       targets -1 on prompt positions (or spec.loss)
//     clip_and_step(lr_at(step)); zero_grad
//   validate() -> NDCG@10; the best epoch so far is saved through save_best
//
// Simpler than the item-token trainer (recsys/trainer.h): no resumable state yet (a run
// killed midway starts over), and the same seed and thread count give the same bits.
#pragma once

#include <functional>
#include <iosfwd>
#include <vector>

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
};

struct TitleTrainResult {
  int epochs_run = 0;
  int best_epoch = -1;
  EvalResult best_valid;
  std::vector<double> loss_curve;   // mean target-token loss per epoch
  std::vector<double> valid_curve;  // validation NDCG@10 per epoch (with spec.validate)
  std::int64_t steps = 0;
  double seconds = 0;
  double tokens_per_second = 0;     // supervised (target) tokens
  bool stopped_early = false;
};

TitleTrainResult train_title_model(nn::Transformer& model, const TitleTrainSpec& spec);

// One epoch's batches (rows of seqs), Note [length-grouped batches]: every sequence once.
std::vector<std::vector<std::int32_t>> length_grouped_batches(const std::vector<TitleSequence>& seqs,
                                                              std::int64_t batch_size, Rng& rng);

}  // namespace prunerec::recsys
