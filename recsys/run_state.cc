#include "recsys/run_state.h"

#include <ostream>

#include "base/crc32c.h"
#include "nn/checkpoint.h"
#include "recsys/progress.h"

namespace prunerec::recsys {

std::uint32_t split_fingerprint(const DataSplit& split) {
  std::uint32_t crc = crc32c(&split.num_items, sizeof split.num_items);
  for (const auto& seq : split.train) {
    const std::int64_t n = static_cast<std::int64_t>(seq.size());
    crc = crc32c(&n, sizeof n, crc);
    crc = crc32c(seq.data(), seq.size() * sizeof(std::int32_t), crc);
  }
  for (const auto* examples : {&split.valid, &split.test})
    for (const EvalExample& e : *examples) {
      const std::int32_t fields[3] = {e.user, e.prefix_len, e.target};
      crc = crc32c(fields, sizeof fields, crc);
    }
  return crc;
}

std::uint32_t recipe_fingerprint(const pb::TrainConfig& config, const pb::ModelConfig& model) {
  pb::TrainConfig same_run = config;  // Note [run fingerprints]
  same_run.clear_epochs();
  same_run.clear_checkpoint_every_steps();
  const std::string bytes = same_run.SerializeAsString() + "|" + model.SerializeAsString();
  return crc32c(bytes.data(), bytes.size());
}

pb::TrainingState new_run_state(const RunPlan& plan, const nn::Transformer& model) {
  pb::TrainingState st;
  st.set_seed(plan.config.seed());
  st.set_total_steps(plan.total_steps());
  st.set_phase(plan.phase);
  st.set_best_metric(-1);
  st.set_data_fingerprint(plan.data_fingerprint);
  st.set_recipe_fingerprint(recipe_fingerprint(plan.config, model.config()));
  return st;
}

pb::TrainingState resume_run(const RunPlan& plan, nn::Transformer& model, nn::AdamW& opt, std::ostream& log) {
  const pb::TrainConfig& cfg = plan.config;
  const std::string& state_path = plan.state_path;
  const std::string& phase = plan.phase;
  nn::LoadedModel saved = nn::load_model(state_path);
  const char* start_over = kStartOverHint;
  PR_CHECK_T(ConfigError, saved.model->config().SerializeAsString() == model.config().SerializeAsString(), state_path,
             ": the saved run has a different model config", start_over);
  const pb::TrainingState& saved_state = saved.manifest.state();
  PR_CHECK_T(ConfigError, saved_state.seed() == cfg.seed(), state_path, ": the saved run used seed ", saved_state.seed(),
             ", this one ", cfg.seed(), start_over);
  const std::int64_t saved_total = saved_state.total_steps();
  PR_CHECK_T(ConfigError, saved_total > 0 && saved_total % plan.per_epoch == 0, state_path, ": the saved run planned ",
             saved_total, " steps, not a whole number of this run's epochs of ", plan.per_epoch,
             " batches (other data, batch size or max_len)", start_over);
  // Note [run fingerprints].
  PR_CHECK_T(ConfigError, !saved_state.has_data_fingerprint() || saved_state.data_fingerprint() == plan.data_fingerprint,
             state_path, ": the saved run was trained on other data (", plan.data_covers, " differ)", start_over);
  PR_CHECK_T(ConfigError,
             !saved_state.has_recipe_fingerprint() ||
                 saved_state.recipe_fingerprint() == recipe_fingerprint(cfg, model.config()),
             state_path, ": the saved run had another training recipe (only epochs and checkpoint_every_steps may change",
             " between a run and its resume)", start_over);
  const std::int64_t saved_epochs = saved_total / plan.per_epoch;
  for (const auto& [name, var] : saved.model->named_parameters()) {
    Tensor dst = model.parameter(name).value();
    dst.copy_from(var.value());
  }
  nn::restore_optimizer(opt, saved);
  pb::TrainingState st = saved_state;
  // Note [extending a run].
  const bool stopped_early = st.finished() && st.epoch() < saved_epochs;
  if (stopped_early) {
    log << phase << ": the run in " << state_path << " stopped early at epoch " << st.epoch() << " of " << saved_epochs
        << " (no gain in " << cfg.patience() << " validations); nothing to do (--no-resume starts over)\n";
  } else if (st.epoch() >= cfg.epochs()) {
    st.set_finished(true);
    if (st.epoch() == cfg.epochs())
      log << phase << ": the run in " << state_path << " is finished (" << st.epoch()
          << (st.epoch() == 1 ? " epoch" : " epochs") << ", best epoch " << st.best_epoch()
          << "); nothing to do. Raise --epochs to extend it, or use --no-resume to start over\n";
    else
      log << phase << ": the run in " << state_path << " has already trained " << st.epoch() << " epochs, more than the "
          << cfg.epochs() << " asked for; nothing to do (--no-resume starts over)\n";
  } else {
    if (saved_epochs != cfg.epochs()) {
      log << phase << ": " << (st.finished() ? "extending the finished" : "changing the") << " run in " << state_path
          << " from " << saved_epochs << " to " << cfg.epochs() << " epochs; the learning-rate schedule of the steps to come"
          << " follows the new total (Note [extending a run] in recsys/trainer.h)\n";
      st.set_total_steps(plan.total_steps());
      st.set_finished(false);
    }
    log << phase << ": resuming from " << state_path << " at epoch " << st.epoch() + 1 << ", step " << st.step()
        << " (--no-resume starts over)\n";
  }
  // States written before the fingerprints existed get them from here on.
  st.set_data_fingerprint(plan.data_fingerprint);
  st.set_recipe_fingerprint(recipe_fingerprint(cfg, model.config()));
  return st;
}

bool stop_wanted(const std::atomic<bool>* run_stop) { return stop_requested() || (run_stop && run_stop->load()); }

Interrupted stopped(const RunPlan& plan, const pb::TrainingState& st) {
  if (plan.state_path.empty())
    return Interrupted(prunerec::detail::str_cat(plan.phase, ": stopped at epoch ", st.epoch() + 1, ", step ", st.step(),
                                                 "; this run keeps no state (a rerun starts it over)"));
  return Interrupted(prunerec::detail::str_cat(plan.phase, ": stopped at epoch ", st.epoch() + 1, ", step ", st.step(),
                                               "; state saved to ", plan.state_path,
                                               " (run the same command to resume)"));
}

void count_step(pb::TrainingState& st, double loss, std::int64_t positions) {
  st.set_step(st.step() + 1);
  st.set_epoch_batch(st.epoch_batch() + 1);
  st.set_epoch_loss_sum(st.epoch_loss_sum() + loss * static_cast<double>(positions));
  st.set_epoch_positions(st.epoch_positions() + positions);
  st.set_positions(st.positions() + positions);
}

bool checkpoint_due(const pb::TrainConfig& config, const pb::TrainingState& st) {
  return config.checkpoint_every_steps() > 0 && st.step() % config.checkpoint_every_steps() == 0;
}

double close_epoch(pb::TrainingState& st) {
  const double loss = st.epoch_positions() > 0 ? st.epoch_loss_sum() / static_cast<double>(st.epoch_positions()) : 0;
  st.add_loss_curve(loss);
  st.set_epoch(st.epoch() + 1);
  st.set_epoch_batch(0);
  st.set_epoch_loss_sum(0);
  st.set_epoch_positions(0);
  return loss;
}

bool record_validation(pb::TrainingState& st, const std::map<std::string, double>& metrics, int patience) {
  const double ndcg = metrics.at("NDCG@10");
  st.add_history(ndcg);
  if (ndcg > st.best_metric()) {
    st.set_best_metric(ndcg);
    st.set_best_epoch(st.epoch());
    st.set_bad_validations(0);
    st.mutable_best_metrics()->clear();
    for (const auto& [k, v] : metrics) (*st.mutable_best_metrics())[k] = v;
    return true;
  }
  st.set_bad_validations(st.bad_validations() + 1);
  if (patience > 0 && st.bad_validations() >= patience) st.set_finished(true);
  return false;
}

}  // namespace prunerec::recsys
