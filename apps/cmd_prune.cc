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
  std::string teacher, schedule = "schedule", out, controls;
  int threads = 0;
  bool redo = false, quiet = false, no_latency = false, json = false;
  flags.add("teacher", &teacher, "the teacher model", cli::Flags::kRequired);
  flags.add("schedule", &schedule, "schedule: a text-format file or the preset 'schedule'");
  flags.add("out", &out, "output folder", cli::Flags::kRequired);
  flags.add("controls", &controls, "comma list of controls to run after the schedule: scratch, scratch-distill, random, no-recovery (or all)");
  flags.add("threads", &threads, "worker threads (default: all cores)");
  flags.add_switch("redo", &redo, "recompute finished stages instead of skipping them");
  flags.add_switch("no-latency", &no_latency, "skip latency measurements");
  flags.add_switch("quiet", &quiet, "no progress output");
  flags.add_switch("json", &json, "print report.json instead of the Markdown ledger");
  flags.parse(args);
  const std::vector<std::string> wanted_controls = parse_controls(controls);
  if (flags.given("threads") && threads <= 0) throw cli::UsageError("prune: --threads must be positive");
  if (threads > 0) set_num_threads(threads);

  const pb::Schedule sched = prune::parse_schedule(preset_or_file(schedule, "schedule"), schedule);
  const recsys::Recommender rec = recsys::load_recommender(teacher);
  if (data.path.empty()) {
    const auto it = rec.manifest.metadata().find("data.path");
    if (it == rec.manifest.metadata().end()) throw cli::UsageError("prune: --data is required (the teacher does not record its data)");
    data.path = it->second;
  }
  LoadedData d = load_data(data, data_config_from_metadata(rec.manifest.metadata()));
  align_to_catalog(d.data, rec.catalog);
  std::cerr << "data: " << d.summary << "\n";

  const prune::PruneRun run =
      make_prune_run(d, data.path, teacher, out, sched, quiet, !no_latency, command_line("prune", args));
  prune::PruneRun resumable = run;
  resumable.redo = redo;
  pb::Report report = prune::run_schedule(resumable);
  run_controls(run, report, wanted_controls);
  std::cout << (json ? prune::report_json(report) : prune::ledger_text(report));
  return 0;
}

}  // namespace prunerec::apps
