// Distillation: the loss with the teacher cache equals the loss computed with the teacher
// on the fly, and the cache is kept across recoveries over the same windows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "nn/text_proto.h"
#include "prune/distill.h"
#include "recsys/batching.h"
#include "recsys/data/split.h"
#include "recsys/data/synthetic.h"

namespace prunerec::prune {
namespace {

TEST(Distill, CachedTeacherStatesGiveTheSameLoss) {
  const recsys::SequenceDataset data = recsys::make_synthetic({.users = 120, .items = 50, .clusters = 5, .seed = 2});
  const recsys::DataSplit split = recsys::leave_one_out(data);
  pb::ModelConfig tc, sc;
  nn::parse_text_proto("vocab_size: 50 hidden: 24 head_dim: 8 max_len: 10 num_layers: 2 "
                       "layer_defaults { num_heads: 3 num_kv_heads: 1 mlp_width: 32 }", "teacher", &tc);
  nn::parse_text_proto("vocab_size: 50 hidden: 16 head_dim: 8 max_len: 10 num_layers: 1 "
                       "layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 8 }", "student", &sc);
  const nn::Transformer teacher(tc, DType::f32, 1);
  const nn::Transformer student(sc, DType::f32, 2);
  const recsys::TrainBatcher batcher(split.train, 10, 16, false);
  TeacherCache cache(teacher);
  cache.fill(batcher);
  EXPECT_EQ(cache.bytes(), batcher.num_positions() * 24 * 4);
  const auto plan = batcher.epoch_plan(3, 0);
  const recsys::LossFn cached = distillation_loss(teacher, 0.2, 2.0, &cache);
  const recsys::LossFn direct = distillation_loss(teacher, 0.2, 2.0, nullptr);
  ag::NoGradGuard ng;
  for (std::size_t i = 0; i < 3; ++i) {
    const recsys::Batch b = batcher.make_batch(plan[i]);
    const double a = cached(student, b, {}).value().item(), d = direct(student, b, {}).value().item();
    // The cached states were computed in other batches: same arithmetic up to GEMM
    // summation order, so f32 agreement to ~1e-6 relative.
    EXPECT_NEAR(a, d, 1e-5 * std::fabs(d)) << "batch " << i;
  }
  // A second batcher over the same data keeps the cache (no recomputation).
  const recsys::TrainBatcher again(split.train, 10, 32, false);
  const Tensor before = cache.states_for(batcher.make_batch(plan[0]));
  cache.fill(again);
  EXPECT_TRUE(bit_equal(before, cache.states_for(batcher.make_batch(plan[0]))));
}

// Top-k distillation (Note [top-k distillation]): with k = every item it is the full
// distillation loss; with k < V the cache holds 8k + 4 bytes per position and its entries
// do not depend on the batcher that asked for them.
TEST(Distill, TopKCacheWithEveryItemEqualsFullDistillation) {
  const recsys::SequenceDataset data = recsys::make_synthetic({.users = 120, .items = 50, .clusters = 5, .seed = 2});
  const recsys::DataSplit split = recsys::leave_one_out(data);
  pb::ModelConfig tc, sc;
  nn::parse_text_proto("vocab_size: 50 hidden: 24 head_dim: 8 max_len: 10 num_layers: 2 "
                       "layer_defaults { num_heads: 3 num_kv_heads: 1 mlp_width: 32 }", "teacher", &tc);
  nn::parse_text_proto("vocab_size: 50 hidden: 16 head_dim: 8 max_len: 10 num_layers: 1 "
                       "layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 8 }", "student", &sc);
  const nn::Transformer teacher(tc, DType::f32, 1);
  const nn::Transformer student(sc, DType::f32, 2);
  const recsys::TrainBatcher batcher(split.train, 10, 16, false);
  TeacherCache all(teacher), top(teacher);
  all.fill(batcher, {.top_k = 50, .temperature = 2.0});
  top.fill(batcher, {.top_k = 5, .temperature = 2.0});
  EXPECT_EQ(top.bytes(), batcher.num_positions() * (8 * 5 + 4));
  const recsys::LossFn full = distillation_loss(teacher, 0.2, 2.0, nullptr);
  const recsys::LossFn every = distillation_loss(teacher, 0.2, 2.0, &all, 50);
  const recsys::LossFn five = distillation_loss(teacher, 0.2, 2.0, &top, 5);
  const auto plan = batcher.epoch_plan(3, 0);
  ag::NoGradGuard ng;
  for (std::size_t i = 0; i < 3; ++i) {
    const recsys::Batch b = batcher.make_batch(plan[i]);
    const double f = full(student, b, {}).value().item();
    // The cache's log-probabilities are f32 from f32 logits; the loss sums them in double:
    // agreement to ~1e-6 relative.
    EXPECT_NEAR(every(student, b, {}).value().item(), f, 1e-5 * std::fabs(f)) << "batch " << i;
    const double partial = five(student, b, {}).value().item();
    EXPECT_TRUE(std::isfinite(partial));
    EXPECT_NE(partial, f);  // five items and a bucket are not the whole distribution
  }
  // Another batcher over the same windows and the same mode keeps the entries; another
  // mode recomputes them.
  const recsys::TrainBatcher again(split.train, 10, 32, false);
  const TeacherCache::TopK before = top.top_k_for(batcher.make_batch(plan[0]));
  top.fill(again, {.top_k = 5, .temperature = 2.0});
  const TeacherCache::TopK after = top.top_k_for(batcher.make_batch(plan[0]));
  EXPECT_TRUE(bit_equal(before.items, after.items) && bit_equal(before.logp, after.logp) &&
              bit_equal(before.rest, after.rest));
  top.fill(again, {.top_k = 3, .temperature = 2.0});
  EXPECT_EQ(top.bytes(), batcher.num_positions() * (8 * 3 + 4));
  // A loss asked for a mode the cache does not hold refuses instead of reading the wrong view.
  EXPECT_THROW(five(student, batcher.make_batch(plan[0]), {}), ShapeError);
}

// The heap selection of top_k_items against a full stable sort, on scores with many ties
// (every score is one of 5 values), for k from 1 to the whole catalogue.
TEST(Distill, TopKItemsEqualTheFirstKOfAFullStableSort) {
  std::vector<float> scores(1001);
  for (std::size_t i = 0; i < scores.size(); ++i) scores[i] = static_cast<float>((i * 7919) % 5) - 2.0f;
  std::vector<std::int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t c) { return scores[a] > scores[c]; });
  for (std::int64_t k : {0, 1, 7, 200, 201, 1000, 1001}) {
    const std::vector<std::int32_t> top = top_k_items(scores.data(), 1001, k);
    EXPECT_EQ(top, std::vector<std::int32_t>(order.begin(), order.begin() + k)) << "k " << k;
  }
}

// The top-k cache's entries are those of a full sort of each position's logits, ties to the
// lower item included: a group of items with one shared embedding row ties at every
// position, straddling the k-th place at some positions.
TEST(Distill, TopKCacheEntriesEqualAFullSort) {
  const recsys::SequenceDataset data = recsys::make_synthetic({.users = 120, .items = 50, .clusters = 5, .seed = 2});
  const recsys::DataSplit split = recsys::leave_one_out(data);
  pb::ModelConfig tc;
  nn::parse_text_proto("vocab_size: 50 hidden: 24 head_dim: 8 max_len: 10 num_layers: 2 "
                       "layer_defaults { num_heads: 3 num_kv_heads: 1 mlp_width: 32 }", "teacher", &tc);
  const nn::Transformer teacher(tc, DType::f32, 1);
  Tensor table = teacher.output_weight().value();  // [50, 24], tied: the embedding too
  for (std::int64_t item = 21; item < 31; ++item)
    std::copy_n(table.data<float>() + 20 * 24, 24, table.data<float>() + item * 24);  // items 20..30 tie
  const recsys::TrainBatcher batcher(split.train, 10, 16, false);
  constexpr std::int64_t k = 25, V = 50;
  TeacherCache cache(teacher);
  cache.fill(batcher, {.top_k = k, .temperature = 2.0});
  // The cache's first batch of 64 windows, with the logits it was computed from.
  std::vector<std::int32_t> ids(64);
  std::iota(ids.begin(), ids.end(), 0);
  const recsys::Batch b = batcher.make_batch(ids);
  const std::int64_t T = b.ids.size(1);
  const TeacherCache::TopK got = cache.top_k_for(b);
  ag::NoGradGuard ng;
  const Tensor h = teacher.hidden(b.ids, b.pads).value().reshape({64 * T, 24});
  const Tensor logits = ag::linear(ag::Var(h), teacher.output_weight()).value().contiguous();
  std::int64_t straddling = 0;
  for (std::int64_t row = 0; row < 64 * T; ++row) {
    if (b.targets.data<std::int32_t>()[row] < 0) continue;  // padding
    const float* x = logits.data<float>() + row * V;
    std::vector<std::int32_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t c) { return x[a] > x[c]; });
    double z = 0, z_rest = 0;
    for (std::int64_t j = 0; j < V; ++j) (j < k ? z : z_rest) += std::exp((x[order[j]] - x[order[0]]) / 2.0);
    z += z_rest;
    const bool straddles = (order[k - 1] >= 20 && order[k - 1] <= 30) && (order[k] >= 20 && order[k] <= 30);
    straddling += straddles;
    for (std::int64_t i = 0; i < k; ++i) {
      ASSERT_EQ(got.items.data<std::int32_t>()[row * k + i], order[i]) << "row " << row << " place " << i;
      // Another summation order than the cache's (sorted, not item order): f32 log-probabilities
      // of values near -1..-10 agree to a few ulps, 1e-5 absolute.
      EXPECT_NEAR(got.logp.data<float>()[row * k + i], (x[order[i]] - x[order[0]]) / 2.0 - std::log(z), 1e-5);
    }
    EXPECT_NEAR(got.rest.data<float>()[row], std::log(z_rest) - std::log(z), 1e-5) << "row " << row;
  }
  EXPECT_GT(straddling, 0) << "no position has the tied group across the k-th place";
}

}  // namespace
}  // namespace prunerec::prune
