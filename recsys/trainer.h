// The training loop shared by teacher training and distillation.
//
//   TrainSpec spec{.data = &data, .split = &split, .config = recipe.train(), .out_path = "run/model.prc"};
//   TrainResult r = train_model(model, spec);    // best model (validation NDCG@10) at out_path
//
// Note [resumable training]: every `checkpoint_every_steps` steps, at every epoch end and
// when asked to stop, the loop writes its full state (weights, optimizer moments,
// TrainingState: epoch, batch within the epoch, step, early-stopping counters, partial
// epoch loss) to state_path, atomically. Data order is a pure function of (seed, epoch)
// and dropout masks of (seed, step), so a run killed at any moment and resumed from its
// last state ends with the same weights, bit for bit, as one never interrupted (same seed
// and thread count; under mpirun, same number of ranks: Note [data-parallel training] in
// recsys/data_parallel.h). A NaN or Inf in the loss or a gradient stops the run before the
// update, naming the step and the first offending tensor; the last state stays intact. The
// state, its resume check and the stop rule live in recsys/run_state.h, shared with the
// title trainer (recsys/title/title_train.h).
//
// Note [extending a run]: the number of epochs may change between a run and its resume;
// seed, model config, batches per epoch, data and the rest of the recipe may not
// (ConfigError naming the state file and --no-resume; Note [run fingerprints] in
// recsys/run_state.h). The
// learning rate is a function of (step, total steps): resumed with a new epoch count, the
// steps still to come follow the schedule recomputed for the new total, while the steps
// already taken keep the rates they had. So raising --epochs of a finished run continues
// it (with a cosine schedule the rate rises from its floor to where the longer schedule
// stands at that step, a warm restart); with a constant rate and no warm-up the extended
// run (validating every epoch, as the old last epoch was validated) ends bit for bit where
// a run planned that long from the start does. A finished run
// resumed with the same epochs, or fewer, does nothing and says so; a run that stopped
// early (patience) stays stopped.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>

#include "base/comm.h"
#include "nn/transformer.h"
#include "proto/train.pb.h"
#include "recsys/batching.h"
#include "recsys/data/split.h"
#include "recsys/eval/metrics.h"
#include "recsys/progress.h"

namespace prunerec::recsys {

// The loss of one batch; the default is the model's next-item cross-entropy.
using LossFn = std::function<ag::Var(const nn::Transformer& model, const Batch& batch, const nn::ForwardOptions& fo)>;

struct TrainSpec {
  const SequenceDataset* data = nullptr;
  const DataSplit* split = nullptr;
  pb::TrainConfig config;
  std::string out_path;           // the best model by validation NDCG@10, written atomically
  std::string state_path;         // full state for resume; "" = out_path + ".state"
  bool resume = true;             // continue from state_path when it exists
  const ItemCatalog* catalog = nullptr;
  std::map<std::string, std::string> metadata;  // stored with the best model
  // A run-specific stop flag besides the process-wide request (Note [stopping long work]
  // in recsys/progress.h), which always counts: either one makes the run save and stop.
  const std::atomic<bool>* stop = nullptr;
  std::string phase = "train";    // label for progress lines and the stored state
  LossFn loss;                    // default: model.loss
  // Called once with the training windows before the first step (e.g. to precompute a
  // fixed teacher's outputs for every window).
  std::function<void(const TrainBatcher&)> on_start;
  // Called after every optimizer step with the step (0-based) and its loss (the global
  // batch's mean on every rank of a data-parallel run).
  std::function<void(std::int64_t step, double loss)> on_step;
  std::ostream* log = nullptr;    // progress and per-epoch lines; null = std::cerr (rank 0 only)
  Progress::Mode progress = Progress::Mode::kAuto;
  // The ranks of a data-parallel run (Note [data-parallel training] in
  // recsys/data_parallel.h); null = world() (Note [one world] in base/comm.h). Only rank 0
  // writes files and logs.
  Communicator* comm = nullptr;
};

struct TrainResult {
  int epochs_run = 0;
  int best_epoch = -1;               // 1-based epoch of the best validation
  double best_valid_ndcg10 = 0;
  EvalResult best_valid;             // metrics of the best model on the validation split
  std::vector<double> loss_curve;    // mean training loss per epoch
  std::vector<double> valid_curve;   // validation NDCG@10 per validation
  std::int64_t steps = 0;
  double seconds = 0;
  double positions_per_second = 0;
  bool stopped_early = false;
  bool resumed = false;
};

TrainResult train_model(nn::Transformer& model, const TrainSpec& spec);

}  // namespace prunerec::recsys
