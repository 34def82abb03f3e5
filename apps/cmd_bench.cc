// prunerec bench: flags and printing over recsys::run_speed_bench (recsys/speed_bench.h,
// which says what is measured and how).
//
//   prunerec bench --preset medium --threads 2
//   prunerec bench --preset small --steps 2 --warmup 1 --json     # a few seconds
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/bench_catalogue.h"
#include "apps/bench_llm.h"
#include "apps/cli.h"
#include "apps/commands.h"
#include "base/format.h"
#include "base/json.h"
#include "recsys/speed_bench.h"
#include "tensor/parallel.h"

namespace prunerec::apps {
namespace {

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
  flags.add("preset", &preset, "small or medium (the reference's SMALL and MEDIUM), or qwen2-0.5b (forward-only LLM)");
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

  if (preset == "qwen2-0.5b") return bench_llm_preset(threads, seed, json);  // apps/bench_llm.h
  const bench::Config* config = bench::find_config(preset);
  if (!config) throw cli::UsageError("bench: --preset must be small, medium or qwen2-0.5b, got '" + preset + "'");
  if (steps < 1 || warmup < 0 || infer_reps < 1 || eval_reps < 1 || eval_users < 1 || floor_reps < 0)
    throw cli::UsageError("bench: --steps, --infer-reps, --eval-reps and --eval-users must be >= 1, --warmup and "
                          "--floor-reps >= 0");
  if (threads > 0) set_num_threads(threads);
  if (floor_reps == 0) floor_reps = std::min(steps, 10);
  recsys::SpeedBenchOptions options;
  options.warmup = warmup;
  options.steps = steps;
  options.infer_reps = infer_reps;
  options.infer_seconds = infer_seconds;
  options.eval_users = eval_users;
  options.eval_reps = eval_reps;
  options.floor_reps = floor_reps;
  options.seed = seed;
  const recsys::SpeedBench r = recsys::run_speed_bench(*config, options);
  const bench::Config& c = r.config;
  const bench::Flops& flops = r.flops;
  const recsys::TrainBench& train = r.train;
  const recsys::FloorBench& floor = r.floor;
  const recsys::EvalBench& eval = r.eval;
  const std::vector<recsys::InferBench>& infer = r.infer;
  const double step_ms = r.step_ms(), positions_per_s = r.positions_per_s(), gflops = r.gflops();
  const double floor_ms = r.floor_ms(), floor_gflops = r.floor_gflops();
  const std::map<std::string, double> phases = r.phase_ms();
  const double eval_users_per_s = r.eval_users_per_s(), foreign_max = r.foreign_max();
  const double rss_mb = r.rss_mb;
  const AllocatorStats& alloc = r.alloc;

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
        .key("params").value(r.params)
        .key("threads").value(r.threads)
        .key("ranks").value(train.ranks)
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
        .key("allreduce_share").value(train.ranks > 1 ? phases.at("allreduce") / step_ms : 0.0)
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
        .key("flops_elementwise_est").value(flops.elementwise_est(r.params, c))
        .key("flops_infer_per_user").value(flops.infer_per_user)
        .end_object();
    std::cout << j.str() << "\n";
    return 0;
  }

  std::ostringstream os;
  os << "prunerec bench: " << c.name << " (" << c.items << " items, width " << c.hidden << ", " << c.layers
     << " layers, " << c.heads << " heads of " << c.head_dim() << ", MLP " << c.mlp << ", length " << c.length
     << ", batch " << c.batch << "; " << format_grouped(r.params) << " parameters), " << plural(r.threads, "thread") << "\n";
  os << "training (" << plural(steps, "step") << " after " << plural(warmup, "warm-up step") << ")\n"
     << "  ms per step        " << format_fixed(step_ms, 1) << "  (min " << format_fixed(*std::min_element(train.step_ms.begin(), train.step_ms.end()), 1)
     << ", max " << format_fixed(*std::max_element(train.step_ms.begin(), train.step_ms.end()), 1) << ")\n"
     << "  positions/s        " << format_fixed(positions_per_s, 0) << "\n"
     << "  GFLOP/s            " << format_fixed(gflops, 1) << "  (" << format_fixed(flops.train_step / 1e9, 2) << " GFLOP per step, reference formula)\n"
     << "  phases (ms)        forward " << format_fixed(phases.at("forward"), 1) << ", loss " << format_fixed(phases.at("loss"), 1)
     << " (output layer fused), backward " << format_fixed(phases.at("backward"), 1) << ", optimizer "
     << format_fixed(phases.at("optimizer"), 1) << "\n";
  if (train.ranks > 1)
    os << "  data-parallel      " << train.ranks << " ranks x " << plural(r.threads, "thread") << ": gradient allreduce "
       << format_fixed(phases.at("allreduce"), 1) << " ms per step, " << format_fixed(100 * phases.at("allreduce") / step_ms, 1)
       << "% of the step waiting on communication\n";
  os << "  other load         max " << format_fixed(foreign_max * 100, 0) << "% of the machine during a timed step\n"
     << "GEMM floor (" << plural(floor_reps, "repetition") << ")\n"
     << "  ms                 " << format_fixed(floor_ms, 1) << "  (" << format_fixed(floor_gflops, 1) << " GFLOP/s; step / floor "
     << format_fixed(step_ms / floor_ms, 2) << ")\n";
  std::vector<std::pair<double, std::string>> families;
  for (const auto& [name, ms] : floor.by_family_ms) families.emplace_back(ms, name);
  std::sort(families.rbegin(), families.rend());
  for (const auto& [ms, name] : families) os << "    " << name << std::string(name.size() < 17 ? 17 - name.size() : 1, ' ') << format_fixed(ms, 1) << "\n";
  os << "memory\n"
     << "  peak RSS           " << format_fixed(rss_mb, 1) << " MB  (after training " << format_fixed(train.rss_after_mb, 1) << " MB)\n"
     << "inference (top-10)\n";
  for (const auto& i : infer)
    os << "  batch " << i.batch << std::string(i.batch < 10 ? 12 : 10, ' ') << format_fixed(i.ms_per_user, 4) << " ms/user  ("
       << format_fixed(i.ms_per_batch, 2) << " ms per batch, " << format_fixed(i.gflops, 1) << " GFLOP/s, " << plural(i.reps, "repetition") << ")\n";
  os << "evaluation\n"
     << "  users/s            " << format_fixed(eval_users_per_s, 0) << "  (full ranking, " << eval.users << " users, batches of 256)\n";
  std::cout << os.str();
  return 0;
}

}  // namespace prunerec::apps
