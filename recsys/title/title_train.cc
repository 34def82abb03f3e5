#include "recsys/title/title_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include "base/error.h"
#include "base/format.h"
#include "nn/optim.h"
#include "recsys/progress.h"
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

TitleTrainResult train_title_model(nn::Transformer& model, const TitleTrainSpec& spec) {
  PR_CHECK_T(ConfigError, spec.train != nullptr && !spec.train->empty(), "title training: no training sequences");
  const pb::TrainConfig& cfg = spec.config;
  PR_CHECK_T(ConfigError, cfg.epochs() > 0 && cfg.batch_size() > 0, "title training: epochs (", cfg.epochs(),
             ") and batch_size (", cfg.batch_size(), ") must be > 0");
  PR_CHECK_T(ConfigError, cfg.dropout() >= 0 && cfg.dropout() < 1, "title training: dropout ", cfg.dropout(),
             " is not in [0, 1)");
  const auto t0 = std::chrono::steady_clock::now();
  const auto& seqs = *spec.train;
  const auto n = static_cast<std::int64_t>(seqs.size());
  const std::int64_t batches = (n + cfg.batch_size() - 1) / cfg.batch_size();
  const std::int64_t total_steps = batches * cfg.epochs();
  nn::AdamW opt(model, nn::adamw_options(cfg.optimizer()));
  TitleTrainResult result;
  double best = -1;
  int bad_validations = 0;
  std::int64_t tokens = 0;
  Progress progress(spec.log ? *spec.log : std::cerr, "title train", batches,
                    spec.log ? spec.progress : Progress::Mode::kSilent);
  for (int epoch = 0; epoch < cfg.epochs(); ++epoch) {
    Rng rng(cfg.seed(), hash_stream(0x717e, static_cast<std::uint64_t>(epoch)));
    const std::vector<std::vector<std::int32_t>> epoch_batches = length_grouped_batches(seqs, cfg.batch_size(), rng);
    progress.restart("title train epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.epochs()), batches);
    const auto t_epoch = std::chrono::steady_clock::now();
    double loss_sum = 0;
    std::int64_t positions = 0;
    for (std::int64_t b = 0; b < batches; ++b) {
      stop_point("title training");
      const TitleBatch batch = make_title_batch(seqs, epoch_batches[static_cast<std::size_t>(b)]);
      model.zero_grad();
      nn::ForwardOptions fo;
      fo.dropout = cfg.dropout();
      fo.seed = cfg.seed();
      fo.step = static_cast<std::uint64_t>(result.steps);
      ag::Var loss = spec.loss ? spec.loss(model, batch, fo) : model.loss(batch.ids, batch.pads, batch.targets, fo);
      const double loss_value = loss.value().item();
      PR_CHECK_T(NumericError, std::isfinite(loss_value), "title training: step ", result.steps, ": loss is ",
                 loss_value, "; stopped before the update (is the learning rate too high?)");
      loss.backward();
      const double norm = opt.grad_norm();
      PR_CHECK_T(NumericError, std::isfinite(norm), "title training: step ", result.steps,
                 ": the gradient norm is not finite; stopped before the update");
      opt.step_with_norm(nn::lr_at(cfg.optimizer(), result.steps, total_steps), cfg.optimizer().clip_norm(), norm);
      model.zero_grad();
      ++result.steps;
      loss_sum += loss_value * static_cast<double>(batch.positions);
      positions += batch.positions;
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
      progress.update(b + 1, "step " + std::to_string(result.steps) + " loss " + format_fixed(loss_sum / static_cast<double>(std::max<std::int64_t>(positions, 1)), 4) + " " +
                                 format_count(dt > 0 ? static_cast<double>(positions) / dt : 0) + " tok/s");
    }
    progress.clear();
    tokens += positions;
    const double epoch_loss = positions > 0 ? loss_sum / static_cast<double>(positions) : 0;
    result.loss_curve.push_back(epoch_loss);
    result.epochs_run = epoch + 1;
    std::string line = "title train epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.epochs()) +
                       ": loss " + std::to_string(epoch_loss);
    bool improved = false;
    if (spec.validate) {
      EvalResult v = spec.validate(model);
      const double ndcg = v.metrics.at("NDCG@10");
      result.valid_curve.push_back(ndcg);
      line += ", valid NDCG@10 " + std::to_string(ndcg) + " HR@10 " + std::to_string(v.metrics.at("HR@10"));
      if (ndcg > best) {
        best = ndcg;
        result.best_epoch = epoch + 1;
        result.best_valid = std::move(v);
        bad_validations = 0;
        improved = true;
      } else {
        ++bad_validations;
      }
    } else {
      result.best_epoch = epoch + 1;
      improved = true;
    }
    if (improved && spec.save_best) spec.save_best(model);
    progress.log(line + (improved && spec.validate ? " (best)" : ""));
    if (spec.validate && cfg.patience() > 0 && bad_validations >= cfg.patience()) {
      result.stopped_early = true;
      break;
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.tokens_per_second = result.seconds > 0 ? static_cast<double>(tokens) / result.seconds : 0;
  return result;
}

}  // namespace prunerec::recsys
