// prunerec bench: training and inference speed on the two configs of the PyTorch yardstick
// (../shared/reference/torch_recommender.py), everything measured in one run so the
// numbers share the machine's state:
//
//   training    median ms per step after warm-up, positions/s, GFLOP/s by the reference's
//               analytic formula (bench/bench_configs.h), and the phase split
//   GEMM floor  the GEMMs of one training step alone, on kernels::gemm (the lower bound
//               for a step built on these GEMMs)
//   memory      peak RSS (training + inference + evaluation; the floor's buffers come
//               after the reading)
//   inference   top-10 ms per user at batch 1 and 256 (next_item_scores + top_k)
//   evaluation  full-ranking users/s through recsys::evaluate_model
//
//   prunerec bench --preset medium --threads 2
//   prunerec bench --preset small --steps 2 --warmup 1 --json     # a few seconds
//
// Note [bench model]: the model is the reference's exactly: tied output, RMSNorm eps 1e-6,
// RoPE theta 1e4, no q/k/v bias, no dropout, KV heads = heads, init N(0, 0.02); AdamW
// lr 1e-3, weight decay 0.01, betas (0.9, 0.999), eps 1e-8 (torch's defaults), no
// clipping. Two differences remain, both negligible in time: our AdamW does not decay 1-D
// parameters (norm gains) and torch's does; and our output layer + cross-entropy is the
// fused, chunked loss (Note [fused output loss] in autograd/ops/loss.cc), which computes
// the output layer's gradients during the forward, so our "loss" phase holds work that
// the reference counts under "forward" and "backward" (see docs/perf.md).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "apps/bench_catalogue.h"
#include "apps/cli.h"
#include "apps/commands.h"
#include "bench/bench_configs.h"
#include "nn/optim.h"
#include "nn/transformer.h"
#include "recsys/data/split.h"
#include "recsys/eval/evaluator.h"
#include "recsys/eval/metrics.h"
#include "recsys/recommender.h"
#include "tensor/allocator.h"
#include "tensor/kernels/gemm.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"
#include "base/json.h"

namespace prunerec::apps {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Median of the finite values (NaN when there are none).
double median(std::vector<double> v) {
  std::erase_if(v, [](double x) { return !std::isfinite(x); });
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

std::int64_t minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// CPU time used by other processes during a block, as a fraction of the machine
// (foreign core-seconds / (cores * wall)), the same measure as the reference's
// ForeignLoad: busy jiffies of /proc/stat minus this process's CPU time. NaN where
// /proc/stat cannot be read. Reported, never used to discard samples.
class ForeignLoad {
 public:
  void start() {
    busy0_ = machine_busy_s();
    own0_ = own_cpu_s();
    t0_ = Clock::now();
  }
  double stop() const {
    const double wall = ms_between(t0_, Clock::now()) / 1e3;
    const double busy = machine_busy_s() - busy0_, own = own_cpu_s() - own0_;
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (!(wall > 0) || std::isnan(busy) || cpus <= 0) return std::nan("");
    return std::max(0.0, busy - own) / (static_cast<double>(cpus) * wall);
  }

 private:
  static double machine_busy_s() {
    std::ifstream f("/proc/stat");
    std::string cpu;
    long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
    if (!(f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq) || cpu != "cpu")
      return std::nan("");
    return static_cast<double>(user + nice + system + irq + softirq) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  static double own_cpu_s() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }
  double busy0_ = 0, own0_ = 0;
  Clock::time_point t0_;
};

// Note [bench model].
pb::ModelConfig model_config(const bench::Config& c) {
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

struct TrainBench {
  std::vector<double> step_ms, forward_ms, loss_ms, backward_ms, optimizer_ms, foreign;
  double loss_first = 0, loss_last = 0;
  double minor_faults_per_step = 0;
  double rss_after_mb = 0;
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
  const Tensor pads = Tensor::zeros({B}, DType::i32);

  nn::AdamWOptions adam;  // Note [bench model]
  adam.beta1 = 0.9;
  adam.beta2 = 0.999;
  adam.eps = 1e-8;
  adam.weight_decay = 0.01;
  nn::AdamW opt(net, adam);
  const double lr = 1e-3;

  ForwardEndClock forward_end(net.num_layers());
  nn::ForwardOptions fo;
  fo.hooks = &forward_end;

  TrainBench r;
  std::int64_t faults0 = 0;
  for (int i = 0; i < warmup + steps; ++i) {
    if (i == warmup) faults0 = minor_faults();
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
      loss.backward();
      t3 = Clock::now();
    }  // the graph goes here, as in the trainer
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
    r.optimizer_ms.push_back(ms_between(t3, t4));
    r.foreign.push_back(load.stop());
  }
  r.minor_faults_per_step = steps > 0 ? static_cast<double>(minor_faults() - faults0) / steps : 0.0;
  r.rss_after_mb = peak_rss_mb();
  return r;
}

// ---- inference and evaluation -------------------------------------------------------------

struct InferBench {
  std::int64_t batch = 0;
  double ms_per_batch = 0, ms_per_user = 0, gflops = 0;
  int reps = 0;
};

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
    const Tensor scores = recsys::next_item_scores(net, ids, pads);  // [users, V]
    const float* s = scores.data<float>();
    const auto V = static_cast<std::int32_t>(c.items);
    parallel_for(0, users, 16, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t u = lo; u < hi; ++u) top[u] = recsys::top_k(s + u * V, V, 10, {});
    });
  };
  double estimate_ms = 0;
  for (int i = 0; i < 2; ++i) {
    const auto t0 = Clock::now();
    run();
    estimate_ms = ms_between(t0, Clock::now());
  }
  const int reps = std::max(min_reps, std::min(200, static_cast<int>(seconds * 1e3 / std::max(estimate_ms, 1e-3)) + 1));
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    run();
    ms.push_back(ms_between(t0, Clock::now()));
  }
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

struct EvalBench {
  std::int64_t users = 0;
  std::vector<double> users_per_s;
};

// Full-ranking evaluation through the real evaluator (batches of 256, history exclusion,
// pessimistic ranks) on random users of T+2 items each: leave-one-out gives every user a
// test example with a history of T+1 items, truncated to the last T.
EvalBench bench_eval(const nn::Transformer& net, const bench::Config& c, std::int64_t users, int reps,
                     std::uint64_t seed) {
  recsys::SequenceDataset data;
  data.source = "random";
  data.format = "random";
  for (std::int64_t i = 0; i < c.items; ++i) data.items.add("i" + std::to_string(i));
  Rng rng(seed, /*stream=*/3);
  for (std::int64_t u = 0; u < users; ++u) {
    data.users.push_back("u" + std::to_string(u));
    std::vector<std::int32_t> seq(static_cast<std::size_t>(c.length + 2));
    for (auto& item : seq) item = static_cast<std::int32_t>(rng.below(c.items));
    data.sequences.push_back(std::move(seq));
  }
  data.check_invariants();
  const recsys::DataSplit split = recsys::leave_one_out(data);
  recsys::EvalOptions options;
  options.protocol.split = "test";
  options.batch_size = 256;
  options.max_len = static_cast<int>(c.length);
  EvalBench r;
  r.users = static_cast<std::int64_t>(split.test.size());
  for (int i = 0; i < reps; ++i) {
    const recsys::EvalResult e = recsys::evaluate_model(net, data, split, options);
    r.users_per_s.push_back(static_cast<double>(e.num_examples) / e.seconds);
  }
  return r;
}

// ---- GEMM floor ---------------------------------------------------------------------------

struct FloorBench {
  std::vector<double> total_ms;                 // per repetition: all GEMMs of one step
  std::map<std::string, double> by_gemm_ms;     // median per GEMM (all `count` calls)
  std::map<std::string, double> by_family_ms;   // sums of the above by family
  std::int64_t flops = 0;
};

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

// ---- output -------------------------------------------------------------------------------

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

Json& array(Json& j, const std::vector<double>& values, int decimals) {
  j.begin_array();
  for (double v : values) j.value(std::round(v * std::pow(10.0, decimals)) / std::pow(10.0, decimals));
  return j.end_array();
}

}  // namespace

int cmd_bench(const Args& args) {
  if (is_catalogue_preset(args)) return cmd_bench_catalogue(args);  // apps/bench_catalogue.cc
  cli::Flags flags("bench",
                   "Training and inference speed on the configs of the PyTorch reference "
                   "(shared/reference/torch_recommender.py): ms per step, positions/s, GFLOP/s, the GEMM-only "
                   "floor of a step, peak RSS, top-10 inference ms per user and evaluation users/s.",
                   "prunerec bench --preset medium --threads 2 --json");
  std::string preset = "small";
  int threads = 0, steps = 10, warmup = 3, infer_reps = 10, floor_reps = 0, eval_reps = 3;
  std::int64_t eval_users = 512;
  double infer_seconds = 1.0;
  std::uint64_t seed = 0;
  bool json = false;
  flags.add("preset", &preset, "small or medium (the reference's SMALL and MEDIUM)");
  flags.add("threads", &threads, "worker threads (default: all cores, or $PRUNEREC_THREADS)");
  flags.add("steps", &steps, "timed training steps (the median is reported)");
  flags.add("warmup", &warmup, "untimed training steps before them");
  flags.add("infer-reps", &infer_reps, "minimum timed inference repetitions per batch size (more for fast ones, ~1 s)");
  flags.add("infer-seconds", &infer_seconds, "aim for this many seconds of inference repetitions per batch size");
  flags.add("eval-users", &eval_users, "random users in the evaluation run");
  flags.add("eval-reps", &eval_reps, "timed evaluation runs (median users/s)");
  flags.add("floor-reps", &floor_reps, "timed repetitions of the GEMM floor (default: --steps, at most 10)");
  flags.add("seed", &seed, "seed of the model and the random data");
  flags.add_switch("json", &json, "print one JSON object instead of the table");
  flags.parse(args);

  const bench::Config* config = bench::find_config(preset);
  if (!config) throw cli::UsageError("bench: --preset must be small or medium, got '" + preset + "'");
  if (steps < 1 || warmup < 0 || infer_reps < 1 || eval_reps < 1 || eval_users < 1 || floor_reps < 0)
    throw cli::UsageError("bench: --steps, --infer-reps, --eval-reps and --eval-users must be >= 1, --warmup and "
                          "--floor-reps >= 0");
  if (threads > 0) set_num_threads(threads);
  if (floor_reps == 0) floor_reps = std::min(steps, 10);
  const bench::Config& c = *config;
  const bench::Flops flops = bench::analytic_flops(c);

  nn::Transformer net(model_config(c), DType::f32, seed);
  const TrainBench train = bench_training(net, c, warmup, steps, seed);
  std::vector<InferBench> infer;
  for (std::int64_t users : {std::int64_t{1}, std::int64_t{256}})
    infer.push_back(bench_inference(net, c, users, infer_reps, infer_seconds, seed));
  const EvalBench eval = bench_eval(net, c, eval_users, eval_reps, seed);
  const double rss_mb = peak_rss_mb();  // before the floor's buffers
  const AllocatorStats alloc = allocator_stats();
  const FloorBench floor = gemm_floor(c, floor_reps, seed);

  const double step_ms = median(train.step_ms);
  const double positions_per_s = static_cast<double>(c.positions()) / (step_ms * 1e-3);
  const double gflops = static_cast<double>(flops.train_step) / (step_ms * 1e-3) / 1e9;
  const double floor_ms = median(floor.total_ms);
  const double floor_gflops = static_cast<double>(floor.flops) / (floor_ms * 1e-3) / 1e9;
  const std::map<std::string, double> phases = {{"forward", median(train.forward_ms)},
                                                 {"loss", median(train.loss_ms)},
                                                 {"backward", median(train.backward_ms)},
                                                 {"optimizer", median(train.optimizer_ms)}};
  const double eval_users_per_s = median(eval.users_per_s);
  const double foreign_max = train.foreign.empty() ? std::nan("") : *std::max_element(train.foreign.begin(), train.foreign.end());

  if (json) {
    Json j;
    j.begin_object()
        .key("command").value("bench")
        .key("preset").value(std::string(c.name))
        .key("items").value(c.items)
        .key("hidden").value(c.hidden)
        .key("layers").value(c.layers)
        .key("heads").value(c.heads)
        .key("kv_heads").value(c.kv_heads)
        .key("head_dim").value(c.head_dim())
        .key("mlp").value(c.mlp)
        .key("T").value(c.length)
        .key("batch").value(c.batch)
        .key("tied").value(true)
        .key("params").value(net.num_parameters())
        .key("threads").value(num_threads())
        .key("seed").value(static_cast<std::int64_t>(seed))
        .key("warmup").value(warmup)
        .key("steps").value(steps)
        .key("ms_per_step").value(step_ms)
        .key("ms_min").value(*std::min_element(train.step_ms.begin(), train.step_ms.end()))
        .key("ms_max").value(*std::max_element(train.step_ms.begin(), train.step_ms.end()))
        .key("step_ms_samples");
    array(j, train.step_ms, 2);
    j.key("positions_per_s").value(positions_per_s)
        .key("gflops").value(gflops)
        .key("phase_ms").object(phases)
        .key("foreign_frac_max").value(foreign_max)
        .key("foreign_frac_samples");
    array(j, train.foreign, 3);
    j.key("minor_page_faults_per_step").value(train.minor_faults_per_step)
        .key("loss_first").value(train.loss_first)
        .key("loss_last").value(train.loss_last)
        .key("gemm_floor_ms").value(floor_ms)
        .key("gemm_floor_gflops").value(floor_gflops)
        .key("step_over_floor").value(step_ms / floor_ms)
        .key("gemm_floor_samples");
    array(j, floor.total_ms, 2);
    j.key("gemm_floor_by_gemm_ms").object(floor.by_gemm_ms)
        .key("gemm_floor_by_family_ms").object(floor.by_family_ms)
        .key("peak_rss_mb").value(rss_mb)
        .key("train_rss_mb").value(train.rss_after_mb)
        .key("allocator_peak_mb").value(static_cast<double>(alloc.peak_bytes) / (1024.0 * 1024.0))
        .key("allocator_system_allocs").value(alloc.system_allocs)
        .key("infer_ms_per_user").begin_object();
    for (const auto& i : infer) j.key(std::to_string(i.batch)).value(i.ms_per_user);
    j.end_object().key("infer").begin_object();
    for (const auto& i : infer) {
      j.key(std::to_string(i.batch)).begin_object()
          .key("ms_per_batch").value(i.ms_per_batch)
          .key("ms_per_user").value(i.ms_per_user)
          .key("reps").value(i.reps)
          .key("gflops").value(i.gflops)
          .end_object();
    }
    j.end_object()
        .key("eval_users_per_s").value(eval_users_per_s)
        .key("eval_users").value(eval.users)
        .key("eval_users_per_s_samples");
    array(j, eval.users_per_s, 1);
    j.key("flops_fwd_gemm").value(flops.fwd_gemm)
        .key("flops_fwd_attn").value(flops.fwd_attn)
        .key("flops_train_step").value(flops.train_step)
        .key("flops_elementwise_est").value(flops.elementwise_est(net.num_parameters(), c))
        .key("flops_infer_per_user").value(flops.infer_per_user)
        .end_object();
    std::cout << j.str() << "\n";
    return 0;
  }

  std::ostringstream os;
  os << "prunerec bench: " << c.name << " (" << c.items << " items, width " << c.hidden << ", " << c.layers
     << " layers, " << c.heads << " heads of " << c.head_dim() << ", MLP " << c.mlp << ", length " << c.length
     << ", batch " << c.batch << "; " << net.num_parameters() << " parameters), " << num_threads() << " threads\n";
  os << "training (" << steps << " steps after " << warmup << " warm-up)\n"
     << "  ms per step        " << fixed(step_ms, 1) << "  (min " << fixed(*std::min_element(train.step_ms.begin(), train.step_ms.end()), 1)
     << ", max " << fixed(*std::max_element(train.step_ms.begin(), train.step_ms.end()), 1) << ")\n"
     << "  positions/s        " << fixed(positions_per_s, 0) << "\n"
     << "  GFLOP/s            " << fixed(gflops, 1) << "  (" << fixed(flops.train_step / 1e9, 2) << " GFLOP per step, reference formula)\n"
     << "  phases (ms)        forward " << fixed(phases.at("forward"), 1) << ", loss " << fixed(phases.at("loss"), 1)
     << " (output layer fused), backward " << fixed(phases.at("backward"), 1) << ", optimizer "
     << fixed(phases.at("optimizer"), 1) << "\n"
     << "  other load         max " << fixed(foreign_max * 100, 0) << "% of the machine during a timed step\n"
     << "GEMM floor (" << floor_reps << " reps)\n"
     << "  ms                 " << fixed(floor_ms, 1) << "  (" << fixed(floor_gflops, 1) << " GFLOP/s; step / floor "
     << fixed(step_ms / floor_ms, 2) << ")\n";
  std::vector<std::pair<double, std::string>> families;
  for (const auto& [name, ms] : floor.by_family_ms) families.emplace_back(ms, name);
  std::sort(families.rbegin(), families.rend());
  for (const auto& [ms, name] : families) os << "    " << name << std::string(name.size() < 17 ? 17 - name.size() : 1, ' ') << fixed(ms, 1) << "\n";
  os << "memory\n"
     << "  peak RSS           " << fixed(rss_mb, 1) << " MB  (after training " << fixed(train.rss_after_mb, 1) << " MB)\n"
     << "inference (top-10)\n";
  for (const auto& i : infer)
    os << "  batch " << i.batch << std::string(i.batch < 10 ? 12 : 10, ' ') << fixed(i.ms_per_user, 4) << " ms/user  ("
       << fixed(i.ms_per_batch, 2) << " ms per batch, " << fixed(i.gflops, 1) << " GFLOP/s, " << i.reps << " reps)\n";
  os << "evaluation\n"
     << "  users/s            " << fixed(eval_users_per_s, 0) << "  (full ranking, " << eval.users << " users, batches of 256)\n";
  std::cout << os.str();
  return 0;
}

}  // namespace prunerec::apps
