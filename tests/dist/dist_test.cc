// Data-parallel training and evaluation (Note [data-parallel training] in
// recsys/data_parallel.h) and distillation's teacher cache, run by CTest under
// `mpirun --oversubscribe -np 2` in a build with PRUNEREC_MPI (tests/dist/CMakeLists.txt).
// Every rank runs every test; the one-process reference runs inside the same test on each
// rank with the single-process communicator, so "1 rank" and "2 ranks" are compared side
// by side on the same data. Run without mpirun the world is one process and the
// comparisons are trivially equal.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "base/comm.h"
#include "nn/text_proto.h"
#include "prune/distill.h"
#include "recsys/data/split.h"
#include "recsys/data/synthetic.h"
#include "recsys/data_parallel.h"
#include "recsys/eval/evaluator.h"
#include "recsys/trainer.h"

namespace prunerec::recsys {
namespace {

namespace fs = std::filesystem;

// A folder shared by the ranks (named after rank 0's process id).
fs::path shared_dir(const std::string& name) {
  std::int64_t pid = ::getpid();
  world().broadcast(&pid, sizeof pid, 0);
  return fs::path(::testing::TempDir()) / ("prunerec_dist_" + name + "_" + std::to_string(pid));
}

struct TrainRun {
  std::vector<double> losses;
  std::uint64_t weights = 0;
};

struct Fixture {
  SequenceDataset data = make_synthetic({.users = 300, .items = 80, .clusters = 8, .mean_length = 10, .seed = 4});
  DataSplit split = leave_one_out(data);
  pb::ModelConfig model;
  Fixture() {
    nn::parse_text_proto(R"(vocab_size: 80 hidden: 32 head_dim: 16 max_len: 12
      num_layers: 2 layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 64 })", "small", &model);
  }
};

// 2 epochs of 10 batches of 32 sequences (300 users): 20 steps, no dropout unless asked.
TrainRun train(const Fixture& f, Communicator& comm, const std::string& name, const std::string& loss = "",
               double dropout = 0) {
  nn::Transformer net(f.model, DType::f32, 1);
  const fs::path dir = shared_dir(name) / (&comm == &world() ? "world" : "single_rank" + std::to_string(world().rank()));
  TrainSpec spec;
  spec.data = &f.data;
  spec.split = &f.split;
  nn::parse_text_proto("epochs: 2 batch_size: 32 optimizer { lr: 3e-3 } " + loss, "train", &spec.config);
  spec.config.set_dropout(dropout);
  spec.out_path = (dir / "model.prc").string();
  spec.resume = false;
  spec.progress = Progress::Mode::kSilent;
  std::ostringstream log;
  spec.log = &log;
  spec.comm = &comm;
  TrainRun run;
  spec.on_step = [&](std::int64_t, double l) { run.losses.push_back(l); };
  train_model(net, spec);
  run.weights = parameters_fingerprint(net);
  world().barrier();
  if (world().is_root()) fs::remove_all(dir);
  return run;
}

// Tolerance of 2 ranks against 1: the runs add the same terms in another order (each
// rank's mean over its shard, scaled and summed over ranks, against one mean over the
// batch), so float32 rounding differs from the first step and AdamW carries it on.
// Measured on this fixture: at most 3.6e-7 (full softmax) and 4.8e-7 (sampled, lazy rows)
// over the 20 steps, at a loss of about 4. 1e-5 is 20x that. What it must catch: leaving
// the gradients unscaled (each rank's mean summed, i.e. twice the gradient; AdamW is
// nearly blind to a constant factor, so this is the hardest error to see) moved the loss
// by 2.2e-3 at step 2 and 7.7e-3 by step 19 (measured), 200x the tolerance.
constexpr double kLossTolerance = 1e-5;

void expect_same_losses(const TrainRun& a, const TrainRun& b, double tolerance) {
  ASSERT_EQ(a.losses.size(), 20u);
  ASSERT_EQ(a.losses.size(), b.losses.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.losses.size(); ++i) worst = std::max(worst, std::abs(a.losses[i] - b.losses[i]));
  if (world().is_root()) std::printf("largest loss difference over 20 steps: %.3g\n", worst);
  for (std::size_t i = 0; i < a.losses.size(); ++i)
    EXPECT_NEAR(a.losses[i], b.losses[i], tolerance) << "step " << i << " of " << world().size() << " ranks";
}

TEST(DataParallel, TwoRanksGiveTheLossOfOneRankAtEachOf20Steps) {
  const Fixture f;
  const TrainRun ranks = train(f, world(), "loss");
  const TrainRun one = train(f, prunerec::detail::single_process(), "loss");
  expect_same_losses(ranks, one, kLossTolerance);
  EXPECT_LT(ranks.losses.back(), ranks.losses.front());
}

// Sampled softmax: the item table's gradient is row-sparse and lazy AdamW updates only
// its rows; the ranks reduce the union of their row sets (Note [data-parallel training]).
TEST(DataParallel, RowSparseGradientsOfTwoRanksMatchOneRank) {
  const Fixture f;
  const std::string sampled = "loss { kind: SAMPLED sampler: UNIFORM negatives: 16 }";
  const TrainRun ranks = train(f, world(), "sampled", sampled);
  const TrainRun one = train(f, prunerec::detail::single_process(), "sampled", sampled);
  expect_same_losses(ranks, one, kLossTolerance);
}

// Note [global dropout masks]: each row draws the masks of its place in the global batch,
// so dropout does not separate 2 ranks from 1. The shards are padded to their own longest
// window (shorter than the batch's at some steps), which the masks' placement covers.
// Tolerance: kLossTolerance (the same reordered sums; measured at most 3.0e-7 over the 20
// steps at dropout 0.3). Measured failures it catches: masks of the local batch (no
// placement) moved the loss by 1.3e-2 at step 0 and up to 3.6e-2; the global row alone,
// without the global batch's length, by 5.6e-4 at step 2 and up to 1.7e-2.
TEST(DataParallel, TwoRanksGiveTheLossOfOneRankWithDropout) {
  const Fixture f;
  const TrainRun ranks = train(f, world(), "dropout", "", 0.3);
  const TrainRun one = train(f, prunerec::detail::single_process(), "dropout", "", 0.3);
  expect_same_losses(ranks, one, kLossTolerance);
}

TEST(DataParallel, TwoRunsWithTheSameRanksGiveTheSameBits) {
  const Fixture f;
  const TrainRun a = train(f, world(), "bits_a");
  const TrainRun b = train(f, world(), "bits_b");
  expect_same_losses(a, b, 0.0);
  EXPECT_EQ(a.weights, b.weights);
}

TEST(DataParallel, ReducerSumsScaledDenseAndRowSparseGradients) {
  Fixture f;
  nn::Transformer net(f.model, DType::f32, 1);
  Communicator& comm = world();
  const int r = comm.rank(), N = comm.size();
  const ag::Var norm = net.parameter("final_norm.weight");
  const ag::Var table = net.parameter("embed.weight");
  const ag::Var untouched = net.parameter("blocks.0.mlp.up_proj.weight");
  net.zero_grad();
  ag::Var(norm).set_grad(Tensor::full(norm.value().shape(), r + 1.0));
  // Row r and row 50 on every rank: the union is {0, .., N-1, 50}.
  const std::int64_t d = table.value().size(1);
  Tensor values = Tensor::full({2, d}, 2.0 * (r + 1));
  ag::Var(table).set_row_grad({Tensor::from_vector(std::vector<std::int32_t>{r, 50}), values});
  GradientReducer(net, comm, /*lazy_rows=*/true).reduce(0.5);
  const double sum = 0.5 * N * (N + 1) / 2.0;  // 0.5 x (1 + 2 + .. + N)
  const Tensor g = norm.grad();
  for (std::int64_t i = 0; i < g.numel(); ++i) ASSERT_EQ(g.data<float>()[i], static_cast<float>(sum));
  EXPECT_FALSE(untouched.grad().defined());  // no rank had one: none after the reduction
  ASSERT_TRUE(table.has_row_grad());
  const ag::RowGrad rg = table.row_grad();
  ASSERT_EQ(rg.rows.numel(), N + 1);
  for (int k = 0; k < N; ++k) {
    EXPECT_EQ(rg.rows.data<std::int32_t>()[k], k);
    EXPECT_EQ(rg.values.data<float>()[k * d], static_cast<float>(0.5 * 2.0 * (k + 1)));  // only rank k holds row k
  }
  EXPECT_EQ(rg.rows.data<std::int32_t>()[N], 50);
  EXPECT_EQ(rg.values.data<float>()[N * d], static_cast<float>(2.0 * sum));  // every rank holds row 50
}

// Note [gradient buckets]: the buckets start during the backward pass, and the overlapped
// sums equal the blocking reduction's bit for bit (the same values added over the same ranks).
TEST(DataParallel, BucketsStartDuringTheBackwardPassAndEqualTheBlockingSum) {
  Fixture f;
  const nn::Transformer net(f.model, DType::f32, 5);
  Communicator& comm = world();
  TrainBatcher batcher(f.split.train, 12, 32, false);
  const auto plan = batcher.epoch_plan(1, 0);
  const Shard shard = shard_of(static_cast<std::int64_t>(plan[0].size()), comm);
  const Batch batch = batcher.make_batch({plan[0].begin() + shard.begin, plan[0].begin() + shard.end});
  const double share = static_cast<double>(batch.positions) / static_cast<double>(positions_of(batcher, plan[0]));
  auto gradients = [&] {
    std::vector<std::vector<float>> out;
    for (const auto& [name, v] : net.named_parameters()) {
      const Tensor g = v.grad().contiguous();
      out.emplace_back(g.data<float>(), g.data<float>() + g.numel());
    }
    return out;
  };
  GradientReducer reducer(net, comm, /*lazy_rows=*/false, /*bucket_floats=*/4096);  // ~20 buckets
  const_cast<nn::Transformer&>(net).zero_grad();
  net.loss(batch.ids, batch.pads, batch.targets).backward();
  reducer.reduce(share);
  const auto blocking = gradients();
  const_cast<nn::Transformer&>(net).zero_grad();
  reducer.begin(share);
  net.loss(batch.ids, batch.pads, batch.targets).backward(Tensor(), reducer.hook());
  EXPECT_GT(reducer.buckets(), 5u);
  EXPECT_EQ(reducer.buckets_started(), reducer.buckets()) << "every parameter is reached, so every bucket starts before finish()";
  reducer.finish();
  EXPECT_EQ(gradients(), blocking);
}

TEST(DataParallel, EvaluationMetricsOfOneAndTwoRanksAreIdentical) {
  const Fixture f;
  const nn::Transformer net(f.model, DType::f32, 3);
  for (const char* ranking : {"full", "sampled"}) {
    EvalOptions eo;
    eo.max_len = 12;
    eo.batch_size = 16;  // 300 examples: 19 batches dealt to the ranks
    eo.protocol.split = "test";
    eo.protocol.ranking = ranking;
    eo.protocol.num_negatives = 20;
    eo.comm = &world();
    const EvalResult ranks = evaluate_model(net, f.data, f.split, eo);
    eo.comm = &prunerec::detail::single_process();
    const EvalResult one = evaluate_model(net, f.data, f.split, eo);
    EXPECT_EQ(ranks.ranks, one.ranks) << ranking;
    ASSERT_EQ(ranks.metrics.size(), one.metrics.size());
    for (const auto& [name, value] : one.metrics) EXPECT_EQ(ranks.metrics.at(name), value) << ranking << " " << name;
    EXPECT_EQ(ranks.short_of_negatives, one.short_of_negatives);
  }
}

// Note [teacher cache]: the teacher's batches are dealt to the ranks and the tables summed;
// every rank ends with the table one process computes, bit for bit, in both modes
// (hidden states; top-k items, log-probabilities and the rest's log-mass).
TEST(DataParallel, TeacherCacheOfTwoRanksEqualsOneRankBitForBit) {
  const Fixture f;
  const nn::Transformer teacher(f.model, DType::f32, 7);
  const TrainBatcher batcher(f.split.train, 12, 32, false);
  std::vector<std::int32_t> every(static_cast<std::size_t>(batcher.num_windows()));
  std::iota(every.begin(), every.end(), 0);
  const Batch all = batcher.make_batch(every);  // one row per window: the whole table
  ASSERT_GT(batcher.num_windows(), 64 * 2) << "too few windows to deal to 2 ranks";
  for (const prune::CacheMode mode : {prune::CacheMode{}, prune::CacheMode{.top_k = 5, .temperature = 2.0}}) {
    prune::TeacherCache ranks(teacher), one(teacher);
    ranks.fill(batcher, mode);
    Communicator& mpi = world();
    prunerec::detail::set_world(nullptr);  // one process, on every rank
    one.fill(batcher, mode);
    prunerec::detail::set_world(&mpi);
    if (mode.top_k == 0) {
      EXPECT_TRUE(bit_equal(ranks.states_for(all), one.states_for(all)));
    } else {
      const prune::TeacherCache::TopK a = ranks.top_k_for(all), b = one.top_k_for(all);
      EXPECT_TRUE(bit_equal(a.items, b.items));
      EXPECT_TRUE(bit_equal(a.logp, b.logp));
      EXPECT_TRUE(bit_equal(a.rest, b.rest));
    }
  }
}

// Ranks started on different data are refused before the first step, naming the ranks.
TEST(DataParallel, RanksThatDisagreeOnTheDataAreRefused) {
  if (world().size() == 1) GTEST_SKIP() << "needs mpirun";
  Fixture f;
  if (world().rank() == 1) f.split.train[0].push_back(f.split.train[0].front());  // one more event on rank 1
  nn::Transformer net(f.model, DType::f32, 1);
  TrainSpec spec;
  spec.data = &f.data;
  spec.split = &f.split;
  nn::parse_text_proto("epochs: 1 batch_size: 32", "train", &spec.config);
  spec.out_path = (shared_dir("refused") / "model.prc").string();
  std::ostringstream log;
  spec.log = &log;
  try {
    train_model(net, spec);
    ADD_FAILURE() << "training started on ranks that hold different data";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("disagree on the data"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rank 1 differs"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(spec.out_path));
}

}  // namespace
}  // namespace prunerec::recsys

// One MPI session around the tests; ranks other than 0 print nothing (their failures still
// fail the job through the exit code mpirun returns).
int main(int argc, char** argv) {
  prunerec::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (!prunerec::world().is_root()) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  return RUN_ALL_TESTS();
}
