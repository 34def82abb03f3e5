// Blocked ranking (recsys/eval/blocked_ranking.h) against full sorts of the same scores,
// the evaluator's target_rank, and bf16 tables; the sampled losses' negative sampler.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "recsys/catalogue_loss.h"
#include "recsys/eval/blocked_ranking.h"
#include "recsys/eval/metrics.h"
#include "recsys/ranking.h"
#include "nn/text_proto.h"
#include "tensor/rng.h"

namespace prunerec::recsys {
namespace {

Tensor randn(const Shape& shape, std::uint64_t seed, double scale = 1.0) {
  Tensor t = Tensor::empty(shape, DType::f32);
  fill_normal(t, 0.0, scale, seed, 9);
  return t;
}

// All scores of user b through dot8 (the definition of a score), as a dense row.
std::vector<float> full_scores(const Tensor& h, const Tensor& w, std::int64_t b) {
  const std::int64_t V = w.size(0), d = w.size(1);
  std::vector<float> s(static_cast<std::size_t>(V));
  for (std::int64_t j = 0; j < V; ++j) s[j] = dot8(h.data<float>() + b * d, w.data<float>() + j * d, d);
  return s;
}

// V = 1,337 crosses two 512-item blocks and a partial one; d = 13 exercises the lane
// tail; B = 6 a partial group of four; quantised scores make many ties.
TEST(BlockedRanking, TopKEqualsFullSortWithTiesAndExclusion) {
  const std::int64_t V = 1337, d = 13, B = 6;
  Tensor h = randn({B, d}, 1), w = randn({V, d}, 2);
  // Round the table so that scores tie often: items repeat in groups of three.
  for (std::int64_t j = 0; j < V; ++j)
    std::copy(w.data<float>() + (j / 3) * d, w.data<float>() + (j / 3 + 1) * d, w.data<float>() + j * d);
  std::vector<std::vector<std::int32_t>> excluded(B);
  Rng rng(3);
  for (std::int64_t b = 0; b < B; ++b)
    for (int i = 0; i < 40; ++i) excluded[b].push_back(static_cast<std::int32_t>(rng.below(V)));
  const ServingTable table(w, TableFormat::kF32);
  for (int k : {1, 10, 50}) {
    const auto top = blocked_top_k(h, table, k, excluded);
    ASSERT_EQ(static_cast<std::int64_t>(top.size()), B);
    for (std::int64_t b = 0; b < B; ++b) {
      const std::vector<float> s = full_scores(h, w, b);
      std::vector<std::int32_t> order;
      for (std::int32_t j = 0; j < V; ++j)
        if (std::find(excluded[b].begin(), excluded[b].end(), j) == excluded[b].end()) order.push_back(j);
      std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t c) { return s[a] > s[c]; });
      order.resize(k);
      EXPECT_EQ(top[b].items, order) << "k " << k << " user " << b;
      for (int i = 0; i < k; ++i) EXPECT_EQ(top[b].scores[i], s[order[i]]);
    }
  }
}

// top_items_batch (recommend, recommend_batch) on the blocked path gives the dense path's
// answer: the same score at every rank and the same item wherever the dense scores around
// it are apart by more than the two paths' rounding difference. 70 histories cross a
// chunk of kHistoryChunk; exclusion on.
TEST(TopItemsBatch, BlockedPathEqualsDensePath) {
  pb::ModelConfig c;
  nn::parse_text_proto(R"(vocab_size: 1337 hidden: 16 head_dim: 4 max_len: 8
    num_layers: 1 layer_defaults { num_heads: 4 num_kv_heads: 2 mlp_width: 16 })",
                       "test", &c);
  const nn::Transformer net(c, DType::f32, 5);
  std::vector<std::vector<std::int32_t>> histories;
  Rng rng(6);
  for (int u = 0; u < 70; ++u) {
    std::vector<std::int32_t> h;
    for (int i = 0, n = 1 + static_cast<int>(rng.below(12)); i < n; ++i) h.push_back(static_cast<std::int32_t>(rng.below(1337)));
    histories.push_back(h);
  }
  const auto dense = top_items_batch(net, histories, 10, true, RankingPath::kDense);
  const auto blocked = top_items_batch(net, histories, 10, true, RankingPath::kBlocked);
  ASSERT_EQ(dense.size(), blocked.size());
  // GEMM and dot8 sum the 16 products in different orders: scores of magnitude ~1 differ
  // by a few ulps (1e-6 bounds it with margin); items may swap only within that.
  constexpr float kTol = 1e-5f;
  for (std::size_t u = 0; u < dense.size(); ++u) {
    ASSERT_EQ(dense[u].size(), 10u);
    ASSERT_EQ(blocked[u].size(), 10u);
    for (std::size_t r = 0; r < 10; ++r) {
      EXPECT_NEAR(blocked[u][r].score, dense[u][r].score, kTol) << "history " << u << " rank " << r;
      const bool apart = (r == 0 || dense[u][r - 1].score - dense[u][r].score > 2 * kTol) &&
                         (r == 9 || dense[u][r].score - dense[u][r + 1].score > 2 * kTol);
      if (apart) {
        EXPECT_EQ(blocked[u][r].item, dense[u][r].item) << "history " << u << " rank " << r;
      }
      for (std::int32_t seen : histories[u]) EXPECT_NE(blocked[u][r].item, seen);
    }
  }
}

TEST(BlockedRanking, TargetRanksEqualEvaluatorsPessimisticRank) {
  const std::int64_t V = 1337, d = 13, B = 7;
  Tensor h = randn({B, d}, 4), w = randn({V, d}, 5);
  for (std::int64_t j = 0; j < V; ++j)  // ties with the target: pairs of equal rows
    std::copy(w.data<float>() + (j / 2) * d, w.data<float>() + (j / 2 + 1) * d, w.data<float>() + j * d);
  std::vector<std::int32_t> targets;
  std::vector<std::vector<std::int32_t>> excluded(B);
  for (std::int64_t b = 0; b < B; ++b) {
    targets.push_back(static_cast<std::int32_t>((b * 191) % V));
    excluded[b] = {static_cast<std::int32_t>((b * 191 + 1) % V), 5, 900, targets.back()};  // the target too
  }
  const auto ranks = blocked_target_ranks(h, ServingTable(w, TableFormat::kF32), targets, excluded);
  for (std::int64_t b = 0; b < B; ++b) {
    const std::vector<float> s = full_scores(h, w, b);
    EXPECT_EQ(ranks[b], target_rank(s.data(), static_cast<std::int32_t>(V), targets[b], excluded[b])) << "user " << b;
  }
}

// Well-separated scores: the 10 best items of each user lead the rest by a margin far
// above bf16's relative error (2^-9 per weight), so the bf16 table gives the same list.
TEST(BlockedRanking, Bf16TableGivesSameTop10WhenScoresAreSeparated) {
  const std::int64_t V = 5000, d = 32, B = 5;
  Tensor h = randn({B, d}, 6), w = randn({V, d}, 7, 0.05);
  // Orthogonal users (Gram-Schmidt), so one user's planted items score 0 for the others.
  for (std::int64_t b = 0; b < B; ++b) {
    float* hb = h.data<float>() + b * d;
    for (std::int64_t a = 0; a < b; ++a) {
      const float* ha = h.data<float>() + a * d;
      double dot = 0, n2 = 0;
      for (std::int64_t c = 0; c < d; ++c) dot += hb[c] * ha[c], n2 += ha[c] * ha[c];
      for (std::int64_t c = 0; c < d; ++c) hb[c] -= static_cast<float>(dot / n2 * ha[c]);
    }
  }
  // Plant ten items per user along h_b scoring 4, 5, ..., 13, while the rest score about
  // N(0, (0.05 |h_b|)^2) ~ 0.3: gaps of 1 between planted items, and bf16 moves a score
  // by about 2^-9 of its size (< 0.03).
  for (std::int64_t b = 0; b < B; ++b) {
    const float* hb = h.data<float>() + b * d;
    double n2 = 0;
    for (std::int64_t c = 0; c < d; ++c) n2 += hb[c] * hb[c];
    for (int i = 0; i < 10; ++i) {
      float* row = w.data<float>() + (b * 997 + i * 13) * d;
      for (std::int64_t c = 0; c < d; ++c) row[c] = static_cast<float>((4 + i) * hb[c] / n2);
    }
  }
  const auto f32 = blocked_top_k(h, ServingTable(w, TableFormat::kF32), 10);
  const ServingTable bf16(w, TableFormat::kBf16);
  EXPECT_EQ(bf16.bytes() * 2, ServingTable(w, TableFormat::kF32).bytes());
  const auto half = blocked_top_k(h, bf16, 10);
  for (std::int64_t b = 0; b < B; ++b) {
    EXPECT_EQ(f32[b].items, half[b].items) << "user " << b;
    EXPECT_EQ(f32[b].items.front(), b * 997 + 9 * 13);
  }
}

TEST(BlockedRanking, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);   // halfway, to even
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);  // halfway, to even (up)
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

// Note [negatives from the seed]: the same (seed, step) gives the same negatives.
TEST(NegativeSampler, ReproducibleAndCorrected) {
  const std::vector<double> counts{100, 0, 10, 1, 0, 0, 50, 3};
  for (auto kind : {pb::LossConfig::UNIFORM, pb::LossConfig::POPULARITY, pb::LossConfig::IN_BATCH}) {
    const NegativeSampler s(8, kind, 64, true, counts, 42);
    const Tensor targets = Tensor::from_vector<std::int32_t>({0, 0, 6, -1, 2});
    const Negatives a = s.draw(5, targets), b = s.draw(5, targets), c = s.draw(6, targets);
    EXPECT_TRUE(std::equal(a.items.data<std::int32_t>(), a.items.data<std::int32_t>() + 64, b.items.data<std::int32_t>()));
    EXPECT_FALSE(std::equal(a.items.data<std::int32_t>(), a.items.data<std::int32_t>() + 64, c.items.data<std::int32_t>()));
    for (int i = 0; i < 64; ++i) {
      const std::int32_t j = a.items.data<std::int32_t>()[i];
      double q = 1.0 / 8;
      if (kind == pb::LossConfig::POPULARITY) q = (counts[j] + 1) / (164.0 + 8);
      if (kind == pb::LossConfig::IN_BATCH) {
        EXPECT_TRUE(j == 0 || j == 6 || j == 2);
        q = j == 0 ? 0.5 : 0.25;
      }
      EXPECT_NEAR(a.log_count.data<double>()[i], std::log(64 * q), 1e-12);
    }
  }
}

}  // namespace
}  // namespace prunerec::recsys
