// Speed of the engine on the configs of the PyTorch yardstick
// (../shared/reference/torch_recommender.py), everything measured in one run so the
// numbers share the machine's state; `prunerec bench` prints it.
//
//   training    median ms per step after warm-up, positions/s, GFLOP/s by the reference's
//               analytic formula (recsys/bench_configs.h), and the phase split
//   GEMM floor  the GEMMs of one training step alone, on kernels::gemm (the lower bound
//               for a step built on these GEMMs)
//   memory      peak RSS (training + inference + evaluation; the floor's buffers come
//               after the reading)
//   inference   top-10 ms per user at batch 1 and 256 (next_item_scores + top_k)
//   evaluation  full-ranking users/s through recsys::evaluate_model
//
//   SpeedBenchOptions o;  o.steps = 10;
//   const SpeedBench r = run_speed_bench(bench::kMedium, o);   // r.step_ms(), r.floor_ms(), ...
//
// Note [bench model]: the model is the reference's exactly: tied output, RMSNorm eps 1e-6,
// RoPE theta 1e4, no q/k/v bias, no dropout, KV heads = heads, init N(0, 0.02); AdamW
// lr 1e-3, weight decay 0.01, betas (0.9, 0.999), eps 1e-8 (torch's defaults), no
// clipping. Two differences remain, both negligible in time: our AdamW does not decay 1-D
// parameters (norm gains) and torch's does; and our output layer + cross-entropy is the
// fused, chunked loss (Note [fused output loss] in autograd/ops/loss.cc), which computes
// the output layer's gradients during the forward, so our "loss" phase holds work that
// the reference counts under "forward" and "backward" (see docs/perf.md).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "recsys/bench_configs.h"
#include "proto/model.pb.h"
#include "tensor/allocator.h"

namespace prunerec::recsys {

struct SpeedBenchOptions {
  int warmup = 3;             // untimed training steps
  int steps = 10;             // timed training steps
  int infer_reps = 10;        // minimum timed inference repetitions per batch size ...
  double infer_seconds = 1.0; // ... and about this many seconds of them
  std::int64_t eval_users = 512;
  int eval_reps = 3;
  int floor_reps = 10;        // timed repetitions of the GEMM floor
  std::uint64_t seed = 0;     // the model and the random data
};

struct TrainBench {
  std::vector<double> step_ms, forward_ms, loss_ms, backward_ms, optimizer_ms, foreign;
  // Under mpirun (Note [data-parallel training] in recsys/data_parallel.h): each rank runs
  // its shard of the batch and the gradients are summed in buckets during the backward
  // pass (Note [gradient buckets]); the time spent after the backward pass waiting for
  // the sums (communication not hidden, waiting on the slowest rank included) per step.
  // Empty on one process.
  std::vector<double> allreduce_ms;
  int ranks = 1;
  double loss_first = 0, loss_last = 0;
  double minor_faults_per_step = 0;
  double rss_after_mb = 0;
};

struct InferBench {
  std::int64_t batch = 0;
  double ms_per_batch = 0, ms_per_user = 0, gflops = 0;
  int reps = 0;
};

struct EvalBench {
  std::int64_t users = 0;
  std::vector<double> users_per_s;
};

struct FloorBench {
  std::vector<double> total_ms;                 // per repetition: all GEMMs of one step
  std::map<std::string, double> by_gemm_ms;     // median per GEMM (all `count` calls)
  std::map<std::string, double> by_family_ms;   // sums of the above by family
  std::int64_t flops = 0;
};

struct SpeedBench {
  bench::Config config;
  bench::Flops flops;
  std::int64_t params = 0;
  int threads = 0;
  TrainBench train;
  std::vector<InferBench> infer;  // batch 1, then 256
  EvalBench eval;
  double rss_mb = 0;              // peak RSS before the floor's buffers
  AllocatorStats alloc;
  FloorBench floor;

  // Medians (Note [median] in measure.h) and what follows from them.
  double step_ms() const;
  double positions_per_s() const;
  double gflops() const;
  double floor_ms() const;
  double floor_gflops() const;
  std::map<std::string, double> phase_ms() const;  // forward, loss, backward, optimizer
  double eval_users_per_s() const;
  double foreign_max() const;  // largest share of the machine other processes used in a timed step
};

// Note [bench model].
pb::ModelConfig bench_model_config(const bench::Config& c);

// Builds the model of `config` and measures everything above. ConfigError on options
// out of range (steps, reps, users < 1; warmup, floor_reps < 0).
SpeedBench run_speed_bench(const bench::Config& config, const SpeedBenchOptions& options);

}  // namespace prunerec::recsys
