#include "prune/schedule.h"

#include "proto/train.pb.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "nn/checkpoint.h"
#include "nn/checkpoint_file.h"
#include "nn/text_proto.h"
#include "prune/distill.h"
#include "prune/importance.h"
#include "prune/ledger.h"
#include "prune/report.h"
#include "prune/surgery.h"
#include "prune/schedule_parts.h"
#include "recsys/eval/evaluator.h"
#include "recsys/eval/paired.h"
#include "recsys/recommender.h"
#include "recsys/trainer.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"
#include "base/atomic_file.h"
#include "base/comm.h"
#include "base/format.h"
#include "base/json.h"

namespace prunerec::prune {
namespace {

namespace fs = std::filesystem;

// The mode-independent parts (prune/schedule_parts.h), shared with the title-mode driver.
using namespace parts;

std::ostream& log_stream(const PruneRun& run) { return parts::log_stream(run.log, run.progress); }

// What the teacher cache keeps for a recovery: the top-k view at the recovery's
// temperature, or the states (whose values do not depend on the temperature, so stages
// with different temperatures share them).
CacheMode cache_mode(const pb::RecoveryConfig& r) {
  return r.distill_top_k() > 0 ? CacheMode{r.distill_top_k(), r.temperature()} : CacheMode{};
}

// Note [paired differences]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// Every model the schedule evaluates on the test split (the teacher, each stage, each
// control) keeps its per-user ranks beside its checkpoint, in the format `prunerec eval
// --per-user` writes (recsys::write_per_user, published atomically): <checkpoint without
// .prc>.per-user.tsv, the teacher's as DIR/teacher.per-user.tsv (its checkpoint lives
// outside DIR). The teacher and every control then carry vs_final: the paired bootstrap
// over users (Note [paired bootstrap]) of their NDCG@10 minus the final stage's, with
// Schedule.bootstrap_resamples resamples seeded from the schedule's seed. A resumed run
// whose file is missing (a run from before the files existed, or a deleted file)
// evaluates that checkpoint again; ranks are deterministic for a given model and thread
// count, so the file is the one the first run would have written. The report renders a
// difference whose interval contains 0 as "no difference".
// The per-user file of `checkpoint`, evaluated again when it is missing.
recsys::PerUser ensure_per_user(const std::string& per_user_path, const std::string& checkpoint, const PruneRun& run,
                                std::ostream& log) {
  if (!exists_agreed(per_user_path)) {
    log << "  per-user ranks: " << per_user_path << " is missing; evaluating " << checkpoint << " again\n";
    const auto model = load_net(checkpoint);
    recsys::EvalOptions eo;
    eo.protocol.split = "test";
    eo.max_len = static_cast<int>(model->config().max_len());
    recsys::write_per_user(per_user_path, recsys::evaluate_model(*model, *run.data, *run.split, eo), *run.data);
    world().barrier();  // Note [files decided on rank 0]
  }
  return recsys::read_per_user(per_user_path);
}

std::string teacher_per_user_path(const PruneRun& run) {
  return (fs::path(run.out_dir) / "teacher.per-user.tsv").string();
}

// The final stage's per-user file of a finished run_schedule report.
recsys::PerUser final_per_user(const PruneRun& run, const pb::Report& report, std::ostream& log) {
  PR_CHECK_T(ConfigError, report.stages_size() >= 2, "paired differences: the run has no final stage yet");
  const std::string& ckpt = report.stages(report.stages_size() - 1).checkpoint();
  return ensure_per_user(per_user_path_of(ckpt), ckpt, run, log);
}

}  // namespace

pb::Schedule parse_schedule(const std::string& text, const std::string& source) {
  pb::Schedule s;
  nn::parse_text_proto(text, source, &s);
  PR_CHECK_T(ConfigError, s.stages_size() > 0, source, ": the schedule has no stages");
  PR_CHECK_T(ConfigError, s.bootstrap_resamples() >= 1, source, ": bootstrap_resamples must be at least 1, got ",
             s.bootstrap_resamples());
  for (int i = 0; i < s.stages_size(); ++i) {
    const auto& st = s.stages(i);
    PR_CHECK_T(ConfigError, st.has_kind(), source, ": stage ", i + 1, " has no kind");
    for (double f : {st.keep_heads_fraction(), st.keep_hidden_fraction(), st.keep_mlp_fraction(), st.keep_layers_fraction()})
      PR_CHECK_T(ConfigError, f >= 0 && f <= 1, source, ": stage ", i + 1, ": fractions must be in [0, 1], got ", f);
    const pb::RecoveryConfig r = recovery_of(s, st);
    PR_CHECK_T(ConfigError, r.alpha() >= 0 && r.alpha() <= 1 && r.temperature() > 0, source, ": stage ", i + 1,
               ": recovery alpha must be in [0, 1] and temperature positive");
    PR_CHECK_T(ConfigError, r.distill_top_k() >= 0, source, ": stage ", i + 1, ": distill_top_k must be 0 (the whole "
               "catalogue) or positive, got ", r.distill_top_k());
  }
  return s;
}


pb::Report run_schedule(const PruneRun& run) {
  PR_CHECK_T(ConfigError, run.data && run.split, "prune: data and split are required");
  std::ostream& log = log_stream(run);
  const auto t_run = Clock::now();
  // Everything that can be checked is checked before the output folder is touched.
  const recsys::Recommender teacher_rec = recsys::load_recommender(run.teacher_path);
  const nn::Transformer& teacher = *teacher_rec.net;
  PR_CHECK_T(ConfigError, teacher.vocab_size() == run.split->num_items, "prune: the teacher scores ", teacher.vocab_size(),
             " items, the data has ", run.split->num_items);
  check_schedule_fits(run.schedule, teacher.config());
  pb::Report report =
      open_report(run.out_dir, run.schedule, run.redo, run.data_description, run.teacher_path, run.command);
  {
    recsys::Protocol p;
    p.split = "test";
    p.split_kind = run.split->kind;
    report.set_protocol(recsys::describe(p));
  }

  const std::int64_t teacher_non_emb = teacher.non_embedding_parameters();
  // The live line of the work between trainings: measuring, calibration, scoring (Note
  // [progress of nested work]); the recoveries draw their own.
  Progress progress(log, "", 0, run.progress);
  RowOptions row_options;
  row_options.latency = run.latency;
  row_options.progress = &progress;
  if (report.stages_size() == 0) {
    log << "teacher: measuring " << run.teacher_path << "\n";
    RowOptions teacher_options = row_options;
    teacher_options.per_user_path = teacher_per_user_path(run);
    pb::StageRow row = measure_model(teacher, "teacher", "teacher", teacher_non_emb, *run.data, *run.split, teacher_options);
    row.set_checkpoint(run.teacher_path);
    const auto [positions, epochs] = trained_positions(run.teacher_path);
    row.set_trained_positions(positions);
    row.set_training_flops(training_flops(row.config(), positions, epochs, nullptr));
    row.set_path_training_flops(row.training_flops());
    row.set_path_training_flops_without_teacher(0);
    *report.add_stages() = row;
    write_report(run.out_dir, report);
  }

  const int max_len = teacher.config().max_len();
  Calibration calib = make_calibration(run.split->train, max_len, run.schedule.calibration());
  WorkMeter meter(progress, "");
  calib.meter = &meter;
  report.set_calibration_sequences(static_cast<std::int32_t>(calib.sequences));
  log << "calibration: " << plural(calib.sequences, "training sequence") << ", "
      << plural(calib.positions, "position") << "\n";

  std::string previous_path = run.teacher_path;
  TeacherCache original_cache(teacher);  // Note [teacher cache], shared by the stages
  double stages_seconds = 0;  // Note [schedule time estimate]
  int stages_timed = 0;
  for (int i = 0; i < run.schedule.stages_size(); ++i) {
    const pb::StageConfig& st = run.schedule.stages(i);
    const std::string name = stage_name(st, i);
    const StageFiles files = stage_files(run.out_dir, name);
    const std::string& stage_path = files.model;
    if (stage_done(report, i, name, files)) {
      log << name << ": done (" << stage_path << ")\n";
      previous_path = stage_path;
      continue;
    }
    while (report.stages_size() > i + 1) report.mutable_stages()->RemoveLast();  // later rows are stale
    const auto t_stage = Clock::now();
    log_stage_start(log, name, i, run.schedule.stages_size(), seconds_since(t_run), stages_seconds, stages_timed);

    // Prune: reuse the pruned model if an interrupted run left it.
    PrunedStage pruned = prune_or_reuse(
        files, previous_path, run.schedule, i, calib, meter, run.redo,
        i < static_cast<int>(run.size_match.size()) ? &run.size_match[i] : nullptr, name,
        [&](const std::string& path, const nn::Transformer& m) {
          recsys::save_recommender(path, m, teacher_rec.catalog, {.metadata = run.metadata});
        },
        teacher_non_emb, log);
    std::unique_ptr<nn::Transformer>& model = pruned.model;
    recsys::EvalOptions eo;
    eo.protocol.split = "test";
    eo.max_len = max_len;
    progress.restart(name + ": test evaluation before recovery", static_cast<std::int64_t>(run.split->test.size()));
    const recsys::EvalResult before = recsys::evaluate_model(*model, *run.data, *run.split, eo, &progress);
    progress.clear();

    // Recover.
    const pb::RecoveryConfig rc = recovery_of(run.schedule, st);
    recsys::TrainResult tr;
    std::unique_ptr<nn::Transformer> previous_teacher;
    double resumed_seconds = 0;  // recovery time spent by earlier, interrupted runs
    pb::ModelConfig distill_teacher_config = teacher.config();
    if (rc.enabled()) {
      const nn::Transformer* distill_teacher = &teacher;
      if (rc.teacher() == pb::RecoveryConfig::PREVIOUS && previous_path != run.teacher_path) {
        previous_teacher = load_net(previous_path);
        distill_teacher = previous_teacher.get();
        distill_teacher_config = previous_teacher->config();
      }
      recsys::TrainSpec spec;
      spec.data = run.data;
      spec.split = run.split;
      spec.config = recovery_train_config(run.schedule, st);
      spec.out_path = stage_path;
      spec.resume = !run.redo;
      spec.catalog = &teacher_rec.catalog;
      spec.metadata = run.metadata;
      spec.stop = run.stop;
      spec.phase = name + " recovery";
      // Note [teacher cache]: the teacher's states for every window, computed once.
      TeacherCache previous_cache(*distill_teacher);
      TeacherCache* cache = distill_teacher == &teacher ? &original_cache : &previous_cache;
      spec.loss = distillation_loss(*distill_teacher, rc.alpha(), rc.temperature(), cache, rc.distill_top_k());
      spec.on_start = distillation_on_start(cache, cache_mode(rc));
      spec.log = &log;
      spec.progress = run.progress;
      if (run.redo) fs::remove(stage_path + ".state");
      const auto t_train = Clock::now();
      tr = recsys::train_model(*model, spec);
      // A resumed recovery reports its training time over every run (tr.seconds), so the
      // stage's wall time counts the earlier runs' part too, not this call's alone.
      resumed_seconds = std::max(0.0, tr.seconds - seconds_since(t_train));
      model = load_net(stage_path);  // the best epoch
    } else {
      recsys::save_recommender(stage_path, *model, teacher_rec.catalog, {.metadata = run.metadata});
    }

    RowOptions stage_options = row_options;
    stage_options.per_user_path = per_user_path_of(stage_path);
    pb::StageRow row = measure_model(*model, name, kind_name(st.kind()), teacher_non_emb, *run.data, *run.split, stage_options);
    row.set_checkpoint(stage_path);
    fill_stage_row(row, pruned, st, before.metrics);
    row.set_recovery_seconds(tr.seconds);
    row.set_recovery_epochs(tr.epochs_run);
    row.set_recovery_best_epoch(tr.best_epoch);
    for (double v : tr.loss_curve) row.add_loss_curve(v);
    for (double v : tr.valid_curve) row.add_valid_curve(v);
    if (rc.enabled()) {
      const auto [positions, epochs] = trained_positions(stage_path);
      row.set_trained_positions(positions);
      row.set_training_flops(training_flops(row.config(), positions, epochs, &distill_teacher_config));
    }
    const pb::StageRow& prev_row = report.stages(report.stages_size() - 1);
    row.set_path_training_flops(prev_row.path_training_flops() + row.training_flops());
    row.set_path_training_flops_without_teacher(prev_row.path_training_flops_without_teacher() + row.training_flops());
    row.set_wall_seconds(resumed_seconds + seconds_since(t_stage));
    add_stage_row(report, row, run.out_dir, log);
    stages_seconds += seconds_since(t_stage);
    ++stages_timed;
    previous_path = stage_path;
  }

  // DIR/final.prc: the last stage's model.
  const std::string final_path = (fs::path(run.out_dir) / "final.prc").string();
  {
    const recsys::Recommender last = recsys::load_recommender(previous_path);
    recsys::save_recommender(final_path, *last.net, last.catalog, {.metadata = run.metadata});
  }
  // Note [paired differences]: the teacher against the final stage.
  if (report.stages_size() >= 2) {
    const recsys::PerUser teacher_users = ensure_per_user(teacher_per_user_path(run), run.teacher_path, run, log);
    *report.mutable_stages(0)->mutable_vs_final() =
        paired_difference(final_per_user(run, report, log), teacher_users, run.schedule);
  }
  write_report(run.out_dir, report);
  return report;
}

pb::StageRow run_control(const PruneRun& main_run, const pb::Report& main_report, const std::string& control) {
  std::ostream& log = log_stream(main_run);
  const std::string dir = (fs::path(main_run.out_dir) / "controls" / control).string();
  fs::create_directories(dir);
  int total_epochs = 0;
  for (const auto& st : main_run.schedule.stages())
    if (recovery_of(main_run.schedule, st).enabled()) total_epochs += recovery_train_config(main_run.schedule, st).epochs();
  const auto t0 = Clock::now();
  const recsys::Recommender teacher_rec = recsys::load_recommender(main_run.teacher_path);
  const std::int64_t teacher_non_emb = teacher_rec.net->non_embedding_parameters();
  Progress progress(log, "", 0, main_run.progress);  // Note [progress of nested work]
  RowOptions row_options;
  row_options.latency = main_run.latency;
  row_options.progress = &progress;

  if (control == "scratch" || control == "scratch-distill" || control == "scratch-flops") {
    // Both start from random weights in the final stage's config and train for as many
    // epochs as all recoveries together. "scratch" uses plain cross-entropy and the
    // teacher's own recipe (the fairest recipe for a model without a teacher: the
    // recoveries' recipe assumes one to distil from); "scratch-distill" uses the last
    // recovery's recipe, distillation from the original teacher included, so against the
    // final stage it isolates what the pruned weights are worth as a start.
    const bool distill = control == "scratch-distill";
    PR_CHECK_T(ConfigError, main_report.stages_size() >= 2, "control ", control, ": the main run has no final stage yet");
    const pb::ModelConfig final_config = main_report.stages(main_report.stages_size() - 1).config();
    const pb::StageConfig& last_stage = main_run.schedule.stages(main_run.schedule.stages_size() - 1);
    pb::TrainConfig tc = recovery_train_config(main_run.schedule, last_stage);
    std::string recipe_source = distill ? "the last recovery's recipe" : "the recovery recipe";
    if (const auto it = teacher_rec.manifest.metadata().find("recipe"); it != teacher_rec.manifest.metadata().end()) {
      pb::Recipe recipe;
      nn::parse_text_proto(it->second, main_run.teacher_path + " metadata recipe", &recipe);
      if (distill) {
        // A fresh model learns from noise at first; the recoveries' patience is meant for
        // warm starts, so the patience is the teacher's when that is longer.
        tc.set_patience(std::max(tc.patience(), recipe.train().patience()));
      } else {
        tc = recipe.train();
        recipe_source = "the teacher's recipe";
      }
    }
    tc.set_epochs(std::max(1, total_epochs));
    tc.set_seed(main_run.schedule.seed());
    std::string budget_note;
    if (control == "scratch-flops") {
      // As many epochs as give the training FLOPs of the main path's recoveries (Note
      // [training FLOPs]), at least one.
      const double budget = main_report.stages(main_report.stages_size() - 1).path_training_flops_without_teacher();
      const recsys::TrainBatcher batcher(main_run.split->train, static_cast<int>(final_config.max_len()),
                                         std::max(1, tc.batch_size()), tc.all_windows());
      const double per_epoch = training_flops(final_config, batcher.num_positions(), 1, nullptr);
      const int epochs = std::max(1, static_cast<int>(std::lround(budget / std::max(1.0, per_epoch))));
      tc.set_epochs(epochs);
      budget_note = detail::str_cat(" (", epochs, " epochs: the FLOPs of the pruned path's recoveries, ",
                                    format_count(budget), ")");
    }
    // The recipe grid (Schedule.scratch_grid): every combination, each from the same
    // random weights; the best validation NDCG@10 is the control.
    const pb::ScratchGrid& grid = main_run.schedule.scratch_grid();
    auto values = [](const google::protobuf::RepeatedField<double>& v, double recipe_value) {
      return v.empty() ? std::vector<double>{recipe_value} : std::vector<double>(v.begin(), v.end());
    };
    const bool searching = grid.weight_decay_size() + grid.dropout_size() + grid.lr_size() > 0;
    std::vector<pb::TrainConfig> recipes;
    for (double wd : values(grid.weight_decay(), tc.optimizer().weight_decay()))
      for (double dropout : values(grid.dropout(), tc.dropout()))
        for (double lr : values(grid.lr(), tc.optimizer().lr())) {
          pb::TrainConfig t = tc;
          t.mutable_optimizer()->set_weight_decay(wd);
          t.set_dropout(dropout);
          t.mutable_optimizer()->set_lr(lr);
          recipes.push_back(t);
        }
    TeacherCache cache(*teacher_rec.net);  // Note [teacher cache]
    const pb::RecoveryConfig rc = recovery_of(main_run.schedule, last_stage);
    std::vector<pb::GridPoint> points;
    std::vector<recsys::TrainResult> results;
    double resumed_seconds = 0;  // earlier runs' part of the training time
    for (const pb::TrainConfig& t : recipes) {
      nn::Transformer model(final_config, DType::f32, main_run.schedule.seed());
      recsys::TrainSpec spec;
      spec.data = main_run.data;
      spec.split = main_run.split;
      spec.config = t;
      const std::string point_name = detail::str_cat("wd", t.optimizer().weight_decay(), "-do", t.dropout(), "-lr",
                                                     t.optimizer().lr());
      spec.out_path = searching ? (fs::path(dir) / "grid" / (control + "-" + point_name + ".prc")).string()
                                : (fs::path(dir) / (control + ".prc")).string();
      if (searching) fs::create_directories(fs::path(dir) / "grid");
      spec.catalog = &teacher_rec.catalog;
      spec.metadata = main_run.metadata;
      spec.stop = main_run.stop;
      spec.phase = "control " + control + (searching ? " " + point_name : "");
      spec.log = &log;
      spec.progress = main_run.progress;
      spec.resume = !main_run.redo;
      if (main_run.redo) fs::remove(spec.out_path + ".state");
      if (distill) {
        spec.loss = distillation_loss(*teacher_rec.net, rc.alpha(), rc.temperature(), &cache, rc.distill_top_k());
        spec.on_start = distillation_on_start(&cache, cache_mode(rc));
      }
      const auto t_train = Clock::now();
      results.push_back(recsys::train_model(model, spec));
      resumed_seconds += std::max(0.0, results.back().seconds - seconds_since(t_train));
      pb::GridPoint gp;
      gp.set_weight_decay(t.optimizer().weight_decay());
      gp.set_dropout(t.dropout());
      gp.set_lr(t.optimizer().lr());
      gp.set_valid_ndcg10(results.back().best_valid_ndcg10);
      gp.set_best_epoch(results.back().best_epoch);
      gp.set_checkpoint(spec.out_path);
      points.push_back(gp);
    }
    std::size_t chosen = 0;
    for (std::size_t k = 1; k < points.size(); ++k)
      if (points[k].valid_ndcg10() > points[chosen].valid_ndcg10()) chosen = k;  // ties: the first listed
    points[chosen].set_chosen(true);
    const recsys::TrainResult& tr = results[chosen];
    double all_seconds = 0;
    for (const auto& r : results) all_seconds += r.seconds;
    auto best = load_net(points[chosen].checkpoint());
    RowOptions control_options = row_options;
    control_options.per_user_path = per_user_path_of(points[chosen].checkpoint());
    pb::StageRow row = measure_model(*best,
                                     distill                         ? "from scratch, distilled"
                                     : control == "scratch-flops" ? "from scratch, same FLOPs"
                                                                  : "from scratch",
                                     "control", teacher_non_emb,
                                     *main_run.data, *main_run.split, control_options);
    row.set_checkpoint(points[chosen].checkpoint());
    row.set_recovery_seconds(all_seconds);
    row.set_recovery_epochs(tr.epochs_run);
    row.set_recovery_best_epoch(tr.best_epoch);
    for (double v : tr.loss_curve) row.add_loss_curve(v);
    for (double v : tr.valid_curve) row.add_valid_curve(v);
    if (searching)
      for (const auto& gp : points) *row.add_grid() = gp;
    // Note [training FLOPs]: every recipe of the grid counts.
    const pb::ModelConfig teacher_config = teacher_rec.net->config();
    double flops = 0;
    std::int64_t all_positions = 0;
    for (const auto& gp : points) {
      const auto [positions, epochs] = trained_positions(gp.checkpoint());
      all_positions += positions;
      flops += training_flops(final_config, positions, epochs, distill ? &teacher_config : nullptr);
    }
    row.set_trained_positions(all_positions);
    row.set_training_flops(flops);
    row.set_path_training_flops(flops + (distill ? main_report.stages(0).training_flops() : 0.0));
    row.set_path_training_flops_without_teacher(flops);
    const pb::TrainConfig& ct = recipes[chosen];
    const std::string grid_note =
        searching ? detail::str_cat("; recipe chosen on validation NDCG@10 among ", points.size(), " (weight decay ",
                                    ct.optimizer().weight_decay(), ", dropout ", ct.dropout(), ", lr ",
                                    ct.optimizer().lr(), ")")
                  : std::string();
    if (distill) {
      row.set_note(detail::str_cat("final-stage config trained from scratch by distillation from the teacher (alpha ",
                                   rc.alpha(), ", T ", rc.temperature(), ") with ", recipe_source, " for ", tc.epochs(),
                                   " epochs (all recoveries together), patience ", tc.patience(), grid_note));
    } else {
      row.set_note(detail::str_cat("final-stage config trained from scratch with cross-entropy and ", recipe_source,
                                   " for ", tc.epochs(),
                                   budget_note.empty() ? " epochs (all recoveries together)" : " epochs" + budget_note,
                                   grid_note));
    }
    row.set_wall_seconds(resumed_seconds + seconds_since(t0));
    *row.mutable_vs_final() = paired_difference(final_per_user(main_run, main_report, log),
                                                recsys::read_per_user(control_options.per_user_path), main_run.schedule);
    return row;
  }

  PruneRun sub = main_run;
  sub.out_dir = dir;
  sub.command = main_run.command + "  # control " + control;
  std::string note;
  if (control == "random") {
    for (auto& st : *sub.schedule.mutable_stages()) {
      st.set_head_score("random");
      st.set_hidden_score("random");
      st.set_mlp_score("random");
      st.set_layer_score("random");
    }
    for (int i = 1; i < main_report.stages_size(); ++i) sub.size_match.push_back(main_report.stages(i).plan());
    note = "the same schedule with random importance scores, matched in size to the real plans (KV heads per layer, "
           "widths, layers)";
  } else if (control == "no-recovery") {
    const int n = sub.schedule.stages_size();
    for (int i = 0; i + 1 < n; ++i) sub.schedule.mutable_stages(i)->mutable_recovery()->set_enabled(false);
    pb::StageConfig& last = *sub.schedule.mutable_stages(n - 1);
    last.mutable_recovery()->set_enabled(true);
    last.mutable_recovery()->mutable_train()->set_epochs(std::max(1, total_epochs));
    note = detail::str_cat("no recovery between stages; the last stage recovers for ", total_epochs, " epochs");
  } else {
    std::string known;
    for (const std::string& n : control_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown control '" + control + "' (" + known + ")");
  }
  // The teacher is the main run's: reuse its measured row instead of measuring again.
  if (!exists_agreed(fs::path(dir) / "report.json") && main_report.stages_size() > 0) {
    pb::Report seed_report;
    seed_report.set_schedule(nn::to_text_proto(sub.schedule));
    *seed_report.add_stages() = main_report.stages(0);
    write_report(dir, seed_report);
  }
  // The teacher's per-user ranks are the main run's (Note [paired differences]).
  if (const std::string t = teacher_per_user_path(main_run); exists_agreed(t) && !exists_agreed(teacher_per_user_path(sub))) {
    if (world().is_root()) fs::copy_file(t, teacher_per_user_path(sub));
    world().barrier();  // Note [files decided on rank 0]
  }
  const pb::Report r = run_schedule(sub);
  pb::StageRow row = r.stages(r.stages_size() - 1);
  // Note [paired differences]: the sub-run's last stage kept its per-user ranks.
  *row.mutable_vs_final() =
      paired_difference(final_per_user(main_run, main_report, log), final_per_user(sub, r, log), main_run.schedule);
  row.set_name(control == "random" ? "random scores" : "no recovery");
  row.set_kind("control");
  row.set_checkpoint((fs::path(dir) / "final.prc").string());
  row.set_note(note);
  // Its stages' wall times, each kept in the control's report across resumed runs.
  double wall = 0;
  for (int i = 1; i < r.stages_size(); ++i) wall += r.stages(i).wall_seconds();
  row.set_wall_seconds(wall);
  return row;
}

void add_seed_stats(pb::Report& first, const std::vector<pb::Report>& all) {
  first.clear_student_seeds();
  first.clear_seed_stats();
  for (const auto& r : all) first.add_student_seeds(r.seed());
  auto rows_of = [](const pb::Report& r) {
    std::vector<const pb::StageRow*> rows;
    for (const auto& row : r.stages()) rows.push_back(&row);
    for (const auto& row : r.controls()) rows.push_back(&row);
    return rows;
  };
  for (const pb::StageRow* row : rows_of(first)) {
    for (const char* metric : {"NDCG@10", "HR@10", "NDCG@20", "HR@20"}) {
      pb::SeedStat st;
      st.set_row(row->name());
      st.set_metric(metric);
      for (const auto& r : all)
        for (const pb::StageRow* other : rows_of(r))
          if (other->name() == row->name() && other->metrics().count(metric)) {
            st.add_values(other->metrics().at(metric));
            if (other->has_vs_final() && other->vs_final().metric() == metric) *st.add_vs_final() = other->vs_final();
            break;
          }
      if (st.values_size() == 0) continue;
      const double n = st.values_size();
      double mean = 0, ss = 0;
      for (double v : st.values()) mean += v / n;
      for (double v : st.values()) ss += (v - mean) * (v - mean);
      st.set_mean(mean);
      st.set_sd(n > 1 ? std::sqrt(ss / (n - 1)) : 0.0);
      *first.add_seed_stats() = st;
    }
  }
}

pb::Report run_with_seeds(const PruneRun& run, int seeds, const std::vector<std::string>& controls) {
  PR_CHECK_T(ConfigError, seeds >= 1, "prune: --seeds must be at least 1, got ", seeds);
  std::ostream& log = log_stream(run);
  std::vector<pb::Report> reports;
  for (int k = 0; k < seeds; ++k) {
    PruneRun r = run;
    r.schedule.set_seed(run.schedule.seed() + static_cast<std::uint64_t>(k));
    if (k > 0) r.out_dir = (fs::path(run.out_dir) / "seeds" / detail::str_cat("seed-", r.schedule.seed())).string();
    log << "student seed " << r.schedule.seed() << " (" << k + 1 << " of " << seeds << "): " << r.out_dir << "\n";
    pb::Report report = run_schedule(r);
    report.clear_controls();
    for (const auto& name : controls) {
      log << "control " << name << " (seed " << r.schedule.seed() << "):\n";
      *report.add_controls() = run_control(r, report, name);
      write_report(r.out_dir, report);
    }
    reports.push_back(report);
  }
  pb::Report first = reports.front();
  add_seed_stats(first, reports);
  write_report(run.out_dir, first);
  return first;
}

std::vector<pb::BudgetPoint> run_budget_curve(const PruneRun& run, const std::vector<int>& budgets) {
  PR_CHECK_T(ConfigError, !budgets.empty(), "budget curve: no budgets");
  std::ostream& log = log_stream(run);
  std::vector<pb::BudgetPoint> points;
  for (int b : budgets) {
    PR_CHECK_T(ConfigError, b >= 1, "budget curve: budgets must be at least 1 epoch, got ", b);
    PruneRun r = run;
    r.out_dir = (fs::path(run.out_dir) / "budget" / detail::str_cat("epochs-", b)).string();
    r.command = run.command + detail::str_cat("  # budget ", b, " epochs per recovery");
    for (auto& st : *r.schedule.mutable_stages()) st.mutable_recovery()->mutable_train()->set_epochs(b);
    log << "budget " << b << " epochs per recovery: " << r.out_dir << "\n";
    pb::Report report = run_schedule(r);
    auto add = [&](const pb::StageRow& row, const std::string& path, int total_epochs) {
      pb::BudgetPoint p;
      p.set_epochs(b);
      p.set_path(path);
      p.set_total_epochs(total_epochs);
      for (const auto& [k, v] : row.metrics()) (*p.mutable_metrics())[k] = v;
      for (const auto& [k, v] : row.valid_metrics()) (*p.mutable_valid_metrics())[k] = v;
      p.set_training_flops(row.path_training_flops_without_teacher());
      p.set_checkpoint(row.checkpoint());
      points.push_back(p);
    };
    int total = 0;
    for (const auto& st : r.schedule.stages())
      if (recovery_of(r.schedule, st).enabled()) total += recovery_train_config(r.schedule, st).epochs();
    add(report.stages(report.stages_size() - 1), "pruned", total);
    report.clear_controls();
    for (const char* control : {"scratch-distill", "scratch"}) {
      log << "budget " << b << ": control " << control << "\n";
      *report.add_controls() = run_control(r, report, control);
      write_report(r.out_dir, report);
      add(report.controls(report.controls_size() - 1), control, std::max(1, total));
    }
  }
  // The main run's report holds the curve (write_report draws budget_curve.svg).
  pb::Report main;
  if (exists_agreed(fs::path(run.out_dir) / "report.json"))
    main = read_report(run.out_dir);
  else
    main.set_schedule(nn::to_text_proto(run.schedule));  // so that the main run can start here later
  main.clear_budget_curve();
  for (const auto& p : points) *main.add_budget_curve() = p;
  write_report(run.out_dir, main);
  return points;
}

std::vector<OneShotStage> prune_one_shot(nn::Transformer& model, const pb::Schedule& schedule, const Calibration& calib,
                                         std::ostream& log) {
  check_schedule_fits(schedule, model.config());
  std::vector<OneShotStage> out;
  for (int i = 0; i < schedule.stages_size(); ++i) {
    const pb::StageConfig& st = schedule.stages(i);
    OneShotStage stage;
    stage.name = stage_name(st, i);
    log << stage.name << " (stage " << i + 1 << "/" << schedule.stages_size() << "):\n";
    stage.loss_before = calibration_loss(model, calib);
    if (calib.meter) calib.meter->set_prefix(stage.name);
    StagePlan sp = plan_stage(model, st, calib, schedule.seed() + static_cast<std::uint64_t>(i), log, nullptr);
    stage.plan = apply_plan(model, sp.plan);
    stage.plan.set_estimator(estimator_name(st));
    stage.stability = sp.stability;
    stage.scores_json = std::move(sp.scores_json);
    stage.loss_after = calibration_loss(model, calib);
    stage.non_embedding_parameters = model.non_embedding_parameters();
    log << "  cut: " << format_grouped(stage.non_embedding_parameters) << " non-embedding parameters; calibration loss "
        << format_fixed(stage.loss_before, 4) << " -> " << format_fixed(stage.loss_after, 4) << "\n";
    out.push_back(std::move(stage));
  }
  return out;
}

}  // namespace prunerec::prune
