// Distillation: the loss with the teacher cache equals the loss computed with the teacher
// on the fly, and the cache is kept across recoveries over the same windows.
#include <gtest/gtest.h>

#include <cmath>

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

}  // namespace
}  // namespace prunerec::prune
