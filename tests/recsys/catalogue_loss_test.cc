// The recipe's train.loss in the trainer: sampled softmax and gBCE train the small config
// (the loss falls, the model beats popularity), the optimizer's lazy row steps are saved
// with the run state, and the blocked evaluator agrees with the dense one.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "nn/checkpoint.h"
#include "nn/text_proto.h"
#include "recsys/catalogue_loss.h"
#include "recsys/data/split.h"
#include "recsys/data/synthetic.h"
#include "recsys/eval/blocked_ranking.h"
#include "recsys/eval/evaluator.h"
#include "recsys/trainer.h"

namespace prunerec::recsys {
namespace {

namespace fs = std::filesystem;

TEST(CatalogueLoss, SampledLossesTrainAndSaveLazyRowSteps) {
  const SequenceDataset data = make_synthetic({.users = 300, .items = 80, .clusters = 8, .mean_length = 10, .seed = 4});
  const DataSplit split = leave_one_out(data);
  pb::ModelConfig mc;
  nn::parse_text_proto(R"(vocab_size: 80 hidden: 32 head_dim: 16 max_len: 12
    num_layers: 2 layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 64 })", "small", &mc);
  for (const char* loss : {"kind: SAMPLED negatives: 16 sampler: POPULARITY", "kind: GBCE negatives: 16 gbce_t: 0.75"}) {
    nn::Transformer net(mc, DType::f32, 1);
    const fs::path dir = fs::path(::testing::TempDir()) / "prunerec_catalogue_loss_test";
    fs::remove_all(dir);
    fs::create_directories(dir);
    TrainSpec spec;
    spec.data = &data;
    spec.split = &split;
    nn::parse_text_proto(std::string("epochs: 4 batch_size: 32 dropout: 0.1 optimizer { lr: 3e-3 } loss { ") + loss + " }",
                         "train", &spec.config);
    spec.out_path = (dir / "model.prc").string();
    spec.catalog = &data.items;
    spec.progress = Progress::Mode::kSilent;
    std::ostringstream log;
    spec.log = &log;
    const TrainResult r = train_model(net, spec);
    ASSERT_EQ(r.loss_curve.size(), 4u);
    EXPECT_LT(r.loss_curve.back(), r.loss_curve.front()) << loss << "\n" << log.str();
    // The run state holds the lazy rows' step counters (Note [lazy AdamW rows]).
    const nn::LoadedModel state = nn::load_model(spec.out_path + ".state");
    ASSERT_TRUE(state.optimizer.count("embed.weight")) << loss;
    EXPECT_TRUE(state.optimizer.at("embed.weight").row_step.defined()) << loss;
    // Better than popularity on this structured data, like the full softmax.
    EvalOptions eo;
    eo.max_len = 12;
    const EvalResult model = evaluate_model(net, data, split, eo);
    const EvalResult pop = evaluate(popularity_scorer(split), data, split, eo);
    EXPECT_GT(model.metrics.at("NDCG@10"), pop.metrics.at("NDCG@10")) << loss;
    // Blocked and dense evaluation: the same ranks up to the scores' rounding (dot8 against
    // the GEMM), so the metrics agree closely (exact equality is not expected: a GEMM and
    // a fixed-order dot round differently, and a tie can flip).
    const EvalResult blocked = evaluate_blocked(net, data, split, eo);
    EXPECT_NEAR(blocked.metrics.at("NDCG@10"), model.metrics.at("NDCG@10"), 0.01) << loss;
    // A bf16 item table through evaluate_model: the protocol says so, and the ranks move by
    // bf16's rounding only (8 bits of mantissa: relative 2^-9 per weight, a few 1e-3 in a
    // score of magnitude ~1), so NDCG@10 stays within 0.02 of the f32 table's.
    eo.protocol.item_table = "bf16";
    const EvalResult bf16 = evaluate_model(net, data, split, eo);
    EXPECT_EQ(bf16.protocol.item_table, "bf16");
    ASSERT_EQ(bf16.ranks.size(), static_cast<std::size_t>(bf16.num_examples));  // per-user files read these
    ASSERT_EQ(bf16.users.size(), bf16.ranks.size());
    EXPECT_NE(to_json(bf16).find("\"item_table\": \"bf16\""), std::string::npos) << to_json(bf16);
    EXPECT_NEAR(bf16.metrics.at("NDCG@10"), blocked.metrics.at("NDCG@10"), 0.02) << loss;
    eo.protocol.item_table = "f16";
    EXPECT_THROW(evaluate_model(net, data, split, eo), ConfigError);
  }
}

TEST(CatalogueLoss, AutoPicksFullBelowTheThresholdAndRefusesBadSettings) {
  pb::LossConfig c;
  EXPECT_EQ(resolve_loss_kind(c, 49999), pb::LossConfig::FULL);
  EXPECT_EQ(resolve_loss_kind(c, 50000), pb::LossConfig::SAMPLED);
  c.set_kind(pb::LossConfig::GBCE);
  c.set_sampler(pb::LossConfig::POPULARITY);
  EXPECT_THROW(validate(c, 1000), ConfigError);
  c.set_sampler(pb::LossConfig::UNIFORM);
  c.set_gbce_t(1.5);
  EXPECT_THROW(validate(c, 1000), ConfigError);
  c.set_gbce_t(0.5);
  c.set_negatives(0);
  EXPECT_THROW(validate(c, 1000), ConfigError);
}

}  // namespace
}  // namespace prunerec::recsys
