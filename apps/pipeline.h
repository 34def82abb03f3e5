// The steps `prunerec train`, `prune` and `run` share: training a model from a recipe on
// loaded data, setting up a prune run, and running its controls.
#pragma once

#include <string>
#include <vector>

#include "apps/common.h"
#include "prune/schedule.h"
#include "recsys/trainer.h"

namespace prunerec::apps {

struct TrainOptions {
  bool resume = true;
  bool quiet = false;
  std::string phase = "train";
};

// Builds the recipe's model (seeded) and trains it on `d`; the best model goes to `out`
// with the recipe, seed, thread count and data settings in its metadata.
recsys::TrainResult train_from_recipe(const pb::Recipe& recipe, const LoadedData& d, const std::string& data_path,
                                      const std::string& out, const TrainOptions& options);

// A prune run over `d` with the command line recorded.
prune::PruneRun make_prune_run(const LoadedData& d, const std::string& data_path, const std::string& teacher,
                               const std::string& out_dir, const pb::Schedule& schedule, bool quiet, bool latency,
                               const std::string& command);

// "all" or a comma list of scratch, random, no-recovery.
std::vector<std::string> parse_controls(const std::string& flag);
// Runs them (each resumes like the main run) and rewrites the report after each.
void run_controls(const prune::PruneRun& run, pb::Report& report, const std::vector<std::string>& controls);

// "prunerec <command> arg arg ..." for reports.
std::string command_line(const std::string& command, const std::vector<std::string>& args);

}  // namespace prunerec::apps
