// The prune-and-distill schedule on a title-mode model (prune/title_schedule.h): a teacher
// trained on the deterministic-successor catalogue (tests/recsys/title_fixture.h), pruned
// by one stage (query heads and hidden channels) and recovered by distillation on the
// target rows (prune/title_distill.h); MLP and depth stages with a resume; the
// distillation loss at alpha 1 against the training loss.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "nn/checkpoint.h"
#include "prune/schedule.h"
#include "prune/title_distill.h"
#include "prune/title_schedule.h"
#include "recsys/recommender.h"
#include "recsys/title/generate.h"
#include "recsys/title/title_train.h"
#include "tests/recsys/title_fixture.h"

namespace prunerec::prune {
namespace {

using recsys::SuccessorCatalogue;

// Every generated title is a catalogue title: its tokens are those of each item its trie
// node lists.
void expect_catalogue_titles(const nn::Transformer& model, const SuccessorCatalogue& f, const std::string& which) {
  std::vector<std::vector<std::int32_t>> prompts;
  for (std::size_t i = 0; i < 40; ++i) {
    const recsys::EvalExample& e = f.split.test[i];
    const auto& seq = f.data.sequences[static_cast<std::size_t>(e.user)];
    prompts.push_back(f.task.prompt(f.data.items, std::span<const std::int32_t>(seq.data(), e.prefix_len), "test"));
  }
  const auto generated = recsys::generate_titles(model, f.task.trie, prompts, {.beams = 5});
  ASSERT_EQ(generated.size(), prompts.size());
  for (const auto& beams : generated) {
    EXPECT_EQ(beams.size(), 5u) << which;
    for (const recsys::GeneratedTitle& t : beams) {
      const auto items = f.task.trie.items(t.node);
      ASSERT_FALSE(items.empty()) << which;
      for (std::int32_t item : items) EXPECT_EQ(t.tokens, f.task.table.tokens[static_cast<std::size_t>(item)]) << which;
    }
  }
}

// The teacher: the recsys title test's successor model (hidden 32, 2 layers, 8 epochs;
// HR@10 >= 0.9 there), saved as a title-mode model file at `path`.
std::unique_ptr<nn::Transformer> train_teacher(const SuccessorCatalogue& f, const std::string& path) {
  auto teacher = recsys::tiny_model(f.words.size(), 64, 11, /*hidden=*/32, /*layers=*/2);
  recsys::TitleTrainSpec spec;
  spec.train = &f.train;
  spec.config = recsys::successor_train_config();
  recsys::train_title_model(*teacher, spec);
  pb::TitleMode title_mode;
  title_mode.set_prompt_template(f.task.tmpl.text());
  title_mode.set_history(f.task.options.history);
  title_mode.set_eos_token_id(f.task.codec.eos);
  const pb::ItemCatalog catalog = recsys::catalog_to_proto(f.data.items);
  nn::save_model(path, *teacher, {.catalog = &catalog, .metadata = {{"mode", "title"}}, .title_mode = &title_mode});
  return teacher;
}

// A run of `schedule` on the teacher at teacher_path, into out_dir, silent, 20 beams,
// every validation example, no latency timing (tests/apps/title_cli_test.cc times it).
TitlePruneRun make_run(const SuccessorCatalogue& f, const std::string& teacher_path, const std::string& out_dir,
                       const std::string& schedule, std::ostream& log) {
  TitlePruneRun run;
  run.data = &f.data;
  run.split = &f.split;
  run.task = &f.task;
  run.train = &f.train;
  run.teacher_path = teacher_path;
  run.out_dir = out_dir;
  run.schedule = parse_schedule(schedule, "test schedule");
  run.beams.beams = 20;
  run.valid_limit = 0;
  run.latency = false;
  run.log = &log;
  run.progress = Progress::Mode::kSilent;
  return run;
}

std::filesystem::path fresh_dir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(TitlePrune, OneStageShrinksKeepsCatalogueTitlesAndRecovers) {
  const SuccessorCatalogue f;
  const std::filesystem::path dir = fresh_dir("title_prune_test");

  const std::string teacher_path = (dir / "teacher.prc").string();
  const auto teacher = train_teacher(f, teacher_path);

  std::ostringstream log;
  const TitlePruneRun run = make_run(f, teacher_path, (dir / "run").string(), R"(seed: 3
    calibration { sequences: 64 seed: 7 batch_size: 16 }
    recovery_defaults { alpha: 0.5 temperature: 1.0
      train { epochs: 6 batch_size: 32 dropout: 0.0 optimizer { lr: 3e-3 } } }
    stages { name: "s1" kind: WIDTH_ATTENTION keep_heads: 1 keep_hidden: 16 })", log);
  const pb::Report report = run_title_schedule(run);
  ASSERT_EQ(report.stages_size(), 2) << log.str();
  EXPECT_EQ(report.mode(), "title");

  // Shapes shrank as planned: 1 query head (and the 1 KV head it reads) per layer, 16 of
  // 32 hidden channels, in the tied embedding/head as everywhere else; MLP and vocabulary
  // untouched.
  const auto pruned = nn::load_model((dir / "run" / "s1.pruned.prc").string()).model;
  const auto recovered = nn::load_model((dir / "run" / "s1.prc").string()).model;
  for (const nn::Transformer* m : {pruned.get(), recovered.get()}) {
    EXPECT_EQ(m->hidden_size(), 16);
    EXPECT_EQ(m->vocab_size(), teacher->vocab_size());
    EXPECT_TRUE(m->tied());
    EXPECT_EQ(m->output_weight().value().shape(), (std::vector<std::int64_t>{teacher->vocab_size(), 16}));
    ASSERT_EQ(m->num_layers(), 2);
    for (int l = 0; l < 2; ++l) {
      EXPECT_EQ(m->block(l).attn().num_heads(), 1);
      EXPECT_EQ(m->block(l).attn().num_kv_heads(), 1);
      EXPECT_EQ(m->block(l).mlp().width(), 64);
    }
  }
  const pb::StageRow& stage = report.stages(1);
  EXPECT_EQ(stage.config().hidden(), 16);
  EXPECT_EQ(stage.plan().kept_hidden_size(), 16);
  EXPECT_LT(stage.non_embedding_params(), report.stages(0).non_embedding_params());
  EXPECT_LT(stage.embedding_params(), report.stages(0).embedding_params());

  // Constrained generation holds for any weights: before and after recovery, only
  // catalogue titles.
  expect_catalogue_titles(*pruned, f, "pruned");
  expect_catalogue_titles(*recovered, f, "recovered");

  // Recovery lowers the distillation loss it trains on: it starts from the pruned weights
  // and runs at least one epoch of descent on this loss over these sequences (no dropout),
  // so the best epoch's loss is below the start's.
  const double loss_pruned = mean_title_distillation_loss(*pruned, *teacher, f.train, 0.5, 1.0);
  const double loss_recovered = mean_title_distillation_loss(*recovered, *teacher, f.train, 0.5, 1.0);
  EXPECT_LT(loss_recovered, loss_pruned);
  // And HR@10 comes back: the teacher has learned the successor function (HR@10 >= 0.9 in
  // tests/recsys/title_test.cc); a recovered model within 0.1 of it has learned it as well
  // (a model that ignores the history hits about 10/24 = 0.42), and recovery does not end
  // below where the cut left it.
  const double hr_teacher = report.stages(0).metrics().at("HR@10");
  const double hr_before = stage.metrics_before_recovery().at("HR@10");
  const double hr_after = stage.metrics().at("HR@10");
  std::cout << "title prune: HR@10 teacher " << hr_teacher << ", pruned " << hr_before << ", recovered " << hr_after
            << "; distillation loss pruned " << loss_pruned << ", recovered " << loss_recovered << "\n";
  EXPECT_GE(hr_teacher, 0.9);
  EXPECT_GE(hr_after, hr_teacher - 0.1);
  EXPECT_GE(hr_after, hr_before);
  EXPECT_EQ(stage.recovery_epochs(), 6);
  EXPECT_EQ(stage.loss_curve_size(), 6);
  EXPECT_EQ(stage.valid_curve_size(), 6);
}

// The other stage kinds on a title-mode model: MLP channels (greedy per layer) and depth,
// one recovery epoch each, from the previous stage; a second run resumes with nothing
// left to do.
TEST(TitlePrune, MlpAndDepthStagesAndAResume) {
  const SuccessorCatalogue f;
  const std::filesystem::path dir = fresh_dir("title_prune_test_mlp_depth");
  const std::string teacher_path = (dir / "teacher.prc").string();
  train_teacher(f, teacher_path);
  std::ostringstream log;
  const TitlePruneRun run = make_run(f, teacher_path, (dir / "run").string(), R"(seed: 3
    calibration { sequences: 32 seed: 7 batch_size: 16 }
    recovery_defaults { alpha: 0.5 temperature: 1.0 teacher: PREVIOUS
      train { epochs: 1 batch_size: 32 dropout: 0.0 optimizer { lr: 3e-3 } } }
    stages { name: "mlp" kind: WIDTH_MLP keep_mlp: 16 mlp_score: "magnitude" }
    stages { name: "depth" kind: DEPTH keep_layers: 1 layer_score: "greedy" })", log);
  const pb::Report report = run_title_schedule(run);
  ASSERT_EQ(report.stages_size(), 3) << log.str();
  const auto final_model = nn::load_model((dir / "run" / "final.prc").string()).model;
  ASSERT_EQ(final_model->num_layers(), 1);
  EXPECT_EQ(final_model->block(0).mlp().width(), 16);
  EXPECT_EQ(final_model->block(0).attn().num_heads(), 2);
  EXPECT_EQ(final_model->hidden_size(), 32);
  EXPECT_EQ(report.stages(1).config().layers(1).mlp_width(), 16);
  EXPECT_EQ(report.stages(2).plan().kept_layers_size(), 1);
  expect_catalogue_titles(*final_model, f, "mlp + depth");

  std::ostringstream again_log;
  TitlePruneRun again = run;
  again.log = &again_log;
  const pb::Report resumed = run_title_schedule(again);
  EXPECT_NE(again_log.str().find("mlp: done"), std::string::npos) << again_log.str();
  EXPECT_NE(again_log.str().find("depth: done"), std::string::npos) << again_log.str();
  ASSERT_EQ(resumed.stages_size(), 3);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(resumed.stages(i).metrics().at("NDCG@10"), report.stages(i).metrics().at("NDCG@10")) << i;
}

// With alpha = 1 the title distillation loss is the training loss of title mode
// (Transformer::loss on the target rows), whatever the teacher.
TEST(TitlePrune, DistillationAtAlphaOneIsTheTargetRowCrossEntropy) {
  const SuccessorCatalogue f;
  const auto student = recsys::tiny_model(f.words.size(), 64, 1);
  const auto teacher = recsys::tiny_model(f.words.size(), 64, 2, /*hidden=*/24);
  std::vector<std::int32_t> rows = {0, 3, 5, 8};
  const recsys::TitleBatch b = recsys::make_title_batch(f.train, rows);
  ag::NoGradGuard no_grad;
  const double distill = title_distillation_loss(*teacher, 1.0, 2.0)(*student, b, {}).value().item();
  const double ce = student->loss(b.ids, b.pads, b.targets).value().item();
  // The same rows through the same fused kernel family; f32 sums in another order differ
  // by a few ulps of a loss near log(V) ~ 3.5: 1e-5 relative is far above that.
  EXPECT_NEAR(distill, ce, 1e-5 * ce);
  EXPECT_THROW(title_distillation_loss(*teacher, 1.5, 1.0), ConfigError);
}

}  // namespace
}  // namespace prunerec::prune
