// Importance estimators on cases whose answer is known.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "nn/text_proto.h"
#include "prune/importance.h"
#include "tensor/rng.h"
#include "tests/common/golden.h"

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

// ---- the paper's estimators as its released code computes them (docs/pruning.md) -----

// Min-max per layer on hand-made scores; an all-equal layer becomes zeros (the released
// code would divide by zero); sum normalisation divides by the total.
TEST(PaperHeads, MinMaxNormalisationOnHandMadeScores) {
  EXPECT_EQ(normalise_layer({2, 4, 3}, "minmax"), (std::vector<double>{0, 1, 0.5}));
  EXPECT_EQ(normalise_layer({-1, 1}, "minmax"), (std::vector<double>{0, 1}));
  EXPECT_EQ(normalise_layer({0.3, 0.3, 0.3}, "minmax"), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(normalise_layer({1, 3}, "sum"), (std::vector<double>{0.25, 0.75}));
  EXPECT_THROW(normalise_layer({1}, "l2"), ConfigError);
}

// Where alpha goes: the released code weights the previous layer's smoothed vector by
// alpha; ours weights the current layer. Chained over three layers, the code's recursion
// carries layer 0 into layer 2 with weight alpha^2.
TEST(PaperHeads, AlphaPlacementOnHandMadeScores) {
  const std::vector<double> n0{0, 1}, n1{1, 0}, n2{0, 0};
  const std::vector<double> prev = smooth_layer(n0, nullptr, "previous", 0.7);
  EXPECT_EQ(prev, n0);  // s_0 = n_0
  const std::vector<double> p1 = smooth_layer(n1, &prev, "previous", 0.7);
  EXPECT_NEAR(p1[0], 0.3, 1e-15);  // 0.7 * 0 + 0.3 * 1
  EXPECT_NEAR(p1[1], 0.7, 1e-15);  // 0.7 * 1 + 0.3 * 0
  const std::vector<double> p2 = smooth_layer(n2, &p1, "previous", 0.7);
  EXPECT_NEAR(p2[0], 0.21, 1e-15);
  EXPECT_NEAR(p2[1], 0.49, 1e-15);  // alpha^2 of layer 0
  const std::vector<double> c1 = smooth_layer(n1, &prev, "current", 0.7);
  EXPECT_NEAR(c1[0], 0.7, 1e-15);  // 0.7 * 1 + 0.3 * 0
  EXPECT_NEAR(c1[1], 0.3, 1e-15);
  // "None" is alpha 1 for ours and alpha 0 for the code's placement; sizes that differ
  // (an uneven model) are not smoothed.
  EXPECT_EQ(smooth_layer(n1, &prev, "current", 1.0), n1);
  EXPECT_EQ(smooth_layer(n1, &prev, "previous", 0.0), n1);
  const std::vector<double> three{1, 2, 3};
  EXPECT_EQ(smooth_layer(n1, &three, "previous", 0.7), n1);
  EXPECT_THROW(smooth_layer(n1, &prev, "next", 0.7), ConfigError);
}

TEST(PaperHeads, KlWithEpsilonAndTheArgsortChoice) {
  // softmax(0, 0) = (.5, .5), softmax(log 3, 0) = (.75, .25): KL = .5 log(4/3) (the eps
  // terms move it by about 1e-12).
  const double p[2] = {0, 0}, q[2] = {std::log(3.0), 0};
  EXPECT_NEAR(kl_eps(p, q, 2), 0.5 * std::log(4.0 / 3.0), 1e-11);
  EXPECT_EQ(kl_eps(p, p, 2), 0.0);
  // np.argsort(s)[-k:]: the largest, and among equal values the higher index.
  EXPECT_EQ(greedy_choice({0.5, 0.1, 0.5, 0.9}, 2), (std::vector<int>{2, 3}));
  EXPECT_EQ(greedy_choice({0.2, 0.2, 0.2}, 1), (std::vector<int>{2}));
  EXPECT_TRUE(greedy_choice({1, 2}, 0).empty());
  // The scores greedy_kl returns are -s, so the heads top_indices keeps are exactly the
  // ones greedy_choice does not choose, ties included.
  const std::vector<double> s{0.5, 0.1, 0.5, 0.5};
  std::vector<double> neg;
  for (double v : s) neg.push_back(-v);
  EXPECT_EQ(top_indices(neg, 2), (std::vector<int>{0, 1}));
  EXPECT_EQ(greedy_choice(s, 2), (std::vector<int>{2, 3}));
}

// The fixture of tools/paper_heads_reference.py: a direct PyTorch implementation of
// Algorithm 1 as the released code runs it, on a 3-layer model with 4 heads per layer.
TEST(PaperHeads, GreedyKlChoosesTheHeadsOfTheReference) {
  const prunerec::testing::Golden g = prunerec::testing::load_golden("paper_heads.txt");
  pb::ModelConfig c;
  nn::parse_text_proto(g.meta_value("config"), "paper_heads config", &c);
  nn::Transformer m(c, DType::f64, 1);
  for (auto& [name, var] : m.named_parameters()) {
    const Tensor& ref = g.tensor(name);
    ASSERT_EQ(ref.shape(), var.shape()) << name;
    Tensor v = var.value();
    v.copy_from(ref);
  }
  Calibration calib;
  const int batches = std::stoi(g.meta_value("batches"));
  for (int b = 0; b < batches; ++b) {
    recsys::Batch batch;
    batch.ids = g.tensor("calib." + std::to_string(b)).to(DType::i32);
    batch.pads = nn::pads_from_ids(batch.ids);
    const std::int64_t B = batch.ids.size(0), T = batch.ids.size(1);
    batch.targets = Tensor::full({B, T}, -1, DType::i32);
    for (std::int64_t r = 0; r < B; ++r) batch.targets.set({r, T - 1}, 0.0);
    batch.positions = B;
    calib.sequences += B;
    calib.positions += B;
    calib.batches.push_back(batch);
  }
  HeadOptions o;
  o.method = "greedy_kl";
  o.mask = "query_scale";
  o.normalise = "minmax";
  o.smoothing = "previous";
  o.alpha = g.meta_numbers("alpha").at(0);
  const int k = std::stoi(g.meta_value("prune_per_layer"));
  o.prune_per_layer.assign(3, k);
  const HeadScores hs = head_scores(m, calib, o, 0);
  ASSERT_EQ(hs.scores.size(), 3u);
  for (int l = 0; l < 3; ++l) {
    const std::vector<double> want = g.tensor("smoothed." + std::to_string(l)).to_vector<double>();
    std::vector<double> s;
    for (double v : hs.scores[l]) s.push_back(-v);
    // f64 on both sides; the KLs (about 1e-3) differ in summation order only, and min-max
    // divides by a range of the same order, so 1e-9 is far above rounding and far below
    // the fixture's margin between chosen and unchosen heads (meta "margin", > 1e-3).
    for (std::size_t h = 0; h < want.size(); ++h) EXPECT_NEAR(s[h], want[h], 1e-9) << "layer " << l << " head " << h;
    std::vector<int> chosen;
    for (std::int64_t h : g.tensor("chosen." + std::to_string(l)).to_vector<std::int64_t>())
      chosen.push_back(static_cast<int>(h));
    EXPECT_EQ(greedy_choice(s, k), chosen) << "layer " << l;
    // The plan keeps the others.
    std::vector<int> kept;
    for (int h = 0; h < 4; ++h)
      if (std::find(chosen.begin(), chosen.end(), h) == chosen.end()) kept.push_back(h);
    EXPECT_EQ(top_indices(hs.scores[l], 4 - k), kept) << "layer " << l;
  }
  // Scoring leaves the model as it was: no query scale, gates untouched.
  for (int l = 0; l < 3; ++l) {
    EXPECT_FALSE(m.block(l).attn().has_query_scale());
    EXPECT_EQ(m.block(l).attn().head_gate().to_vector<double>(), std::vector<double>(4, 1.0));
  }
}

// The released code's hidden score in closed form, |h_T,c * E[y,c]|, equals |g * h| with g
// the autograd gradient of the top logit at the last position (zero elsewhere), RMS over rows.
TEST(PaperHidden, TopLogitEqualsAutogradGradientTimesHidden) {
  nn::Transformer m(config(), DType::f64, 21);
  const Calibration calib = calibration(22);
  const HiddenScores top = hidden_scores(m, calib, "top_logit", 0);
  const std::int64_t d = 16;
  std::vector<double> sum(d, 0.0);
  double rows = 0;
  for (const auto& b : calib.batches) {
    const Tensor hv = m.hidden(b.ids, b.pads).value();
    ag::Var h(hv, /*requires_grad=*/true);
    ag::Var logits = m.logits(h);  // [B,T,V]
    const std::int64_t B = hv.size(0), T = hv.size(1), V = logits.size(-1);
    Tensor seed = Tensor::zeros({B, T, V}, DType::f64);
    for (std::int64_t r = 0; r < B; ++r) {
      std::int64_t y = 0;
      for (std::int64_t v = 1; v < V; ++v)
        if (logits.value().at({r, T - 1, v}) > logits.value().at({r, T - 1, y})) y = v;
      seed.set({r, T - 1, y}, 1.0);
    }
    logits.backward(seed);
    for (std::int64_t r = 0; r < B; ++r)
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t c = 0; c < d; ++c) {
          const double x = h.grad().at({r, t, c}) * hv.at({r, t, c});
          sum[c] += x * x;
        }
    rows += static_cast<double>(B);
  }
  for (std::int64_t c = 0; c < d; ++c) {
    const double want = std::sqrt(sum[c] / rows);
    EXPECT_NEAR(top.scores[c], want, 1e-12 * std::max(1.0, want)) << c;  // f64, same products
    EXPECT_GT(want, 0.0);
  }
}

// Channels j+ and j- with up-projection rows w and -w, every other row zero: their up
// values are always opposite and the only non-zero ones. Ranked by |up| (ours) both are in
// every position's top 2; ranked by signed value (the released code) exactly one is.
TEST(PaperMlp, SignedAndAbsoluteTopKDifferWhereTheyShould) {
  nn::Transformer m(config(), DType::f64, 23);
  Tensor up = m.parameter("blocks.0.mlp.up_proj.weight").value();  // [12, 16]
  for (std::int64_t r = 0; r < up.size(0); ++r)
    for (std::int64_t c = 0; c < up.size(1); ++c) {
      if (r != 3 && r != 7) up.set({r, c}, 0.0);
    }
  for (std::int64_t c = 0; c < up.size(1); ++c) up.set({7, c}, -up.at({3, c}));
  const Calibration calib = calibration(24);
  const std::vector<int> keep{2, 2, 2};
  const MlpScores abs_k = mlp_scores(m, calib, "topk", keep, 0);
  const MlpScores signed_k = mlp_scores(m, calib, "topk_signed", keep, 0);
  // Scores are the mean count per position.
  EXPECT_NEAR(abs_k.scores[0][3], 1.0, 1e-12);
  EXPECT_NEAR(abs_k.scores[0][7], 1.0, 1e-12);
  EXPECT_NEAR(signed_k.scores[0][3] + signed_k.scores[0][7], 1.0, 1e-12);
  EXPECT_GT(signed_k.scores[0][3], 0.0);
  EXPECT_GT(signed_k.scores[0][7], 0.0);
  // The second signed slot goes to a zero channel (0 beats the negative one), which |up|
  // never picks.
  double small_signed = 0, small_abs = 0;
  for (int j = 0; j < 12; ++j)
    if (j != 3 && j != 7) {
      small_signed += signed_k.scores[0][j];
      small_abs += abs_k.scores[0][j];
    }
  EXPECT_NEAR(small_signed, 1.0, 1e-12);
  EXPECT_EQ(small_abs, 0.0);
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

// Note [progress of nested work]: the scoring reports its phase and its count of forward
// passes on the caller's line, erases the line when it ends, and stops on request.
TEST(ScoringProgress, PhasesCountTheirPassesAndStopOnRequest) {
  nn::Transformer m(config(), DType::f32, 13);
  Calibration calib = calibration(14);
  const std::int64_t batches = static_cast<std::int64_t>(calib.batches.size());
  ASSERT_GT(batches, 1);
  std::ostringstream out;
  Progress progress(out, "", 0, Progress::Mode::kLive);
  WorkMeter meter(progress, "stage1");
  calib.meter = &meter;
  const double with_meter = calibration_loss(m, calib);
  const std::string line = out.str();
  EXPECT_NE(line.find("stage1: calibration loss ["), std::string::npos) << line;
  EXPECT_NE(line.find("] 0/" + std::to_string(batches)), std::string::npos) << line;
  // The phase ends with the line erased, so the caller's next log line starts clean.
  EXPECT_EQ(line.substr(line.size() - 4), "\r\033[K");
  // greedy_kl: one unmasked pass plus one pass per head (3 layers x 4 heads), per batch.
  out.str("");
  HeadOptions ho;
  ho.method = "greedy_kl";
  ho.prune_per_layer = {1, 1, 1};
  head_scores(m, calib, ho, 0);
  EXPECT_NE(out.str().find("stage1: head scoring (greedy_kl) ["), std::string::npos);
  EXPECT_NE(out.str().find("/" + std::to_string(13 * batches)), std::string::npos) << out.str();
  // The meter only watches: the numbers are those of a run without one.
  calib.meter = nullptr;
  EXPECT_EQ(calibration_loss(m, calib), with_meter);
  // A stop request ends the work with the phase named, with or without a meter.
  request_stop();
  try {
    hidden_scores(m, calib, "magnitude", 0);
    ADD_FAILURE() << "no Interrupted";
  } catch (const Interrupted& e) {
    EXPECT_NE(std::string(e.what()).find("hidden-channel scoring (magnitude)"), std::string::npos) << e.what();
  }
  clear_stop_request();
}

}  // namespace
}  // namespace prunerec::prune
