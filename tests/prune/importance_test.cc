// Importance estimators on cases whose answer is known.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "nn/text_proto.h"
#include "prune/importance.h"
#include "tensor/rng.h"

namespace prunerec::prune {
namespace {

pb::ModelConfig config() {
  pb::ModelConfig c;
  nn::parse_text_proto(R"(vocab_size: 30 hidden: 16 head_dim: 4 max_len: 8
    num_layers: 3 layer_defaults { num_heads: 4 num_kv_heads: 2 mlp_width: 12 })",
                       "test", &c);
  return c;
}

Calibration calibration(std::uint64_t seed, int sequences = 48) {
  std::vector<std::vector<std::int32_t>> train;
  Rng rng(seed);
  for (int u = 0; u < 64; ++u) {
    std::vector<std::int32_t> s;
    const int n = 3 + static_cast<int>(rng.below(8));
    for (int i = 0; i < n; ++i) s.push_back(static_cast<std::int32_t>(rng.below(30)));
    train.push_back(s);
  }
  pb::CalibrationConfig cc;
  cc.set_sequences(sequences);
  cc.set_batch_size(8);
  cc.set_seed(seed);
  return make_calibration(train, 8, cc);
}

void zero_rows_cols(nn::Transformer& m, const std::string& name, const std::vector<std::int64_t>& cols) {
  Tensor w = m.parameter(name).value();
  for (std::int64_t c : cols)
    for (std::int64_t r = 0; r < w.size(0); ++r) w.set({r, c}, 0.0);
}

TEST(Spearman, HandValues) {
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  // Ranks (0,1,2) vs (1,0,2): d = (1,1,0), rho = 1 - 6*2/(3*8) = 0.5.
  EXPECT_NEAR(spearman({1, 2, 3}, {2, 1, 3}), 0.5, 1e-12);
  // Ties get average ranks: (0.5, 0.5, 2) vs (0, 1, 2): Pearson of ranks = sqrt(3)/2.
  EXPECT_NEAR(spearman({1, 1, 2}, {1, 2, 3}), std::sqrt(3.0) / 2.0, 1e-12);
  EXPECT_TRUE(std::isnan(spearman({1, 1}, {1, 2})));
}

TEST(TopIndices, HighestScoresAscendingWithTiesToTheLowerIndex) {
  EXPECT_EQ(top_indices({0.1, 0.9, 0.5, 0.9, 0.2}, 3), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(top_indices({1, 1, 1, 1}, 2), (std::vector<int>{0, 1}));
  EXPECT_EQ(top_indices({1, 2}, 5), (std::vector<int>{0, 1}));
  EXPECT_TRUE(top_indices({1, 2}, 0).empty());
}

TEST(Calibration, SeededSampleOfTrainingWindows) {
  const Calibration a = calibration(3), b = calibration(3), c = calibration(4);
  EXPECT_EQ(a.sequences, 48);
  ASSERT_EQ(a.batches.size(), b.batches.size());
  for (std::size_t i = 0; i < a.batches.size(); ++i) EXPECT_TRUE(bit_equal(a.batches[i].ids, b.batches[i].ids));
  EXPECT_GT(a.positions, 0);
  const auto [h1, h2] = split_halves(a);
  EXPECT_EQ(h1.positions + h2.positions, a.positions);
  EXPECT_EQ(h1.sequences + h2.sequences, a.sequences);
  (void)c;
}

// A head whose o_proj columns are zero changes nothing: KL score exactly 0, and it is the
// least important head of its layer under both estimators.
TEST(HeadScores, ASilentHeadScoresZero) {
  nn::Transformer m(config(), DType::f32, 5);
  zero_rows_cols(m, "blocks.1.attn.o_proj.weight", {8, 9, 10, 11});  // head 2 of layer 1
  const Calibration calib = calibration(6);
  const HeadScores kl = head_scores(m, calib, "kl", 1.0, 0);
  EXPECT_EQ(kl.scores[1][2], 0.0);
  for (int h : {0, 1, 3}) EXPECT_GT(kl.scores[1][h], 0.0);
  for (const auto& layer : kl.scores) {
    double total = 0;
    for (double v : layer) total += v;
    EXPECT_NEAR(total, 1.0, 1e-9);  // normalised per layer
  }
  EXPECT_GE(kl.stability, -1.0);
  EXPECT_LE(kl.stability, 1.0);
  // Gates are restored after scoring.
  for (int l = 0; l < 3; ++l)
    for (std::int64_t h = 0; h < 4; ++h) EXPECT_EQ(m.block(l).attn().head_gate().at({h}), 1.0);
  // Activation norm: a head whose v_proj rows are zero outputs exactly zero.
  nn::Transformer m2(config(), DType::f32, 5);
  Tensor v = m2.parameter("blocks.0.attn.v_proj.weight").value();
  Tensor vb = m2.parameter("blocks.0.attn.v_proj.bias").value();
  for (std::int64_t r = 0; r < 4; ++r) {  // KV head 0, read by query heads 0 and 1
    vb.set({r}, 0.0);
    for (std::int64_t c = 0; c < 16; ++c) v.set({r, c}, 0.0);
  }
  const HeadScores act = head_scores(m2, calib, "activation", 1.0, 0);
  EXPECT_EQ(act.scores[0][0], 0.0);
  EXPECT_EQ(act.scores[0][1], 0.0);
  EXPECT_GT(act.scores[0][2], 0.0);
}

TEST(HeadScores, SmoothingMixesTheLayerAbove) {
  nn::Transformer m(config(), DType::f32, 7);
  const Calibration calib = calibration(8);
  const HeadScores raw = head_scores(m, calib, "kl", 1.0, 0);
  const HeadScores smooth = head_scores(m, calib, "kl", 0.7, 0);
  for (int h = 0; h < 4; ++h) {
    EXPECT_NEAR(smooth.scores[0][h], raw.scores[0][h], 1e-12);
    EXPECT_NEAR(smooth.scores[1][h], 0.7 * raw.scores[1][h] + 0.3 * smooth.scores[0][h], 1e-12);
  }
}

// A hidden channel that is zero in the embedding and written by no layer carries nothing:
// its activation-times-gradient score is 0.
TEST(HiddenScores, ADeadChannelScoresZero) {
  nn::Transformer m(config(), DType::f32, 9);
  const std::int64_t dead = 5;
  {
    Tensor e = m.parameter("embed.weight").value();
    for (std::int64_t r = 0; r < e.size(0); ++r) e.set({r, dead}, 0.0);
    for (int l = 0; l < 3; ++l)
      for (const char* w : {"attn.o_proj.weight", "mlp.down_proj.weight"}) {
        Tensor t = m.parameter("blocks." + std::to_string(l) + "." + w).value();
        for (std::int64_t c = 0; c < t.size(1); ++c) t.set({dead, c}, 0.0);
      }
  }
  const Calibration calib = calibration(10);
  const HiddenScores ag = hidden_scores(m, calib, "act_grad", 0);
  const HiddenScores mag = hidden_scores(m, calib, "magnitude", 0);
  EXPECT_EQ(ag.scores[dead], 0.0);
  EXPECT_EQ(mag.scores[dead], 0.0);
  for (std::int64_t c = 0; c < 16; ++c) {
    if (c != dead) { EXPECT_GT(ag.scores[c], 0.0) << c; }
  }
  const std::vector<int> kept = top_indices(ag.scores, 15);
  EXPECT_EQ(kept.size(), 15u);
  EXPECT_EQ(std::count(kept.begin(), kept.end(), dead), 0);
}

// Top-K counts: each valid position puts exactly K channels in its top K.
TEST(MlpScores, TopKCountsSumToKPerPosition) {
  nn::Transformer m(config(), DType::f32, 11);
  const Calibration calib = calibration(12);
  const MlpScores s = mlp_scores(m, calib, "topk", {3, 5, 12}, 0);
  for (int l = 0; l < 3; ++l) {
    double total = 0;
    for (double v : s.scores[l]) total += v;
    const int k = l == 0 ? 3 : l == 1 ? 5 : 12;
    EXPECT_NEAR(total, k, 1e-9) << "layer " << l;  // mean over positions of K hits
  }
  const MlpScores r1 = mlp_scores(m, calib, "random", {3, 5, 12}, 1), r2 = mlp_scores(m, calib, "random", {3, 5, 12}, 1);
  EXPECT_EQ(r1.scores, r2.scores);
  EXPECT_TRUE(std::isnan(r1.stability));
}

// A layer that does nothing (zero o_proj and down_proj) costs nothing to remove: its greedy
// score (loss increase) is 0 and its block influence is 0. The greedy search removes, in
// each round, the unit with the lowest resulting loss.
TEST(DepthScores, AnIdentityLayerIsFreeToRemove) {
  nn::Transformer m(config(), DType::f32, 13);
  for (const char* w : {"attn.o_proj.weight", "mlp.down_proj.weight"}) {
    Tensor t = m.parameter(std::string("blocks.1.") + w).value();
    t.zero();
  }
  const Calibration calib = calibration(14);
  const DepthScores g = depth_scores(m, calib, "greedy", false, 2, 0);
  ASSERT_EQ(g.removal_order.size(), 2u);
  EXPECT_NEAR(g.unit_scores[1], 0.0, 1e-6);  // f32 loss over the same arithmetic: exact up to rounding
  const int first = static_cast<int>(std::min_element(g.unit_scores.begin(), g.unit_scores.end()) - g.unit_scores.begin());
  EXPECT_EQ(g.removal_order[0], first);
  EXPECT_NEAR(g.greedy_losses[0], g.base_loss + g.unit_scores[first], 1e-6);
  EXPECT_NE(g.removal_order[0], g.removal_order[1]);
  const DepthScores bi = depth_scores(m, calib, "block_influence", false, 1, 0);
  EXPECT_NEAR(bi.unit_scores[1], 0.0, 1e-6);
  EXPECT_EQ(bi.removal_order[0], 1);  // every other layer changes its input
  // Sub-blocks: layer 1's attention (unit 2) and MLP (unit 3) both cost nothing.
  const DepthScores sb = depth_scores(m, calib, "greedy", true, 1, 0);
  EXPECT_NEAR(sb.unit_scores[2], 0.0, 1e-6);
  EXPECT_NEAR(sb.unit_scores[3], 0.0, 1e-6);
}

}  // namespace
}  // namespace prunerec::prune
