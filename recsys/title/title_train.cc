#include "recsys/title/title_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <ostream>

#include "base/crc32c.h"
#include "base/error.h"
#include "base/format.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "recsys/progress.h"
#include "recsys/run_state.h"
#include "tensor/rng.h"

namespace prunerec::recsys {

// Note [length-grouped batches]: a batch is padded to its longest sequence, and title-mode
// sequences range from a one-item prompt to the whole context (tens to hundreds of
// tokens), so random batches spend much of their compute on padding. Each epoch shuffles
// the sequences, cuts the shuffled order into windows of kWindowBatches batches, sorts
// each window by length, cuts it into batches and shuffles the batches: batches hold
// sequences of similar length, yet which sequences meet in a batch and the order of
// batches stay random (the grouping of fairseq and of Hugging Face's group_by_length).
// Everything is drawn from the epoch's Rng, so the seed fixes the batches.
std::vector<std::vector<std::int32_t>> length_grouped_batches(const std::vector<TitleSequence>& seqs,
                                                              std::int64_t batch_size, Rng& rng) {
  constexpr std::int64_t kWindowBatches = 64;
  const auto n = static_cast<std::int64_t>(seqs.size());
  std::vector<std::int32_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  rng.shuffle(order);
  const std::int64_t window = kWindowBatches * batch_size;
  for (std::int64_t lo = 0; lo < n; lo += window) {
    const auto first = order.begin() + lo, last = order.begin() + std::min(n, lo + window);
    std::stable_sort(first, last, [&](std::int32_t a, std::int32_t b) {
      return seqs[static_cast<std::size_t>(a)].ids.size() < seqs[static_cast<std::size_t>(b)].ids.size();
    });
  }
  std::vector<std::vector<std::int32_t>> batches;
  for (std::int64_t lo = 0; lo < n; lo += batch_size)
    batches.emplace_back(order.begin() + lo, order.begin() + std::min(n, lo + batch_size));
  rng.shuffle(batches);
  return batches;
}

// A fingerprint of the tokenized training sequences, chained onto the caller's (Note [run
// fingerprints] in recsys/run_state.h).
std::uint32_t title_sequences_fingerprint(const std::vector<TitleSequence>& seqs, std::uint32_t crc) {
  for (const TitleSequence& s : seqs) {
    const std::int64_t head[2] = {static_cast<std::int64_t>(s.ids.size()), s.prompt_len};
    crc = crc32c(head, sizeof head, crc);
    crc = crc32c(s.ids.data(), s.ids.size() * sizeof(std::int32_t), crc);
  }
  return crc;
}

TitleTrainResult train_title_model(nn::Transformer& model, const TitleTrainSpec& spec) {
  PR_CHECK_T(ConfigError, spec.train != nullptr && !spec.train->empty(), "title training: no training sequences");
  const pb::TrainConfig& cfg = spec.config;
  PR_CHECK_T(ConfigError, cfg.epochs() > 0 && cfg.batch_size() > 0, "title training: epochs (", cfg.epochs(),
             ") and batch_size (", cfg.batch_size(), ") must be > 0");
  PR_CHECK_T(ConfigError, cfg.dropout() >= 0 && cfg.dropout() < 1, "title training: dropout ", cfg.dropout(),
             " is not in [0, 1)");
  const auto& seqs = *spec.train;
  const auto n = static_cast<std::int64_t>(seqs.size());
  const std::int64_t batches = (n + cfg.batch_size() - 1) / cfg.batch_size();
  nn::AdamW opt(model, nn::adamw_options(cfg.optimizer()));
  std::ostream quiet(nullptr);
  std::ostream& log = spec.log ? *spec.log : quiet;
  const RunPlan plan{.state_path = spec.state_path,
                     .phase = "title train",
                     .config = cfg,
                     .per_epoch = batches,
                     .data_fingerprint = title_sequences_fingerprint(seqs, spec.data_fingerprint),
                     .data_covers = "the training sequences: data file, filters, split, prompt template, tokenizer, "
                                    "history or samples per user; or the validation data"};
  TitleTrainResult result;
  pb::TrainingState st = new_run_state(plan, model);
  if (!spec.state_path.empty() && spec.resume && std::filesystem::exists(spec.state_path)) {
    st = resume_run(plan, model, opt, log);
    result.resumed = true;
  }
  const RunClock clock(st.seconds());
  auto save_state = [&] {  // Note [resumable training] in recsys/trainer.h
    if (spec.state_path.empty()) return;
    st.set_seconds(clock.seconds());
    nn::SaveOptions options = spec.state_record;
    options.optimizer = &opt;
    options.state = &st;
    nn::save_model(spec.state_path, model, options);
  };
  Progress progress(log, "title train", batches, spec.log ? spec.progress : Progress::Mode::kSilent);
  while (!st.finished() && st.epoch() < cfg.epochs()) {
    const int epoch = st.epoch();
    Rng rng(cfg.seed(), hash_stream(0x717e, static_cast<std::uint64_t>(epoch)));
    const std::vector<std::vector<std::int32_t>> epoch_batches = length_grouped_batches(seqs, cfg.batch_size(), rng);
    progress.restart("title train epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.epochs()), batches);
    const auto t_epoch = std::chrono::steady_clock::now();
    std::int64_t positions_this_run = 0;
    for (std::int64_t b = st.epoch_batch(); b < batches; ++b) {
      if (stop_wanted(spec.stop)) {  // Note [stopping long work]
        save_state();
        progress.clear();
        throw stopped(plan, st);
      }
      const TitleBatch batch = make_title_batch(seqs, epoch_batches[static_cast<std::size_t>(b)]);
      model.zero_grad();
      nn::ForwardOptions fo;
      fo.dropout = cfg.dropout();
      fo.seed = cfg.seed();
      fo.step = static_cast<std::uint64_t>(st.step());
      ag::Var loss = spec.loss ? spec.loss(model, batch, fo) : model.loss(batch.ids, batch.pads, batch.targets, fo);
      const double loss_value = loss.value().item();
      PR_CHECK_T(NumericError, std::isfinite(loss_value), "title training: step ", st.step(), ": loss is ", loss_value,
                 "; stopped before the update (is the learning rate too high?)");
      loss.backward();
      const double norm = opt.grad_norm();
      PR_CHECK_T(NumericError, std::isfinite(norm), "title training: step ", st.step(),
                 ": the gradient norm is not finite; stopped before the update");
      opt.step_with_norm(nn::lr_at(cfg.optimizer(), st.step(), plan.total_steps()), cfg.optimizer().clip_norm(), norm);
      model.zero_grad();
      if (spec.on_step) spec.on_step(st.step(), loss_value);
      count_step(st, loss_value, batch.positions);
      positions_this_run += batch.positions;
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
      progress.update(b + 1, "step " + std::to_string(st.step()) + " loss " +
                                 format_fixed(st.epoch_loss_sum() / static_cast<double>(std::max<std::int64_t>(st.epoch_positions(), 1)), 4) + " " +
                                 format_count(dt > 0 ? static_cast<double>(positions_this_run) / dt : 0) + " tok/s");
      if (checkpoint_due(cfg, st)) save_state();
    }
    progress.clear();
    const double epoch_loss = close_epoch(st);
    std::string line = "title train epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.epochs()) +
                       ": loss " + std::to_string(epoch_loss);
    bool improved = true;  // without validation the last epoch is kept
    if (spec.validate) {
      const EvalResult v = spec.validate(model);
      line += ", valid NDCG@10 " + std::to_string(v.metrics.at("NDCG@10")) + " HR@10 " + std::to_string(v.metrics.at("HR@10"));
      improved = record_validation(st, v.metrics, cfg.patience());
    } else {
      st.set_best_epoch(st.epoch());
    }
    if (improved && spec.save_best) spec.save_best(model);
    progress.log(line + (improved && spec.validate ? " (best)" : ""));
    if (st.epoch() >= cfg.epochs()) st.set_finished(true);
    save_state();
  }
  result.epochs_run = st.epoch();
  result.best_epoch = st.best_epoch() > 0 ? st.best_epoch() : -1;
  for (const auto& [k, v] : st.best_metrics()) result.best_valid.metrics[k] = v;
  result.loss_curve.assign(st.loss_curve().begin(), st.loss_curve().end());
  result.valid_curve.assign(st.history().begin(), st.history().end());
  result.steps = st.step();
  result.seconds = clock.seconds();
  result.tokens_per_second = result.seconds > 0 ? static_cast<double>(st.positions()) / result.seconds : 0;
  result.stopped_early = st.epoch() < cfg.epochs();
  return result;
}

}  // namespace prunerec::recsys
