// The three-stage prune-and-distill schedule (DESIGN.md section 1):
//   stage 1 (width, attention): score heads and hidden channels, keep the best, slice, recover
//   stage 2 (width, MLP):       score MLP channels, keep the best per layer, slice, recover
//   stage 3 (depth):            remove layers (or sub-blocks) greedily, recover
// where "recover" is distillation from the teacher (prune/distill.h). After each stage the
// run measures the model and adds a ledger row (prune/ledger.h) to DIR/report.json.
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
  std::ostream* log = nullptr;              // null: std::cerr
  Progress::Mode progress = Progress::Mode::kAuto;
  std::map<std::string, std::string> metadata;  // stored with every checkpoint
  std::string data_description;             // for the report
  std::string command;                      // for the report
};

// Runs (or resumes) the schedule; returns the report, also written to out_dir.
pb::Report run_schedule(const PruneRun& run);

// A schedule from text format, validated (stage kinds and targets make sense).
pb::Schedule parse_schedule(const std::string& text, const std::string& source);

// The controls of the prune issue, each a ledger row (kind "control"):
//   scratch:     a model with the final stage's config trained from scratch with plain
//                cross-entropy for as many epochs as all recoveries together;
//   scratch-distill: the same fresh model trained like the last recovery (distillation
//                from the teacher) for as many epochs: against the final stage it measures
//                what the pruned weights are worth as a starting point;
//   random:      the same schedule with random importance scores;
//   no-recovery: the schedule with no recovery after stages 1 and 2 (the last stage
//                recovers for as many epochs as all recoveries together).
// They run in DIR/controls/<name>/ and are resumable like the main run.
pb::StageRow run_control(const PruneRun& main_run, const pb::Report& main_report, const std::string& control);

// The names run_control accepts, in the order "all" runs them.
inline const std::vector<std::string>& control_names() {
  static const std::vector<std::string> names = {"scratch", "scratch-distill", "random", "no-recovery"};
  return names;
}

}  // namespace prunerec::prune
