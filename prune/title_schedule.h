// The prune-and-distill schedule (prune/schedule.h) on a title-mode model (docs/title-mode.md):
// the same stages, estimators, plans, stage files and report, with title mode's data,
// recovery and metrics.
//
//   teacher row: parameters, title-generation metrics (valid: the first valid_limit
//                examples; test: all), generation latency (one prompt, B beams)
//   calibration: title_calibration(train sequences)   prompt ++ target, targets on the
//                                                     target rows (Note [title calibration])
//   per stage:   plan_stage + apply_plan (schedule_parts.h; hidden channels slice the
//                tied embedding / head with every other d-wide tensor, prune/surgery.h)
//                test metrics before recovery
//                recovery: recsys::train_title_model with title_distillation_loss
//                (prune/title_distill.h), validation by generation, the best epoch kept
//                the stage's row, as the teacher's
//   DIR/final.prc: the last stage's model, a title-mode model file like the teacher's
//
// Every checkpoint keeps the teacher's TitleMode record (template, tokenizer, history),
// catalogue and metadata, so `prunerec eval` and `recommend` read a stage's model as they
// read the teacher. Resuming follows Note [resumable schedule], except that an
// interrupted recovery starts over (title training keeps no training state yet).
// Not in title mode: the controls, student seeds, the budget curve, top-k distillation
// (distill_top_k), and the training-FLOPs and FLOPs-per-recommendation columns (their
// formulas count item-token scoring).
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "proto/prune.pb.h"
#include "proto/report.pb.h"
#include "prune/importance.h"
#include "prune/ledger.h"
#include "recsys/data/split.h"
#include "recsys/progress.h"
#include "recsys/title/title_eval.h"

namespace prunerec::prune {

struct TitlePruneRun {
  const recsys::SequenceDataset* data = nullptr;
  const recsys::DataSplit* split = nullptr;
  const recsys::TitleTask* task = nullptr;                      // the teacher's template, tokenizer, titles
  const std::vector<recsys::TitleSequence>* train = nullptr;    // calibration and recovery sequences
  std::string teacher_path;
  std::string out_dir;
  pb::Schedule schedule;
  recsys::BeamOptions beams;        // evaluation and latency
  std::int64_t valid_limit = 500;   // validation examples per evaluation (0 = all), as train --mode title
  std::int64_t test_limit = 0;      // test examples per evaluation: the first N (0 = all)
  bool redo = false;
  bool latency = true;              // measure generation latency for every row
  std::ostream* log = nullptr;      // null: std::cerr, or nothing when progress is kSilent
  Progress::Mode progress = Progress::Mode::kAuto;
  std::map<std::string, std::string> metadata;  // added to the teacher's in every checkpoint
  std::string data_description;
  std::string command;
};

// Runs (or resumes) the schedule on a title-mode teacher; returns the report, also written
// to out_dir (report.json, report.md, charts). ConfigError for a setting title mode does
// not support (see above), before anything is written.
pb::Report run_title_schedule(const TitlePruneRun& run);

// Note [title calibration]: config.sequences training sequences (prompt ++ target) drawn
// with config.seed, batched by length (recsys::length_grouped_batches) in batches of
// config.batch_size, targets on the target rows only. The estimators that read every
// position (kl, act_grad, magnitude, topk, greedy depth) then score exactly the rows the
// distillation trains on; those that read the last position (greedy_kl, top_logit) read
// the position that writes the title's end (EOS), where the whole title is in view.
Calibration title_calibration(const std::vector<recsys::TitleSequence>& train, const pb::CalibrationConfig& config);

// Median wall time of generating B titles for one prompt (the longest test prompt) and for
// a batch of beams.users_per_batch prompts decoded together (the next longest).
pb::Latency measure_generation_latency(const nn::Transformer& model, const recsys::SequenceDataset& data,
                                       const recsys::DataSplit& split, const recsys::TitleTask& task,
                                       const recsys::BeamOptions& beams, const LatencyOptions& options = {});

}  // namespace prunerec::prune
