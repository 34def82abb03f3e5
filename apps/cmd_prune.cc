// prunerec prune
#include <filesystem>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/common.h"
#include "apps/pipeline.h"
#include "apps/title.h"
#include "nn/text_proto.h"
#include "base/atomic_file.h"
#include "base/format.h"
#include "nn/checkpoint.h"
#include "prune/report.h"
#include "prune/token_calibration.h"
#include "prune/schedule.h"
#include "recsys/recommender.h"
#include "tensor/parallel.h"

namespace prunerec::apps {
namespace {

namespace fs = std::filesystem;

// prune --calibration-tokens: Note [one-shot pruning] on an imported (or any) model, each
// stage's model, plan and scores written to OUT as a schedule run writes them, and a table
// of sizes and calibration losses on stdout.
int prune_on_tokens(const std::string& model_path, const std::string& tokens_path, const pb::Schedule& schedule,
                    const std::string& out, bool quiet) {
  nn::LoadedModel loaded = nn::load_model(model_path, {.with_optimizer = false});
  nn::Transformer& model = *loaded.model;
  const auto sequences = prune::read_token_sequences(tokens_path, model.vocab_size());
  prune::Calibration calib =
      prune::token_calibration(sequences, static_cast<int>(model.config().max_len()), schedule.calibration());
  std::ostringstream silent;
  std::ostream& log = quiet ? silent : std::cerr;
  Progress progress(log, "", 0, quiet ? Progress::Mode::kSilent : Progress::Mode::kAuto);
  WorkMeter meter(progress, "");
  calib.meter = &meter;
  if (!quiet)
    log << "calibration: " << calib.sequences << " token sequences of " << tokens_path << ", " << calib.positions
        << " positions\n";
  const std::int64_t before = model.non_embedding_parameters();
  const double loss0 = prune::calibration_loss(model, calib);
  const std::vector<prune::OneShotStage> stages = prune::prune_one_shot(model, schedule, calib, log);
  fs::create_directories(out);
  nn::SaveOptions save;
  if (loaded.manifest.has_pretrained()) save.pretrained = &loaded.manifest.pretrained();
  save.metadata = {{"one_shot_prune_of", model_path}, {"calibration_tokens", tokens_path}};
  // The stages' plans and scores as a schedule run writes them; the model only after the
  // last cut (the intermediate models are not kept: the plans compose to it).
  for (const prune::OneShotStage& st : stages) {
    write_file_atomic((fs::path(out) / (st.name + ".plan.pbtxt")).string(), nn::to_text_proto(st.plan));
    write_file_atomic((fs::path(out) / (st.name + ".scores.json")).string(), st.scores_json);
  }
  const std::string final_path = (fs::path(out) / "final.prc").string();
  nn::save_model(final_path, model, save);
  std::cout << "| model | non-embedding parameters | of the original | calibration loss |\n|---|---:|---:|---:|\n"
            << "| " << model_path << " | " << format_grouped(before) << " | 100% | " << format_fixed(loss0, 4) << " |\n";
  for (const prune::OneShotStage& st : stages)
    std::cout << "| " << st.name << " | " << format_grouped(st.non_embedding_parameters) << " | "
              << format_percent(static_cast<double>(st.non_embedding_parameters) / static_cast<double>(before)) << " | "
              << format_fixed(st.loss_after, 4) << " |\n";
  std::cout << "final model: " << final_path << " (no recovery: Note [one-shot pruning])\n";
  return 0;
}

}  // namespace

int cmd_prune(const Args& args) {
  cli::Flags flags("prune",
                   "Shrink a teacher with the three-stage prune-and-distill schedule; writes DIR/report.json, report.md,\n"
                   "SVG charts, one checkpoint per stage and DIR/final.prc. Re-running resumes where it stopped.",
                   "prunerec prune --teacher runs/beauty/teacher.prc --data ../shared/data/amazon-beauty/s3rec/Beauty.txt --schedule schedule --out runs/beauty/prune");
  DataFlags data;
  data.add_to(flags, false);
  std::string teacher, schedule = "schedule", out, controls, budgets, calibration_tokens;
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
  flags.add("calibration-tokens", &calibration_tokens,
            "one-shot prune of a language model (e.g. an imported one) scored on these token sequences, one per line "
            "(Note [token calibration]); no recovery, no item data");
  int beams = 20;
  std::int64_t valid_limit = 500;
  flags.add("beams", &beams, "title-mode teachers: beams of the constrained beam search, for evaluation and latency (the paper's 20)");
  flags.range("beams", 1);
  flags.add("valid-limit", &valid_limit, "title-mode teachers: validation examples per evaluation (0 = all), as train --mode title");
  flags.range("valid-limit", 0);
  std::int64_t test_limit = 0;
  flags.add("test-limit", &test_limit, "title-mode teachers: generate only the first N test examples per evaluation (default: all), as train --mode title");
  flags.range("test-limit", 0);
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
  if (!calibration_tokens.empty()) {
    if (!data.path.empty() || !controls.empty() || !budgets.empty() || seeds > 1 || json)
      throw cli::UsageError("prune: --calibration-tokens prunes one-shot on token sequences; --data, --controls, "
                            "--budgets, --seeds and --json belong to the schedule with recovery");
    return prune_on_tokens(teacher, calibration_tokens, sched, out, quiet);
  }
  if (is_title_model(teacher)) {
    // Title mode (docs/title-mode.md, "Pruning"): the schedule with title-generation rows.
    for (const auto& [flag, given] : {std::pair<const char*, bool>{"--controls", !controls.empty()},
                                      {"--budgets", !budgets.empty()}, {"--seeds", seeds > 1}})
      if (given)
        throw cli::UsageError(std::string("prune: ") + flag + " applies to item-token models only; " + teacher +
                              " is a title-mode model (the schedule alone runs on it)");
    return prune_title_mode(teacher, data, sched, out,
                            {.beams = beams, .valid_limit = valid_limit, .test_limit = test_limit, .redo = redo, .latency = !no_latency,
                             .quiet = quiet, .json = json},
                            command_line("prune", args));
  }
  for (const char* f : {"beams", "valid-limit", "test-limit"})
    if (flags.given(f))
      throw cli::UsageError(std::string("prune: --") + f + " applies to title-mode teachers only; " + teacher +
                            " is an item-token model");
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
