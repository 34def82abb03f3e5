#include "recsys/catalogue_loss.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "base/error.h"
#include "tensor/rng.h"

namespace prunerec::recsys {
namespace {

constexpr std::uint64_t kNegativeStream = 0x6e6567;  // "neg" (Note [negatives from the seed])

}  // namespace

NegativeSampler::NegativeSampler(std::int64_t num_items, pb::LossConfig::Sampler sampler, std::int32_t num_negatives,
                                 bool logq_correction, const std::vector<double>& counts, std::uint64_t seed)
    : num_items_(num_items), sampler_(sampler), num_negatives_(num_negatives), logq_(logq_correction), seed_(seed) {
  PR_CHECK_T(ConfigError, num_items > 1 && num_negatives > 0, "negative sampler: need more than one item and ",
             "train.loss.negatives > 0, got ", num_items, " items and ", num_negatives, " negatives");
  if (sampler == pb::LossConfig::POPULARITY) {
    PR_CHECK_T(ConfigError, static_cast<std::int64_t>(counts.size()) == num_items, "negative sampler: ",
               counts.size(), " popularity counts for ", num_items, " items");
    cumulative_.resize(counts.size());
    probability_.resize(counts.size());
    double total = 0;
    for (std::size_t j = 0; j < counts.size(); ++j) cumulative_[j] = total += counts[j] + 1.0;  // add-one smoothing
    for (std::size_t j = 0; j < counts.size(); ++j) probability_[j] = (counts[j] + 1.0) / total;
  }
}

Negatives NegativeSampler::draw(std::uint64_t step, const Tensor& targets) const {
  Rng rng(seed_, hash_stream(kNegativeStream, step));
  const std::int64_t S = num_negatives_;
  Negatives out{Tensor::empty({S}, DType::i32), Tensor::zeros({S}, DType::f64)};
  std::int32_t* items = out.items.data<std::int32_t>();
  double* log_count = out.log_count.data<double>();
  const double s = static_cast<double>(S);
  switch (sampler_) {
    case pb::LossConfig::UNIFORM: {
      const double lc = std::log(s / static_cast<double>(num_items_));
      for (std::int64_t i = 0; i < S; ++i) {
        items[i] = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(num_items_)));
        log_count[i] = lc;
      }
      break;
    }
    case pb::LossConfig::POPULARITY: {
      for (std::int64_t i = 0; i < S; ++i) {
        const double u = rng.uniform() * cumulative_.back();
        const auto j = std::min<std::int64_t>(std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin(),
                                              num_items_ - 1);
        items[i] = static_cast<std::int32_t>(j);
        log_count[i] = std::log(s * probability_[j]);
      }
      break;
    }
    case pb::LossConfig::IN_BATCH: {
      // q_j = (occurrences of j among the batch's targets) / (valid targets).
      const Tensor t = targets.contiguous();
      const std::int32_t* tp = t.data<std::int32_t>();
      std::vector<std::int32_t> pool;
      for (std::int64_t i = 0; i < t.numel(); ++i)
        if (tp[i] >= 0) pool.push_back(tp[i]);
      PR_CHECK_T(ConfigError, !pool.empty(), "in-batch negatives: the batch has no targets");
      std::vector<std::int32_t> sorted = pool;
      std::sort(sorted.begin(), sorted.end());
      const double n = static_cast<double>(pool.size());
      for (std::int64_t i = 0; i < S; ++i) {
        const std::int32_t j = pool[rng.below(pool.size())];
        const auto range = std::equal_range(sorted.begin(), sorted.end(), j);
        items[i] = j;
        log_count[i] = std::log(s * static_cast<double>(range.second - range.first) / n);
      }
      break;
    }
    default:
      throw ConfigError(prunerec::detail::str_cat("negative sampler: unknown sampler ", static_cast<int>(sampler_)));
  }
  if (!logq_) std::fill(log_count, log_count + S, 0.0);
  return out;
}

pb::LossConfig::Kind resolve_loss_kind(const pb::LossConfig& config, std::int64_t num_items) {
  if (config.kind() != pb::LossConfig::AUTO) return config.kind();
  return num_items < config.auto_full_below() ? pb::LossConfig::FULL : pb::LossConfig::SAMPLED;
}

bool loss_samples(const pb::LossConfig& config, std::int64_t num_items) {
  return resolve_loss_kind(config, num_items) != pb::LossConfig::FULL;
}

void validate(const pb::LossConfig& c, std::int64_t num_items) {
  PR_CHECK_T(ConfigError, pb::LossConfig::Kind_IsValid(c.kind()) && pb::LossConfig::Sampler_IsValid(c.sampler()),
             "train.loss: unknown kind or sampler");
  const pb::LossConfig::Kind kind = resolve_loss_kind(c, num_items);
  if (kind == pb::LossConfig::FULL) return;
  PR_CHECK_T(ConfigError, c.negatives() > 0, "train.loss.negatives must be positive, got ", c.negatives());
  PR_CHECK_T(ConfigError, num_items > 1, "train.loss: a sampled loss needs more than one item, got ", num_items);
  if (kind == pb::LossConfig::GBCE) {
    PR_CHECK_T(ConfigError, c.gbce_t() >= 0 && c.gbce_t() <= 1, "train.loss.gbce_t must be in [0, 1], got ", c.gbce_t());
    PR_CHECK_T(ConfigError, c.sampler() == pb::LossConfig::UNIFORM,
               "train.loss: gBCE's calibration (beta from t) assumes uniform negatives; set sampler: UNIFORM");
  }
}

LossFn catalogue_loss(const pb::LossConfig& config, const DataSplit& split, std::uint64_t seed) {
  std::vector<double> counts;
  if (config.sampler() == pb::LossConfig::POPULARITY && loss_samples(config, split.num_items)) {
    counts.assign(static_cast<std::size_t>(split.num_items), 0.0);
    for (const auto& seq : split.train)
      for (std::int32_t item : seq) counts[item] += 1.0;
  }
  return catalogue_loss(config, split.num_items, counts, seed);
}

LossFn catalogue_loss(const pb::LossConfig& config, std::int64_t V, const std::vector<double>& counts,
                      std::uint64_t seed) {
  validate(config, V);
  const pb::LossConfig::Kind kind = resolve_loss_kind(config, V);
  if (kind == pb::LossConfig::FULL)
    return [](const nn::Transformer& m, const Batch& b, const nn::ForwardOptions& fo) {
      return m.loss(b.ids, b.pads, b.targets, fo);
    };
  auto sampler = std::make_shared<const NegativeSampler>(V, config.sampler(), config.negatives(),
                                                         config.logq_correction(), counts, seed);
  const double beta = kind == pb::LossConfig::GBCE ? ag::gbce_beta(config.negatives(), V, config.gbce_t()) : 0.0;
  return [sampler, kind, beta](const nn::Transformer& m, const Batch& b, const nn::ForwardOptions& fo) {
    PR_CHECK(b.targets.shape() == b.ids.shape(), "catalogue loss: targets ", b.targets.shape_str(), " for ids ",
             b.ids.shape_str());
    const Tensor targets = b.targets.reshape({b.ids.numel()});
    const Negatives neg = sampler->draw(fo.step, targets);
    ag::Var h = ag::reshape(m.hidden(b.ids, b.pads, fo), {b.ids.numel(), m.hidden_size()});
    if (kind == pb::LossConfig::GBCE) return ag::gbce_loss(h, m.output_weight(), targets, neg.items, beta);
    return ag::sampled_softmax_loss(h, m.output_weight(), targets, neg.items, neg.log_count);
  };
}

}  // namespace prunerec::recsys
