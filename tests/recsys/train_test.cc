// The trainer on a fixture: the small config trains for a few steps, the loss falls, the
// best model is kept, and evaluation output carries the documented keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "nn/text_proto.h"
#include "recsys/data/split.h"
#include "recsys/data/synthetic.h"
#include "recsys/eval/evaluator.h"
#include "recsys/progress.h"
#include "recsys/recommender.h"
#include "recsys/trainer.h"
#include "tests/common/expect_error.h"

namespace prunerec::recsys {
namespace {

namespace fs = std::filesystem;

TEST(Trainer, SmallConfigLearnsAndEvalHasTheDocumentedKeys) {
  const SequenceDataset data = make_synthetic({.users = 300, .items = 80, .clusters = 8, .mean_length = 10, .seed = 4});
  const DataSplit split = leave_one_out(data);
  pb::ModelConfig mc;
  nn::parse_text_proto(R"(vocab_size: 80 hidden: 32 head_dim: 16 max_len: 12
    num_layers: 2 layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 64 })", "small", &mc);
  nn::Transformer net(mc, DType::f32, 1);
  const fs::path dir = fs::path(::testing::TempDir()) / "prunerec_train_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  TrainSpec spec;
  spec.data = &data;
  spec.split = &split;
  nn::parse_text_proto("epochs: 4 batch_size: 32 dropout: 0.1 optimizer { lr: 3e-3 }", "train", &spec.config);
  spec.out_path = (dir / "model.prc").string();
  spec.catalog = &data.items;
  spec.progress = Progress::Mode::kSilent;
  std::ostringstream log;
  spec.log = &log;
  const TrainResult r = train_model(net, spec);
  ASSERT_EQ(r.loss_curve.size(), 4u);
  EXPECT_LT(r.loss_curve.back(), r.loss_curve.front()) << log.str();
  EXPECT_EQ(r.steps, 4 * ((300 + 31) / 32));
  EXPECT_GE(r.best_epoch, 1);
  EXPECT_TRUE(fs::exists(spec.out_path));

  // The best model beats the popularity baseline on this structured data.
  const Recommender best = load_recommender(spec.out_path);
  EvalOptions eo;
  eo.max_len = 12;
  const EvalResult model = evaluate_model(*best.net, data, split, eo);
  const EvalResult pop = evaluate(popularity_scorer(split), data, split, eo);
  EXPECT_GT(model.metrics.at("NDCG@10"), pop.metrics.at("NDCG@10"));
  const std::string json = to_json(model);
  for (const char* key : {"\"protocol\"", "\"metrics\"", "\"NDCG@10\"", "\"HR@10\"", "\"NDCG@5\"", "\"HR@20\"",
                          "\"MRR@10\"", "\"split\": \"test\"", "\"ranking\": \"full\"", "\"exclude_history\": true"})
    EXPECT_NE(json.find(key), std::string::npos) << key << " missing in " << json;
  EXPECT_EQ(model.num_examples, static_cast<std::int64_t>(split.test.size()));
  // Titles and raw ids come back from recommend().
  const auto top = recommend(best, {data.items.raw_ids[3], data.items.raw_ids[7]}, 5);
  ASSERT_EQ(top.size(), 5u);
  EXPECT_EQ(top[0].title, data.items.title(top[0].item));
}

// Note [extending a run]: a finished 2-epoch run resumed with 3 epochs ends, bit for bit,
// where a run planned for 3 epochs from the start does, when the learning rate does not
// depend on the total (constant, no warm-up). Resuming a finished run with the same
// epochs does nothing and says so.
TEST(Trainer, ExtendingAFinishedRunEqualsAPlannedLongerRun) {
  const SequenceDataset data = make_synthetic({.users = 120, .items = 40, .clusters = 4, .mean_length = 8, .seed = 5});
  const DataSplit split = leave_one_out(data);
  pb::ModelConfig mc;
  nn::parse_text_proto(R"(vocab_size: 40 hidden: 16 head_dim: 8 max_len: 10
    num_layers: 1 layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 32 })", "tiny", &mc);
  const fs::path dir = fs::path(::testing::TempDir()) / "prunerec_train_extend_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto run = [&](const std::string& name, int epochs, std::ostringstream& log) {
    nn::Transformer net(mc, DType::f32, 3);
    TrainSpec spec;
    spec.data = &data;
    spec.split = &split;
    nn::parse_text_proto("batch_size: 16 dropout: 0.1 eval_every: 1 patience: 50 seed: 9 "
                         "optimizer { lr: 3e-3 decay: CONSTANT warmup_fraction: 0 }", "train", &spec.config);
    spec.config.set_epochs(epochs);
    spec.out_path = (dir / (name + ".prc")).string();
    spec.catalog = &data.items;
    spec.progress = Progress::Mode::kSilent;
    spec.log = &log;
    const TrainResult r = train_model(net, spec);
    return std::make_pair(r, nn::load_model(spec.out_path + ".state"));
  };
  std::ostringstream log_planned, log_short, log_again, log_extend;
  const auto [planned, planned_state] = run("planned", 3, log_planned);
  const auto [short_run, short_state] = run("extended", 2, log_short);
  EXPECT_EQ(short_run.epochs_run, 2);
  const auto [again, again_state] = run("extended", 2, log_again);  // finished: nothing to do
  EXPECT_NE(log_again.str().find("is finished (2 epochs"), std::string::npos) << log_again.str();
  EXPECT_NE(log_again.str().find("Raise --epochs to extend it"), std::string::npos) << log_again.str();
  EXPECT_EQ(log_again.str().find("resuming"), std::string::npos) << log_again.str();
  EXPECT_EQ(again.steps, short_run.steps);
  const auto [extended, extended_state] = run("extended", 3, log_extend);
  EXPECT_NE(log_extend.str().find("extending the finished run"), std::string::npos) << log_extend.str();
  EXPECT_EQ(extended.epochs_run, 3);
  EXPECT_EQ(extended.steps, planned.steps);
  EXPECT_EQ(extended.best_epoch, planned.best_epoch);
  EXPECT_EQ(extended.loss_curve, planned.loss_curve);  // exact: the same operations in the same order
  EXPECT_EQ(extended_state.manifest.state().total_steps(), planned_state.manifest.state().total_steps());
  for (const auto& [name, var] : planned_state.model->named_parameters()) {
    const Tensor a = var.value(), b = extended_state.model->parameter(name).value();
    ASSERT_EQ(a.numel(), b.numel()) << name;
    EXPECT_EQ(std::memcmp(a.data<float>(), b.data<float>(), static_cast<std::size_t>(a.numel()) * sizeof(float)), 0)
        << name << " differs between the extended and the planned run";
  }
}

// Note [run fingerprints]: a state is resumed only by the same run. Other data with the same
// number of batches per epoch, or another learning rate, is refused naming the state file.
TEST(Trainer, ResumeRefusesOtherDataOrAnotherRecipe) {
  const SequenceDataset data = make_synthetic({.users = 64, .items = 30, .clusters = 3, .mean_length = 6, .seed = 5});
  const SequenceDataset other = make_synthetic({.users = 64, .items = 30, .clusters = 3, .mean_length = 6, .seed = 6});
  const DataSplit split = leave_one_out(data), other_split = leave_one_out(other);
  pb::ModelConfig mc;
  nn::parse_text_proto(R"(vocab_size: 30 hidden: 16 head_dim: 8 max_len: 8
    num_layers: 1 layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 32 })", "tiny", &mc);
  const fs::path dir = fs::path(::testing::TempDir()) / "prunerec_train_fingerprint_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ostringstream log;
  auto spec_for = [&](const DataSplit& s, double lr) {
    TrainSpec spec;
    spec.data = &data;
    spec.split = &s;
    nn::parse_text_proto("epochs: 1 batch_size: 16 dropout: 0 seed: 9", "train", &spec.config);
    spec.config.mutable_optimizer()->set_lr(lr);
    spec.out_path = (dir / "m.prc").string();
    spec.progress = Progress::Mode::kSilent;
    spec.log = &log;
    return spec;
  };
  nn::Transformer net(mc, DType::f32, 3);
  train_model(net, spec_for(split, 1e-3));
  const std::string state = (dir / "m.prc.state").string();
  EXPECT_EQ(split.train.size(), other_split.train.size());  // the same batches per epoch
  testing::expect_error_with<ConfigError>([&] { train_model(net, spec_for(other_split, 1e-3)); },
                                          {state, "other data", "--no-resume"});
  testing::expect_error_with<ConfigError>([&] { train_model(net, spec_for(split, 2e-3)); },
                                          {state, "another training recipe", "--no-resume"});
  const TrainResult same = train_model(net, spec_for(split, 1e-3));  // the same run: nothing to do
  EXPECT_TRUE(same.resumed);
}

// Note [stopping long work]: evaluation checks the stop request between batches.
TEST(Trainer, EvaluationStopsOnRequest) {
  const SequenceDataset data = make_synthetic({.users = 50, .items = 20, .clusters = 2, .mean_length = 6, .seed = 1});
  const DataSplit split = leave_one_out(data);
  EvalOptions eo;
  eo.max_len = 8;
  request_stop();
  EXPECT_THROW(evaluate(popularity_scorer(split), data, split, eo), Interrupted);
  eo.stoppable = false;  // the trainer's validations: it stops at its next step instead
  EXPECT_NO_THROW(evaluate(popularity_scorer(split), data, split, eo));
  clear_stop_request();
  eo.stoppable = true;
  EXPECT_NO_THROW(evaluate(popularity_scorer(split), data, split, eo));
}

// As many sampled negatives as items besides the target is full ranking under another
// name: refused. Fewer, with long histories: the examples short of negatives are counted.
TEST(Trainer, SampledRankingRefusesTheWholeCatalogueAndCountsShortExamples) {
  const SequenceDataset data = make_synthetic({.users = 50, .items = 20, .clusters = 2, .mean_length = 6, .seed = 1});
  const DataSplit split = leave_one_out(data);
  EvalOptions eo;
  eo.max_len = 8;
  eo.protocol.ranking = "sampled";
  eo.protocol.num_negatives = 19;
  try {
    evaluate(popularity_scorer(split), data, split, eo);
    ADD_FAILURE() << "19 negatives of 20 items were accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("at most 18"), std::string::npos) << e.what();
  }
  eo.protocol.num_negatives = 18;
  const EvalResult r = evaluate(popularity_scorer(split), data, split, eo);
  std::int64_t expected_short = 0;  // users whose history leaves fewer than 18 other items
  for (const EvalExample& e : split.test) {
    std::vector<std::int32_t> seen(data.sequences[e.user].begin(), data.sequences[e.user].begin() + e.prefix_len);
    seen.push_back(e.target);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    expected_short += 20 - static_cast<std::int64_t>(seen.size()) < 18;
  }
  EXPECT_GT(expected_short, 0);  // the fixture has histories of 2+ distinct items
  EXPECT_EQ(r.short_of_negatives, expected_short);
  EXPECT_NE(to_json(r).find("\"examples_short_of_negatives\": " + std::to_string(expected_short)), std::string::npos)
      << to_json(r);
}

}  // namespace
}  // namespace prunerec::recsys
