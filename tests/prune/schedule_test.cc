// The whole three-stage schedule end to end on a small synthetic data set: ledger rows,
// checkpoints, parameter counts against the files, skipping finished stages, and an
// interrupted run that resumes to the same weights, bit for bit.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
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
  for (const std::string control : {"scratch", "scratch-distill", "random", "no-recovery"}) {
    const pb::StageRow row = run_control(run, main, control);
    checkpoints[control] = row.checkpoint();
    EXPECT_EQ(row.kind(), "control") << control;
    EXPECT_FALSE(row.note().empty()) << control;
    EXPECT_TRUE(row.metrics().count("NDCG@10")) << control;
    // Every control ends at the final stage's size: same hidden width, layers, query heads
    // and MLP widths (the KV heads a layer keeps follow from which query heads it keeps,
    // so random scores may keep one more or fewer).
    ASSERT_EQ(row.config().layers_size(), final_row.config().layers_size()) << control;
    EXPECT_EQ(row.config().hidden(), final_row.config().hidden()) << control;
    for (int l = 0; l < row.config().layers_size(); ++l) {
      EXPECT_EQ(row.config().layers(l).num_heads(), final_row.config().layers(l).num_heads()) << control;
      EXPECT_EQ(row.config().layers(l).mlp_width(), final_row.config().layers(l).mlp_width()) << control;
    }
    EXPECT_TRUE(fs::exists(row.checkpoint())) << row.checkpoint();
    // Run again: nothing is retrained, and the wall time still counts the first run's
    // training (it is kept with the control's state, not measured anew).
    const pb::StageRow again = run_control(run, main, control);
    EXPECT_EQ(again.recovery_seconds(), row.recovery_seconds()) << control;
    EXPECT_GE(again.wall_seconds(), again.recovery_seconds()) << control;
    if (!control.starts_with("scratch")) { EXPECT_EQ(again.wall_seconds(), row.wall_seconds()) << control; }
  }
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

TEST(Schedule, BadSchedulesAreRefusedWithTheirSource) {
  EXPECT_THROW(parse_schedule("stages { kind: WIDTH_MLP keep_mlp_fraction: 1.5 }", "s.pbtxt"), ConfigError);
  EXPECT_THROW(parse_schedule("", "s.pbtxt"), ConfigError);
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
