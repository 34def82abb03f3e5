#include "prune/ledger.h"

#include <algorithm>

#include "recsys/batching.h"
#include "recsys/eval/evaluator.h"
#include "recsys/eval/paired.h"
#include "recsys/measure.h"
#include "recsys/recommender.h"

namespace prunerec::prune {

double flops_per_recommendation(const pb::ModelConfig& config, int history) {
  const double d = config.hidden(), dh = config.head_dim(), T = history;
  double flops = 0;
  const int n = config.layers_size();
  for (int l = 0; l < n; ++l) {
    const auto& L = config.layers(l);
    const double q = L.num_heads() * dh, kv = L.num_kv_heads() * dh;
    // Note [last-position inference] (nn/transformer.cc): the last layer computes keys and
    // values at every position, but its query, o_proj, MLP and attention at the last only.
    const double rows = l + 1 < n ? T : 1;
    flops += 2 * T * (2 * d * kv) + 2 * rows * (d * q + q * d + 3 * d * L.mlp_width());
    // Causal attention, QK^T and PV per head: query i reads i + 1 keys; the last layer's
    // single query reads all T.
    flops += L.num_heads() * 2.0 * 2.0 * dh * (l + 1 < n ? T * (T + 1) / 2 : T);
  }
  flops += 2 * d * config.vocab_size();  // output layer at the last position
  return flops;
}

pb::Latency measure_latency(const nn::Transformer& model, const recsys::SequenceDataset& data,
                            const recsys::DataSplit& split, const LatencyOptions& o) {
  const int max_len = model.config().max_len();
  // The longest test histories (a real user's items), cut to max_len.
  std::vector<std::size_t> order(split.test.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return split.test[a].prefix_len > split.test[b].prefix_len;
  });
  std::vector<std::vector<std::int32_t>> histories;
  for (std::size_t i = 0; i < order.size() && static_cast<int>(histories.size()) < o.batch_size; ++i) {
    const auto& e = split.test[order[i]];
    const auto& seq = data.sequences[e.user];
    histories.emplace_back(seq.begin() + std::max(0, e.prefix_len - max_len), seq.begin() + e.prefix_len);
  }
  PR_CHECK_T(ConfigError, !histories.empty(), "latency: the test split has no examples");
  auto top_k_for = [&](const recsys::Batch& b) {
    const Tensor scores = recsys::next_item_scores(model, b.ids, b.pads).to(DType::f32);
    const std::int64_t V = scores.size(1);
    std::size_t n = 0;
    for (std::int64_t r = 0; r < scores.size(0); ++r)
      n += recsys::top_k(scores.data<float>() + r * V, static_cast<std::int32_t>(V), o.k, {}).size();
    return n;
  };
  const recsys::Batch one = recsys::make_history_batch({histories.front()}, max_len);
  const recsys::Batch batch = recsys::make_history_batch(histories, max_len);
  return time_latency([&] { top_k_for(one); }, [&] { top_k_for(batch); }, static_cast<std::int32_t>(histories.size()),
                      o);
}

pb::Latency time_latency(const std::function<void()>& one_user, const std::function<void()>& batch,
                         std::int32_t batch_size, const LatencyOptions& o) {
  const recsys::Repetition repetition{.warmup = 1, .min_repetitions = o.min_repetitions, .min_seconds = o.min_seconds};
  const std::vector<double> one_samples = recsys::time_repeated(one_user, repetition);
  const std::vector<double> batch_samples = recsys::time_repeated(batch, repetition);
  const double one_ms = recsys::median(one_samples), batch_ms = recsys::median(batch_samples);
  pb::Latency lat;
  lat.set_one_user_ms(one_ms);
  lat.set_batch_ms(batch_ms);
  lat.set_batch_size(batch_size);
  lat.set_batch_ms_per_user(batch_ms / static_cast<double>(batch_size));
  lat.set_repetitions(static_cast<std::int32_t>(std::min(one_samples.size(), batch_samples.size())));
  return lat;
}

pb::StageRow size_row(const nn::Transformer& model, const std::string& name, const std::string& kind,
                      std::int64_t teacher_non_embedding) {
  pb::StageRow row;
  row.set_name(name);
  row.set_kind(kind);
  row.set_total_params(model.num_parameters());
  row.set_embedding_params(model.embedding_parameters());
  row.set_non_embedding_params(model.non_embedding_parameters());
  row.set_non_embedding_fraction(teacher_non_embedding > 0 ? static_cast<double>(model.non_embedding_parameters()) /
                                                                 static_cast<double>(teacher_non_embedding)
                                                           : 0.0);
  *row.mutable_config() = model.config();
  return row;
}

pb::StageRow measure_model(const nn::Transformer& model, const std::string& name, const std::string& kind,
                           std::int64_t teacher_non_embedding, const recsys::SequenceDataset& data,
                           const recsys::DataSplit& split, const RowOptions& options) {
  pb::StageRow row = size_row(model, name, kind, teacher_non_embedding);
  row.set_flops_per_recommendation(flops_per_recommendation(row.config(), row.config().max_len()));
  recsys::EvalOptions eo;
  eo.batch_size = options.eval_batch_size;
  eo.max_len = static_cast<int>(row.config().max_len());
  Progress* progress = options.progress;
  auto phase = [&](const std::string& what, std::size_t total) {
    if (progress) progress->restart(name + ": " + what, static_cast<std::int64_t>(total));
  };
  eo.protocol.split = "valid";
  phase("valid evaluation", split.valid.size());
  for (const auto& [k, v] : recsys::evaluate_model(model, data, split, eo, progress).metrics)
    (*row.mutable_valid_metrics())[k] = v;
  eo.protocol.split = "test";
  phase("test evaluation", split.test.size());
  const recsys::EvalResult test = recsys::evaluate_model(model, data, split, eo, progress);
  for (const auto& [k, v] : test.metrics) (*row.mutable_metrics())[k] = v;
  if (!options.per_user_path.empty()) recsys::write_per_user(options.per_user_path, test, data);
  if (options.latency) {
    phase("latency timing", 0);  // time-bounded: no count to show, but the line says what runs
    if (progress) progress->update(0, "");
    *row.mutable_latency() = measure_latency(model, data, split);
    row.set_latency_ms(row.latency().one_user_ms());
  }
  if (progress) progress->clear();
  return row;
}

}  // namespace prunerec::prune
