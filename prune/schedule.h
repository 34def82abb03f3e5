// The three-stage prune-and-distill schedule (DESIGN.md section 1):
//   stage 1 (width, attention): score heads and hidden channels, keep the best, slice, recover
//   stage 2 (width, MLP):       score MLP channels, keep the best per layer, slice, recover
//   stage 3 (depth):            remove layers (or sub-blocks) greedily, recover
// where "recover" is distillation from the teacher (prune/distill.h). After each stage the
// run measures the model and adds a ledger row (prune/ledger.h) to DIR/report.json.
// This driver is item-token mode's; title-mode models run prune/title_schedule.h, and the
// parts both use are prune/schedule_parts.h.
//
// Note [resumable schedule]: every stage leaves files in DIR: <stage>.pruned.prc (right
// after surgery), <stage>.prc (after recovery; its training state beside it while it
// runs), <stage>.plan.pbtxt and <stage>.scores.json, and its row in report.json. A run
// started again on the same DIR skips finished stages (unless redo), reloads a stage's
// pruned model instead of scoring again, and resumes an interrupted recovery from its
// training state. The last stage's model is also written to DIR/final.prc.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "proto/prune.pb.h"
#include "proto/report.pb.h"
#include "prune/importance.h"
#include "recsys/data/split.h"
#include "recsys/progress.h"

namespace prunerec::prune {

struct PruneRun {
  const recsys::SequenceDataset* data = nullptr;
  const recsys::DataSplit* split = nullptr;
  std::string teacher_path;
  std::string out_dir;
  pb::Schedule schedule;
  bool redo = false;                        // recompute finished stages
  bool latency = true;                      // measure top-10 latency for every row
  const std::atomic<bool>* stop = nullptr;  // save state and stop (SIGINT/SIGTERM)
  std::ostream* log = nullptr;              // null: std::cerr, or nothing when progress is kSilent
  Progress::Mode progress = Progress::Mode::kAuto;
  std::map<std::string, std::string> metadata;  // stored with every checkpoint
  std::string data_description;             // for the report
  std::string command;                      // for the report
  // The random control's size matching: the real run's plan of each stage. A stage with
  // random head scores then keeps, in every layer, as many KV heads as the real plan (a
  // random set of query heads chosen within a random set of KV groups), and a random depth
  // stage over whole layers (not sub-blocks) keeps layers with the real plan's KV-head
  // counts, so the control's models have the real ones' shapes up to the order of layers.
  std::vector<pb::PrunePlan> size_match;
};

// Runs (or resumes) the schedule; returns the report, also written to out_dir.
pb::Report run_schedule(const PruneRun& run);

// One stage of a one-shot prune (prune_one_shot).
struct OneShotStage {
  std::string name;
  pb::PrunePlan plan;              // in the stage's input indices, estimator named
  pb::ScoreStability stability;    // split-half Spearman of each score
  std::string scores_json;         // the scores, as <stage>.scores.json of a schedule run
  double loss_before = 0, loss_after = 0;  // mean calibration loss before and after the cut
  std::int64_t non_embedding_parameters = 0;  // after the cut
};

// Note [one-shot pruning]: the schedule's stages (estimators, targets, order) applied to
// `model` in place, each scored on `calib` and cut, with no recovery between them, for
// models that have no training data in the engine to recover on: an imported language
// model calibrated on token sequences (prune/token_calibration.h). The calibration loss
// (next-token cross-entropy) before and after each cut is what it reports as quality; the
// recovery, and metrics on a task, need the task's data (title mode, docs/title-mode.md).
std::vector<OneShotStage> prune_one_shot(nn::Transformer& model, const pb::Schedule& schedule, const Calibration& calib,
                                         std::ostream& log);

// The importance estimators a stage uses, with their options, as reports name them:
// "heads greedy_kl (mask query_scale, minmax, smoothing previous 0.7); hidden top_logit".
std::string estimator_name(const pb::StageConfig& stage);

// A schedule from text format, validated (stage kinds and targets make sense).
pb::Schedule parse_schedule(const std::string& text, const std::string& source);

// The controls of the prune issue, each a ledger row (kind "control"):
//   scratch:     a model with the final stage's config trained from scratch with plain
//                cross-entropy for as many epochs as all recoveries together; with a
//                Schedule.scratch_grid, every recipe of the grid is trained and the best
//                on validation NDCG@10 is the control (scratch-distill and scratch-flops
//                search the same grid);
//   scratch-distill: the same fresh model trained like the last recovery (distillation
//                from the teacher) for as many epochs: against the final stage it measures
//                what the pruned weights are worth as a starting point;
//   scratch-flops: like scratch, for as many epochs as give the training FLOPs of the main
//                path's recoveries (Note [training FLOPs] in schedule.cc);
//   random:      the same schedule with random importance scores, matched in size to the
//                main run's plans (PruneRun::size_match);
//   no-recovery: the schedule with no recovery after stages 1 and 2 (the last stage
//                recovers for as many epochs as all recoveries together).
// They run in DIR/controls/<name>/ and are resumable like the main run.
pb::StageRow run_control(const PruneRun& main_run, const pb::Report& main_report, const std::string& control);

// Note [student seeds]: the student side of the experiment (every recovery and every
// control) runs with `seeds` schedule seeds, schedule.seed + k for k < seeds; the
// calibration set (its own seed) and the teacher are shared, so stage 1's scores are the
// same in every run and what varies is recovery training, later stages' scores on the
// recovered models, and the controls. Seed k = 0 runs in out_dir, seed k > 0 in
// out_dir/seeds/seed-<seed>/, each resumable like a single run. Returns seed 0's report
// (its controls included) with student_seeds and seed_stats: mean and sample standard
// deviation over the seeds of every row's test NDCG@10, HR@10, NDCG@20 and HR@20, also
// written to out_dir/report.json.
pb::Report run_with_seeds(const PruneRun& run, int seeds, const std::vector<std::string>& controls);

// Note [student budget]: the student-budget curve. For each budget B (epochs), the
// schedule runs again with every recovery trained for at most B epochs (early stopping as
// configured), in out_dir/budget/epochs-<B>/, with the scratch and scratch-distill
// controls there (trained for the recoveries' epochs together, as always). One point per
// (budget, path): pruned (the final stage), scratch-distill, scratch. Every run is
// resumable. The points are added to out_dir/report.json (budget_curve) and drawn in
// out_dir/budget_curve.svg.
std::vector<pb::BudgetPoint> run_budget_curve(const PruneRun& run, const std::vector<int>& budgets);

// The seed statistics of reports of the same schedule run with different seeds.
void add_seed_stats(pb::Report& first, const std::vector<pb::Report>& all);

// The names run_control accepts, in the order "all" runs them.
inline const std::vector<std::string>& control_names() {
  static const std::vector<std::string> names = {"scratch", "scratch-distill", "scratch-flops", "random",
                                                 "no-recovery"};
  return names;
}

}  // namespace prunerec::prune
