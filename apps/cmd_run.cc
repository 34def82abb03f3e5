// prunerec run: the main job.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/common.h"
#include "apps/pipeline.h"
#include "nn/text_proto.h"
#include "prune/report.h"
#include "prune/schedule.h"
#include "recsys/data/synthetic.h"
#include "recsys/eval/evaluator.h"
#include "recsys/recommender.h"
#include "recsys/trainer.h"
#include "tensor/parallel.h"
#include "base/atomic_file.h"

namespace prunerec::apps {
namespace {

namespace fs = std::filesystem;

// The built-in data set, written as "user item item ..." lines so every other command can
// read it again (it is recorded as the model's data path).
std::string write_synthetic(const std::string& dir, std::uint64_t seed) {
  const recsys::SequenceDataset d =
      recsys::make_synthetic({.users = 4000, .items = 1000, .clusters = 25, .mean_length = 14, .seed = seed});
  std::ostringstream os;
  for (std::size_t u = 0; u < d.sequences.size(); ++u) {
    os << u + 1;
    for (std::int32_t i : d.sequences[u]) os << ' ' << i + 1;
    os << '\n';
  }
  const std::string path = (fs::path(dir) / "synthetic.txt").string();
  write_file_atomic(path, os.str());
  std::ostringstream titles;
  titles << "item_id\ttitle\n";
  for (std::int32_t i = 0; i < d.items.size(); ++i) titles << i + 1 << '\t' << d.items.title(i) << '\n';
  write_file_atomic((fs::path(dir) / "synthetic_titles.tsv").string(), titles.str());
  return path;
}

}  // namespace

int cmd_run(const Args& args) {
  cli::Flags flags("run",
                   "The whole pipeline: read (or generate) the data, train the teacher, run the three-stage\n"
                   "prune-and-distill schedule and print the ledger. Without --data it uses a built-in seeded\n"
                   "synthetic data set (popularity skew, item clusters, order effects). Re-running resumes.",
                   "prunerec run --data ../shared/data/amazon-beauty/s3rec/Beauty.txt --out runs/beauty");
  DataFlags data;
  data.add_to(flags, false);
  std::string out = "runs/default", config = "teacher", schedule = "schedule", controls;
  std::uint64_t seed = 42;
  int threads = 0, epochs = 0, max_len = 0;
  bool quiet = false, no_latency = false, json = false;
  flags.add("out", &out, "output folder");
  flags.add("config", &config, "teacher recipe: a file or a recipe preset (teacher, small)");
  flags.add("schedule", &schedule, "prune schedule: a file or the schedule preset 'schedule'");
  flags.add("seed", &seed, "seed of the data generator, the teacher and the schedule");
  flags.add("epochs", &epochs, "teacher epochs (default: the recipe's; 12 on the built-in data)");
  flags.range("epochs", 1);
  flags.add("max-len", &max_len, "longest history the teacher reads (default: the recipe's)");
  flags.range("max-len", 1);
  flags.add("controls", &controls, "also run controls: scratch, scratch-distill, random, no-recovery, or all");
  flags.add("threads", &threads, "worker threads (default: all cores)");
  flags.range("threads", 1);
  flags.add_switch("no-latency", &no_latency, "skip latency measurements");
  flags.add_switch("quiet", &quiet, "print nothing but the result (no progress, no data summary)");
  flags.add_switch("json", &json, "print the prune report.json instead of the Markdown ledger");
  flags.parse(args);
  const std::vector<std::string> wanted_controls = parse_controls(controls);
  check_output_folder("run", "--out", out);
  if (threads > 0) set_num_threads(threads);
  // The schedule and the recipe are read first: a bad one should fail before any work.
  std::string schedule_source, recipe_source;
  pb::Schedule sched =
      prune::parse_schedule(preset_or_file(schedule, PresetKind::kSchedule, "--schedule", &schedule_source), schedule_source);
  sched.set_seed(seed);
  pb::Recipe recipe;
  nn::parse_text_proto(preset_or_file(config, PresetKind::kRecipe, "--config", &recipe_source), recipe_source, &recipe);
  fs::create_directories(out);
  const bool builtin = data.path.empty();
  if (builtin) {
    data.path = write_synthetic(out, seed);
    data.titles = (fs::path(out) / "synthetic_titles.tsv").string();
    if (epochs == 0) epochs = 12;
    if (!quiet) std::cerr << "data: built-in synthetic data set written to " << data.path << "\n";
  }

  // 1. The teacher.
  recipe.mutable_train()->set_seed(seed);
  if (epochs > 0) recipe.mutable_train()->set_epochs(epochs);
  if (max_len > 0) recipe.mutable_model()->set_max_len(max_len);
  LoadedData d = load_data(data, recipe.data());
  *recipe.mutable_data() = d.config;
  recipe.mutable_model()->set_vocab_size(d.data.items.size());
  validate_recipe(recipe, recipe_source);
  if (!quiet) std::cerr << "data: " << d.summary << "\n";
  const std::string teacher_path = (fs::path(out) / "teacher.prc").string();
  train_from_recipe(recipe, d, data.path, teacher_path, {.resume = true, .quiet = quiet, .phase = "teacher"});

  // 2. The schedule (and controls).
  const prune::PruneRun run = make_prune_run(d, data.path, teacher_path, (fs::path(out) / "prune").string(), sched,
                                             quiet, !no_latency, command_line("run", args));
  pb::Report report = prune::run_schedule(run);
  run_controls(run, report, wanted_controls);
  if (json) {
    std::cout << prune::report_json(report);
  } else {
    std::cout << prune::ledger_text(report) << "Outputs: " << out << "/teacher.prc, " << run.out_dir
              << "/final.prc, " << run.out_dir << "/report.md (charts beside it)\n";
  }
  return 0;
}

}  // namespace prunerec::apps
