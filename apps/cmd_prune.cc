// prunerec prune
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/common.h"
#include "apps/pipeline.h"
#include "nn/text_proto.h"
#include "prune/report.h"
#include "prune/schedule.h"
#include "recsys/recommender.h"
#include "tensor/parallel.h"

namespace prunerec::apps {

int cmd_prune(const Args& args) {
  cli::Flags flags("prune",
                   "Shrink a teacher with the three-stage prune-and-distill schedule; writes DIR/report.json, report.md,\n"
                   "SVG charts, one checkpoint per stage and DIR/final.prc. Re-running resumes where it stopped.",
                   "prunerec prune --teacher runs/beauty/teacher.prc --data ../shared/data/amazon-beauty/s3rec/Beauty.txt --schedule schedule --out runs/beauty/prune");
  DataFlags data;
  data.add_to(flags, false);
  std::string teacher, schedule = "schedule", out, controls, budgets;
  int threads = 0, seeds = 1;
  bool redo = false, quiet = false, no_latency = false, json = false;
  flags.add("teacher", &teacher, "the teacher model", cli::Flags::kRequired);
  flags.add("schedule", &schedule, "schedule: a text-format file or the schedule preset 'schedule'");
  flags.add("out", &out, "output folder", cli::Flags::kRequired);
  flags.add("controls", &controls, "comma list of controls to run after the schedule: scratch, scratch-distill, scratch-flops, random, no-recovery (or all)");
  flags.add("threads", &threads, "worker threads (default: all cores)");
  flags.range("threads", 1);
  flags.add("budgets", &budgets, "comma list of epochs per recovery, e.g. 1,3,10,30: the student-budget curve (pruned, scratch-distill, scratch at each) in OUT/budget/ and OUT/budget_curve.svg");
  flags.add("seeds", &seeds, "student seeds: recoveries and controls run with N schedule seeds (seed k > 0 in OUT/seeds/), reported as mean and standard deviation");
  flags.range("seeds", 1);
  flags.add_switch("redo", &redo, "recompute finished stages and controls instead of skipping them");
  flags.add_switch("no-latency", &no_latency, "skip latency measurements");
  flags.add_switch("quiet", &quiet, "print nothing but the result (no progress, no data summary)");
  flags.add_switch("json", &json, "print report.json instead of the Markdown ledger");
  flags.parse(args);
  const std::vector<std::string> wanted_controls = parse_controls(controls);
  check_output_folder("prune", "--out", out);
  if (threads > 0) set_num_threads(threads);

  std::string schedule_source;
  const pb::Schedule sched =
      prune::parse_schedule(preset_or_file(schedule, PresetKind::kSchedule, "--schedule", &schedule_source), schedule_source);
  const recsys::Recommender rec = recsys::load_recommender(teacher);
  LoadedData d = load_model_data(data, rec.catalog, rec.manifest.metadata(), teacher, "prune");
  if (!quiet) std::cerr << "data: " << d.summary << "\n";

  prune::PruneRun run =
      make_prune_run(d, data.path, teacher, out, sched, quiet, !no_latency, command_line("prune", args));
  run.redo = redo;  // the schedule, the seeds, the controls and the budget curve alike
  if (seeds < 1) throw cli::UsageError("prune: --seeds must be at least 1");
  pb::Report report;
  if (seeds > 1) {
    report = prune::run_with_seeds(run, seeds, wanted_controls);
  } else {
    report = prune::run_schedule(run);
    run_controls(run, report, wanted_controls);
  }
  if (!budgets.empty()) {
    std::vector<int> epochs;
    std::stringstream list(budgets);
    for (std::string item; std::getline(list, item, ',');) {
      try {
        std::size_t used = 0;
        epochs.push_back(std::stoi(item, &used));
        if (used != item.size()) throw std::invalid_argument(item);
      } catch (const std::exception&) {
        throw cli::UsageError("prune: --budgets must be a comma list of epochs, got '" + budgets + "'");
      }
    }
    prune::run_budget_curve(run, epochs);
    report = prune::read_report(out);
  }
  std::cout << (json ? prune::report_json(report) : prune::ledger_text(report));
  return 0;
}

}  // namespace prunerec::apps
