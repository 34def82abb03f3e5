// The resumable state of a training run, shared by the item-token trainer
// (recsys/trainer.h) and the title trainer (recsys/title/title_train.h): one state format
// (pb::TrainingState beside the weights and AdamW moments, nn/checkpoint.h), one resume
// check, one stop rule. Notes [resumable training] and [extending a run] in
// recsys/trainer.h say what a resume guarantees.
//
//   RunPlan plan{.state_path = p, .phase = "train", .config = cfg, .per_epoch = batches,
//                .data_fingerprint = split_fingerprint(split)};
//   pb::TrainingState st = resume ? resume_run(plan, model, opt, log) : new_run_state(plan, model);
//   while (!st.finished() && st.epoch() < cfg.epochs()):
//     for batch st.epoch_batch() .. per_epoch - 1:
//       if (stop_wanted(spec.stop)) { save(st); throw stopped(plan, st); }
//       step ...; count_step(st, loss, positions);  save when checkpoint_due(cfg, st)
//     close_epoch(st) -> mean loss;  record_validation(st, metrics, patience) -> new best?
//     st.epoch() == cfg.epochs() -> finished;  save(st)
//
// Saving is the caller's (nn::save_model with .optimizer and .state; the item-token
// trainer adds the ranks' checks of a data-parallel run), always atomic (Note [atomic
// replace] in base/atomic_file.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>

#include "base/error.h"
#include "nn/optim.h"
#include "nn/transformer.h"
#include "proto/checkpoint.pb.h"
#include "proto/train.pb.h"
#include "recsys/data/split.h"

namespace prunerec::recsys {

// Note [run fingerprints]: a state records CRC-32C fingerprints of the data and of the
// recipe it was trained with, and a resume refuses a state whose fingerprints differ
// from the run's (a ConfigError naming the state file and --no-resume). The data is
// what the trainer reads (the split's sequences and examples; for title mode the
// tokenized training sequences and whatever the caller adds: template, tokenizer,
// validation split), so another data file, filter, split, template or tokenizer is
// caught even when it happens to give the same number of batches. The recipe is the
// training config with `epochs` and `checkpoint_every_steps` cleared (the first may grow,
// Note [extending a run]; the second changes no bit) and the model config: another
// learning rate, batch size, dropout, loss or seed is another run.
std::uint32_t split_fingerprint(const DataSplit& split);
std::uint32_t recipe_fingerprint(const pb::TrainConfig& config, const pb::ModelConfig& model);

// What identifies a run and where its state goes.
struct RunPlan {
  std::string state_path;              // "" = a run without saved state (never resumes)
  std::string phase;                   // progress label, stored in the state
  pb::TrainConfig config;              // epochs, seed, patience, checkpoint_every_steps
  std::int64_t per_epoch = 0;          // optimizer steps per epoch
  std::uint32_t data_fingerprint = 0;  // Note [run fingerprints]
  std::string data_covers = "the data file, filters or split";  // what it covers, for the refusal
  std::int64_t total_steps() const { return per_epoch * config.epochs(); }
};

// The end of every refusal to resume: how to go on instead.
inline constexpr const char* kStartOverHint = "; use --no-resume to start over, or another --out";

// The state of a run that starts now.
pb::TrainingState new_run_state(const RunPlan& plan, const nn::Transformer& model);

// Continues the run saved at plan.state_path (Note [extending a run]): checks that it is
// the same run (model config, seed, steps per epoch, fingerprints), copies its weights
// into `model` and its moments into `opt`, and returns its state with the epoch count of
// this plan. A finished run comes back finished (nothing to do); each case says so on log.
pb::TrainingState resume_run(const RunPlan& plan, nn::Transformer& model, nn::AdamW& opt, std::ostream& log);

// A stop was asked for: the process-wide request (Note [stopping long work] in
// recsys/progress.h) or the run's own flag (may be null).
bool stop_wanted(const std::atomic<bool>* run_stop);
// The exception to throw once the state is saved: names the epoch, step and state file.
Interrupted stopped(const RunPlan& plan, const pb::TrainingState& st);

// One optimizer step taken on `positions` positions with mean loss `loss`.
void count_step(pb::TrainingState& st, double loss, std::int64_t positions);
// Every `checkpoint_every_steps` steps (0 = never).
bool checkpoint_due(const pb::TrainConfig& config, const pb::TrainingState& st);
// Ends the epoch in progress: its mean loss goes to the loss curve (and is returned), the
// epoch count advances and the partial-epoch fields are cleared.
double close_epoch(pb::TrainingState& st);
// Records a validation of the epoch just closed: NDCG@10 onto the history, the best so far
// and its metrics, the early-stopping count. Returns true for a new best. Sets finished
// after `patience` validations without gain (patience <= 0: never).
bool record_validation(pb::TrainingState& st, const std::map<std::string, double>& metrics, int patience);

// Wall time of a run across its resumes: the state's seconds plus this process's.
class RunClock {
 public:
  explicit RunClock(double seconds_before) : before_(seconds_before) {}
  double seconds() const { return before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  double before_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace prunerec::recsys
