// The speed benchmark of `prunerec bench` (see speed_bench.h).
#include "recsys/speed_bench.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "base/error.h"
#include "nn/optim.h"
#include "nn/transformer.h"
#include "recsys/data/split.h"
#include "recsys/data_parallel.h"
#include "recsys/eval/evaluator.h"
#include "recsys/eval/metrics.h"
#include "recsys/measure.h"
#include "recsys/recommender.h"
#include "tensor/kernels/gemm.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"

namespace prunerec::recsys {
namespace {



// i32 [rows, cols] of uniform item ids.
Tensor random_ids(Rng& rng, std::int64_t rows, std::int64_t cols, std::int64_t items) {
  Tensor t = Tensor::empty({rows, cols}, DType::i32);
  std::int32_t* p = t.data<std::int32_t>();
  for (std::int64_t i = 0; i < rows * cols; ++i) p[i] = static_cast<std::int32_t>(rng.below(items));
  return t;
}

// ---- training ---------------------------------------------------------------------------

// Marks the end of the forward pass inside Transformer::loss: the final norm's output is
// the last thing hidden() computes before the fused output loss starts.
class ForwardEndClock : public nn::ForwardHooks {
 public:
  explicit ForwardEndClock(int num_layers) : num_layers_(num_layers) {}
  void on_normalized(int layer, int which, const Tensor&) override {
    if (layer == num_layers_ && which == 0) at = Clock::now();
  }
  Clock::time_point at;

 private:
  int num_layers_;
};


// Synthetic histories like the reference's: 4 batches of rows of T+1 random ids, inputs
// the first T, targets the last T, cycled.
TrainBench bench_training(nn::Transformer& net, const bench::Config& c, int warmup, int steps, std::uint64_t seed) {
  const std::int64_t B = c.batch, T = c.length;
  struct Data {
    Tensor ids, targets;
  };
  Rng rng(seed, /*stream=*/1);
  std::vector<Data> batches;
  for (int i = 0; i < 4; ++i) {
    const Tensor rows = random_ids(rng, B, T + 1, c.items);
    batches.push_back({rows.narrow(1, 0, T).contiguous(), rows.narrow(1, 1, T).contiguous()});
  }
  // Data-parallel: this rank's rows of every batch (the global batch stays B).
  Communicator& comm = world();
  const Shard shard = shard_of(B, comm);
  if (comm.size() > 1)
    for (Data& d : batches) {
      d.ids = d.ids.narrow(0, shard.begin, shard.size()).contiguous();
      d.targets = d.targets.narrow(0, shard.begin, shard.size()).contiguous();
    }
  const Tensor pads = Tensor::zeros({shard.size()}, DType::i32);

  nn::AdamWOptions adam;  // Note [bench model]
  adam.beta1 = 0.9;
  adam.beta2 = 0.999;
  adam.eps = 1e-8;
  adam.weight_decay = 0.01;
  nn::AdamW opt(net, adam);
  GradientReducer reducer(net, comm, /*lazy_rows=*/false);
  const double lr = 1e-3;

  ForwardEndClock forward_end(net.num_layers());
  nn::ForwardOptions fo;
  fo.hooks = &forward_end;

  TrainBench r;
  r.ranks = comm.size();
  std::int64_t faults0 = 0;
  for (int i = 0; i < warmup + steps; ++i) {
    if (i == warmup) faults0 = minor_page_faults();
    const Data& b = batches[static_cast<std::size_t>(i) % batches.size()];
    ForeignLoad load;
    load.start();
    forward_end.at = {};
    const auto t0 = Clock::now();
    double loss_value = 0;
    Clock::time_point t2, t3;
    {
      ag::Var loss = net.loss(b.ids, pads, b.targets, fo);  // forward, then the fused output loss
      loss_value = loss.value().item();
      t2 = Clock::now();
      // Data-parallel: buckets summed during the backward pass (Note [gradient buckets]).
      if (comm.size() > 1) reducer.begin(static_cast<double>(shard.size()) / static_cast<double>(B));  // T targets a row
      loss.backward(Tensor(), comm.size() > 1 ? reducer.hook() : nullptr);
      t3 = Clock::now();
    }  // the graph goes here, as in the trainer
    Clock::time_point t3r = t3;
    if (comm.size() > 1) {
      reducer.finish();  // what the backward pass did not hide
      t3r = Clock::now();
    }
    opt.step_with_norm(lr, /*max_norm=*/0.0, /*norm=*/0.0);
    net.zero_grad();
    const auto t4 = Clock::now();
    if (i == 0) r.loss_first = loss_value;
    r.loss_last = loss_value;
    if (i < warmup) continue;
    r.step_ms.push_back(ms_between(t0, t4));
    const bool split = forward_end.at != Clock::time_point{};  // the hook ran: forward | loss
    r.forward_ms.push_back(split ? ms_between(t0, forward_end.at) : std::nan(""));
    r.loss_ms.push_back(split ? ms_between(forward_end.at, t2) : std::nan(""));
    r.backward_ms.push_back(ms_between(t2, t3));
    r.optimizer_ms.push_back(ms_between(t3r, t4));
    if (comm.size() > 1) r.allreduce_ms.push_back(ms_between(t3, t3r));
    r.foreign.push_back(load.stop());
  }
  r.minor_faults_per_step = steps > 0 ? static_cast<double>(minor_page_faults() - faults0) / steps : 0.0;
  r.rss_after_mb = peak_rss_mb();
  return r;
}

// ---- inference and evaluation -------------------------------------------------------------


// Top-10 next items for `users` random histories of full length, like the reference's
// infer: scores of the last position, then the 10 best per row (rows in parallel).
// Repetitions: at least min_reps and enough for about `seconds`, at most 200.
InferBench bench_inference(const nn::Transformer& net, const bench::Config& c, std::int64_t users, int min_reps,
                           double seconds, std::uint64_t seed) {
  Rng rng(seed, /*stream=*/2 + static_cast<std::uint64_t>(users));
  const Tensor ids = random_ids(rng, users, c.length, c.items);
  const Tensor pads = Tensor::zeros({users}, DType::i32);
  std::vector<std::vector<std::pair<std::int32_t, float>>> top(static_cast<std::size_t>(users));
  const auto run = [&] {
    const Tensor scores = next_item_scores(net, ids, pads);  // [users, V]
    const float* s = scores.data<float>();
    const auto V = static_cast<std::int32_t>(c.items);
    parallel_for(0, users, 16, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t u = lo; u < hi; ++u) top[u] = top_k(s + u * V, V, 10, {});
    });
  };
  const std::vector<double> ms =
      time_repeated(run, {.warmup = 2, .min_repetitions = min_reps, .min_seconds = seconds,
                          .max_repetitions = std::max(min_reps, 200)});
  const int reps = static_cast<int>(ms.size());
  PR_ASSERT(top.back().size() == 10);
  InferBench r;
  r.batch = users;
  r.reps = reps;
  r.ms_per_batch = median(ms);
  r.ms_per_user = r.ms_per_batch / static_cast<double>(users);
  r.gflops = static_cast<double>(users) * static_cast<double>(bench::analytic_flops(c).infer_per_user) /
             (r.ms_per_batch * 1e-3) / 1e9;
  return r;
}


// Full-ranking evaluation through the real evaluator (batches of 256, history exclusion,
// pessimistic ranks) on random users of T+2 items each: leave-one-out gives every user a
// test example with a history of T+1 items, truncated to the last T.
EvalBench bench_eval(const nn::Transformer& net, const bench::Config& c, std::int64_t users, int reps,
                     std::uint64_t seed) {
  SequenceDataset data;
  data.source = "random";
  data.format = "random";
  // Appended rather than "i" + to_string(i): GCC 12 warns on the latter (a false -Wrestrict,
  // GCC bug 105329), and CI builds with -Werror.
  for (std::int64_t i = 0; i < c.items; ++i) data.items.add(std::string("i").append(std::to_string(i)));
  Rng rng(seed, /*stream=*/3);
  for (std::int64_t u = 0; u < users; ++u) {
    data.users.push_back(std::string("u").append(std::to_string(u)));
    std::vector<std::int32_t> seq(static_cast<std::size_t>(c.length + 2));
    for (auto& item : seq) item = static_cast<std::int32_t>(rng.below(c.items));
    data.sequences.push_back(std::move(seq));
  }
  data.check_invariants();
  const DataSplit split = leave_one_out(data);
  EvalOptions options;
  options.protocol.split = "test";
  options.batch_size = 256;
  options.max_len = static_cast<int>(c.length);
  EvalBench r;
  r.users = static_cast<std::int64_t>(split.test.size());
  for (int i = 0; i < reps; ++i) {
    const EvalResult e = evaluate_model(net, data, split, options);
    r.users_per_s.push_back(static_cast<double>(e.num_examples) / e.seconds);
  }
  return r;
}

// ---- GEMM floor ---------------------------------------------------------------------------


// The GEMMs of one training step (bench::training_step_gemms) on kernels::gemm and
// nothing else. Operands live in three buffers sized for the largest GEMM, filled with
// uniform [-1, 1) values (no denormals); every GEMM reads and writes them from the start.
// One untimed repetition first touches every page.
FloorBench gemm_floor(const bench::Config& c, int reps, std::uint64_t seed) {
  const std::vector<bench::GemmShape> gemms = bench::training_step_gemms(c);
  std::int64_t a_size = 0, b_size = 0, c_size = 0;
  for (const auto& g : gemms) {
    a_size = std::max(a_size, g.M * g.K);
    b_size = std::max(b_size, g.K * g.N);
    c_size = std::max(c_size, g.M * g.N);
  }
  Tensor A = Tensor::empty({a_size}), B = Tensor::empty({b_size}), C = Tensor::zeros({c_size});
  fill_uniform(A, -1.0, 1.0, seed, 11);
  fill_uniform(B, -1.0, 1.0, seed, 12);
  FloorBench r;
  std::map<std::string, std::vector<double>> samples;
  for (int rep = -1; rep < reps; ++rep) {
    double total = 0;
    for (const auto& g : gemms) {
      const std::int64_t lda = g.trans_a ? g.M : g.K, ldb = g.trans_b ? g.K : g.N;
      const auto t0 = Clock::now();
      for (std::int64_t i = 0; i < g.count; ++i)
        kernels::gemm<float>(g.trans_a, g.trans_b, g.M, g.N, g.K, 1.0f, A.data<float>(), lda, B.data<float>(), ldb,
                             0.0f, C.data<float>(), g.N);
      const double ms = ms_between(t0, Clock::now());
      total += ms;
      if (rep >= 0) samples[g.name()].push_back(ms);
    }
    if (rep >= 0) r.total_ms.push_back(total);
  }
  for (const auto& g : gemms) {
    const double ms = median(samples[g.name()]);
    r.by_gemm_ms[g.name()] = ms;
    r.by_family_ms[g.family + " " + g.pass] += ms;
    r.flops += g.flops();
  }
  return r;
}


}  // namespace

pb::ModelConfig bench_model_config(const bench::Config& c) {
  pb::ModelConfig m;
  m.set_name(std::string("bench-") + std::string(c.name));
  m.set_vocab_size(static_cast<std::int32_t>(c.items));
  m.set_hidden(static_cast<std::int32_t>(c.hidden));
  m.set_head_dim(static_cast<std::int32_t>(c.head_dim()));
  m.set_rope_theta(10000.0);
  m.set_norm_eps(1e-6);
  m.set_qkv_bias(false);
  m.set_tie_embeddings(true);
  m.set_max_len(static_cast<std::int32_t>(c.length));
  m.set_init_std(0.02);
  m.set_num_layers(static_cast<std::int32_t>(c.layers));
  pb::LayerConfig* layer = m.mutable_layer_defaults();
  layer->set_num_heads(static_cast<std::int32_t>(c.heads));
  layer->set_num_kv_heads(static_cast<std::int32_t>(c.kv_heads));
  layer->set_mlp_width(static_cast<std::int32_t>(c.mlp));
  return m;
}

double SpeedBench::step_ms() const { return median(train.step_ms); }
double SpeedBench::positions_per_s() const { return static_cast<double>(config.positions()) / (step_ms() * 1e-3); }
double SpeedBench::gflops() const { return static_cast<double>(flops.train_step) / (step_ms() * 1e-3) / 1e9; }
double SpeedBench::floor_ms() const { return median(floor.total_ms); }
double SpeedBench::floor_gflops() const { return static_cast<double>(floor.flops) / (floor_ms() * 1e-3) / 1e9; }
std::map<std::string, double> SpeedBench::phase_ms() const {
  std::map<std::string, double> phases = {{"forward", median(train.forward_ms)},
                                          {"loss", median(train.loss_ms)},
                                          {"backward", median(train.backward_ms)},
                                          {"optimizer", median(train.optimizer_ms)}};
  if (!train.allreduce_ms.empty()) phases["allreduce"] = median(train.allreduce_ms);
  return phases;
}
double SpeedBench::eval_users_per_s() const { return median(eval.users_per_s); }
double SpeedBench::foreign_max() const {
  double m = std::nan("");
  for (const double f : train.foreign)
    if (std::isfinite(f)) m = std::isnan(m) ? f : std::max(m, f);
  return m;
}

SpeedBench run_speed_bench(const bench::Config& c, const SpeedBenchOptions& o) {
  PR_CHECK_T(ConfigError, o.steps >= 1 && o.infer_reps >= 1 && o.eval_reps >= 1 && o.eval_users >= 1,
             "bench: steps, infer_reps, eval_reps and eval_users must be >= 1");
  PR_CHECK_T(ConfigError, o.warmup >= 0 && o.floor_reps >= 0, "bench: warmup and floor_reps must be >= 0");
  SpeedBench r;
  r.config = c;
  r.flops = bench::analytic_flops(c);
  nn::Transformer net(bench_model_config(c), DType::f32, o.seed);
  r.params = net.num_parameters();
  r.threads = num_threads();
  r.train = bench_training(net, c, o.warmup, o.steps, o.seed);
  for (std::int64_t users : {std::int64_t{1}, std::int64_t{256}})
    r.infer.push_back(bench_inference(net, c, users, o.infer_reps, o.infer_seconds, o.seed));
  r.eval = bench_eval(net, c, o.eval_users, o.eval_reps, o.seed);
  r.rss_mb = peak_rss_mb();  // before the floor's buffers
  r.alloc = allocator_stats();
  r.floor = gemm_floor(c, o.floor_reps, o.seed);
  return r;
}

}  // namespace prunerec::recsys
