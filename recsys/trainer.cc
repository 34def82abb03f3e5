#include "recsys/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include "base/crc32c.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/text_proto.h"
#include "recsys/catalogue_loss.h"
#include "recsys/data_parallel.h"
#include "recsys/eval/evaluator.h"
#include "recsys/recommender.h"
#include "recsys/run_state.h"
#include "tensor/kernels/elementwise.h"

namespace prunerec::recsys {
namespace {

using Clock = std::chrono::steady_clock;

// First parameter whose value holds a NaN or Inf, or "".
std::string first_bad_parameter(const nn::Transformer& model) {
  for (const auto& [name, var] : model.named_parameters()) {
    const Tensor& v = var.value();
    bool ok = true;
    dispatch_floating(v.dtype(), "finite check", [&](auto tag) {
      using T = decltype(tag);
      ok = kernels::all_finite<T>(v.numel(), v.data<T>());
    });
    if (!ok) return name;
  }
  return "";
}

// First parameter whose gradient holds a NaN or Inf, or "".
std::string first_bad_gradient(const nn::Transformer& model) {
  for (const auto& [name, var] : model.named_parameters()) {
    const Tensor& g = var.grad();
    if (!g.defined()) continue;
    bool ok = true;
    dispatch_floating(g.dtype(), "finite check", [&](auto tag) {
      using T = decltype(tag);
      ok = kernels::all_finite<T>(g.numel(), g.data<T>());
    });
    if (!ok) return name;
  }
  return "";
}

// What every rank of a data-parallel run must agree on besides the data (split_fingerprint in
// recsys/run_state.h): the training and model configs (Note [data-parallel training] in
// recsys/data_parallel.h).
std::uint64_t config_fingerprint(const pb::TrainConfig& cfg, const nn::Transformer& model, const std::string& phase) {
  std::string bytes = cfg.SerializeAsString() + "|" + model.config().SerializeAsString() + "|" + phase;
  return crc32c(bytes.data(), bytes.size());
}

std::string fmt(double v, int digits = 4) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(digits);
  os << v;
  return os.str();
}

}  // namespace

TrainResult train_model(nn::Transformer& model, const TrainSpec& spec) {
  PR_CHECK_T(ConfigError, spec.data && spec.split, "train: data and split are required");
  PR_CHECK_T(ConfigError, !spec.out_path.empty(), "train: an output path is required");
  const pb::TrainConfig& cfg = spec.config;
  PR_CHECK_T(ConfigError, cfg.epochs() > 0 && cfg.batch_size() > 0 && cfg.eval_every() > 0 && cfg.patience() > 0,
             "train: epochs, batch_size, eval_every and patience must be positive");
  PR_CHECK_T(ConfigError, cfg.dropout() >= 0 && cfg.dropout() < 1, "train: dropout ", cfg.dropout(), " is not in [0, 1)");
  PR_CHECK_T(ConfigError, model.vocab_size() == spec.split->num_items, "train: model has ", model.vocab_size(),
             " items, data has ", spec.split->num_items);
  Communicator& comm = spec.comm ? *spec.comm : world();
  std::ostream quiet(nullptr);  // Note [rank 0 speaks] in apps/main.cc
  std::ostream& log = !comm.is_root() ? quiet : spec.log ? *spec.log : std::cerr;
  if (comm.size() > 1) {
    PR_CHECK_T(ConfigError, spec.loss || resolve_loss_kind(cfg.loss(), spec.split->num_items) == pb::LossConfig::FULL ||
                                cfg.loss().sampler() != pb::LossConfig::IN_BATCH,
               "train: the IN_BATCH negative sampler draws from the batch's own targets, which a data-parallel rank does",
               " not hold; use the uniform or popularity sampler with ", comm.size(), " ranks (Note [data-parallel",
               " training] in recsys/data_parallel.h)");
    comm.check_same(split_fingerprint(*spec.split), "the data (file, filters or split)");
    comm.check_same(config_fingerprint(cfg, model, spec.phase), "the training or model config");
  }
  if (const auto parent = std::filesystem::path(spec.out_path).parent_path(); !parent.empty())
    std::filesystem::create_directories(parent);
  const std::string state_path = spec.state_path.empty() ? spec.out_path + ".state" : spec.state_path;
  const int max_len = model.config().max_len();
  const LossFn loss_fn = spec.loss ? spec.loss : catalogue_loss(cfg.loss(), *spec.split, cfg.seed());

  const int batch_size = cfg.batch_tokens() > 0 ? std::max(1, cfg.batch_tokens() / max_len) : cfg.batch_size();
  TrainBatcher batcher(spec.split->train, max_len, batch_size, cfg.all_windows());
  const std::int64_t per_epoch = batcher.batches_per_epoch();
  const std::int64_t total_steps = per_epoch * cfg.epochs();
  nn::AdamWOptions adamw = nn::adamw_options(cfg.optimizer());
  adamw.lazy_rows = !spec.loss && loss_samples(cfg.loss(), spec.split->num_items);  // Note [lazy AdamW rows]
  nn::AdamW opt(model, adamw);
  GradientReducer reducer(model, comm, adamw.lazy_rows);
  bool started = false;

  const RunPlan run{.state_path = state_path,
                     .phase = spec.phase,
                     .config = cfg,
                     .per_epoch = per_epoch,
                     .data_fingerprint = split_fingerprint(*spec.split)};
  TrainResult result;
  pb::TrainingState st = new_run_state(run, model);
  if (spec.resume && std::filesystem::exists(state_path)) {
    st = resume_run(run, model, opt, log);
    result.resumed = true;
  }

  const pb::ItemCatalog catalog = spec.catalog ? catalog_to_proto(*spec.catalog) : pb::ItemCatalog();
  // Every rank holds the same weights (Note [deterministic reduction] in base/comm.h):
  // checked at the start and at every save, so rank 0's file stands for all.
  if (comm.size() > 1)
    comm.check_same(parameters_fingerprint(model), "the model's weights at the start (initialisation or resumed state)");
  auto save_state = [&]() {
    if (comm.size() > 1) comm.check_same(parameters_fingerprint(model), "the model's weights (the ranks have diverged)");
    if (!comm.is_root()) return;
    nn::save_model(state_path, model, {.optimizer = &opt, .state = &st, .catalog = spec.catalog ? &catalog : nullptr,
                                       .metadata = spec.metadata});
  };
  const RunClock clock(st.seconds());
  auto elapsed = [&] { return clock.seconds(); };

  Progress progress(log, spec.phase, per_epoch, comm.is_root() ? spec.progress : Progress::Mode::kSilent);
  EvalOptions eval_options;
  eval_options.protocol.split = "valid";
  eval_options.batch_size = cfg.eval_batch_size();
  eval_options.max_len = max_len;
  eval_options.stoppable = false;  // a stop is taken at the next step, after saving the state
  eval_options.comm = &comm;

  while (!st.finished() && st.epoch() < cfg.epochs()) {
    const int epoch = st.epoch();
    const auto plan = batcher.epoch_plan(cfg.seed(), epoch);
    progress.restart(prunerec::detail::str_cat(spec.phase, " epoch ", epoch + 1, "/", cfg.epochs()), per_epoch);
    const auto t_epoch = Clock::now();
    std::int64_t positions_this_run = 0;
    for (std::int64_t bi = st.epoch_batch(); bi < static_cast<std::int64_t>(plan.size()); ++bi) {
      // Ranks stop together: a signal may reach them at different steps.
      std::int64_t stop = stop_wanted(spec.stop);
      if (comm.size() > 1) comm.allreduce_sum(&stop, 1);
      if (stop) {  // Note [stopping long work]
        st.set_seconds(elapsed());
        save_state();
        progress.clear();
        throw stopped(run, st);
      }
      if (!started && spec.on_start) spec.on_start(batcher);
      started = true;
      // This rank's shard of the global batch (Note [data-parallel training]).
      const std::vector<std::int32_t>& global_windows = plan[bi];
      const Shard shard = shard_of(static_cast<std::int64_t>(global_windows.size()), comm);
      const std::vector<std::int32_t> shard_windows(global_windows.begin() + shard.begin, global_windows.begin() + shard.end);
      const std::int64_t global_positions = positions_of(batcher, global_windows);
      model.zero_grad();
      nn::ForwardOptions fo;
      fo.dropout = cfg.dropout();
      fo.seed = cfg.seed();
      fo.step = static_cast<std::uint64_t>(st.step());
      fo.global_row = shard.begin;  // the masks of the rows' places in the global batch
      fo.global_length = length_of(batcher, global_windows);
      std::optional<ag::Var> loss;
      std::int64_t shard_positions = 0;
      double loss_value = 0;
      if (!shard_windows.empty()) {
        const Batch batch = batcher.make_batch(shard_windows);
        shard_positions = batch.positions;
        PR_ASSERT(comm.size() > 1 || shard_positions == global_positions);
        loss = loss_fn(model, batch, fo);
        loss_value = loss->value().item();
      }
      if (comm.size() > 1) {  // the global mean over the global batch's positions
        double sum = loss_value * static_cast<double>(shard_positions);
        comm.allreduce_sum(&sum, 1);
        loss_value = global_positions > 0 ? sum / static_cast<double>(global_positions) : 0;
      }
      if (!std::isfinite(loss_value)) {
        const std::string bad = first_bad_parameter(model);
        throw NumericError(prunerec::detail::str_cat(
            spec.phase, ": step ", st.step(), ": loss is ", loss_value,
            bad.empty() ? " with finite weights (is the learning rate too high?)" : "; parameter '" + bad + "' is not finite",
            "; stopped before the update", std::filesystem::exists(state_path) ? "; last good state: " + state_path : ""));
      }
      // Gradients summed over ranks, in buckets during the backward pass where all are
      // dense (Note [gradient buckets] in recsys/data_parallel.h).
      const double share =
          global_positions > 0 ? static_cast<double>(shard_positions) / static_cast<double>(global_positions) : 0;
      const bool overlap = comm.size() > 1 && reducer.overlapped();
      if (overlap) reducer.begin(share);
      if (loss) loss->backward(Tensor(), overlap ? reducer.hook() : nullptr);
      if (overlap)
        reducer.finish();
      else if (comm.size() > 1)
        reducer.reduce(share);
      const double norm = opt.grad_norm();
      if (!std::isfinite(norm)) {
        const std::string bad = first_bad_gradient(model);
        throw NumericError(prunerec::detail::str_cat(
            spec.phase, ": step ", st.step(), ": gradient of '", bad, "' is not finite; stopped before the update",
            std::filesystem::exists(state_path) ? "; last good state: " + state_path : ""));
      }
      opt.step_with_norm(nn::lr_at(cfg.optimizer(), st.step(), total_steps), cfg.optimizer().clip_norm(), norm);
      if (spec.on_step) spec.on_step(st.step(), loss_value);
      model.zero_grad();
      count_step(st, loss_value, global_positions);
      positions_this_run += global_positions;
      const double dt = std::chrono::duration<double>(Clock::now() - t_epoch).count();
      progress.update(bi + 1, prunerec::detail::str_cat("step ", st.step(), " loss ", fmt(loss_value), " ",
                                              format_count(dt > 0 ? positions_this_run / dt : 0), " pos/s"));
      if (checkpoint_due(cfg, st)) {
        st.set_seconds(elapsed());
        save_state();
      }
    }
    const double epoch_loss = close_epoch(st);
    std::string line = prunerec::detail::str_cat(spec.phase, " epoch ", epoch + 1, "/", cfg.epochs(), ": loss ", fmt(epoch_loss));
    const bool validate = (epoch + 1) % cfg.eval_every() == 0 || epoch + 1 == cfg.epochs();
    if (validate) {
      progress.clear();
      const EvalResult valid = evaluate_model(model, *spec.data, *spec.split, eval_options);
      line += prunerec::detail::str_cat(", valid NDCG@10 ", fmt(valid.metrics.at("NDCG@10")), " HR@10 ",
                                        fmt(valid.metrics.at("HR@10")));
      if (record_validation(st, valid.metrics, cfg.patience())) {
        st.set_seconds(elapsed());
        pb::TrainingState best_state = st;
        best_state.set_finished(true);
        if (comm.is_root())
          nn::save_model(spec.out_path, model, {.state = &best_state, .catalog = spec.catalog ? &catalog : nullptr,
                                              .metadata = spec.metadata});
        line += " (best, saved)";
      } else if (st.finished()) {
        line += prunerec::detail::str_cat(" (no gain in ", cfg.patience(), " validations: stopping)");
      }
    }
    line += prunerec::detail::str_cat(", ", format_duration(elapsed()));
    progress.log(line);
    if (st.epoch() >= cfg.epochs()) st.set_finished(true);
    st.set_seconds(elapsed());
    save_state();
  }

  result.epochs_run = st.epoch();
  result.best_epoch = st.best_epoch();
  result.best_valid_ndcg10 = st.best_metric();
  result.best_valid.protocol = eval_options.protocol;
  result.best_valid.protocol.split_kind = spec.split->kind;
  for (const auto& [k, v] : st.best_metrics()) result.best_valid.metrics[k] = v;
  result.loss_curve.assign(st.loss_curve().begin(), st.loss_curve().end());
  result.valid_curve.assign(st.history().begin(), st.history().end());
  result.steps = st.step();
  result.seconds = st.seconds();
  result.positions_per_second = st.seconds() > 0 ? static_cast<double>(st.positions()) / st.seconds() : 0;
  result.stopped_early = st.epoch() < cfg.epochs();
  // The best model now holds the final record too (curves and totals).
  if (comm.is_root() && std::filesystem::exists(spec.out_path)) {
    nn::LoadedModel best = nn::load_model(spec.out_path, {.with_optimizer = false});
    pb::TrainingState final_state = st;
    final_state.set_step(best.manifest.state().step());
    nn::save_model(spec.out_path, *best.model, {.state = &final_state, .catalog = spec.catalog ? &catalog : nullptr,
                                                .metadata = spec.metadata});
  }
  comm.barrier();  // the other ranks may read what rank 0 wrote from here on
  return result;
}

}  // namespace prunerec::recsys
