// Importance scores (prune/importance.h) of an imported language model, calibrated on
// token sequences (prune/token_calibration.h, Note [token calibration]): the scores exist
// for every head, residual channel and MLP channel, are the same bits on a second run,
// rank units by what removing them does to the logits, and a plan built from them gives a
// model that still runs.
#include "prune/token_calibration.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "api/hf_import.h"
#include "autograd/var.h"
#include "nn/checkpoint.h"
#include "prune/surgery.h"
#include "tensor/rng.h"
#include "tests/api/test_model.h"
#include "tests/common/expect_error.h"

namespace prunerec::testing {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(PRUNEREC_SOURCE_DIR) / "tests" / "fixtures" / "hf";

class ImportedImportanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = dir_.path() / "qwen2.prc";
    hf::import_hf((kFixtures / "qwen2").string(), model_.string());
    // 40 sequences of 6-24 seeded random token ids (vocabulary 96).
    tokens_ = dir_.path() / "calib.tokens";
    std::ofstream out(tokens_);
    out << "# calibration sequences\n";
    Rng rng(11);
    for (int s = 0; s < 40; ++s) {
      const int n = 6 + static_cast<int>(rng.uniform() * 19);
      for (int i = 0; i < n; ++i) out << (i ? " " : "") << static_cast<int>(rng.uniform() * 96);
      out << "\n";
    }
  }
  std::unique_ptr<nn::Transformer> load() const { return std::move(nn::load_model(model_.string()).model); }
  prune::Calibration calibration() const {
    pb::CalibrationConfig config;
    config.set_sequences(32);
    config.set_batch_size(8);
    config.set_seed(5);
    return prune::token_calibration(prune::read_token_sequences(tokens_.string(), 96), 16, config);
  }

  TempDir dir_{"prunerec_imported_importance"};
  fs::path model_, tokens_;
};

// Mean squared difference of the two models' logits over the calibration positions.
double logit_change(const nn::Transformer& a, const nn::Transformer& b, const prune::Calibration& calib) {
  ag::NoGradGuard no_grad;
  double sum = 0;
  std::int64_t count = 0;
  for (const recsys::Batch& batch : calib.batches) {
    const Tensor la = a.logits(a.hidden(batch.ids, batch.pads)).value().contiguous();
    const Tensor lb = b.logits(b.hidden(batch.ids, batch.pads)).value().contiguous();
    const std::int64_t V = a.vocab_size();
    const std::int32_t* targets = batch.targets.data<std::int32_t>();
    for (std::int64_t p = 0; p < batch.targets.numel(); ++p) {
      if (targets[p] < 0) continue;
      for (std::int64_t v = 0; v < V; ++v) {
        const double d = static_cast<double>(la.data<float>()[p * V + v]) - lb.data<float>()[p * V + v];
        sum += d * d;
      }
      ++count;
    }
  }
  return sum / static_cast<double>(count * a.vocab_size());
}

std::vector<int> all_but(int n, int removed) {
  std::vector<int> kept;
  for (int i = 0; i < n; ++i)
    if (i != removed) kept.push_back(i);
  return kept;
}

int argmin(const std::vector<double>& v) { return static_cast<int>(std::min_element(v.begin(), v.end()) - v.begin()); }
int argmax(const std::vector<double>& v) { return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin()); }

TEST_F(ImportedImportanceTest, ScoresExistForEveryUnitAndAreDeterministic) {
  const prune::Calibration calib = calibration();
  EXPECT_EQ(calib.sequences, 32);
  EXPECT_GT(calib.positions, 32 * 5);
  auto run = [&] {
    std::unique_ptr<nn::Transformer> net = load();
    return std::make_tuple(prune::head_scores(*net, calib, "kl", 1.0, 3).scores,
                           prune::hidden_scores(*net, calib, "act_grad", 3).scores,
                           prune::mlp_scores(*net, calib, "magnitude", {24, 24}, 3).scores);
  };
  const auto [heads, hidden, mlp] = run();
  ASSERT_EQ(heads.size(), 2u);
  ASSERT_EQ(mlp.size(), 2u);
  ASSERT_EQ(hidden.size(), 32u);
  for (int l = 0; l < 2; ++l) {
    ASSERT_EQ(heads[l].size(), 4u);
    ASSERT_EQ(mlp[l].size(), 48u);
    for (double s : heads[l]) EXPECT_TRUE(std::isfinite(s) && s > 0) << s;
    for (double s : mlp[l]) EXPECT_TRUE(std::isfinite(s) && s > 0) << s;
    EXPECT_LT(*std::min_element(heads[l].begin(), heads[l].end()), *std::max_element(heads[l].begin(), heads[l].end()));
  }
  for (double s : hidden) EXPECT_TRUE(std::isfinite(s) && s > 0) << s;
  const auto [heads2, hidden2, mlp2] = run();
  EXPECT_EQ(heads, heads2);  // bit for bit: same seed, same threads
  EXPECT_EQ(hidden, hidden2);
  EXPECT_EQ(mlp, mlp2);
}

// Removing the lowest-scored unit of a kind changes the logits on the calibration data less
// than removing the highest-scored one: per layer for heads (kl) and MLP channels
// (magnitude), over the residual stream for hidden channels (act_grad).
TEST_F(ImportedImportanceTest, TheLowestScoredUnitMattersLessThanTheHighest) {
  const prune::Calibration calib = calibration();
  std::unique_ptr<nn::Transformer> full = load();
  const auto heads = prune::head_scores(*full, calib, "kl", 1.0, 3).scores;
  const auto hidden = prune::hidden_scores(*full, calib, "act_grad", 3).scores;
  const auto mlp = prune::mlp_scores(*full, calib, "magnitude", {24, 24}, 3).scores;
  auto change_without = [&](const std::function<void(pb::PrunePlan&)>& edit) {
    std::unique_ptr<nn::Transformer> net = load();
    pb::PrunePlan plan = prune::identity_plan(*net);
    edit(plan);
    prune::apply_plan(*net, plan);
    return logit_change(*full, *net, calib);
  };
  for (int l = 0; l < 2; ++l) {
    auto without_head = [&](int h) {
      return change_without([&](pb::PrunePlan& p) {
        p.mutable_layers(l)->set_keep_all_heads(false);
        p.mutable_layers(l)->clear_kept_heads();
        p.mutable_layers(l)->clear_kept_kv_heads();  // normalisation fills them in
        for (int k : all_but(4, h)) p.mutable_layers(l)->add_kept_heads(k);
      });
    };
    EXPECT_LT(without_head(argmin(heads[l])), without_head(argmax(heads[l]))) << "layer " << l << " heads";
    auto without_channel = [&](int c) {
      return change_without([&](pb::PrunePlan& p) {
        p.mutable_layers(l)->set_keep_all_mlp(false);
        p.mutable_layers(l)->clear_kept_mlp();
        for (int k : all_but(48, c)) p.mutable_layers(l)->add_kept_mlp(k);
      });
    };
    EXPECT_LT(without_channel(argmin(mlp[l])), without_channel(argmax(mlp[l]))) << "layer " << l << " MLP";
  }
  auto without_hidden = [&](int c) {
    return change_without([&](pb::PrunePlan& p) {
      p.set_keep_all_hidden(false);
      p.clear_kept_hidden();
      for (int k : all_but(32, c)) p.add_kept_hidden(k);
    });
  };
  EXPECT_LT(without_hidden(argmin(hidden)), without_hidden(argmax(hidden))) << "hidden";
}

// Keep the top half of every kind: the smaller model saves, loads and computes finite
// logits of the vocabulary's size.
TEST_F(ImportedImportanceTest, APlanFromTheScoresGivesAModelThatRuns) {
  const prune::Calibration calib = calibration();
  std::unique_ptr<nn::Transformer> net = load();
  const auto heads = prune::head_scores(*net, calib, "kl", 1.0, 3).scores;
  const auto hidden = prune::hidden_scores(*net, calib, "act_grad", 3).scores;
  const auto mlp = prune::mlp_scores(*net, calib, "magnitude", {24, 24}, 3).scores;
  pb::PrunePlan plan = prune::identity_plan(*net);
  for (int l = 0; l < 2; ++l) {
    pb::LayerPlan& lp = *plan.mutable_layers(l);
    lp.set_keep_all_heads(false);
    lp.clear_kept_heads();
    lp.clear_kept_kv_heads();  // normalisation fills them in
    for (int h : prune::top_indices(heads[l], 2)) lp.add_kept_heads(h);
    lp.set_keep_all_mlp(false);
    lp.clear_kept_mlp();
    for (int c : prune::top_indices(mlp[l], 24)) lp.add_kept_mlp(c);
  }
  plan.set_keep_all_hidden(false);
  plan.clear_kept_hidden();
  for (int c : prune::top_indices(hidden, 16)) plan.add_kept_hidden(c);
  prune::apply_plan(*net, plan);
  EXPECT_EQ(net->hidden_size(), 16);
  const fs::path pruned = dir_.path() / "pruned.prc";
  nn::save_model(pruned.string(), *net);
  const std::unique_ptr<nn::Transformer> back = std::move(nn::load_model(pruned.string()).model);
  ag::NoGradGuard no_grad;
  const std::vector<std::int32_t> ids = {1, 17, 42, 5, 90};
  const Tensor logits = back->logits(back->hidden(Tensor::from_vector(ids, {1, 5}), Tensor::zeros({1}, DType::i32)))
                            .value()
                            .contiguous();
  EXPECT_EQ(logits.shape(), (Shape{1, 5, 96}));
  for (std::int64_t i = 0; i < logits.numel(); ++i) ASSERT_TRUE(std::isfinite(logits.data<float>()[i]));
  EXPECT_EQ(logit_change(*net, *back, calib), 0.0);
}

TEST_F(ImportedImportanceTest, BadTokenFilesAreRefusedByLine) {
  const fs::path bad = dir_.path() / "bad.tokens";
  auto message = [&](const std::string& text) {
    std::ofstream(bad) << text;
    return error_message<IoError>([&] { prune::read_token_sequences(bad.string(), 96); });
  };
  EXPECT_EQ(message("1 2 3\n4 x 5\n"), bad.string() + ":2: 'x' is not a token id (a non-negative integer)");
  EXPECT_EQ(message("1 2 96\n"), bad.string() + ":1: token id 96 is outside the model's vocabulary of 96");
  EXPECT_EQ(message("1 2\n\n7\n"), bad.string() + ":3: a calibration sequence needs at least 2 tokens, got 1");
  EXPECT_EQ(message("1 -2\n"), bad.string() + ":1: '-2' is not a token id (a non-negative integer)");
  EXPECT_EQ(message("# nothing\n"), bad.string() + ": no token sequence (one per line, ids separated by spaces)");
}

}  // namespace
}  // namespace prunerec::testing
