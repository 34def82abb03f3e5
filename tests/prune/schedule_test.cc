// The whole three-stage schedule end to end on a small synthetic data set: ledger rows,
// checkpoints, parameter counts against the files, skipping finished stages, and an
// interrupted run that resumes to the same weights, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <unistd.h>

#include <google/protobuf/util/message_differencer.h>

#include "nn/checkpoint.h"
#include "nn/text_proto.h"
#include "prune/report.h"
#include "prune/schedule.h"
#include "recsys/data/split.h"
#include "recsys/data/synthetic.h"
#include "recsys/recommender.h"
#include "recsys/trainer.h"

namespace prunerec::prune {
namespace {

namespace fs = std::filesystem;

struct Fixture {
  recsys::SequenceDataset data;
  recsys::DataSplit split;
  std::string dir, teacher;

  Fixture() {
    data = recsys::make_synthetic({.users = 240, .items = 60, .clusters = 6, .mean_length = 10, .seed = 3});
    split = recsys::leave_one_out(data);
    // One folder per process: ctest runs the tests of this file in parallel processes.
    dir = (fs::path(::testing::TempDir()) / ("prunerec_schedule_" + std::to_string(::getpid()))).string();
    fs::remove_all(dir);
    fs::create_directories(dir);
    teacher = dir + "/teacher.prc";
    pb::ModelConfig mc;
    nn::parse_text_proto(R"(vocab_size: 60 hidden: 32 head_dim: 8 max_len: 12
      num_layers: 4 layer_defaults { num_heads: 4 num_kv_heads: 2 mlp_width: 64 })", "teacher", &mc);
    nn::Transformer net(mc, DType::f32, 1);
    recsys::TrainSpec spec;
    spec.data = &data;
    spec.split = &split;
    nn::parse_text_proto("epochs: 2 batch_size: 32 dropout: 0.1 optimizer { lr: 3e-3 }", "train", &spec.config);
    spec.out_path = teacher;
    spec.catalog = &data.items;
    spec.progress = Progress::Mode::kSilent;
    std::ostringstream quiet;
    spec.log = &quiet;
    recsys::train_model(net, spec);
  }

  PruneRun run(const std::string& out, std::ostream* log) const {
    PruneRun r;
    r.data = &data;
    r.split = &split;
    r.teacher_path = teacher;
    r.out_dir = dir + "/" + out;
    r.schedule = parse_schedule(R"(
      seed: 5
      calibration { sequences: 64 batch_size: 16 }
      recovery_defaults { train { epochs: 1 batch_size: 32 dropout: 0.1 optimizer { lr: 2e-3 } } }
      stages { kind: WIDTH_ATTENTION keep_heads_fraction: 0.5 keep_hidden_fraction: 0.5 }
      stages { kind: WIDTH_MLP keep_mlp: 8 }
      stages { kind: DEPTH keep_layers: 2 })", "test schedule");
    r.latency = false;
    r.log = log;
    r.progress = Progress::Mode::kSilent;
    return r;
  }
};

const Fixture& fixture() {
  static const Fixture* f = new Fixture;
  return *f;
}

std::int64_t stored_parameters(const std::string& path, const nn::Transformer& model) {
  std::int64_t n = 0;
  for (const auto& nt : nn::read_checkpoint(path).tensors)
    if (model.has_parameter(nt.name)) n += nt.tensor.numel();
  return n;
}

TEST(Schedule, RunsEndToEndAndWritesTheLedger) {
  const Fixture& f = fixture();
  std::ostringstream log;
  const pb::Report r = run_schedule(f.run("main", &log));
  ASSERT_EQ(r.stages_size(), 4) << log.str();
  EXPECT_EQ(r.stages(0).name(), "teacher");
  EXPECT_EQ(r.stages(1).name(), "stage1-width-attention");
  EXPECT_EQ(r.stages(3).kind(), "depth");
  EXPECT_EQ(r.stages(1).estimator(), "heads kl (mask gate, sum, smoothing none); hidden act_grad");
  EXPECT_EQ(r.stages(2).estimator(), "mlp topk");
  // Note [training FLOPs]: the teacher's training is read from its checkpoint; each
  // recovery adds its own to the path.
  EXPECT_GT(r.stages(0).training_flops(), 0);
  EXPECT_EQ(r.stages(0).path_training_flops_without_teacher(), 0);
  for (int i = 1; i < 4; ++i) {
    EXPECT_GT(r.stages(i).training_flops(), 0) << i;
    EXPECT_GT(r.stages(i).trained_positions(), 0) << i;
    EXPECT_DOUBLE_EQ(r.stages(i).path_training_flops(), r.stages(i - 1).path_training_flops() + r.stages(i).training_flops());
    EXPECT_DOUBLE_EQ(r.stages(i).path_training_flops() - r.stages(i).path_training_flops_without_teacher(),
                     r.stages(0).training_flops());
  }
  const std::int64_t teacher_params = r.stages(0).non_embedding_params();
  for (int i = 1; i < 4; ++i) {
    const pb::StageRow& row = r.stages(i);
    EXPECT_LT(row.non_embedding_params(), r.stages(i - 1).non_embedding_params()) << row.name();
    EXPECT_NEAR(row.non_embedding_fraction(), double(row.non_embedding_params()) / double(teacher_params), 1e-12);
    for (const char* k : {"NDCG@5", "NDCG@10", "NDCG@20", "HR@5", "HR@10", "HR@20"}) {
      EXPECT_TRUE(row.metrics().count(k)) << row.name() << " " << k;
      EXPECT_TRUE(row.valid_metrics().count(k)) << row.name() << " " << k;
    }
    EXPECT_GT(row.flops_per_recommendation(), 0);
    EXPECT_LT(row.flops_per_recommendation(), r.stages(i - 1).flops_per_recommendation());
    ASSERT_TRUE(fs::exists(row.checkpoint())) << row.checkpoint();
    // The counts in the report are the tensor sizes in the saved checkpoint.
    const nn::LoadedModel m = nn::load_model(row.checkpoint());
    EXPECT_EQ(row.non_embedding_params(), m.model->non_embedding_parameters());
    EXPECT_EQ(row.total_params(), stored_parameters(row.checkpoint(), *m.model));
    EXPECT_EQ(row.config().SerializeAsString(), m.model->config().SerializeAsString());
  }
  // Final model: 2 layers, half the hidden width, 2 heads and 8 MLP channels per layer.
  const recsys::Recommender final_model = recsys::load_recommender(f.dir + "/main/final.prc");
  EXPECT_EQ(final_model.net->num_layers(), 2);
  EXPECT_EQ(final_model.net->hidden_size(), 16);
  EXPECT_EQ(final_model.net->block(0).attn().num_heads(), 2);
  EXPECT_EQ(final_model.net->block(1).mlp().width(), 8);
  EXPECT_EQ(final_model.catalog.size(), 60);
  for (const char* file : {"report.json", "report.md", "quality_vs_params.svg", "kept_units.svg", "curves.svg",
                           "stage1-width-attention.scores.json", "stage2-width-mlp.plan.pbtxt"})
    EXPECT_TRUE(fs::exists(f.dir + "/main/" + file)) << file;
  // The report on disk is the one returned.
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(read_report(f.dir + "/main"), r));

  // Running again skips every finished stage.
  std::ostringstream again_log;
  const auto mtime = fs::last_write_time(r.stages(2).checkpoint());
  const pb::Report again = run_schedule(f.run("main", &again_log));
  EXPECT_EQ(again.stages_size(), 4);
  EXPECT_NE(again_log.str().find("stage2-width-mlp: done"), std::string::npos) << again_log.str();
  EXPECT_EQ(fs::last_write_time(r.stages(2).checkpoint()), mtime);
}

// The `paper` preset (apps/presets/schedule/paper.pbtxt) with the paper's estimators runs end to
// end (recoveries shortened for the test) and every row and plan names its estimators.
TEST(Schedule, ThePaperPresetRunsAndNamesItsEstimators) {
  const Fixture& f = fixture();
  std::ostringstream log;
  PruneRun run = f.run("paper", &log);
  std::ifstream in(std::string(PRUNEREC_SOURCE_DIR) + "/apps/presets/schedule/paper.pbtxt");
  std::stringstream text;
  text << in.rdbuf();
  run.schedule = parse_schedule(text.str(), "apps/presets/schedule/paper.pbtxt");
  run.schedule.mutable_calibration()->set_sequences(64);
  run.schedule.mutable_calibration()->set_batch_size(16);
  nn::parse_text_proto("epochs: 1 batch_size: 32 dropout: 0.1 optimizer { lr: 2e-3 }", "train",
                       run.schedule.mutable_recovery_defaults()->mutable_train());
  const pb::Report r = run_schedule(run);
  ASSERT_EQ(r.stages_size(), 4) << log.str();
  EXPECT_EQ(r.stages(1).estimator(), "heads greedy_kl (mask query_scale, minmax, smoothing previous 0.7); hidden top_logit");
  EXPECT_EQ(r.stages(2).estimator(), "mlp topk_signed");
  EXPECT_EQ(r.stages(3).estimator(), "layers greedy");
  for (int i = 1; i < 4; ++i) EXPECT_EQ(r.stages(i).plan().estimator(), r.stages(i).estimator());
  // Budgets: half the heads (2 of 4) and hidden channels (16 of 32), round(64 * 448/4864)
  // = 6 MLP channels, round(4 * 4/24) = 1 layer.
  const recsys::Recommender final_model = recsys::load_recommender(f.dir + "/paper/final.prc");
  EXPECT_EQ(final_model.net->num_layers(), 1);
  EXPECT_EQ(final_model.net->hidden_size(), 16);
  EXPECT_EQ(final_model.net->block(0).attn().num_heads(), 2);
  EXPECT_EQ(final_model.net->block(0).mlp().width(), 6);
}

TEST(Schedule, AnInterruptedRunResumesToTheSameWeights) {
  const Fixture& f = fixture();
  std::ostringstream log;
  run_schedule(f.run("straight", &log));
  // Stop as soon as the first recovery starts, then run again to the end.
  std::atomic<bool> stop{true};
  PruneRun interrupted = f.run("interrupted", &log);
  interrupted.stop = &stop;
  EXPECT_THROW(run_schedule(interrupted), Interrupted);
  EXPECT_TRUE(fs::exists(f.dir + "/interrupted/stage1-width-attention.pruned.prc"));
  stop = false;
  run_schedule(interrupted);
  const nn::LoadedModel a = nn::load_model(f.dir + "/straight/final.prc");
  const nn::LoadedModel b = nn::load_model(f.dir + "/interrupted/final.prc");
  ASSERT_EQ(a.model->config().SerializeAsString(), b.model->config().SerializeAsString());
  for (const auto& [name, var] : a.model->named_parameters())
    EXPECT_TRUE(bit_equal(var.value(), b.model->parameter(name).value())) << name;
}

TEST(Schedule, ControlsRunAndReportAgainstTheFinalStage) {
  const Fixture& f = fixture();
  std::ostringstream log;
  const PruneRun run = f.run("controls", &log);
  const pb::Report main = run_schedule(run);
  const pb::StageRow& final_row = main.stages(main.stages_size() - 1);
  std::map<std::string, std::string> checkpoints;
  for (const std::string control : {"scratch", "scratch-distill", "scratch-flops", "random", "no-recovery"}) {
    const pb::StageRow row = run_control(run, main, control);
    checkpoints[control] = row.checkpoint();
    EXPECT_EQ(row.kind(), "control") << control;
    EXPECT_FALSE(row.note().empty()) << control;
    EXPECT_TRUE(row.metrics().count("NDCG@10")) << control;
    EXPECT_GT(row.training_flops(), 0) << control;
    EXPECT_GE(row.path_training_flops(), row.path_training_flops_without_teacher()) << control;
    if (control == "scratch-flops") {
      EXPECT_NE(row.note().find("the FLOPs of the pruned path's recoveries"), std::string::npos) << row.note();
    }
    // Every control ends at the final stage's size: same hidden width, layers, query heads
    // and MLP widths. The random control is matched in size: its layers keep the real
    // plan's KV-head counts (possibly in another layer order), so its parameter count is
    // the final stage's exactly.
    ASSERT_EQ(row.config().layers_size(), final_row.config().layers_size()) << control;
    EXPECT_EQ(row.config().hidden(), final_row.config().hidden()) << control;
    std::vector<int> kv, final_kv;
    for (int l = 0; l < row.config().layers_size(); ++l) {
      EXPECT_EQ(row.config().layers(l).num_heads(), final_row.config().layers(l).num_heads()) << control;
      EXPECT_EQ(row.config().layers(l).mlp_width(), final_row.config().layers(l).mlp_width()) << control;
      kv.push_back(row.config().layers(l).num_kv_heads());
      final_kv.push_back(final_row.config().layers(l).num_kv_heads());
    }
    if (control == "random") {
      std::sort(kv.begin(), kv.end());
      std::sort(final_kv.begin(), final_kv.end());
      EXPECT_EQ(kv, final_kv);
      EXPECT_EQ(row.non_embedding_params(), final_row.non_embedding_params());
      EXPECT_EQ(row.estimator(), "layers random");
      // After stage 1 (heads chosen, no layer removed yet) every layer matches exactly.
      const pb::Report sub = read_report(run.out_dir + "/controls/random");
      ASSERT_GE(sub.stages_size(), 2);
      const pb::ModelConfig& got = sub.stages(1).config();
      const pb::ModelConfig& want = main.stages(1).config();
      ASSERT_EQ(got.layers_size(), want.layers_size());
      for (int l = 0; l < got.layers_size(); ++l) {
        EXPECT_EQ(got.layers(l).num_kv_heads(), want.layers(l).num_kv_heads()) << "layer " << l;
        EXPECT_EQ(got.layers(l).num_heads(), want.layers(l).num_heads()) << "layer " << l;
      }
      EXPECT_EQ(sub.stages(1).non_embedding_params(), main.stages(1).non_embedding_params());
    }
    EXPECT_TRUE(fs::exists(row.checkpoint())) << row.checkpoint();
    // Note [paired differences]: NDCG@10 against the final stage, paired over the test
    // split's users (one example per user under leave-one-out). The means are those of
    // the ledger's metrics, summed in another order: 1e-12 covers the rounding.
    ASSERT_TRUE(row.has_vs_final()) << control;
    const pb::PairedDifference& d = row.vs_final();
    EXPECT_EQ(d.metric(), "NDCG@10");
    EXPECT_EQ(d.n(), static_cast<std::int64_t>(f.split.test.size())) << control;
    EXPECT_NEAR(d.mean_row(), row.metrics().at("NDCG@10"), 1e-12) << control;
    EXPECT_NEAR(d.mean_final(), final_row.metrics().at("NDCG@10"), 1e-12) << control;
    EXPECT_NEAR(d.diff(), d.mean_row() - d.mean_final(), 1e-12) << control;
    EXPECT_LE(d.lo(), d.diff()) << control;
    EXPECT_GE(d.hi(), d.diff()) << control;
    EXPECT_LT(d.lo(), d.hi()) << control;  // different models: some users differ
    EXPECT_EQ(d.resamples(), 2000);
    EXPECT_EQ(d.seed(), 5u);
    // Run again: nothing is retrained, and the wall time still counts the first run's
    // training (it is kept with the control's state, not measured anew).
    const pb::StageRow again = run_control(run, main, control);
    EXPECT_EQ(again.recovery_seconds(), row.recovery_seconds()) << control;
    EXPECT_GE(again.wall_seconds(), again.recovery_seconds()) << control;
    if (!control.starts_with("scratch")) { EXPECT_EQ(again.wall_seconds(), row.wall_seconds()) << control; }
    EXPECT_EQ(again.vs_final().SerializeAsString(), d.SerializeAsString()) << control;
  }
  // The teacher carries its difference too, and a resumed run whose per-user file is gone
  // evaluates again to the same ranks, hence the same interval.
  ASSERT_TRUE(main.stages(0).has_vs_final());
  const std::string final_users = fs::path(final_row.checkpoint()).replace_extension().string() + ".per-user.tsv";
  ASSERT_TRUE(fs::exists(final_users));
  ASSERT_TRUE(fs::exists(run.out_dir + "/teacher.per-user.tsv"));
  fs::remove(final_users);
  const pb::Report resumed = run_schedule(run);
  EXPECT_TRUE(fs::exists(final_users));
  EXPECT_EQ(resumed.stages(0).vs_final().SerializeAsString(), main.stages(0).vs_final().SerializeAsString());
  // The two from-scratch controls start from the same random weights (same config and
  // seed); only the loss differs, so distillation must have changed what was learned.
  const nn::LoadedModel ce = nn::load_model(checkpoints["scratch"]);
  const nn::LoadedModel kd = nn::load_model(checkpoints["scratch-distill"]);
  ASSERT_EQ(ce.model->config().SerializeAsString(), kd.model->config().SerializeAsString());
  bool differ = false;
  for (const auto& [name, var] : ce.model->named_parameters())
    differ = differ || !bit_equal(var.value(), kd.model->parameter(name).value());
  EXPECT_TRUE(differ) << "scratch-distill trained exactly like scratch";
  EXPECT_THROW(run_control(run, main, "bogus"), ConfigError);
}

// A schedule that keeps every unit and does not recover ends with the teacher itself: the
// paired difference of identical models is exactly 0 for every user, so [0, 0], p 1, and
// the report reads "no difference".
TEST(Schedule, AModelComparedWithItselfReadsNoDifference) {
  const Fixture& f = fixture();
  std::ostringstream log;
  PruneRun run = f.run("identical", &log);
  run.schedule = parse_schedule(R"(
      seed: 5
      calibration { sequences: 16 batch_size: 16 }
      stages { kind: WIDTH_MLP keep_mlp_fraction: 1 recovery { enabled: false } })", "identity schedule");
  const pb::Report r = run_schedule(run);
  ASSERT_TRUE(r.stages(0).has_vs_final());
  const pb::PairedDifference& d = r.stages(0).vs_final();
  EXPECT_EQ(d.diff(), 0.0);
  EXPECT_EQ(d.lo(), 0.0);
  EXPECT_EQ(d.hi(), 0.0);
  EXPECT_EQ(d.p_value(), 1.0);
  const std::string md = report_markdown(r);
  EXPECT_NE(md.find("+0.0000 [+0.0000, +0.0000]: no difference"), std::string::npos) << md;
}

// The from-scratch control with a recipe grid: every recipe is trained, the best on
// validation is the control, and the grid and the choice are in the row.
TEST(Schedule, ScratchRecipeIsChosenOnValidationFromTheGrid) {
  const Fixture& f = fixture();
  std::ostringstream log;
  PruneRun run = f.run("grid", &log);
  nn::parse_text_proto("lr: [1e-3, 3e-3] weight_decay: 0.01", "grid", run.schedule.mutable_scratch_grid());
  const pb::Report main = run_schedule(run);
  const pb::StageRow row = run_control(run, main, "scratch");
  ASSERT_EQ(row.grid_size(), 2) << log.str();
  int chosen = -1;
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(row.grid(k).weight_decay(), 0.01);
    EXPECT_TRUE(fs::exists(row.grid(k).checkpoint())) << row.grid(k).checkpoint();
    if (row.grid(k).chosen()) chosen = k;
  }
  ASSERT_GE(chosen, 0);
  EXPECT_GE(row.grid(chosen).valid_ndcg10(), row.grid(1 - chosen).valid_ndcg10());
  EXPECT_EQ(row.checkpoint(), row.grid(chosen).checkpoint());
  EXPECT_EQ(row.grid(0).lr(), 1e-3);
  EXPECT_EQ(row.grid(1).lr(), 3e-3);
  EXPECT_NE(row.note().find("chosen on validation NDCG@10 among 2"), std::string::npos) << row.note();
  // Resumed: nothing retrained, the same choice.
  const pb::StageRow again = run_control(run, main, "scratch");
  EXPECT_EQ(again.checkpoint(), row.checkpoint());
  EXPECT_EQ(again.recovery_seconds(), row.recovery_seconds());
}

// Note [student seeds]: hand-made reports give exact means and sample deviations.
TEST(Seeds, StatsAreMeanAndSampleDeviationPerRow) {
  std::vector<pb::Report> all(3);
  const double ndcg[3] = {0.1, 0.2, 0.6};
  for (int k = 0; k < 3; ++k) {
    all[k].set_seed(42 + k);
    pb::StageRow* row = all[k].add_stages();
    row->set_name("stage1");
    (*row->mutable_metrics())["NDCG@10"] = ndcg[k];
  }
  pb::Report first = all[0];
  add_seed_stats(first, all);
  EXPECT_EQ(std::vector<std::uint64_t>(first.student_seeds().begin(), first.student_seeds().end()),
            (std::vector<std::uint64_t>{42, 43, 44}));
  ASSERT_EQ(first.seed_stats_size(), 1);  // only the metric the rows have
  const pb::SeedStat& st = first.seed_stats(0);
  EXPECT_EQ(st.row(), "stage1");
  EXPECT_EQ(st.metric(), "NDCG@10");
  EXPECT_NEAR(st.mean(), 0.3, 1e-15);
  EXPECT_NEAR(st.sd(), std::sqrt((0.04 + 0.01 + 0.09) / 2), 1e-15);
  EXPECT_EQ(st.values_size(), 3);
  EXPECT_EQ(st.vs_final_size(), 0);  // the rows carry no paired difference
}

// Two student seeds end to end: the second runs in OUT/seeds/seed-<seed>, the recoveries
// differ, stage 1's plan (scored on the teacher) does not, and a second call resumes.
TEST(Seeds, TwoStudentSeedsRunAndResume) {
  const Fixture& f = fixture();
  std::ostringstream log;
  const PruneRun run = f.run("seeds", &log);
  const pb::Report r = run_with_seeds(run, 2, {});
  ASSERT_EQ(r.student_seeds_size(), 2);
  EXPECT_EQ(r.student_seeds(0), 5u);
  EXPECT_EQ(r.student_seeds(1), 6u);
  const pb::Report second = read_report(f.dir + "/seeds/seeds/seed-6");
  EXPECT_EQ(second.seed(), 6u);
  EXPECT_EQ(second.stages(1).plan().SerializeAsString(), r.stages(1).plan().SerializeAsString());
  EXPECT_NE(second.stages(3).metrics().at("NDCG@10"), r.stages(3).metrics().at("NDCG@10"));
  int found = 0;
  for (const auto& st : r.seed_stats())
    if (st.row() == r.stages(3).name() && st.metric() == "NDCG@10") {
      ++found;
      EXPECT_EQ(st.values(0), r.stages(3).metrics().at("NDCG@10"));
      EXPECT_EQ(st.values(1), second.stages(3).metrics().at("NDCG@10"));
    }
  EXPECT_EQ(found, 1);
  // The teacher's NDCG@10 stat carries each seed's paired difference from that seed's
  // final stage (Note [paired differences]); the seed section of report.md lists them.
  for (const auto& st : r.seed_stats())
    if (st.row() == "teacher" && st.metric() == "NDCG@10") {
      ASSERT_EQ(st.vs_final_size(), 2);
      EXPECT_EQ(st.vs_final(0).SerializeAsString(), r.stages(0).vs_final().SerializeAsString());
      EXPECT_EQ(st.vs_final(1).SerializeAsString(), second.stages(0).vs_final().SerializeAsString());
      EXPECT_EQ(st.vs_final(1).seed(), 6u);
    }
  EXPECT_NE(report_markdown(r).find("Paired differences from each seed's final stage"), std::string::npos);
  std::ostringstream again_log;
  PruneRun again = f.run("seeds", &again_log);
  run_with_seeds(again, 2, {});
  EXPECT_NE(again_log.str().find("stage3-depth: done"), std::string::npos) << again_log.str();
}

// Note [student budget]: two budgets, three paths each, every recovery capped at the
// budget, the points in the main report and its chart.
TEST(Schedule, BudgetCurveHasEveryPathAtEveryBudget) {
  const Fixture& f = fixture();
  std::ostringstream log;
  const PruneRun run = f.run("budget", &log);
  const std::vector<pb::BudgetPoint> points = run_budget_curve(run, {1, 2});
  ASSERT_EQ(points.size(), 6u) << log.str();
  for (int b : {1, 2}) {
    const pb::Report sub = read_report(f.dir + "/budget/budget/epochs-" + std::to_string(b));
    for (int i = 1; i < sub.stages_size(); ++i) EXPECT_LE(sub.stages(i).recovery_epochs(), b) << b;
    for (const char* path : {"pruned", "scratch-distill", "scratch"}) {
      const auto it = std::find_if(points.begin(), points.end(),
                                   [&](const pb::BudgetPoint& p) { return p.epochs() == b && p.path() == path; });
      ASSERT_NE(it, points.end()) << b << " " << path;
      EXPECT_TRUE(it->metrics().count("NDCG@10")) << b << " " << path;
      EXPECT_EQ(it->total_epochs(), 3 * b) << path;
      EXPECT_GT(it->training_flops(), 0) << path;
    }
  }
  const pb::Report main = read_report(f.dir + "/budget");
  EXPECT_EQ(main.budget_curve_size(), 6);
  ASSERT_TRUE(fs::exists(f.dir + "/budget/budget_curve.svg"));
  EXPECT_NE(budget_chart_svg(main).find("scratch-distill"), std::string::npos);
}

// A recovery distilled from the teacher's top 8 items (Note [top-k distillation]) runs
// through the schedule, recovers from the pruned model, and a k above the catalogue is
// refused before any work.
TEST(Schedule, TopKDistillationRecovers) {
  const Fixture& f = fixture();
  std::ostringstream log;
  PruneRun r = f.run("topk", &log);
  r.schedule = parse_schedule(R"(
      seed: 5
      calibration { sequences: 64 batch_size: 16 }
      recovery_defaults { distill_top_k: 8 train { epochs: 2 batch_size: 32 dropout: 0.1 optimizer { lr: 2e-3 } } }
      stages { kind: WIDTH_MLP keep_mlp: 8 })", "test schedule");
  const pb::Report report = run_schedule(r);
  ASSERT_EQ(report.stages_size(), 2) << log.str();
  const pb::StageRow& s = report.stages(1);
  // Recovery training lowers the loss it optimises; on this fixture it also raises the
  // test NDCG@10 of the pruned model (measured: before and after are not equal).
  EXPECT_NE(s.metrics().at("NDCG@10"), s.metrics_before_recovery().at("NDCG@10"));
  r.out_dir += "-too-many";
  r.schedule.mutable_recovery_defaults()->set_distill_top_k(61);
  EXPECT_THROW(run_schedule(r), ConfigError);
  EXPECT_FALSE(fs::exists(r.out_dir));
}

TEST(Schedule, BadSchedulesAreRefusedWithTheirSource) {
  EXPECT_THROW(parse_schedule("stages { kind: WIDTH_MLP keep_mlp_fraction: 1.5 }", "s.pbtxt"), ConfigError);
  EXPECT_THROW(parse_schedule("recovery_defaults { distill_top_k: -1 } stages { kind: WIDTH_MLP }", "s.pbtxt"),
               ConfigError);
  EXPECT_THROW(parse_schedule("", "s.pbtxt"), ConfigError);
  EXPECT_THROW(parse_schedule("bootstrap_resamples: 0 stages { kind: WIDTH_MLP }", "s.pbtxt"), ConfigError);
  try {
    parse_schedule("stages { kind: WIDTH_MLP }\nbogus: 1\n", "s.pbtxt");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("s.pbtxt:2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace prunerec::prune

namespace prunerec::prune {
namespace {

// The log a person reads (issue 18, item 10): numbers rounded to what they mean, no "nan",
// the removed layers named.
TEST(Schedule, LogRoundsNumbersAndNamesWhatWasRemoved) {
  const Fixture& f = fixture();
  std::ostringstream log;
  run_schedule(f.run("log", &log));
  const std::string text = log.str();
  EXPECT_EQ(text.find("nan"), std::string::npos) << text;
  EXPECT_NE(text.find("calibration: 64 training sequences"), std::string::npos) << text;
  EXPECT_NE(text.find("layers (" ), std::string::npos) << text;
  EXPECT_NE(text.find("): removed layers "), std::string::npos) << text;
  EXPECT_NE(text.find(" (in removal order); split-half Spearman "), std::string::npos) << text;
  // "44.5736%" was printed before: one decimal now.
  const std::size_t pruned = text.find("non-embedding parameters (");
  ASSERT_NE(pruned, std::string::npos) << text;
  const std::string share = text.substr(pruned + 26, text.find('%', pruned) - pruned - 26);
  ASSERT_NE(share.find('.'), std::string::npos) << share;
  EXPECT_EQ(share.size() - share.find('.'), 2u) << share;
  // Test NDCG@10 with four decimals: "0.0332", not "0.0332262".
  const std::size_t ndcg = text.find(": test NDCG@10 ");
  ASSERT_NE(ndcg, std::string::npos) << text;
  const std::string value = text.substr(ndcg + 15, text.find(' ', ndcg + 15) - ndcg - 15);
  EXPECT_EQ(value.size(), 6u) << value;
}

}  // namespace
}  // namespace prunerec::prune
