// The trainer on a fixture: the small config trains for a few steps, the loss falls, the
// best model is kept, and evaluation output carries the documented keys.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "nn/text_proto.h"
#include "recsys/data/split.h"
#include "recsys/data/synthetic.h"
#include "recsys/eval/evaluator.h"
#include "recsys/recommender.h"
#include "recsys/trainer.h"

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

}  // namespace
}  // namespace prunerec::recsys
