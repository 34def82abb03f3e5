// The parts of the prune-and-distill schedule that do not depend on what the model
// predicts: stage names, the plan of a stage from importance scores, the checks of a
// schedule against the teacher, the recovery settings of a stage, the stage files and the
// reuse of a pruned model, the schedule's log. Two drivers use them:
//
//   prune/schedule.cc        item-token mode (next-item scores, recsys::train_model)
//   prune/title_schedule.cc  title mode (generated titles, recsys::train_title_model)
//
// A driver's stage loop, with the parts it calls:
//   check_schedule_fits(schedule, teacher config)          before anything is written
//   per stage i:  files = stage_files(out_dir, stage_name(st, i))
//                 log_stage_start(...)                     elapsed time and a rough estimate
//                 pruned = prune_or_reuse(...)             plan_stage + apply_plan + files
//                 evaluate, recover (recovery_of, recovery_train_config), measure
//                 fill_stage_row(row, pruned, st, metrics before recovery)
// Internal to prune/: not part of the library's public surface.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "nn/transformer.h"
#include "proto/prune.pb.h"
#include "proto/report.pb.h"
#include "proto/train.pb.h"
#include "prune/importance.h"
#include "recsys/eval/paired.h"
#include "recsys/progress.h"

namespace prunerec::prune::parts {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0);

const char* kind_name(pb::StageConfig::Kind k);
// The stage's name, or "stage<i+1>-<kind>".
std::string stage_name(const pb::StageConfig& s, int index);

// The plan of one stage, from importance scores on the current model.
struct StagePlan {
  pb::PrunePlan plan;
  pb::ScoreStability stability;
  std::string scores_json;
};
// Scores the units the stage prunes on `calib` and keeps the best; `match` is the random
// control's size matching (PruneRun::size_match), null otherwise.
StagePlan plan_stage(nn::Transformer& model, const pb::StageConfig& st, const Calibration& calib, std::uint64_t seed,
                     std::ostream& log, const pb::PrunePlan* match);

// Checks, before anything is computed or written, that every stage's targets fit the
// model the stage will see. ConfigError names the stage and what does not fit.
void check_schedule_fits(const pb::Schedule& s, const pb::ModelConfig& teacher);

// A stage's recovery: the schedule's defaults merged with the stage's own settings.
pb::RecoveryConfig recovery_of(const pb::Schedule& s, const pb::StageConfig& st);
// Its training settings, the schedule's seed when the stage sets none.
pb::TrainConfig recovery_train_config(const pb::Schedule& s, const pb::StageConfig& st);

// Note [training FLOPs] (schedule_parts.cc).
double forward_flops_per_position(const pb::ModelConfig& c, bool output_layer);
double training_flops(const pb::ModelConfig& student, std::int64_t positions, int epochs,
                      const pb::ModelConfig* teacher);
// Positions a finished item-token training recorded in its checkpoint, and its epochs
// ({0, 0} when the file is missing or recorded none).
std::pair<std::int64_t, int> trained_positions(const std::string& checkpoint);

// Note [files decided on rank 0]: whether `path` exists, rank 0's answer on every rank.
bool exists_agreed(const std::filesystem::path& path);

std::unique_ptr<nn::Transformer> load_net(const std::string& path);

// The run's informational lines go to `log` when given; otherwise to stderr, unless the
// run is silent, when they are dropped.
std::ostream& log_stream(std::ostream* log, Progress::Mode mode);

// The files a stage leaves in the run's folder (Note [resumable schedule] in schedule.h).
struct StageFiles {
  std::string pruned;  // <stage>.pruned.prc, right after surgery
  std::string model;   // <stage>.prc, after recovery
  std::string plan;    // <stage>.plan.pbtxt
  std::string scores;  // <stage>.scores.json
};
StageFiles stage_files(const std::string& out_dir, const std::string& name);

// "<name> (stage i/n), elapsed ..., roughly ... left (...)" (Note [schedule time estimate]
// in schedule_parts.cc): `seconds_so_far` over `stages_timed` stages run in this process.
void log_stage_start(std::ostream& log, const std::string& name, int index, int stages, double elapsed,
                     double seconds_so_far, int stages_timed);

// A stage's model right after surgery, with its plan.
struct PrunedStage {
  std::unique_ptr<nn::Transformer> model;
  pb::PrunePlan plan;           // normalised, estimator named
  pb::ScoreStability stability;  // empty when the pruned model was reused
  double scoring_seconds = 0;
};
// The pruned model of stage `index`: reloaded from files.pruned (with its plan) when an
// interrupted run left both and !redo; otherwise `previous_path` is loaded, scored on
// `calib` (seed schedule.seed + index), cut, and the scores, the plan and the model
// (through `save`) written on rank 0. Logs the pruned size against the teacher's.
PrunedStage prune_or_reuse(const StageFiles& files, const std::string& previous_path, const pb::Schedule& schedule,
                           int index, const Calibration& calib, WorkMeter& meter, bool redo,
                           const pb::PrunePlan* match, const std::string& name,
                           const std::function<void(const std::string&, const nn::Transformer&)>& save,
                           std::int64_t teacher_non_embedding, std::ostream& log);

// Stage `index` finished in an earlier run: its row (report row index + 1, after the
// teacher's) carries its name and its recovered model exists.
bool stage_done(const pb::Report& report, int index, const std::string& name, const StageFiles& files);

// Note [paired differences] (schedule.cc): a checkpoint's per-user ranks file,
// <checkpoint without .prc>.per-user.tsv.
std::string per_user_path_of(const std::string& checkpoint);
// The paired bootstrap of the row's NDCG@10 minus the final stage's, over users, with the
// schedule's resamples and seed.
pb::PairedDifference paired_difference(const recsys::PerUser& final_users, const recsys::PerUser& row_users,
                                       const pb::Schedule& schedule);

// The run's report: out_dir created; the report.json of an earlier run of the same
// schedule read back (unless redo; ConfigError when it holds another schedule); the run's
// facts set (data, teacher, schedule, seed, threads, command, calibration size).
pb::Report open_report(const std::string& out_dir, const pb::Schedule& schedule, bool redo, const std::string& data,
                       const std::string& teacher, const std::string& command);

// The stage's facts that do not depend on the mode: plan, estimator, stability, the test
// metrics before recovery, scoring time.
void fill_stage_row(pb::StageRow& row, const PrunedStage& pruned, const pb::StageConfig& st,
                    const std::map<std::string, double>& metrics_before_recovery);

// Appends a finished stage's row (fill_stage_row done, wall time set), adds its wall time
// to the report's total, writes the report and logs the stage's test NDCG@10 before and
// after recovery.
void add_stage_row(pb::Report& report, const pb::StageRow& row, const std::string& out_dir, std::ostream& log);

}  // namespace prunerec::prune::parts
