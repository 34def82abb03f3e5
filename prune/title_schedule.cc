#include "prune/title_schedule.h"

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "base/comm.h"
#include "base/format.h"
#include "nn/checkpoint.h"
#include "nn/checkpoint_file.h"
#include "prune/report.h"
#include "prune/schedule_parts.h"
#include "prune/title_distill.h"
#include "recsys/eval/paired.h"
#include "recsys/title/title_train.h"
#include "tensor/rng.h"

namespace prunerec::prune {
namespace {

namespace fs = std::filesystem;
using namespace parts;

// The longest test prompts first (a real user's history, as evaluation builds it).
std::vector<std::vector<std::int32_t>> longest_test_prompts(const recsys::SequenceDataset& data,
                                                            const recsys::DataSplit& split,
                                                            const recsys::TitleTask& task, std::size_t count) {
  std::vector<std::vector<std::int32_t>> prompts;
  for (const recsys::EvalExample& e : split.test) {
    const auto& seq = data.sequences[static_cast<std::size_t>(e.user)];
    prompts.push_back(task.prompt(data.items, std::span<const std::int32_t>(seq.data(), static_cast<std::size_t>(e.prefix_len)),
                                  "user " + data.users[static_cast<std::size_t>(e.user)]));
  }
  PR_CHECK_T(ConfigError, !prompts.empty(), "generation latency: the test split has no examples");
  std::stable_sort(prompts.begin(), prompts.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  prompts.resize(std::min(prompts.size(), count));
  return prompts;
}

// The ledger row of a title-mode model: sizes, title-generation metrics on valid (the first
// valid_limit examples) and test (the first test_limit, or all; per-user ranks written when per_user_path is set),
// and generation latency. FLOPs per recommendation are left out (title_schedule.h).
pb::StageRow measure_title_model(const nn::Transformer& model, const std::string& name, const std::string& kind,
                                 std::int64_t teacher_non_embedding, const TitlePruneRun& run,
                                 const std::string& per_user_path, Progress& progress) {
  pb::StageRow row = size_row(model, name, kind, teacher_non_embedding);
  recsys::TitleEvalOptions eo;
  eo.beams = run.beams;
  eo.split = "valid";
  eo.limit = run.valid_limit;
  const std::int64_t valid_n = run.valid_limit > 0 ? std::min<std::int64_t>(run.valid_limit, run.split->valid.size())
                                                   : static_cast<std::int64_t>(run.split->valid.size());
  progress.restart(name + ": valid evaluation (generation)", valid_n);
  for (const auto& [k, v] : recsys::evaluate_titles(model, *run.data, *run.split, *run.task, eo, &progress).metrics)
    (*row.mutable_valid_metrics())[k] = v;
  eo.split = "test";
  eo.limit = run.test_limit;
  const auto test_all = static_cast<std::int64_t>(run.split->test.size());
  progress.restart(name + ": test evaluation (generation)", run.test_limit > 0 ? std::min(run.test_limit, test_all) : test_all);
  const recsys::EvalResult test = recsys::evaluate_titles(model, *run.data, *run.split, *run.task, eo, &progress);
  for (const auto& [k, v] : test.metrics) (*row.mutable_metrics())[k] = v;
  if (!per_user_path.empty()) recsys::write_per_user(per_user_path, test, *run.data);
  if (run.latency) {
    progress.restart(name + ": generation latency", 0);
    progress.update(0, "");
    *row.mutable_latency() = measure_generation_latency(model, *run.data, *run.split, *run.task, run.beams);
    row.set_latency_ms(row.latency().one_user_ms());
  }
  progress.clear();
  return row;
}

}  // namespace

Calibration title_calibration(const std::vector<recsys::TitleSequence>& train, const pb::CalibrationConfig& config) {
  PR_CHECK_T(ConfigError, config.sequences() > 0 && config.batch_size() > 0,
             "title calibration: sequences and batch_size must be positive");
  PR_CHECK_T(ConfigError, !train.empty(), "title calibration: no training sequences");
  std::vector<std::int32_t> chosen(train.size());
  for (std::size_t i = 0; i < chosen.size(); ++i) chosen[i] = static_cast<std::int32_t>(i);
  Rng rng(config.seed(), hash_stream(0xca11b, 0x717e));
  rng.shuffle(chosen);
  chosen.resize(std::min<std::size_t>(chosen.size(), static_cast<std::size_t>(config.sequences())));
  std::sort(chosen.begin(), chosen.end());
  std::vector<recsys::TitleSequence> sample;
  for (std::int32_t i : chosen) sample.push_back(train[static_cast<std::size_t>(i)]);
  Calibration c;
  c.sequences = static_cast<std::int64_t>(sample.size());
  for (const auto& rows : recsys::length_grouped_batches(sample, config.batch_size(), rng)) {
    const recsys::TitleBatch tb = recsys::make_title_batch(sample, rows);
    recsys::Batch b;
    b.ids = tb.ids;
    b.targets = tb.targets;
    b.pads = tb.pads;
    b.positions = tb.positions;
    c.positions += b.positions;
    c.batches.push_back(std::move(b));
  }
  return c;
}

pb::Latency measure_generation_latency(const nn::Transformer& model, const recsys::SequenceDataset& data,
                                       const recsys::DataSplit& split, const recsys::TitleTask& task,
                                       const recsys::BeamOptions& beams, const LatencyOptions& o) {
  const int users = std::max(1, beams.users_per_batch);
  const auto prompts = longest_test_prompts(data, split, task, static_cast<std::size_t>(users));
  const std::vector<std::vector<std::int32_t>> one = {prompts.front()};
  pb::Latency lat = time_latency([&] { recsys::generate_titles(model, task.trie, one, beams); },
                                 [&] { recsys::generate_titles(model, task.trie, prompts, beams); },
                                 static_cast<std::int32_t>(prompts.size()), o);
  lat.set_measured(detail::str_cat("title generation, ", beams.beams, " beams"));
  return lat;
}

pb::Report run_title_schedule(const TitlePruneRun& run) {
  PR_CHECK_T(ConfigError, run.data && run.split && run.task && run.train,
             "title prune: data, split, title task and training sequences are required");
  std::ostream& log = log_stream(run.log, run.progress);
  const auto t_run = Clock::now();
  // Everything that can be checked is checked before the output folder is touched.
  const nn::LoadedModel loaded = nn::load_model(run.teacher_path, {.with_optimizer = false});
  const nn::Transformer& teacher = *loaded.model;
  const pb::Manifest& manifest = loaded.manifest;
  PR_CHECK_T(ConfigError, manifest.has_title_mode(), run.teacher_path,
             ": not a title-mode model (no TitleMode record); item-token models run prune::run_schedule");
  check_schedule_fits(run.schedule, teacher.config());
  for (int i = 0; i < run.schedule.stages_size(); ++i)
    PR_CHECK_T(ConfigError, recovery_of(run.schedule, run.schedule.stages(i)).distill_top_k() == 0, "schedule stage ",
               i + 1, " (", stage_name(run.schedule.stages(i), i),
               "): distill_top_k applies to item-token mode only; title mode distils the whole vocabulary");
  // Every checkpoint: the teacher's title-mode records and metadata, plus the run's.
  std::map<std::string, std::string> metadata(manifest.metadata().begin(), manifest.metadata().end());
  for (const auto& [k, v] : run.metadata) metadata[k] = v;
  nn::SaveOptions save_options;
  save_options.catalog = &manifest.catalog();
  save_options.title_mode = &manifest.title_mode();
  save_options.pretrained = manifest.has_pretrained() ? &manifest.pretrained() : nullptr;
  save_options.metadata = metadata;
  auto save = [&](const std::string& path, const nn::Transformer& m) { nn::save_model(path, m, save_options); };

  pb::Report report =
      open_report(run.out_dir, run.schedule, run.redo, run.data_description, run.teacher_path, run.command);
  report.set_mode("title");
  {
    recsys::Protocol p;
    p.split = "test";
    p.split_kind = run.split->kind;
    p.ranking = "title-generation";
    p.beams = run.beams.beams;
    p.exclude_history = false;
    const auto test_all = static_cast<std::int64_t>(run.split->test.size());
    report.set_protocol(recsys::describe(p) +
                        (run.test_limit > 0 && run.test_limit < test_all
                             ? ", the first " + std::to_string(run.test_limit) + " of " + std::to_string(test_all) + " test examples"
                             : std::string()));
  }

  const std::int64_t teacher_non_emb = teacher.non_embedding_parameters();
  Progress progress(log, "", 0, run.progress);  // Note [progress of nested work]
  const std::string teacher_per_user = (fs::path(run.out_dir) / "teacher.per-user.tsv").string();
  if (report.stages_size() == 0) {
    log << "teacher: measuring " << run.teacher_path << "\n";
    pb::StageRow row = measure_title_model(teacher, "teacher", "teacher", teacher_non_emb, run, teacher_per_user, progress);
    row.set_checkpoint(run.teacher_path);
    *report.add_stages() = row;
    write_report(run.out_dir, report);
  }

  Calibration calib = title_calibration(*run.train, run.schedule.calibration());
  WorkMeter meter(progress, "");
  calib.meter = &meter;
  report.set_calibration_sequences(static_cast<std::int32_t>(calib.sequences));
  log << "calibration: " << plural(calib.sequences, "title sequence") << ", " << plural(calib.positions, "target token")
      << "\n";

  std::string previous_path = run.teacher_path;
  double stages_seconds = 0;  // Note [schedule time estimate]
  int stages_timed = 0;
  for (int i = 0; i < run.schedule.stages_size(); ++i) {
    const pb::StageConfig& st = run.schedule.stages(i);
    const std::string name = stage_name(st, i);
    const StageFiles files = stage_files(run.out_dir, name);
    if (stage_done(report, i, name, files)) {
      log << name << ": done (" << files.model << ")\n";
      previous_path = files.model;
      continue;
    }
    while (report.stages_size() > i + 1) report.mutable_stages()->RemoveLast();  // later rows are stale
    const auto t_stage = Clock::now();
    log_stage_start(log, name, i, run.schedule.stages_size(), seconds_since(t_run), stages_seconds, stages_timed);
    PrunedStage pruned = prune_or_reuse(files, previous_path, run.schedule, i, calib, meter, run.redo, nullptr, name,
                                        save, teacher_non_emb, log);
    std::unique_ptr<nn::Transformer>& model = pruned.model;
    recsys::TitleEvalOptions eo;
    eo.split = "test";
    eo.beams = run.beams;
    progress.restart(name + ": test evaluation before recovery", static_cast<std::int64_t>(run.split->test.size()));
    const recsys::EvalResult before = recsys::evaluate_titles(*model, *run.data, *run.split, *run.task, eo, &progress);
    progress.clear();

    // Recover: distillation on the target rows (prune/title_distill.h), validation by
    // generation on the first valid_limit examples, the best epoch saved.
    const pb::RecoveryConfig rc = recovery_of(run.schedule, st);
    recsys::TitleTrainResult tr;
    if (rc.enabled()) {
      std::unique_ptr<nn::Transformer> previous_teacher;
      const nn::Transformer* distill_teacher = &teacher;
      if (rc.teacher() == pb::RecoveryConfig::PREVIOUS && previous_path != run.teacher_path) {
        previous_teacher = load_net(previous_path);
        distill_teacher = previous_teacher.get();
      }
      recsys::TitleTrainSpec spec;
      spec.train = run.train;
      spec.config = recovery_train_config(run.schedule, st);
      spec.loss = title_distillation_loss(*distill_teacher, rc.alpha(), rc.temperature());
      spec.validate = [&](const nn::Transformer& m) {
        return recsys::evaluate_titles(m, *run.data, *run.split, *run.task,
                                       {.split = "valid", .beams = run.beams, .limit = run.valid_limit});
      };
      spec.save_best = [&](const nn::Transformer& m) {
        if (world().is_root()) save(files.model, m);
        world().barrier();  // Note [files decided on rank 0]
      };
      spec.log = &log;
      spec.progress = run.progress;
      tr = recsys::train_title_model(*model, spec);
      model = load_net(files.model);  // the best epoch
    } else if (world().is_root()) {
      save(files.model, *model);
    }
    world().barrier();

    pb::StageRow row = measure_title_model(*model, name, kind_name(st.kind()), teacher_non_emb, run,
                                           per_user_path_of(files.model), progress);
    row.set_checkpoint(files.model);
    fill_stage_row(row, pruned, st, before.metrics);
    row.set_recovery_seconds(tr.seconds);
    row.set_recovery_epochs(tr.epochs_run);
    row.set_recovery_best_epoch(tr.best_epoch);
    for (double v : tr.loss_curve) row.add_loss_curve(v);
    for (double v : tr.valid_curve) row.add_valid_curve(v);
    row.set_wall_seconds(seconds_since(t_stage));
    add_stage_row(report, row, run.out_dir, log);
    stages_seconds += seconds_since(t_stage);
    ++stages_timed;
    previous_path = files.model;
  }

  // DIR/final.prc: the last stage's model, a title-mode model file.
  if (world().is_root()) save((fs::path(run.out_dir) / "final.prc").string(), *load_net(previous_path));
  world().barrier();
  // Note [paired differences] (schedule.cc): the teacher against the final stage; both
  // files were written when the rows were measured (a resumed run whose file is missing
  // leaves the difference out).
  const std::string final_users = per_user_path_of(previous_path);
  if (report.stages_size() >= 2 && exists_agreed(final_users) && exists_agreed(teacher_per_user))
    *report.mutable_stages(0)->mutable_vs_final() = paired_difference(
        recsys::read_per_user(final_users), recsys::read_per_user(teacher_per_user), run.schedule);
  write_report(run.out_dir, report);
  return report;
}

}  // namespace prunerec::prune
