// Blocked ranking (recsys/eval/blocked_ranking.h) against full sorts of the same scores,
// the evaluator's target_rank, and bf16 tables; the sampled losses' negative sampler.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>

#include "recsys/catalogue_loss.h"
#include "recsys/eval/blocked_ranking.h"
#include "recsys/eval/metrics.h"
#include "recsys/ranking.h"
#include "nn/text_proto.h"
#include "tensor/kernels/isa.h"
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

// V = 1,337 crosses two 512-item blocks and a partial one (and, with the small
// RankingBlocks, many tasks and blocks of odd sizes); d = 13 exercises the lane tail;
// B = 1 (serving), 3 and 6 users take turns on each block; quantised scores make many
// ties.
TEST(BlockedRanking, TopKEqualsFullSortWithTiesAndExclusion) {
  const std::int64_t V = 1337, d = 13;
  for (std::int64_t B : {1, 3, 6}) {
    Tensor h = randn({B, d}, 1), w = randn({V, d}, 2);
    // Round the table so that scores tie often: items repeat in groups of three.
    for (std::int64_t j = 0; j < V; ++j)
      std::copy(w.data<float>() + (j / 3) * d, w.data<float>() + (j / 3 + 1) * d, w.data<float>() + j * d);
    std::vector<std::vector<std::int32_t>> excluded(B);
    Rng rng(3);
    for (std::int64_t b = 0; b < B; ++b)
      for (int i = 0; i < 40; ++i) excluded[b].push_back(static_cast<std::int32_t>(rng.below(V)));
    const ServingTable table(w, TableFormat::kF32);
    for (const RankingBlocks& blocks : {RankingBlocks{}, RankingBlocks{.task_items = 100, .block_items = 7},
                                        RankingBlocks{.task_items = 64, .block_items = 64}}) {
      for (int k : {1, 10, 50}) {
        const auto top = blocked_top_k(h, table, k, excluded, blocks);
        ASSERT_EQ(static_cast<std::int64_t>(top.size()), B);
        for (std::int64_t b = 0; b < B; ++b) {
          const std::vector<float> s = full_scores(h, w, b);
          std::vector<std::int32_t> order;
          for (std::int32_t j = 0; j < V; ++j)
            if (std::find(excluded[b].begin(), excluded[b].end(), j) == excluded[b].end()) order.push_back(j);
          std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t c) { return s[a] > s[c]; });
          order.resize(k);
          EXPECT_EQ(top[b].items, order) << "B " << B << " task " << blocks.task_items << " k " << k << " user " << b;
          for (int i = 0; i < k; ++i) EXPECT_EQ(top[b].scores[i], s[order[i]]);
        }
      }
    }
  }
}

// NaN scores are never recommended, also where the floor of Note [reject before the
// offer] is still minus infinity: a user whose scores are all NaN but two gets two items.
TEST(BlockedRanking, NaNScoresNeverEnterTheTopK) {
  const std::int64_t V = 50, d = 8;
  Tensor h = randn({1, d}, 11), w = randn({V, d}, 12);
  for (std::int64_t j = 0; j < V; ++j)
    if (j != 7 && j != 30) w.data<float>()[j * d] = std::nanf("");
  for (TableFormat format : {TableFormat::kF32, TableFormat::kBf16}) {
    const auto top = blocked_top_k(h, ServingTable(w, format), 10);
    std::vector<std::int32_t> items = top[0].items;
    std::sort(items.begin(), items.end());
    EXPECT_EQ(items, (std::vector<std::int32_t>{7, 30}));
  }
}

std::uint32_t bits(float x) { return std::bit_cast<std::uint32_t>(x); }

// The instruction sets this machine can run the score kernels with (Note [kernel dispatch]).
std::vector<kernels::Isa> runnable_isas() {
  std::vector<kernels::Isa> out{kernels::Isa::kBaseline};
  if (kernels::isa_supported(kernels::Isa::kAvx2Fma)) out.push_back(kernels::Isa::kAvx2Fma);
  return out;
}

// Note [item dot]: every score of item_dot is dot8's, bit for bit, on widths around and
// not multiples of 8 and on row counts around and not multiples of 8, on every instruction
// set; for bf16 rows, dot8 of the row widened to f32 (exact) is the reference. No
// tolerance: the kernel promises the same operations in the same order.
TEST(ItemDot, EqualsDot8BitForBitF32AndBf16) {
  const kernels::Isa active = kernels::active_isa();
  for (kernels::Isa isa : runnable_isas()) {
    kernels::set_isa(isa);
    for (std::int64_t d : {1, 5, 8, 13, 16, 64, 67}) {
      for (std::int64_t n : {1, 7, 8, 9, 16, 23}) {
        const Tensor h = randn({d}, 20 + d), w = randn({n, d}, 30 + n);
        std::vector<std::uint16_t> half(static_cast<std::size_t>(n * d));
        std::vector<float> widened(half.size());
        for (std::size_t i = 0; i < half.size(); ++i) {
          half[i] = f32_to_bf16(w.data<float>()[i]);
          widened[i] = bf16_to_f32(half[i]);
        }
        std::vector<float> f32(static_cast<std::size_t>(n)), bf16(static_cast<std::size_t>(n));
        item_dot(h.data<float>(), w.data<float>(), n, d, f32.data());
        item_dot(h.data<float>(), half.data(), n, d, bf16.data());
        for (std::int64_t i = 0; i < n; ++i) {
          EXPECT_EQ(bits(f32[i]), bits(dot8(h.data<float>(), w.data<float>() + i * d, d)))
              << kernels::isa_name(isa) << " d " << d << " n " << n << " row " << i;
          EXPECT_EQ(bits(bf16[i]), bits(dot8(h.data<float>(), widened.data() + i * d, d)))
              << kernels::isa_name(isa) << " d " << d << " n " << n << " row " << i;
        }
      }
    }
  }
  kernels::set_isa(active);
}

// The same dot on both instruction sets: a blocked score does not depend on the CPU.
TEST(ItemDot, Dot8SameBitsOnEveryInstructionSet) {
  const kernels::Isa active = kernels::active_isa();
  const std::int64_t d = 67;
  const Tensor h = randn({d}, 40), w = randn({d}, 41);
  std::vector<std::uint32_t> seen;
  for (kernels::Isa isa : runnable_isas()) {
    kernels::set_isa(isa);
    seen.push_back(bits(dot8(h.data<float>(), w.data<float>(), d)));
  }
  kernels::set_isa(active);
  for (std::uint32_t s : seen) EXPECT_EQ(s, seen.front());
}

// ServingTable::score is item_dot on the table's own rows [j0, j1), f32 or bf16: the
// bf16 table's scores are dot8 of its widened rows (rows_f32), bit for bit.
TEST(ServingTable, ScoreEqualsDot8OfItsRows) {
  const std::int64_t V = 45, d = 19, j0 = 3, j1 = 40;
  const Tensor h = randn({d}, 50), w = randn({V, d}, 51);
  for (TableFormat format : {TableFormat::kF32, TableFormat::kBf16}) {
    const ServingTable table(w, format);
    std::vector<float> rows(static_cast<std::size_t>((j1 - j0) * d)), scores(static_cast<std::size_t>(j1 - j0));
    table.rows_f32(j0, j1, rows.data());
    table.score(h.data<float>(), j0, j1, scores.data());
    for (std::int64_t i = 0; i < j1 - j0; ++i)
      EXPECT_EQ(bits(scores[i]), bits(dot8(h.data<float>(), rows.data() + i * d, d))) << "row " << j0 + i;
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
  for (const RankingBlocks& blocks : {RankingBlocks{}, RankingBlocks{.task_items = 100, .block_items = 7}}) {
    const auto ranks = blocked_target_ranks(h, ServingTable(w, TableFormat::kF32), targets, excluded, blocks);
    for (std::int64_t b = 0; b < B; ++b) {
      const std::vector<float> s = full_scores(h, w, b);
      EXPECT_EQ(ranks[b], target_rank(s.data(), static_cast<std::int32_t>(V), targets[b], excluded[b]))
          << "user " << b << " task " << blocks.task_items;
    }
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
